package passthrough

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// escapeModes runs f with openat2 (when the kernel has it) and with the
// openat fallback.
func escapeModes(t *testing.T, f func(t *testing.T, fs *FS, share, outside string)) {
	for _, mode := range []string{"openat2", "openat"} {
		t.Run(mode, func(t *testing.T) {
			fs, share := newTestFS(t, nil)
			if mode == "openat" {
				fs.useOpenat2 = false
			} else if !fs.useOpenat2 {
				t.Skip("kernel without openat2")
			}
			f(t, fs, share, t.TempDir())
		})
	}
}

func TestSymlinkEscape(t *testing.T) {
	escapeModes(t, func(t *testing.T, fs *FS, share, outside string) {
		writeFile(t, join(outside, "victim"), "secret")
		for name, target := range map[string]string{
			"etc": "/etc", "up": "../..", "out": outside, "victimlink": join(outside, "victim"),
			"dangle": join(outside, "new"),
		} {
			if err := os.Symlink(target, join(share, name)); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, join(share, "f"), "f")
		f := mustLookup(t, fs, RootID, "f").NodeID

		for _, name := range []string{"etc", "up", "out"} {
			ent := mustLookup(t, fs, RootID, name)
			if ent.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
				t.Errorf("Lookup(%s) mode %o, want the symlink itself", name, ent.Attr.Mode)
			}
			id := ent.NodeID
			var eo fuse.EntryOut
			var oo fuse.OpenOut
			checks := map[string]unix.Errno{
				"Lookup":  fs.Lookup(root, id, nm("victim"), &eo),
				"Lookup2": fs.Lookup(root, id, nm("passwd"), &eo),
				"Open":    fs.Open(root, id, &fuse.OpenIn{Flags: unix.O_RDONLY}, &oo),
				"Opendir": fs.Opendir(root, id, &fuse.OpenIn{}, &oo),
				"Mkdir":   fs.Mkdir(root, id, nm("x"), &fuse.MkdirIn{Mode: 0o755}, &eo),
				"Mknod":   fs.Mknod(root, id, nm("x"), &fuse.MknodIn{Mode: unix.S_IFREG | 0o644}, &eo),
				"Symlink": fs.Symlink(root, id, nm("x"), []byte("y\x00"), &eo),
				"Create":  fs.Create(root, id, nm("x"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o644}, &eo, &oo),
				"Unlink":  fs.Unlink(root, id, nm("victim")),
				"Rename":  fs.Rename(root, RootID, nm("f"), id, nm("x"), 0),
				"Link":    fs.Link(root, f, id, nm("x"), &eo),
			}
			for op, e := range checks {
				if e == 0 {
					t.Errorf("%s under symlink %s succeeded", op, name)
				}
			}
		}
		if _, err := os.Stat(join(outside, "x")); !os.IsNotExist(err) {
			t.Errorf("something was created outside the share: %v", err)
		}
		if b, err := os.ReadFile(join(outside, "victim")); err != nil || string(b) != "secret" {
			t.Errorf("outside victim = %q, %v", b, err)
		}

		// CREATE on a symlink name neither follows it nor truncates its
		// target: the fallback lookup finds the link, which is not opened.
		var eo fuse.EntryOut
		var oo fuse.OpenOut
		for _, name := range []string{"victimlink", "dangle"} {
			for _, fl := range []uint32{unix.O_RDWR | unix.O_TRUNC, unix.O_PATH} {
				if e := fs.Create(root, RootID, nm(name), &fuse.CreateIn{Flags: fl, Mode: 0o644}, &eo, &oo); e != unix.EBADF {
					t.Errorf("Create(%s, %#x) = %v, want EBADF", name, fl, e)
				}
			}
		}
		if b, _ := os.ReadFile(join(outside, "victim")); string(b) != "secret" {
			t.Errorf("victim truncated to %q", b)
		}
		if _, err := os.Lstat(join(outside, "new")); !os.IsNotExist(err) {
			t.Errorf("dangling symlink target created: %v", err)
		}
		if e := fs.Mkdir(root, RootID, nm("dangle"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != unix.EEXIST {
			t.Errorf("Mkdir(dangling symlink) = %v, want EEXIST", e)
		}
		// SETATTR on a symlink node acts on the link, never on its target.
		up := mustLookup(t, fs, RootID, "victimlink").NodeID
		var ao fuse.AttrOut
		if e := fs.Setattr(root, up, &fuse.SetattrIn{Valid: fuse.FATTR_SIZE, Size: 0}, &ao); e != unix.EBADF {
			t.Errorf("Setattr(SIZE) on symlink = %v, want EBADF", e)
		}
		if b, _ := os.ReadFile(join(outside, "victim")); string(b) != "secret" {
			t.Errorf("victim truncated to %q", b)
		}
	})
}

func TestHostileNames(t *testing.T) {
	fs, share := newTestFS(t, nil)
	os.Mkdir(join(share, "d"), 0o755)
	d := mustLookup(t, fs, RootID, "d").NodeID
	bad := []fuse.Name{
		nm(".."), nm("."), nm("d/../.."), nm("../etc"), nm(""), fuse.Name("noNUL"), nil, nm("a\x00b"),
	}
	for _, n := range bad {
		var eo fuse.EntryOut
		var oo fuse.OpenOut
		checks := map[string]unix.Errno{
			"Lookup":  fs.Lookup(root, d, n, &eo),
			"Mkdir":   fs.Mkdir(root, d, n, &fuse.MkdirIn{Mode: 0o755}, &eo),
			"Mknod":   fs.Mknod(root, d, n, &fuse.MknodIn{Mode: unix.S_IFREG}, &eo),
			"Symlink": fs.Symlink(root, d, n, []byte("t\x00"), &eo),
			"Create":  fs.Create(root, d, n, &fuse.CreateIn{Mode: 0o644}, &eo, &oo),
			"Unlink":  fs.Unlink(root, d, n),
			"Rmdir":   fs.Rmdir(root, d, n),
			"Rename":  fs.Rename(root, d, n, RootID, nm("x"), 0),
			"Rename2": fs.Rename(root, RootID, nm("d"), d, n, 0),
			"Link":    fs.Link(root, d, RootID, n, &eo),
		}
		for op, e := range checks {
			if e != unix.EINVAL {
				t.Errorf("%s(%q) = %v, want EINVAL", op, []byte(n), e)
			}
		}
	}
	if _, err := os.Stat(join(share, "d")); err != nil {
		t.Errorf("share damaged: %v", err)
	}
}

// TestRenamedDirectory checks that a known directory keeps being resolved
// through its own descriptor when the host moves it and puts a symlink to
// the outside where it used to be.
func TestRenamedDirectory(t *testing.T) {
	escapeModes(t, func(t *testing.T, fs *FS, share, outside string) {
		os.MkdirAll(join(share, "a", "b"), 0o755)
		writeFile(t, join(share, "a", "b", "inner"), "in")
		writeFile(t, join(outside, "inner"), "OUT")
		a := mustLookup(t, fs, RootID, "a").NodeID
		b := mustLookup(t, fs, a, "b").NodeID

		if err := os.Rename(join(share, "a", "b"), join(share, "moved")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, join(share, "a", "b")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../../../../../..", join(share, "moved", "esc")); err != nil {
			t.Fatal(err)
		}
		inner := mustLookup(t, fs, b, "inner")
		fh := mustOpen(t, fs, inner.NodeID, unix.O_RDONLY)
		buf := make([]byte, 8)
		if n, e := fs.Read(root, inner.NodeID, &fuse.ReadIn{Fh: fh, Size: 8}, [][]byte{buf}); e != 0 || string(buf[:n]) != "in" {
			t.Errorf("read through moved dir = %q, %v, want the share's file", buf[:n], e)
		}
		if ent := mustLookup(t, fs, a, "b"); ent.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("Lookup(a, b) mode %o, want the new symlink", ent.Attr.Mode)
		}
		esc := mustLookup(t, fs, b, "esc")
		if esc.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("Lookup(esc) mode %o, want symlink", esc.Attr.Mode)
		}
		var eo fuse.EntryOut
		if e := fs.Lookup(root, esc.NodeID, nm("etc"), &eo); e == 0 {
			t.Errorf("lookup through an escaping symlink succeeded")
		}
		var ao fuse.AttrOut
		fs.Getattr(root, b, &ao)
		var st unix.Stat_t
		unix.Stat(join(share, "moved"), &st)
		if ao.Attr.Ino != st.Ino {
			t.Errorf("moved dir attr ino %d, want %d", ao.Attr.Ino, st.Ino)
		}
	})
}
