package passthrough

import (
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

func threadGroups(t *testing.T) []uint32 {
	t.Helper()
	n, e := sysGetgroups(nil)
	if e != 0 {
		t.Fatal(e)
	}
	g := make([]uint32, n)
	if n > 0 {
		if n, e = sysGetgroups(g); e != 0 {
			t.Fatal(e)
		}
	}
	return g[:n]
}

// checkThreadRestored fails unless the calling thread is back to root
// with its original groups.
func checkThreadRestored(t *testing.T, groups []uint32) {
	t.Helper()
	if u, g := unix.Geteuid(), unix.Getegid(); u != 0 || g != 0 {
		t.Errorf("thread euid/egid after request = %d/%d, want 0/0", u, g)
	}
	if got := threadGroups(t); !slices.Equal(got, groups) {
		t.Errorf("thread groups after request = %v, want %v", got, groups)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	if data[0].Effective != data[0].Permitted || data[1].Effective != data[1].Permitted {
		t.Errorf("effective capabilities %#x/%#x, want permitted %#x/%#x", data[0].Effective, data[1].Effective, data[0].Permitted, data[1].Permitted)
	}
}

func TestCredentialsOwnerAndRestore(t *testing.T) {
	requireRoot(t)
	// Without CREATE_SUPP_GROUP, CAP_DAC_OVERRIDE is re-raised: a foreign
	// uid may create in the root-owned 0700 share.
	fs, dir := newTestFS(t, nil)
	if _, e := fs.Init(allCaps &^ fuse.FUSE_CREATE_SUPP_GROUP); e != 0 {
		t.Fatal(e)
	}
	guest := &fuse.Context{UID: 1234, GID: 5678}
	onLockedThread(t, func() {
		groups := threadGroups(t)
		var eo fuse.EntryOut
		var oo fuse.OpenOut
		steps := []struct {
			name string
			do   func() unix.Errno
		}{
			{"d", func() unix.Errno { return fs.Mkdir(guest, RootID, nm("d"), &fuse.MkdirIn{Mode: 0o755}, &eo) }},
			{"n", func() unix.Errno {
				return fs.Mknod(guest, RootID, nm("n"), &fuse.MknodIn{Mode: unix.S_IFREG | 0o644}, &eo)
			}},
			{"s", func() unix.Errno { return fs.Symlink(guest, RootID, nm("s"), []byte("t\x00"), &eo) }},
			{"c", func() unix.Errno {
				return fs.Create(guest, RootID, nm("c"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o600}, &eo, &oo)
			}},
		}
		for _, s := range steps {
			if e := s.do(); e != 0 {
				t.Errorf("create %s as 1234:5678 = %v", s.name, e)
				continue
			}
			if u, g := ownerOf(t, join(dir, s.name)); u != 1234 || g != 5678 {
				t.Errorf("%s owner = %d:%d, want 1234:5678", s.name, u, g)
			}
			if eo.Attr.UID != 1234 || eo.Attr.GID != 5678 {
				t.Errorf("%s entry owner = %d:%d", s.name, eo.Attr.UID, eo.Attr.GID)
			}
			checkThreadRestored(t, groups)
		}
		// Guest root is not switched.
		if e := fs.Mkdir(&fuse.Context{UID: 0, GID: 0}, RootID, nm("r"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != 0 {
			t.Fatal(e)
		}
		if u, g := ownerOf(t, join(dir, "r")); u != 0 || g != 0 {
			t.Errorf("root-created owner = %d:%d", u, g)
		}
		// A failing request restores too.
		if e := fs.Mkdir(guest, RootID, nm("d"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != unix.EEXIST {
			t.Errorf("Mkdir(existing) = %v", e)
		}
		checkThreadRestored(t, groups)
	})
	// CREATE's EEXIST fallback runs with the daemon's credentials: the
	// guest's uid never owns the file.
	var eo fuse.EntryOut
	var oo fuse.OpenOut
	writeFile(t, join(dir, "rootfile"), "x")
	onLockedThread(t, func() {
		if e := fs.Create(guest, RootID, nm("rootfile"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o600}, &eo, &oo); e != 0 {
			t.Errorf("Create(existing) = %v", e)
		}
	})
	if u, _ := ownerOf(t, join(dir, "rootfile")); u != 0 {
		t.Errorf("existing file owner changed to %d", u)
	}
}

func TestCredentialsSuppGroup(t *testing.T) {
	requireRoot(t)
	fs, dir := newTestFS(t, nil) // CREATE_SUPP_GROUP negotiated: no DAC override
	shared := join(dir, "g")
	if err := os.Mkdir(shared, 0o770); err != nil {
		t.Fatal(err)
	}
	os.Chown(shared, 0, 4242)
	os.Chmod(shared, 0o770)
	g := mustLookup(t, fs, RootID, "g").NodeID
	onLockedThread(t, func() {
		groups := threadGroups(t)
		var eo fuse.EntryOut
		if e := fs.Mkdir(&fuse.Context{UID: 1234, GID: 5678}, g, nm("no"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != unix.EACCES {
			t.Errorf("Mkdir without the group = %v, want EACCES", e)
		}
		checkThreadRestored(t, groups)
		c := &fuse.Context{UID: 1234, GID: 5678, SuppGID: 4242, HasSuppGID: true}
		if e := fs.Mkdir(c, g, nm("yes"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != 0 {
			t.Errorf("Mkdir with the supplementary group = %v", e)
		}
		checkThreadRestored(t, groups)
		// Several groups in one extension are all honoured.
		c = &fuse.Context{UID: 1234, GID: 5678, SuppGID: 77, HasSuppGID: true, SuppGIDs: []uint32{77, 4242}}
		if e := fs.Mkdir(c, g, nm("second"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != 0 {
			t.Errorf("Mkdir with the group second in the list = %v", e)
		}
		checkThreadRestored(t, groups)
		// The group is dropped even when no uid/gid switch happens.
		c = &fuse.Context{UID: 0, GID: 0, SuppGID: 4242, HasSuppGID: true}
		if e := fs.Mkdir(c, g, nm("root"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != 0 {
			t.Errorf("Mkdir as root with a group = %v", e)
		}
		checkThreadRestored(t, groups)
	})
	if u, gid := ownerOf(t, join(shared, "yes")); u != 1234 || gid != 5678 {
		t.Errorf("owner = %d:%d, want 1234:5678", u, gid)
	}
}

func TestCredentialsOtherThreadsUnaffected(t *testing.T) {
	requireRoot(t)
	fs, _ := newTestFS(t, nil)
	onLockedThread(t, func() {
		var g credGuard
		if e := fs.switchCreds(&fuse.Context{UID: 1234, GID: 5678, SuppGID: 99, HasSuppGID: true}, &g); e != 0 {
			t.Fatalf("switchCreds = %v", e)
		}
		if u, gid := unix.Geteuid(), unix.Getegid(); u != 1234 || gid != 5678 {
			t.Errorf("switched thread euid/egid = %d/%d", u, gid)
		}
		// Saved uid stays 0, so the switch can be undone.
		r, _, s := unix.Getresuid()
		if r != 0 || s != 0 {
			t.Errorf("real/saved uid = %d/%d, want 0/0", r, s)
		}
		onLockedThread(t, func() {
			if u, gid := unix.Geteuid(), unix.Getegid(); u != 0 || gid != 0 {
				t.Errorf("other thread euid/egid = %d/%d, want 0/0", u, gid)
			}
			if slices.Contains(threadGroups(t), 99) {
				t.Errorf("other thread got the supplementary group")
			}
		})
		g.restore()
		if u, gid := unix.Geteuid(), unix.Getegid(); u != 0 || gid != 0 {
			t.Errorf("restored euid/egid = %d/%d", u, gid)
		}
	})
}

// TestCredentialsPartialSwitchFailure makes the uid switch fail after the
// gid and group switches succeeded (CAP_SETUID is removed from the
// thread's effective set): the request fails with EPERM and the thread's
// egid and groups are restored, unlike in the reference.
func TestCredentialsPartialSwitchFailure(t *testing.T) {
	requireRoot(t)
	fs, dir := newTestFS(t, nil)
	onLockedThread(t, func() {
		groups := threadGroups(t)
		var cs capState
		if e := sysCapget(&cs); e != 0 {
			t.Fatal(e)
		}
		saved := cs
		cs.data[unix.CAP_SETUID/32].Effective &^= 1 << (unix.CAP_SETUID % 32)
		if e := sysCapset(&cs); e != 0 {
			t.Fatal(e)
		}
		c := &fuse.Context{UID: 1234, GID: 5678, SuppGID: 4242, HasSuppGID: true}
		var eo fuse.EntryOut
		if e := fs.Mkdir(c, RootID, nm("d"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != unix.EPERM {
			t.Errorf("Mkdir with the uid switch failing = %v, want EPERM", e)
		}
		if u, g := unix.Geteuid(), unix.Getegid(); u != 0 || g != 0 {
			t.Errorf("thread euid/egid after the failed switch = %d/%d, want 0/0", u, g)
		}
		if got := threadGroups(t); !slices.Equal(got, groups) {
			t.Errorf("thread groups after the failed switch = %v, want %v", got, groups)
		}
		if e := sysCapset(&saved); e != 0 {
			t.Fatal(e)
		}
	})
	if _, err := os.Lstat(join(dir, "d")); err == nil {
		t.Error("directory created although the switch failed")
	}
}
