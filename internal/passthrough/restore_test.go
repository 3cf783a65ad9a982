package passthrough

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// TestPrivilegedOpsRestoreThread makes every operation that changes the
// thread's credentials or capabilities panic, or fail, right after the
// change (through FS.privHook), and checks that the thread's euid, egid,
// supplementary groups and capabilities are back afterwards, and that no
// reference was left behind. The FUSE server recovers panics and keeps
// serving with the same thread, so the restore must not depend on the
// operation returning normally.
func TestPrivilegedOpsRestoreThread(t *testing.T) {
	requireRoot(t)
	fs, dir := newTestFS(t, func(c *Config) { c.KillprivV2 = true })
	if _, e := fs.Init(allCaps &^ fuse.FUSE_CREATE_SUPP_GROUP); e != 0 {
		t.Fatal(e)
	}
	writeFile(t, join(dir, "f"), "0123456789")
	f := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, f, unix.O_RDWR)

	guest := &fuse.Context{UID: 1234, GID: 5678, SuppGID: 4242, HasSuppGID: true}
	asGuest := func() bool { return unix.Geteuid() == 1234 && unix.Getegid() == 5678 }
	// Capabilities only: still root, CAP_FSETID gone.
	noFsetid := func() bool { return unix.Geteuid() == 0 && !fsetidEffective(t) }

	var eo fuse.EntryOut
	var oo fuse.OpenOut
	var ao fuse.AttrOut
	buf := make([]byte, 4)
	ops := []struct {
		name    string
		changed func() bool
		do      func() unix.Errno
	}{
		{"Mkdir", asGuest, func() unix.Errno {
			return fs.Mkdir(guest, RootID, nm("d"), &fuse.MkdirIn{Mode: 0o755}, &eo)
		}},
		{"Mknod", asGuest, func() unix.Errno {
			return fs.Mknod(guest, RootID, nm("n"), &fuse.MknodIn{Mode: unix.S_IFREG | 0o644}, &eo)
		}},
		{"Symlink", asGuest, func() unix.Errno {
			return fs.Symlink(guest, RootID, nm("s"), []byte("t\x00"), &eo)
		}},
		{"Create", asGuest, func() unix.Errno {
			return fs.Create(guest, RootID, nm("c"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o600}, &eo, &oo)
		}},
		{"Create existing", noFsetid, func() unix.Errno {
			return fs.Create(root, RootID, nm("f"), &fuse.CreateIn{Flags: unix.O_RDWR,
				OpenFlags: fuse.FUSE_OPEN_KILL_SUIDGID}, &eo, &oo)
		}},
		{"read-only Create existing", noFsetid, func() unix.Errno {
			return NewReadOnly(fs).Create(root, RootID, nm("f"), &fuse.CreateIn{Flags: unix.O_RDONLY,
				OpenFlags: fuse.FUSE_OPEN_KILL_SUIDGID}, &eo, &oo)
		}},
		{"Open", noFsetid, func() unix.Errno {
			return fs.Open(root, f, &fuse.OpenIn{Flags: unix.O_RDWR, OpenFlags: fuse.FUSE_OPEN_KILL_SUIDGID}, &oo)
		}},
		{"Setattr", noFsetid, func() unix.Errno {
			return fs.Setattr(root, f, &fuse.SetattrIn{Valid: fuse.FATTR_SIZE | fuse.FATTR_KILL_SUIDGID, Size: 3}, &ao)
		}},
		{"Setattr fh", noFsetid, func() unix.Errno {
			return fs.Setattr(root, f, &fuse.SetattrIn{Valid: fuse.FATTR_SIZE | fuse.FATTR_KILL_SUIDGID | fuse.FATTR_FH,
				Fh: fh, Size: 3}, &ao)
		}},
		{"Write", noFsetid, func() unix.Errno {
			_, e := fs.Write(root, f, &fuse.WriteIn{Fh: fh, Size: 4, WriteFlags: fuse.FUSE_WRITE_KILL_SUIDGID}, [][]byte{buf})
			return e
		}},
	}
	for _, how := range []string{"panic", "fail"} {
		for _, op := range ops {
			t.Run(how+"/"+op.name, func(t *testing.T) {
				hits := 0
				fs.privHook = func() unix.Errno {
					if !op.changed() {
						return 0
					}
					hits++
					if how == "panic" {
						panic("privHook")
					}
					return unix.EIO
				}
				defer func() { fs.privHook = nil }()
				slots, count := fs.fdUsed.Load(), lookups(fs, f)
				onLockedThread(t, func() {
					groups := threadGroups(t)
					e := func() (e unix.Errno) {
						defer func() {
							if r := recover(); r != nil {
								e = unix.Errno(0xdead)
								if r != "privHook" {
									panic(fmt.Sprint("unexpected panic: ", r))
								}
							}
						}()
						return op.do()
					}()
					if hits == 0 {
						t.Errorf("%s never reached the changed thread state", op.name)
						return
					}
					switch {
					case how == "panic" && e != 0xdead:
						t.Errorf("%s = %v, want the hook's panic", op.name, e)
					case how == "fail" && e != unix.EIO:
						t.Errorf("%s = %v, want the hook's EIO", op.name, e)
					}
					checkThreadRestored(t, groups)
				})
				if got := fs.fdUsed.Load(); got != slots {
					t.Errorf("guest-fd slots in use went from %d to %d", slots, got)
				}
				if got := lookups(fs, f); got != count {
					t.Errorf("lookup count of f went from %d to %d", count, got)
				}
			})
		}
	}
	fs.Release(root, f, &fuse.ReleaseIn{Fh: fh})
	fs.Forget(f, 1)
	// Nothing was created by the interrupted operations and nothing leaked.
	for _, name := range []string{"d", "n", "s", "c"} {
		if e := fs.Lookup(root, RootID, nm(name), &eo); e != unix.ENOENT {
			t.Errorf("Lookup(%s) = %v, want ENOENT", name, e)
		}
	}
	fs.Destroy()
	if got := fs.fdUsed.Load(); got != 0 {
		t.Errorf("guest-fd slots in use after DESTROY = %d, want 0", got)
	}
}

