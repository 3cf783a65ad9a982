package passthrough

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// mountOrSkip mounts a tmpfs (bind == "") or a bind mount of bind at dir.
func mountOrSkip(t *testing.T, dir, bind string) {
	t.Helper()
	requireRoot(t)
	var err error
	if bind == "" {
		err = unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m")
	} else {
		err = unix.Mount(bind, dir, "", unix.MS_BIND, "")
	}
	if err != nil {
		t.Skipf("cannot mount (%v): submount tests need CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

func TestSubmountFlag(t *testing.T) {
	fs, share := newTestFS(t, nil)
	for _, d := range []string{"tmp", "bind", "plain", "src"} {
		os.Mkdir(join(share, d), 0o755)
	}
	mountOrSkip(t, join(share, "tmp"), "")
	mountOrSkip(t, join(share, "bind"), join(share, "src"))
	os.Mkdir(join(share, "tmp", "sub"), 0o755)
	writeFile(t, join(share, "tmp", "file"), "x")

	check := func(fs *FS, parent uint64, name string, want bool) uint64 {
		t.Helper()
		e := mustLookup(t, fs, parent, name)
		if got := e.Attr.Flags&fuse.FUSE_ATTR_SUBMOUNT != 0; got != want {
			t.Errorf("Lookup(%s) submount flag = %v, want %v", name, got, want)
		}
		return e.NodeID
	}
	tmp := check(fs, RootID, "tmp", true) // other st_dev
	check(fs, RootID, "bind", true)       // same st_dev, other mount ID
	check(fs, RootID, "plain", false)     // same file system
	check(fs, tmp, "sub", false)          // inside the submount
	check(fs, tmp, "file", false)         // not a directory
	var a fuse.AttrOut
	if e := fs.Getattr(root, tmp, &a); e != 0 || a.Attr.Flags != 0 {
		t.Errorf("Getattr(submount) = %v, flags %#x, want 0", e, a.Attr.Flags)
	}
	var eo fuse.EntryOut
	if e := fs.Mkdir(root, tmp, nm("new"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != 0 || eo.Attr.Flags != 0 {
		t.Errorf("Mkdir in submount = %v flags %#x", e, eo.Attr.Flags)
	}

	// Not announced when the guest did not offer SUBMOUNTS, or when
	// announcing is off.
	if _, e := fs.Init(allCaps &^ fuse.FUSE_SUBMOUNTS); e != 0 {
		t.Fatal(e)
	}
	check(fs, RootID, "tmp", false)
	off, err := New(Config{Root: share, FDBudget: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	off.Init(allCaps)
	check(off, RootID, "tmp", false)
}

// TestIdentityKeyMountID checks that the same inode seen through two mounts
// gets two entries.
func TestIdentityKeyMountID(t *testing.T) {
	fs, share := newTestFS(t, nil)
	os.Mkdir(join(share, "src"), 0o755)
	os.Mkdir(join(share, "bind"), 0o755)
	mountOrSkip(t, join(share, "bind"), join(share, "src"))
	a := mustLookup(t, fs, RootID, "src")
	b := mustLookup(t, fs, RootID, "bind")
	if a.Attr.Ino != b.Attr.Ino {
		t.Fatalf("bind mount ino %d != %d", a.Attr.Ino, b.Attr.Ino)
	}
	if a.NodeID == b.NodeID {
		t.Errorf("one entry for two mounts of the same inode")
	}
}
