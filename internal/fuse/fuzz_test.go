package fuse

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// panicCounter is a slog.Handler that counts recovered panics, which in
// fuzzing mean a bug in this package (fuzzFS never panics).
type panicCounter struct{ n atomic.Int64 }

func (h *panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "recover panic") {
		h.n.Add(1)
	}
	return nil
}
func (h *panicCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicCounter) WithGroup(string) slog.Handler      { return h }

// fuzzFS is nopFS plus directory data and a check of the Name invariant.
type fuzzFS struct {
	nopFS
	bad string // first violated invariant
}

func (f *fuzzFS) name(n Name) {
	if f.bad != "" {
		return
	}
	if len(n) < 2 || n[len(n)-1] != 0 || bytes.IndexByte(n.Bytes(), 0) >= 0 ||
		bytes.IndexByte(n.Bytes(), '/') >= 0 || len(n) > 256 ||
		n.String() == "." || n.String() == ".." {
		f.bad = "invalid name " + strings.ToValidUTF8(n.String(), "?")
	}
}

func (f *fuzzFS) Lookup(c *Context, p uint64, n Name, out *EntryOut) unix.Errno {
	f.name(n)
	return f.nopFS.Lookup(c, p, n, out)
}
func (f *fuzzFS) Mkdir(c *Context, p uint64, n Name, in *MkdirIn, out *EntryOut) unix.Errno {
	f.name(n)
	return 0
}
func (f *fuzzFS) Mknod(c *Context, p uint64, n Name, in *MknodIn, out *EntryOut) unix.Errno {
	f.name(n)
	return 0
}
func (f *fuzzFS) Create(c *Context, p uint64, n Name, in *CreateIn, e *EntryOut, o *OpenOut) unix.Errno {
	f.name(n)
	return 0
}
func (f *fuzzFS) Symlink(c *Context, p uint64, n Name, target []byte, out *EntryOut) unix.Errno {
	f.name(n)
	if len(target) < 1 || target[len(target)-1] != 0 {
		f.bad = "invalid symlink target"
	}
	return 0
}
func (f *fuzzFS) Unlink(c *Context, p uint64, n Name) unix.Errno { f.name(n); return 0 }
func (f *fuzzFS) Rmdir(c *Context, p uint64, n Name) unix.Errno  { f.name(n); return 0 }
func (f *fuzzFS) Rename(c *Context, od uint64, on Name, nd uint64, nn Name, flags uint32) unix.Errno {
	f.name(on)
	f.name(nn)
	if flags&^renameFlags != 0 {
		f.bad = "rename flags not masked"
	}
	return 0
}
func (f *fuzzFS) Link(c *Context, n uint64, np uint64, nn Name, out *EntryOut) unix.Errno {
	f.name(nn)
	return 0
}
func (f *fuzzFS) Readlink(*Context, uint64, []byte) (int, unix.Errno) { return 0, 0 }
func (f *fuzzFS) Readdir(_ *Context, _ uint64, _ *ReadIn, buf []byte) (int, unix.Errno) {
	return copy(buf, fuzzDir), 0
}
func (f *fuzzFS) Write(c *Context, n uint64, in *WriteIn, src [][]byte) (int, unix.Errno) {
	total := 0
	for _, b := range src {
		total += len(b)
	}
	if total != int(in.Size) {
		f.bad = "write view does not hold in.Size bytes"
	}
	return total, 0
}
func (f *fuzzFS) Read(c *Context, n uint64, in *ReadIn, dst [][]byte) (int, unix.Errno) {
	total, _ := f.nopFS.Read(c, n, in, dst)
	if total != int(in.Size) {
		f.bad = "read view does not hold in.Size bytes"
	}
	return total, 0
}