// TestZeroAllocsKillPriv checks that the deferred capability restore of a
// WRITE with FUSE_WRITE_KILL_SUIDGID allocates nothing.
func TestZeroAllocsKillPriv(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	fs, dir := newTestFS(t, func(c *Config) { c.KillprivV2 = true })
	writeFile(t, join(dir, "f"), string(make([]byte, 4096)))
	id := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, id, unix.O_RDWR)
	buf := make([]byte, 4096)
	iov := [][]byte{buf}
	win := &fuse.WriteIn{Fh: fh, Size: 4096, WriteFlags: fuse.FUSE_WRITE_KILL_SUIDGID}
	onLockedThread(t, func() {
		got := testing.AllocsPerRun(200, func() {
			if n, e := fs.Write(root, id, win, iov); n != 4096 || e != 0 {
				t.Error("Write failed")
			}
		})
		if got != 0 {
			t.Errorf("WRITE with KILL_SUIDGID: %v allocations per request, want 0", got)
		}
	})
}

// TestPanicReleasesReferences makes requests panic half-way (a nil reply
// structure, written after the inode references are taken): the references
// are dropped all the same, so DESTROY closes every descriptor.
func TestPanicReleasesReferences(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "x")
	f := mustLookup(t, fs, RootID, "f").NodeID
	fs.Forget(f, 1)
	panics := func(name string, op func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		op()
	}
	fs.Destroy()
	base := openFDs(t)
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	f = mustLookup(t, fs, RootID, "f").NodeID
	panics("Lookup", func() { fs.Lookup(root, RootID, nm("f"), nil) })
	panics("Getattr", func() { fs.Getattr(root, f, nil) })
	panics("Statfs", func() { fs.Statfs(root, f, nil) })
	fh := mustOpen(t, fs, f, unix.O_RDONLY)
	panics("Lseek", func() { fs.Lseek(root, f, &fuse.LseekIn{Fh: fh}, nil) })
	fs.Destroy()
	if got := fs.fdUsed.Load(); got != 0 {
		t.Errorf("guest-fd slots in use after DESTROY = %d, want 0", got)
	}
	if got := openFDs(t); got != base {
		t.Errorf("open descriptors after DESTROY = %d, want %d", got, base)
	}
}
