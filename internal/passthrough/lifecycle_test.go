package passthrough

import (
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// mountRefs returns the number of mount descriptors and the sum of their
// references.
func mountRefs(fs *FS) (mounts, refs int) {
	fs.mmu.Lock()
	defer fs.mmu.Unlock()
	for _, m := range fs.mounts {
		refs += m.refs
	}
	return len(fs.mounts), refs
}

// concurrentInits runs n rounds of two INITs at once (as from the hiprio
// and the request queue), followed by a DESTROY, and fails if anything the
// root records hold survives the DESTROY: descriptors, guest-fd slots or
// mount references.
func concurrentInits(t *testing.T, fs *FS, n int) {
	t.Helper()
	fs.Destroy()
	baseFDs := openFDs(t)
	baseMounts, baseRefs := mountRefs(fs)
	for range n {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, e := fs.Init(allCaps); e != 0 {
					t.Errorf("Init = %v", e)
				}
			}()
		}
		close(start)
		wg.Wait()
		// Exactly one root, with the lookup count of a fresh INIT.
		if got := lookups(fs, RootID); got != 2 {
			t.Fatalf("root lookup count after two INITs = %d, want 2", got)
		}
		fs.Destroy()
		if got := fs.fdUsed.Load(); got != 0 {
			t.Fatalf("guest-fd slots in use after DESTROY = %d, want 0", got)
		}
		if got := openFDs(t); got != baseFDs {
			t.Fatalf("open descriptors after DESTROY = %d, want %d", got, baseFDs)
		}
		if m, r := mountRefs(fs); m != baseMounts || r != baseRefs {
			t.Fatalf("mount descriptors/references after DESTROY = %d/%d, want %d/%d", m, r, baseMounts, baseRefs)
		}
	}
}

func TestConcurrentInitNever(t *testing.T) {
	fs, _ := newTestFS(t, func(c *Config) { c.InodeFileHandles = FileHandlesNever })
	concurrentInits(t, fs, 300)
}

func TestConcurrentInitPrefer(t *testing.T) {
	requireRoot(t)
	fs, _ := newTestFS(t, func(c *Config) { c.InodeFileHandles = FileHandlesPrefer })
	if fs.FileHandleMode() != FileHandlesPrefer {
		t.Skip("file handles unusable here")
	}
	if _, refs := mountRefs(fs); refs == 0 {
		t.Fatal("root record holds no mount reference in prefer mode")
	}
	concurrentInits(t, fs, 300)
}

// TestInitDestroyConcurrent races INITs against DESTROYs and lookups; the
// race detector checks the tables, and in the end nothing is left over.
func TestInitDestroyConcurrent(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "x")
	fs.Destroy()
	baseFDs := openFDs(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var eo fuse.EntryOut
			for range 100 {
				switch i {
				case 0, 1:
					fs.Init(allCaps)
				case 2:
					fs.Destroy()
				case 3:
					if fs.Lookup(root, RootID, nm("f"), &eo) == 0 {
						fs.Forget(eo.NodeID, 1)
					}
				}
			}
		}()
	}
	wg.Wait()
	fs.Destroy()
	if got := fs.fdUsed.Load(); got != 0 {
		t.Errorf("guest-fd slots in use after DESTROY = %d, want 0", got)
	}
	if got := openFDs(t); got != baseFDs {
		t.Errorf("open descriptors after DESTROY = %d, want %d", got, baseFDs)
	}
}

// TestRootNotReresolved replaces a component of the shared directory's
// path by a symbolic link after New: INIT still serves the directory
// opened at start-up, through any number of DESTROY/INIT cycles.
func TestRootNotReresolved(t *testing.T) {
	for _, mode := range []FileHandleMode{FileHandlesNever, FileHandlesPrefer} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode != FileHandlesNever {
				requireRoot(t)
			}
			base := t.TempDir()
			share := join(base, "a", "share")
			if err := os.MkdirAll(share, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, join(share, "good"), "x")
			if err := os.MkdirAll(join(base, "evil", "share"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, join(base, "evil", "share", "bad"), "x")

			cfg := testConfig(share)
			cfg.InodeFileHandles = mode
			fs, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fs.Close)

			if err := os.Rename(join(base, "a"), join(base, "moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("evil", join(base, "a")); err != nil {
				t.Fatal(err)
			}
			fds := -1
			for round := range 3 {
				if _, e := fs.Init(allCaps); e != 0 {
					t.Fatalf("round %d: Init = %v", round, e)
				}
				var eo fuse.EntryOut
				if e := fs.Lookup(root, RootID, nm("good"), &eo); e != 0 {
					t.Errorf("round %d: Lookup(good) = %v, want the original directory", round, e)
				}
				if e := fs.Lookup(root, RootID, nm("bad"), &eo); e != unix.ENOENT {
					t.Errorf("round %d: Lookup(bad) = %v, want ENOENT", round, e)
				}
				// Forgetting the root closes its record's descriptor, not
				// the one INIT builds it from.
				fs.Forget(RootID, 2)
				fs.Destroy()
				if n := openFDs(t); fds >= 0 && n != fds {
					t.Errorf("round %d: %d open descriptors, want %d", round, n, fds)
				} else {
					fds = n
				}
			}
		})
	}
}

// TestRootFD serves a descriptor handed over in Config.RootFD, whatever
// Root says, and closes it with the FS.
func TestRootFD(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, join(dir, "f"), "x")
	for _, flags := range []int{unix.O_PATH, unix.O_RDONLY} {
		fd, err := unix.Open(dir, flags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		before := openFDs(t)
		cfg := testConfig(join(dir, "does-not-exist"))
		cfg.RootFD = fd
		fs, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, e := fs.Init(allCaps); e != 0 {
			t.Fatalf("Init = %v", e)
		}
		mustLookup(t, fs, RootID, "f")
		fs.Close()
		if got := openFDs(t); got != before-1 {
			t.Errorf("open descriptors after Close = %d, want %d (RootFD closed)", got, before-1)
		}
	}

	// A descriptor on something else than a directory is refused, and
	// closed all the same.
	fd, err := unix.Open(join(dir, "f"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	cfg := testConfig(dir)
	cfg.RootFD = fd
	if _, err := New(cfg); err == nil {
		t.Error("New with a regular file as RootFD succeeded")
	}
	if got := openFDs(t); got != before-1 {
		t.Errorf("open descriptors after a failed New = %d, want %d", got, before-1)
	}
}