// xattrName checks that an attribute name is NUL-terminated without an
// interior NUL.
func (f *fuzzFS) xattrName(n []byte) {
	if f.bad == "" && (len(n) == 0 || n[len(n)-1] != 0 || bytes.IndexByte(n[:len(n)-1], 0) >= 0) {
		f.bad = "invalid attribute name"
	}
}
func (f *fuzzFS) GetXattr(c *Context, n uint64, name, buf []byte) (int, unix.Errno) {
	f.xattrName(name)
	if len(buf) > MaxBufferSize {
		f.bad = "getxattr buffer over 1 MiB"
	}
	return copy(buf, "value"), 0
}
func (f *fuzzFS) ListXattr(c *Context, n uint64, buf []byte) (int, unix.Errno) {
	if len(buf) > MaxBufferSize {
		f.bad = "listxattr buffer over 1 MiB"
	}
	return copy(buf, "user.a\x00"), 0
}
func (f *fuzzFS) SetXattr(c *Context, n uint64, name, value []byte, in *SetxattrIn) unix.Errno {
	f.xattrName(name)
	if len(value) != int(in.Size) {
		f.bad = "setxattr value does not hold in.Size bytes"
	}
	return 0
}
func (f *fuzzFS) RemoveXattr(c *Context, n uint64, name []byte) unix.Errno {
	f.xattrName(name)
	return 0
}

var fuzzDir = bytes.Join([][]byte{
	dirent64(1, 1, unix.DT_DIR, "."), dirent64(2, 2, unix.DT_DIR, ".."),
	dirent64(3, 3, unix.DT_REG, "f"), dirent64(4, 4, unix.DT_REG, "longer_name_here"),
}, nil)

// fuzzSeeds are well-formed requests the fuzzer mutates.
func fuzzSeeds() [][]byte {
	return [][]byte{
		request(FUSE_INIT, 0, InitIn{Major: 7, Minor: 38, MaxReadahead: 1 << 17, Flags: 0xffffffff}, InitInExt{Flags2: 0xffffffff}),
		request(FUSE_LOOKUP, 1, "name\x00"),
		request(FUSE_FORGET, 2, ForgetIn{Nlookup: 1}),
		request(FUSE_BATCH_FORGET, 0, BatchForgetIn{Count: 2}, ForgetOne{NodeID: 2, Nlookup: 1}, ForgetOne{NodeID: 3, Nlookup: 1}),
		request(FUSE_GETATTR, 2, GetattrIn{}),
		request(FUSE_SETATTR, 2, SetattrIn{Valid: FATTR_SIZE, Size: 10}),
		request(FUSE_READLINK, 2),
		request(FUSE_SYMLINK, 1, "l\x00target\x00", groupsExt(5)),
		request(FUSE_MKNOD, 1, MknodIn{Mode: unix.S_IFIFO}, "p\x00", groupsExt(5)),
		request(FUSE_MKDIR, 1, MkdirIn{Mode: 0o755}, "d\x00", secctxExt("security.selinux", "ctx"), groupsExt(5, 6)),
		request(FUSE_UNLINK, 1, "u\x00"),
		request(FUSE_RMDIR, 1, "r\x00"),
		request(FUSE_RENAME, 1, RenameIn{Newdir: 1}, "a\x00b\x00"),
		request(FUSE_RENAME2, 1, Rename2In{Newdir: 1, Flags: 1}, "a\x00b\x00"),
		request(FUSE_LINK, 1, LinkIn{OldNodeID: 2}, "h\x00"),
		request(FUSE_OPEN, 2, OpenIn{}),
		request(FUSE_READ, 2, ReadIn{Size: 100}),
		request(FUSE_WRITE, 2, WriteIn{Size: 5}, "hello"),
		request(FUSE_STATFS, 1),
		request(FUSE_RELEASE, 2, ReleaseIn{}),
		request(FUSE_FSYNC, 2, FsyncIn{}),
		request(FUSE_FLUSH, 2, FlushIn{}),
		request(FUSE_OPENDIR, 1, OpenIn{}),
		request(FUSE_READDIR, 1, ReadIn{Size: 4096}),
		request(FUSE_READDIRPLUS, 1, ReadIn{Size: 4096}),
		request(FUSE_RELEASEDIR, 1, ReleaseIn{}),
		request(FUSE_FSYNCDIR, 1, FsyncIn{}),
		request(FUSE_ACCESS, 1, AccessIn{Mask: 4}),
		request(FUSE_CREATE, 1, CreateIn{Flags: unix.O_CREAT}, "c\x00", groupsExt(5)),
		request(FUSE_INTERRUPT, 0, uint64(1)),
		request(FUSE_DESTROY, 0),
		request(FUSE_GETXATTR, 1, GetxattrIn{Size: 10}, "user.x\x00"),
		request(FUSE_GETXATTR, 1, GetxattrIn{}, "user.x\x00"),
		request(FUSE_LISTXATTR, 1, GetxattrIn{Size: 10}),
		request(FUSE_SETXATTR, 1, SetxattrIn{Size: 3}.compat(), "user.x\x00abc"),
		request(FUSE_SETXATTR, 1, SetxattrIn{Size: 3, SetxattrFlags: 1}, "system.posix_acl_access\x00abc"),
		request(FUSE_REMOVEXATTR, 1, "user.x\x00"),
		request(FUSE_FALLOCATE, 2, FallocateIn{Fh: 1, Length: 4096, Mode: 1}),
		request(FUSE_LSEEK, 2, LseekIn{Fh: 1, Offset: 10, Whence: 3}),
		request(FUSE_COPY_FILE_RANGE, 2, CopyFileRangeIn{FhIn: 1, NodeIDOut: 3, FhOut: 2, Len: 100}),
		request(FUSE_SYNCFS, 1, uint64(0)),
	}
}

