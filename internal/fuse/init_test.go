package fuse

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// initOut decodes an InitOut reply with encoding/binary.
func decodeInitReply(t *testing.T, b []byte) (OutHeader, InitOut) {
	t.Helper()
	var h OutHeader
	var o InitOut
	r := bytes.NewReader(b)
	if err := binary.Read(r, binary.LittleEndian, &h); err != nil {
		t.Fatalf("decode reply header: %v", err)
	}
	if h.Error != 0 {
		return h, o
	}
	if err := binary.Read(r, binary.LittleEndian, &o); err != nil {
		t.Fatalf("decode InitOut: %v", err)
	}
	if r.Len() != 0 {
		t.Fatalf("reply has %d trailing bytes", r.Len())
	}
	return h, o
}

func TestInit(t *testing.T) {
	const always uint64 = 0x48449829 | FUSE_CREATE_SUPP_GROUP | FUSE_ALLOW_IDMAP
	maxPages := uint16((1<<20 + os.Getpagesize() - 1) / os.Getpagesize())
	for _, c := range []struct {
		name        string
		body        []any
		want        uint64     // file system's wanted flags
		fsErr       unix.Errno // file system's Init error
		wantCapable uint64     // expected Init argument; 0: Init not called
		wantErr     unix.Errno
		wantFlags   uint64 // negotiated flags (reply and Server)
		wantMajor   bool   // expect the bare 7.38 answer to major > 7
	}{
		{name: "everything offered, nothing wanted",
			body:        []any{InitIn{Major: 7, Minor: 38, MaxReadahead: 131072, Flags: 0xffffffff}, InitInExt{Flags2: 0xffffffff}},
			wantCapable: knownFlags, wantFlags: always},
		{name: "wanted flags",
			body: []any{InitIn{Major: 7, Minor: 38, MaxReadahead: 4096, Flags: 0xffffffff}, InitInExt{Flags2: 0xffffffff}},
			want: FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_WRITEBACK_CACHE | FUSE_POSIX_ACL | FUSE_DONT_MASK |
				FUSE_SETXATTR_EXT | FUSE_HANDLE_KILLPRIV_V2 | FUSE_SECURITY_CTX | FUSE_DIRECT_IO_ALLOW_MMAP |
				FUSE_HAS_EXPIRE_ONLY | FUSE_PASSTHROUGH,
			wantCapable: knownFlags,
			wantFlags: always | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_WRITEBACK_CACHE | FUSE_POSIX_ACL |
				FUSE_DONT_MASK | FUSE_SETXATTR_EXT | FUSE_HANDLE_KILLPRIV_V2 | FUSE_SECURITY_CTX | FUSE_DIRECT_IO_ALLOW_MMAP},
		{name: "only offered flags are enabled",
			body:        []any{InitIn{Major: 7, Minor: 31, Flags: uint32(FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE | FUSE_BIG_WRITES | FUSE_POSIX_LOCKS)}},
			want:        FUSE_WRITEBACK_CACHE | FUSE_DO_READDIRPLUS,
			wantCapable: FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE | FUSE_BIG_WRITES | FUSE_POSIX_LOCKS,
			wantFlags:   FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE | FUSE_BIG_WRITES},
		{name: "flags2 ignored without INIT_EXT",
			body:        []any{InitIn{Major: 7, Minor: 38, Flags: uint32(FUSE_ASYNC_READ)}, InitInExt{Flags2: 0xffffffff}},
			wantCapable: FUSE_ASYNC_READ, wantFlags: FUSE_ASYNC_READ},
		{name: "unknown bits stripped",
			body:        []any{InitIn{Major: 7, Minor: 40, Flags: uint32(FUSE_INIT_EXT)}, InitInExt{Flags2: 0xfffffff8}},
			want:        ^uint64(0),
			wantCapable: FUSE_INIT_EXT | FUSE_DIRECT_IO_ALLOW_MMAP | FUSE_ALLOW_IDMAP,
			wantFlags:   FUSE_INIT_EXT | FUSE_DIRECT_IO_ALLOW_MMAP | FUSE_ALLOW_IDMAP},
		{name: "oldest minor", body: []any{InitIn{Major: 7, Minor: 27}}, wantCapable: 0, wantFlags: 0},
		{name: "minor too old", body: []any{InitIn{Major: 7, Minor: 26, Flags: 1}}, wantErr: unix.EPROTO},
		{name: "major too old", body: []any{InitIn{Major: 6, Minor: 38}}, wantErr: unix.EPROTO},
		{name: "major too new", body: []any{InitIn{Major: 8, Minor: 0, Flags: 0xffffffff}}, wantMajor: true},
		{name: "file system error", body: []any{InitIn{Major: 7, Minor: 38, Flags: 1}}, fsErr: unix.EPROTO,
			wantCapable: FUSE_ASYNC_READ, wantErr: unix.EPROTO},
		{name: "INIT_EXT without its tail", body: []any{InitIn{Major: 7, Minor: 38, Flags: uint32(FUSE_INIT_EXT)}, uint32(0)},
			wantErr: unix.EINVAL},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, sp := range splits {
				f := newFakeFS()
				f.want, f.errno = c.want, c.fsErr
				s := NewServerWithOptions(f, Options{Log: quietLog()})
				const before = 0xdead
				s.SetNegotiated(before)
				req := request(FUSE_INIT, 0, c.body...)
				out := make([]byte, 200)
				n := s.NewWorker().Serve(split(req, sp[0]), split(out, sp[1]))
				h, o := decodeInitReply(t, out[:n])
				if h.Unique != testUnique || int(h.Len) != int(n) {
					t.Fatalf("reply header %+v, n %d", h, n)
				}
				var wantCalls []string
				if c.wantCapable != 0 || (c.wantErr == 0 && !c.wantMajor) || c.fsErr != 0 {
					wantCalls = []string{"Init capable=" + hex(c.wantCapable)}
				}
				if len(f.calls) != len(wantCalls) || (len(wantCalls) > 0 && f.calls[0] != wantCalls[0]) {
					t.Fatalf("calls %q, want %q", f.calls, wantCalls)
				}
				if c.wantErr != 0 {
					if h.Error != -int32(c.wantErr) || n != 16 {
						t.Fatalf("reply error %d len %d, want %d", h.Error, n, -int32(c.wantErr))
					}
					if got := s.Negotiated(); got != before {
						t.Fatalf("Negotiated() = %#x after a failed INIT, want it unchanged", got)
					}
					return
				}
				if c.wantMajor {
					if o != (InitOut{Major: 7, Minor: 38}) || n != 16+64 {
						t.Fatalf("reply to major 8 = %+v (n %d), want only major/minor 7.38", o, n)
					}
					return
				}
				in := c.body[0].(InitIn)
				want := InitOut{Major: 7, Minor: 38, MaxReadahead: in.MaxReadahead,
					Flags: uint32(c.wantFlags), Flags2: uint32(c.wantFlags >> 32),
					MaxBackground: 65535, CongestionThreshold: 49149, MaxWrite: 1 << 20, TimeGran: 1,
					MaxPages: maxPages}
				if o != want {
					t.Fatalf("InitOut\n got %+v\nwant %+v", o, want)
				}
				if got := s.Negotiated(); got != c.wantFlags {
					t.Fatalf("Negotiated() = %#x, want %#x", got, c.wantFlags)
				}
			}
		})
	}
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0x0"
	}
	var b []byte
	for ; v > 0; v >>= 4 {
		b = append([]byte{digits[v&15]}, b...)
	}
	return "0x" + string(b)
}

func TestInitConstants(t *testing.T) {
	if knownFlags != 0x1_17ff_ffff_ff {
		t.Errorf("knownFlags = %#x", knownFlags)
	}
	if CongestionThreshold != 49149 {
		t.Errorf("CongestionThreshold = %d, want 49149", CongestionThreshold)
	}
	if os.Getpagesize() == 4096 {
		if got := NewServer(newFakeFS()).maxPages; got != 256 {
			t.Errorf("maxPages = %d, want 256 with 4 KiB pages", got)
		}
	}
}
