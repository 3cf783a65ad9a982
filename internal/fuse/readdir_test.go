package fuse

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// fuseDirent encodes the expected fuse_dirent for a record.
func fuseDirent(ino, off uint64, typ uint32, name string) []byte {
	pad := (8 - len(name)%8) % 8
	return enc(Dirent{Ino: ino, Off: off, Namelen: uint32(len(name)), Type: typ}, name, make([]byte, pad))
}

// dotEntry is the EntryOut READDIRPLUS sends for "." and "..".
func dotEntry(ino uint64) EntryOut {
	return EntryOut{Attr: Attr{Ino: ino, Mode: unix.DT_DIR << 12}}
}

func testDir() []byte {
	return bytes.Join([][]byte{
		dirent64(1, 1, unix.DT_DIR, "."),
		dirent64(2, 2, unix.DT_DIR, ".."),
		dirent64(10, 3, unix.DT_REG, "file"),
		dirent64(11, 4, unix.DT_LNK, "a_longer_name"), // 13 bytes: 3 bytes of padding
		dirent64(12, 5, unix.DT_REG, "exactly8"),      // no padding
	}, nil)
}

func withDir(f *fakeFS, _ *Server) { f.dirents = testDir(); f.entry = testEntry }

func TestReaddir(t *testing.T) {
	all := bytes.Join([][]byte{
		fuseDirent(1, 1, unix.DT_DIR, "."),
		fuseDirent(2, 2, unix.DT_DIR, ".."),
		fuseDirent(10, 3, unix.DT_REG, "file"),
		fuseDirent(11, 4, unix.DT_LNK, "a_longer_name"),
		fuseDirent(12, 5, unix.DT_REG, "exactly8"),
	}, nil)
	if len(all) != 32+32+32+40+32 {
		t.Fatalf("expected encoding has %d bytes", len(all))
	}
	rd := func(size uint32) []byte { return request(FUSE_READDIR, 3, ReadIn{Fh: 5, Offset: 0, Size: size}) }
	call := func(size int) string { return "Readdir %c node=3 fh=5 off=0 size=" + itoa(size) + " buf=" + itoa(size) }
	runCases(t, []tcase{
		{name: "all entries", setup: withDir, req: rd(4096), calls: []string{call(4096)}, reply: reply(all)},
		{name: "size stops after two", setup: withDir, req: rd(64 + 31), calls: []string{call(95)}, reply: reply(all[:64])},
		{name: "exact fit", setup: withDir, req: rd(uint32(len(all))), calls: []string{call(len(all))}, reply: reply(all)},
		{name: "out capacity limits", setup: withDir, req: rd(64), out: 64, calls: []string{call(64)}, reply: reply(all[:32])},
		{name: "first entry does not fit", setup: withDir, req: rd(31), calls: []string{call(31)}, reply: reply()},
		{name: "size zero", setup: withDir, req: rd(0), reply: reply()},
		{name: "size above 1 MiB", setup: withDir, req: rd(1<<20 + 1), out: 2 << 20, reply: errReply(unix.ENOMEM)},
		{name: "size 1 MiB", setup: withDir, req: rd(1 << 20), out: 1 << 20, calls: []string{call(1 << 20)}, reply: reply(all)},
		{name: "out smaller than size", setup: withDir, req: rd(4096), out: 4095, reply: errReply(unix.ENOMEM)},
		{name: "error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.EBADF }, req: rd(4096), calls: []string{call(4096)}, reply: errReply(unix.EBADF)},
		{name: "empty directory", req: rd(4096), calls: []string{call(4096)}, reply: reply()},
		{name: "bad host record first", setup: func(f *fakeFS, _ *Server) { f.dirents = make([]byte, 24) },
			req: rd(4096), calls: []string{call(4096)}, reply: errReply(unix.EIO)},
		{name: "bad host record later", setup: func(f *fakeFS, _ *Server) {
			f.dirents = append(dirent64(1, 1, unix.DT_DIR, "."), badReclen(dirent64(2, 2, unix.DT_REG, "x"), 200)...)
		}, req: rd(4096), calls: []string{call(4096)}, reply: reply(all[:32])},
		{name: "host record without NUL", setup: func(f *fakeFS, _ *Server) {
			d := dirent64(2, 2, unix.DT_REG, "abcd")
			d[23] = 'e' // overwrite the NUL, padding NULs remain
			d = d[:24]
			binary.NativeEndian.PutUint16(d[16:], 24)
			f.dirents = d
		}, req: rd(4096), calls: []string{call(4096)}, reply: errReply(unix.EIO)},
		{name: "host name with slash", setup: func(f *fakeFS, _ *Server) { f.dirents = dirent64(2, 2, unix.DT_REG, "a/b") },
			req: rd(4096), calls: []string{call(4096)}, reply: errReply(unix.EIO)},
	})
}

func badReclen(d []byte, reclen uint16) []byte {
	binary.NativeEndian.PutUint16(d[16:], reclen)
	return d
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func TestReaddirplus(t *testing.T) {
	recs := [][]byte{
		enc(dotEntry(1), fuseDirent(1, 1, unix.DT_DIR, ".")),
		enc(dotEntry(2), fuseDirent(2, 2, unix.DT_DIR, "..")),
		enc(entryFor(100), fuseDirent(10, 3, unix.DT_REG, "file")),
		enc(entryFor(101), fuseDirent(11, 4, unix.DT_LNK, "a_longer_name")),
		enc(entryFor(102), fuseDirent(12, 5, unix.DT_REG, "exactly8")),
	}
	all := bytes.Join(recs, nil)
	rdp := func(size uint32) []byte { return request(FUSE_READDIRPLUS, 3, ReadIn{Fh: 5, Offset: 7, Size: size}) }
	call := func(size int) string {
		return "Readdir %c node=3 fh=5 off=7 size=" + itoa(size) + " buf=" + itoa(size)
	}
	lookups := []string{`Lookup %c parent=3 name="file"`, `Lookup %c parent=3 name="a_longer_name"`, `Lookup %c parent=3 name="exactly8"`}
	// balanced checks that the lookup counts taken equal the entries sent.
	balanced := func(sent ...uint64) func(t *testing.T, f *fakeFS, s *Server) {
		return func(t *testing.T, f *fakeFS, s *Server) {
			t.Helper()
			want := map[uint64]int64{}
			for _, n := range sent {
				want[n] = 1
			}
			for n, c := range f.lookups {
				if c != want[n] {
					t.Errorf("node %d has lookup count %d, want %d", n, c, want[n])
				}
			}
		}
	}
	third := len(recs[0]) + len(recs[1]) + len(recs[2])
	runCases(t, []tcase{
		{name: "all entries", setup: withDir, req: rdp(4096),
			calls: append([]string{call(4096)}, lookups...), reply: reply(all), check: balanced(100, 101, 102)},
		{name: "stop on full without lookup", setup: withDir, req: rdp(uint32(third + len(recs[3]) - 1)),
			calls: append([]string{call(third + len(recs[3]) - 1)}, lookups[0]), reply: reply(all[:third]), check: balanced(100)},
		{name: "out capacity limits", setup: withDir, req: rdp(uint32(third)), out: third,
			calls: []string{call(third)}, reply: reply(all[:len(recs[0])+len(recs[1])]), check: balanced()},
		{name: "lookup error after entries", setup: func(f *fakeFS, s *Server) {
			withDir(f, s)
			f.lookupErr = map[string]unix.Errno{"a_longer_name": unix.ENOENT}
		}, req: rdp(4096), calls: []string{call(4096), lookups[0], lookups[1]}, reply: reply(all[:third]), check: balanced(100)},
		{name: "lookup error first", setup: func(f *fakeFS, s *Server) {
			f.dirents = dirent64(10, 3, unix.DT_REG, "file")
			f.lookupErr = map[string]unix.Errno{"file": unix.EACCES}
		}, req: rdp(4096), calls: []string{call(4096), lookups[0]}, reply: errReply(unix.EACCES)},
		{name: "size zero", setup: withDir, req: rdp(0), reply: reply()},
		{name: "size above 1 MiB", setup: withDir, req: rdp(1<<20 + 1), out: 2 << 20, reply: errReply(unix.ENOMEM)},
		{name: "out smaller than size", setup: withDir, req: rdp(4096), out: 4000, reply: errReply(unix.ENOMEM)},
	})
}
