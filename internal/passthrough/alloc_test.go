package passthrough

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// hotFS returns an FS with a known file "f" (4 KiB) looked up once and open
// read-write: the steady state of the request paths.
func hotFS(tb testing.TB) (fs *FS, id, fh uint64) {
	fs, dir := newTestFS(tb, nil)
	writeFile(tb, join(dir, "f"), string(make([]byte, 4096)))
	id = mustLookup(tb, fs, RootID, "f").NodeID
	fh = mustOpen(tb, fs, id, unix.O_RDWR)
	return fs, id, fh
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	fs, id, fh := hotFS(t)
	name := nm("f")
	var eo fuse.EntryOut
	var ao fuse.AttrOut
	buf := make([]byte, 4096)
	iov := [][]byte{buf[:1000], buf[1000:]}
	rin := &fuse.ReadIn{Fh: fh, Size: 4096}
	win := &fuse.WriteIn{Fh: fh, Size: 4096}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tests := map[string]func(){
		"Lookup": func() {
			if fs.Lookup(root, RootID, name, &eo) != 0 {
				t.Fatal("Lookup failed")
			}
			fs.Forget(eo.NodeID, 1)
		},
		"Getattr": func() {
			if fs.Getattr(root, id, &ao) != 0 {
				t.Fatal("Getattr failed")
			}
		},
		"Read": func() {
			if n, e := fs.Read(root, id, rin, iov); n != 4096 || e != 0 {
				t.Fatal("Read failed")
			}
		},
		"Write": func() {
			if n, e := fs.Write(root, id, win, iov); n != 4096 || e != 0 {
				t.Fatal("Write failed")
			}
		},
	}
	for name, f := range tests {
		if got := testing.AllocsPerRun(200, f); got != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, got)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	fs, _, _ := hotFS(b)
	name := nm("f")
	var eo fuse.EntryOut
	b.ReportAllocs()
	for b.Loop() {
		if fs.Lookup(root, RootID, name, &eo) != 0 {
			b.Fatal("Lookup failed")
		}
		fs.Forget(eo.NodeID, 1)
	}
}

// BenchmarkLookupParallel measures contention on the inode table's single
// mutex.
func BenchmarkLookupParallel(b *testing.B) {
	fs, _, _ := hotFS(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		name := nm("f")
		var eo fuse.EntryOut
		for pb.Next() {
			if fs.Lookup(root, RootID, name, &eo) != 0 {
				b.Error("Lookup failed")
				return
			}
			fs.Forget(eo.NodeID, 1)
		}
	})
}

func BenchmarkGetattr(b *testing.B) {
	fs, id, _ := hotFS(b)
	var ao fuse.AttrOut
	b.ReportAllocs()
	for b.Loop() {
		if fs.Getattr(root, id, &ao) != 0 {
			b.Fatal("Getattr failed")
		}
	}
}

func BenchmarkGetattrParallel(b *testing.B) {
	fs, id, _ := hotFS(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ao fuse.AttrOut
		for pb.Next() {
			if fs.Getattr(root, id, &ao) != 0 {
				b.Error("Getattr failed")
				return
			}
		}
	})
}

func BenchmarkRead(b *testing.B) {
	fs, id, fh := hotFS(b)
	buf := make([]byte, 4096)
	iov := [][]byte{buf}
	in := &fuse.ReadIn{Fh: fh, Size: 4096}
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		if n, e := fs.Read(root, id, in, iov); n != 4096 || e != 0 {
			b.Fatal("Read failed")
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	fs, id, fh := hotFS(b)
	buf := make([]byte, 4096)
	iov := [][]byte{buf}
	in := &fuse.WriteIn{Fh: fh, Size: 4096}
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		if n, e := fs.Write(root, id, in, iov); n != 4096 || e != 0 {
			b.Fatal("Write failed")
		}
	}
}