func FuzzRequest(f *testing.F) {
	for i, seed := range fuzzSeeds() {
		f.Add(seed, uint8(i%7), uint8(i%5), uint16(4096), uint8(i%8))
	}
	f.Fuzz(func(t *testing.T, data []byte, inSplit, outSplit uint8, outSize uint16, neg uint8) {
		var pc panicCounter
		fs := &fuzzFS{}
		s := NewServerWithOptions(fs, Options{Log: slog.New(&pc)})
		var flags uint64
		if neg&1 != 0 {
			flags |= FUSE_SECURITY_CTX
		}
		if neg&2 != 0 {
			flags |= FUSE_CREATE_SUPP_GROUP
		}
		if neg&4 != 0 {
			flags |= FUSE_SETXATTR_EXT
		}
		s.SetNegotiated(flags)

		capacity := int(outSize)
		mem := bytes.Repeat([]byte{guard}, capacity+64)
		out := mem[32 : 32+capacity]
		orig := bytes.Clone(data)
		// Split sizes >= 128 (negative as int8) interleave empty buffers.
		n := s.NewWorker().Serve(split(data, int(int8(inSplit))), split(out, int(int8(outSplit))))

		if int(n) > capacity {
			t.Fatalf("Serve() = %d, capacity %d", n, capacity)
		}
		if !bytes.Equal(mem[:32], bytes.Repeat([]byte{guard}, 32)) || !bytes.Equal(mem[32+capacity:], bytes.Repeat([]byte{guard}, 32)) {
			t.Fatalf("write outside the out buffers")
		}
		if !bytes.Equal(data, orig) {
			t.Fatalf("request buffers modified")
		}
		if n > 0 {
			if n < 16 {
				t.Fatalf("Serve() = %d, shorter than a reply header", n)
			}
			if got := binary.LittleEndian.Uint32(out); got != n {
				t.Fatalf("reply header len %d, Serve() = %d", got, n)
			}
			if got, want := binary.LittleEndian.Uint64(out[8:]), binary.LittleEndian.Uint64(data[8:]); got != want {
				t.Fatalf("reply unique %#x, request unique %#x", got, want)
			}
			if e := int32(binary.LittleEndian.Uint32(out[4:])); e != 0 && n != 16 {
				t.Fatalf("error reply %d with %d bytes", e, n)
			}
		}
		if pc.n.Load() != 0 {
			t.Fatalf("Serve recovered a panic")
		}
		if fs.bad != "" {
			t.Fatalf("file system saw %s", fs.bad)
		}
	})
}
