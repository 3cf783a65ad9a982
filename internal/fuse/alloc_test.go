package fuse

import (
	"testing"

	"golang.org/x/sys/unix"
)

// nopFS answers every call without allocating: reads fill dst with a
// byte pattern, writes consume src.
type nopFS struct{}

var _ FileSystem = nopFS{}

func (nopFS) Init(uint64) (uint64, unix.Errno) { return 0, 0 }
func (nopFS) Destroy()                         {}
func (nopFS) Lookup(_ *Context, _ uint64, _ Name, out *EntryOut) unix.Errno {
	out.NodeID = 2
	out.Attr.Mode = unix.S_IFREG
	return 0
}
func (nopFS) Forget(uint64, uint64) {}
func (nopFS) Getattr(_ *Context, nodeid uint64, out *AttrOut) unix.Errno {
	out.Attr.Ino = nodeid
	return 0
}
func (nopFS) Setattr(*Context, uint64, *SetattrIn, *AttrOut) unix.Errno { return 0 }
func (nopFS) Readlink(*Context, uint64, []byte) (int, unix.Errno)       { return 0, 0 }
func (nopFS) Symlink(*Context, uint64, Name, []byte, *EntryOut) unix.Errno {
	return 0
}
func (nopFS) Mknod(*Context, uint64, Name, *MknodIn, *EntryOut) unix.Errno { return 0 }
func (nopFS) Mkdir(*Context, uint64, Name, *MkdirIn, *EntryOut) unix.Errno { return 0 }
func (nopFS) Unlink(*Context, uint64, Name) unix.Errno                     { return 0 }
func (nopFS) Rmdir(*Context, uint64, Name) unix.Errno                      { return 0 }
func (nopFS) Rename(*Context, uint64, Name, uint64, Name, uint32) unix.Errno {
	return 0
}
func (nopFS) Link(*Context, uint64, uint64, Name, *EntryOut) unix.Errno { return 0 }
func (nopFS) Open(*Context, uint64, *OpenIn, *OpenOut) unix.Errno       { return 0 }
func (nopFS) Create(*Context, uint64, Name, *CreateIn, *EntryOut, *OpenOut) unix.Errno {
	return 0
}
func (nopFS) Read(_ *Context, _ uint64, _ *ReadIn, dst [][]byte) (int, unix.Errno) {
	n := 0
	for _, b := range dst {
		for i := range b {
			b[i] = byte(i)
		}
		n += len(b)
	}
	return n, 0
}
func (nopFS) Write(_ *Context, _ uint64, _ *WriteIn, src [][]byte) (int, unix.Errno) {
	n := 0
	for _, b := range src {
		n += len(b)
	}
	return n, 0
}
func (nopFS) Statfs(*Context, uint64, *StatfsOut) unix.Errno         { return 0 }
func (nopFS) Release(*Context, uint64, *ReleaseIn) unix.Errno        { return 0 }
func (nopFS) Flush(*Context, uint64, *FlushIn) unix.Errno            { return 0 }
func (nopFS) Fsync(*Context, uint64, *FsyncIn) unix.Errno            { return 0 }
func (nopFS) Opendir(*Context, uint64, *OpenIn, *OpenOut) unix.Errno { return 0 }
func (nopFS) Readdir(_ *Context, _ uint64, _ *ReadIn, buf []byte) (int, unix.Errno) {
	return 0, 0
}
func (nopFS) Releasedir(*Context, uint64, *ReleaseIn) unix.Errno     { return 0 }
func (nopFS) Fsyncdir(*Context, uint64, *FsyncIn) unix.Errno         { return 0 }
func (nopFS) Access(*Context, uint64, uint32) unix.Errno             { return 0 }
func (nopFS) Fallocate(*Context, uint64, *FallocateIn) unix.Errno    { return 0 }
func (nopFS) Lseek(*Context, uint64, *LseekIn, *LseekOut) unix.Errno { return 0 }
func (nopFS) CopyFileRange(_ *Context, _ uint64, in *CopyFileRangeIn) (int, unix.Errno) {
	return int(min(in.Len, 1<<30)), 0
}
func (nopFS) Syncfs(*Context, uint64) unix.Errno { return 0 }
func (nopFS) GetXattr(_ *Context, _ uint64, _, buf []byte) (int, unix.Errno) {
	return len(buf), 0
}
func (nopFS) ListXattr(_ *Context, _ uint64, buf []byte) (int, unix.Errno) { return len(buf), 0 }
func (nopFS) SetXattr(*Context, uint64, []byte, []byte, *SetxattrIn) unix.Errno {
	return 0
}
func (nopFS) RemoveXattr(*Context, uint64, []byte) unix.Errno { return 0 }

// hotRequests are the requests that must not allocate, with their reply
// sizes. READ and WRITE use several buffers on both sides, as a guest
// driver does.
var hotRequests = []struct {
	name  string
	req   []byte
	reply uint32
}{
	{"LOOKUP", request(FUSE_LOOKUP, 1, "some_file.txt\x00"), 16 + 128},
	{"GETATTR", request(FUSE_GETATTR, 2, GetattrIn{}), 16 + 104},
	{"READ", request(FUSE_READ, 2, ReadIn{Fh: 1, Size: 64 << 10}), 16 + 64<<10},
	{"WRITE", request(FUSE_WRITE, 2, WriteIn{Fh: 1, Size: 64 << 10}, make([]byte, 64<<10)), 16 + 8},
	{"GETXATTR", request(FUSE_GETXATTR, 2, GetxattrIn{Size: 64}, "user.x\x00"), 16 + 64},
	{"SETXATTR", request(FUSE_SETXATTR, 2, SetxattrIn{Size: 3}.compat(), "user.x\x00abc"), 16},
}

func TestZeroAllocs(t *testing.T) {
	s := NewServerWithOptions(nopFS{}, Options{Log: quietLog()})
	w := s.NewWorker()
	out := chunk(make([]byte, 72<<10), 4096)
	for _, r := range hotRequests {
		in := [][]byte{r.req[:40], r.req[40:]}
		if len(r.req) > 4096 {
			in = append([][]byte{r.req[:80]}, chunk(r.req[80:], 4096)...)
		}
		if n := w.Serve(in, out); n != r.reply {
			t.Fatalf("%s: Serve() = %d, want %d", r.name, n, r.reply)
		}
		if a := testing.AllocsPerRun(100, func() { w.Serve(in, out) }); a != 0 {
			t.Errorf("%s: %v allocations per request, want 0", r.name, a)
		}
	}
}

func BenchmarkServe(b *testing.B) {
	for _, r := range hotRequests {
		b.Run(r.name, func(b *testing.B) {
			s := NewServerWithOptions(nopFS{}, Options{Log: quietLog()})
			w := s.NewWorker()
			out := chunk(make([]byte, 72<<10), 4096)
			in := [][]byte{r.req}
			b.ReportAllocs()
			b.SetBytes(int64(max(len(r.req), int(r.reply)) - 16))
			for b.Loop() {
				if n := w.Serve(in, out); n != r.reply {
					b.Fatalf("Serve() = %d, want %d", n, r.reply)
				}
			}
		})
	}
}
