package passthrough

import (
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

func TestInitRootAndCounters(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	var a fuse.AttrOut
	if e := fs.Getattr(root, RootID, &a); e != 0 {
		t.Fatalf("Getattr(root) = %v", e)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if a.Attr.Ino != st.Ino || a.Attr.Mode != st.Mode {
		t.Errorf("root attr ino/mode = %d/%o, want %d/%o", a.Attr.Ino, a.Attr.Mode, st.Ino, st.Mode)
	}
	if got := lookups(fs, RootID); got != 2 {
		t.Errorf("root lookup count = %d, want 2", got)
	}
	writeFile(t, join(dir, "f"), "x")
	if id := mustLookup(t, fs, RootID, "f").NodeID; id != 2 {
		t.Errorf("first node ID = %d, want 2", id)
	}
	// The root is not special: two forgets remove it.
	fs.Forget(RootID, 1)
	if e := fs.Getattr(root, RootID, &a); e != 0 {
		t.Fatalf("Getattr(root) after one forget = %v", e)
	}
	fs.Forget(RootID, 1)
	if e := fs.Getattr(root, RootID, &a); e != unix.EBADF {
		t.Fatalf("Getattr(root) after two forgets = %v, want EBADF", e)
	}
	// Re-INIT brings the root back; node IDs continue, never reused.
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	if e := fs.Getattr(root, 2, &a); e != unix.EBADF {
		t.Errorf("Getattr(old node) after re-INIT = %v, want EBADF", e)
	}
	if id := mustLookup(t, fs, RootID, "f").NodeID; id != 3 {
		t.Errorf("node ID after re-INIT = %d, want 3", id)
	}
}

func TestBeforeInitEBADF(t *testing.T) {
	fs, err := New(testConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var out fuse.EntryOut
	if e := fs.Lookup(root, RootID, nm("x"), &out); e != unix.EBADF {
		t.Errorf("Lookup before INIT = %v, want EBADF", e)
	}
}

func TestInitWantFlags(t *testing.T) {
	always := fuse.FUSE_ASYNC_READ | fuse.FUSE_ATOMIC_O_TRUNC | fuse.FUSE_BIG_WRITES |
		fuse.FUSE_HAS_IOCTL_DIR | fuse.FUSE_AUTO_INVAL_DATA | fuse.FUSE_ASYNC_DIO |
		fuse.FUSE_PARALLEL_DIROPS | fuse.FUSE_MAX_PAGES | fuse.FUSE_SUBMOUNTS |
		fuse.FUSE_INIT_EXT | fuse.FUSE_CREATE_SUPP_GROUP | fuse.FUSE_ALLOW_IDMAP
	rdp := fuse.FUSE_DO_READDIRPLUS | fuse.FUSE_READDIRPLUS_AUTO
	tests := []struct {
		name string
		mod  func(*Config)
		want uint64
	}{
		{"default", nil, always | rdp},
		{"no-readdirplus", func(c *Config) { c.Readdirplus = false }, always},
		{"cache=never", func(c *Config) { c.Cache = CacheNever }, always},
		{"writeback", func(c *Config) { c.Writeback = true }, always | rdp | fuse.FUSE_WRITEBACK_CACHE},
		{"allow-mmap", func(c *Config) { c.AllowMmap = true }, always | rdp | fuse.FUSE_DIRECT_IO_ALLOW_MMAP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			fs, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			got, e := fs.Init(allCaps)
			if e != 0 || got != tc.want {
				t.Errorf("Init = %#x, %v, want %#x", got, e, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Root: "/", Cache: CachePolicy(9), FDBudget: 1},
		{Root: "/", FDBudget: -1},
	} {
		if fs, err := New(cfg); err == nil {
			fs.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestLookupCountsAndForget(t *testing.T) {
	// O_PATH records; file handle records: fhandle_test.go.
	fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = FileHandlesNever })
	writeFile(t, join(dir, "f"), "data")
	if err := unix.Link(join(dir, "f"), join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	base := openFDs(t)
	e1 := mustLookup(t, fs, RootID, "f")
	e2 := mustLookup(t, fs, RootID, "f")
	e3 := mustLookup(t, fs, RootID, "hard") // same inode, same entry
	if e1.NodeID != e2.NodeID || e1.NodeID != e3.NodeID {
		t.Fatalf("node IDs %d %d %d, want equal", e1.NodeID, e2.NodeID, e3.NodeID)
	}
	if got := lookups(fs, e1.NodeID); got != 3 {
		t.Errorf("lookup count = %d, want 3", got)
	}
	if got := openFDs(t); got != base+1 {
		t.Errorf("open fds = %d, want %d (one O_PATH fd per inode)", got, base+1)
	}
	if e1.Generation != 0 || e1.EntryValid != 1 || e1.AttrValid != 1 {
		t.Errorf("entry generation/timeouts = %d/%d/%d, want 0/1/1", e1.Generation, e1.EntryValid, e1.AttrValid)
	}
	fs.Forget(e1.NodeID, 2)
	var a fuse.AttrOut
	if e := fs.Getattr(root, e1.NodeID, &a); e != 0 {
		t.Fatalf("Getattr after partial forget = %v", e)
	}
	fs.Forget(e1.NodeID, 5) // saturates
	if e := fs.Getattr(root, e1.NodeID, &a); e != unix.EBADF {
		t.Fatalf("Getattr after forget = %v, want EBADF", e)
	}
	if got := openFDs(t); got != base {
		t.Errorf("open fds after forget = %d, want %d", got, base)
	}
	fs.Forget(12345, 1) // unknown: ignored
	if id := mustLookup(t, fs, RootID, "f").NodeID; id == e1.NodeID {
		t.Errorf("node ID %d reused", id)
	}
}

func TestForgetWhileInUse(t *testing.T) {
	// O_PATH records; file handle records: fhandle_test.go.
	fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = FileHandlesNever })
	writeFile(t, join(dir, "f"), "data")
	id := mustLookup(t, fs, RootID, "f").NodeID
	in, _ := fs.getInode(id)
	fs.Forget(id, 1)
	// The request still holding the record can use its descriptor.
	var stx unix.Statx_t
	if e := statxFD(in.fd, &stx); e != 0 {
		t.Fatalf("statx on a forgotten but referenced inode = %v", e)
	}
	fd := in.fd
	fs.putInode(in)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("fd after the last reference = %v, want EBADF (closed)", err)
	}
}

func TestDestroyClosesEverything(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "data")
	base := openFDs(t)
	id := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, id, unix.O_RDONLY)
	fs.Destroy()
	if got := openFDs(t); got != base-1 { // the root's fd went too
		t.Errorf("open fds after Destroy = %d, want %d", got, base-1)
	}
	if fs.fdUsed.Load() != 0 {
		t.Errorf("fd slots in use after Destroy = %d", fs.fdUsed.Load())
	}
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	id2 := mustLookup(t, fs, RootID, "f").NodeID
	fh2 := mustOpen(t, fs, id2, unix.O_RDONLY)
	if fh2 <= fh {
		t.Errorf("handle ID after Destroy = %d, want > %d", fh2, fh)
	}
}

func TestFDBudget(t *testing.T) {
	fs, dir := newTestFS(t, func(c *Config) { c.FDBudget = 3; c.InodeFileHandles = FileHandlesNever })
	for _, n := range []string{"a", "b", "c"} {
		writeFile(t, join(dir, n), n)
	}
	a := mustLookup(t, fs, RootID, "a").NodeID // root + a
	fh := mustOpen(t, fs, a, unix.O_RDONLY)    // + handle = 3
	var out fuse.EntryOut
	if e := fs.Lookup(root, RootID, nm("b"), &out); e != unix.ENFILE {
		t.Fatalf("Lookup past the budget = %v, want ENFILE", e)
	}
	var oo fuse.OpenOut
	if e := fs.Open(root, a, &fuse.OpenIn{}, &oo); e != unix.ENFILE {
		t.Fatalf("Open past the budget = %v, want ENFILE", e)
	}
	// A known inode costs nothing.
	if e := fs.Lookup(root, RootID, nm("a"), &out); e != 0 {
		t.Fatalf("Lookup of a known inode at the budget = %v", e)
	}
	if e := fs.Release(root, a, &fuse.ReleaseIn{Fh: fh}); e != 0 {
		t.Fatal(e)
	}
	mustLookup(t, fs, RootID, "b")
	if e := fs.Lookup(root, RootID, nm("c"), &out); e != unix.ENFILE {
		t.Fatalf("Lookup past the budget = %v, want ENFILE", e)
	}

	zero, err := New(Config{Root: dir, FDBudget: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	if _, e := zero.Init(allCaps); e != unix.ENFILE {
		t.Errorf("Init with budget 0 = %v, want ENFILE", e)
	}
}

func TestConcurrentLookupForget(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "data")
	base := openFDs(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out fuse.EntryOut
			var a fuse.AttrOut
			for i := 0; i < 500; i++ {
				if e := fs.Lookup(root, RootID, nm("f"), &out); e != 0 {
					t.Errorf("Lookup = %v", e)
					return
				}
				if e := fs.Getattr(root, out.NodeID, &a); e != 0 && e != unix.EBADF {
					t.Errorf("Getattr = %v", e)
				}
				fs.Forget(out.NodeID, 1)
			}
		}()
	}
	wg.Wait()
	if got := openFDs(t); got != base {
		t.Errorf("open fds = %d, want %d", got, base)
	}
	fs.cur().mu.Lock()
	n := len(fs.cur().inodes)
	fs.cur().mu.Unlock()
	if n != 1 {
		t.Errorf("inodes left = %d, want 1 (the root)", n)
	}
}

// TestDestroyWhileBusy runs requests concurrently with DESTROY and INIT:
// nothing may crash or race, and once everything is dropped no descriptor
// is left open.
func TestDestroyWhileBusy(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "0123456789")
	base := openFDs(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16)
			for {
				select {
				case <-stop:
					return
				default:
				}
				var eo fuse.EntryOut
				if fs.Lookup(root, RootID, nm("f"), &eo) != 0 {
					continue
				}
				var oo fuse.OpenOut
				if fs.Open(root, eo.NodeID, &fuse.OpenIn{Flags: unix.O_RDONLY}, &oo) == 0 {
					fs.Read(root, eo.NodeID, &fuse.ReadIn{Fh: oo.Fh, Size: 16}, [][]byte{buf})
					fs.Release(root, eo.NodeID, &fuse.ReleaseIn{Fh: oo.Fh})
				}
				fs.Forget(eo.NodeID, 1)
			}
		}()
	}
	for i := 0; i < 100; i++ {
		fs.Destroy()
		if _, e := fs.Init(allCaps); e != 0 {
			t.Errorf("Init = %v", e)
		}
	}
	close(stop)
	wg.Wait()
	fs.Destroy()
	if got := openFDs(t); got != base-1 {
		t.Errorf("open fds after Destroy = %d, want %d", got, base-1)
	}
	if n := fs.fdUsed.Load(); n != 0 {
		t.Errorf("fd slots still charged: %d", n)
	}
}
