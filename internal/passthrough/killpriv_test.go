package passthrough

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

const suidMode = 0o6755

// suidFile creates name in dir owned by an unprivileged user with the
// set-user-ID and set-group-ID bits (group execute set, so that the kernel
// would clear set-group-ID too).
func suidFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := join(dir, name)
	writeFile(t, p, "0123456789")
	if err := os.Chown(p, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, os.ModeSetuid|os.ModeSetgid|0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func modeOf(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 0o7777
}

func fsetidEffective(t *testing.T) bool {
	t.Helper()
	var cs capState
	if e := sysCapget(&cs); e != 0 {
		t.Fatal(e)
	}
	return cs.data[0].Effective&(1<<unix.CAP_FSETID) != 0
}

// TestKillprivV2 checks, as root, that the three flagged requests clear the
// set-user-ID and set-group-ID bits on the host only when KILLPRIV_V2 is
// negotiated and the request carries the flag (root keeps the bits
// otherwise, having CAP_FSETID), and that the thread gets CAP_FSETID back.
func TestKillprivV2(t *testing.T) {
	requireRoot(t)
	type op func(t *testing.T, fs *FS, id uint64, kill bool) unix.Errno
	write := func(t *testing.T, fs *FS, id uint64, kill bool) unix.Errno {
		fh := mustOpen(t, fs, id, unix.O_WRONLY)
		defer fs.Release(root, id, &fuse.ReleaseIn{Fh: fh})
		win := &fuse.WriteIn{Fh: fh, Size: 3}
		if kill {
			win.WriteFlags = fuse.FUSE_WRITE_KILL_SUIDGID
		}
		n, e := fs.Write(root, id, win, [][]byte{[]byte("abc")})
		if e == 0 && n != 3 {
			t.Errorf("Write = %d bytes", n)
		}
		return e
	}
	openTrunc := func(t *testing.T, fs *FS, id uint64, kill bool) unix.Errno {
		oin := &fuse.OpenIn{Flags: unix.O_WRONLY | unix.O_TRUNC}
		if kill {
			oin.OpenFlags = fuse.FUSE_OPEN_KILL_SUIDGID
		}
		var out fuse.OpenOut
		e := fs.Open(root, id, oin, &out)
		if e == 0 {
			fs.Release(root, id, &fuse.ReleaseIn{Fh: out.Fh})
		}
		return e
	}
	truncate := func(t *testing.T, fs *FS, id uint64, kill bool) unix.Errno {
		sin := &fuse.SetattrIn{Valid: fuse.FATTR_SIZE, Size: 2}
		if kill {
			sin.Valid |= fuse.FATTR_KILL_SUIDGID
		}
		var out fuse.AttrOut
		return fs.Setattr(root, id, sin, &out)
	}
	createTrunc := func(t *testing.T, fs *FS, id uint64, kill bool) unix.Errno {
		// CREATE of an existing file without O_EXCL opens it like OPEN.
		cin := &fuse.CreateIn{Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC, Mode: 0o644}
		if kill {
			cin.OpenFlags = fuse.FUSE_OPEN_KILL_SUIDGID
		}
		var eo fuse.EntryOut
		var oo fuse.OpenOut
		e := fs.Create(root, RootID, nm("f"), cin, &eo, &oo)
		if e == 0 {
			if eo.NodeID != id {
				t.Errorf("CREATE of the existing file = node %d, want %d", eo.NodeID, id)
			}
			fs.Release(root, eo.NodeID, &fuse.ReleaseIn{Fh: oo.Fh})
		}
		return e
	}
	for _, o := range []struct {
		name string
		f    op
	}{{"write", write}, {"open-trunc", openTrunc}, {"setattr-size", truncate}, {"create-trunc", createTrunc}} {
		for _, tt := range []struct {
			name     string
			killpriv bool
			flag     bool
			cleared  bool
		}{
			{"killpriv/flag", true, true, true},
			{"killpriv/no-flag", true, false, false},
			{"no-killpriv/flag", false, true, false},
		} {
			t.Run(o.name+"/"+tt.name, func(t *testing.T) {
				fs, dir := newTestFS(t, func(c *Config) { c.KillprivV2 = tt.killpriv })
				p := suidFile(t, dir, "f")
				id := mustLookup(t, fs, RootID, "f").NodeID
				if !fsetidEffective(t) {
					t.Skip("CAP_FSETID not effective")
				}
				onLockedThread(t, func() {
					if e := o.f(t, fs, id, tt.flag); e != 0 {
						t.Errorf("request = %v", e)
					}
					if !fsetidEffective(t) {
						t.Errorf("CAP_FSETID not restored on the thread")
					}
				})
				want := uint32(suidMode)
				if tt.cleared {
					want = 0o755
				}
				if got := modeOf(t, p); got != want {
					t.Errorf("mode after the request = %#o, want %#o", got, want)
				}
			})
		}
	}
}

func TestKillprivV2Init(t *testing.T) {
	var lb logBuffer
	fs, _ := newTestFS(t, func(c *Config) { c.KillprivV2 = true; c.Log = lb.logger() })
	want, e := fs.Init(allCaps &^ fuse.FUSE_HANDLE_KILLPRIV_V2)
	if e != 0 {
		t.Fatal(e)
	}
	if want&fuse.FUSE_HANDLE_KILLPRIV_V2 == 0 {
		t.Errorf("INIT does not ask for HANDLE_KILLPRIV_V2")
	}
	if !strings.Contains(lb.String(), "Cannot enable KILLPRIV_V2, client does not support it") {
		t.Errorf("no warning: %s", lb.String())
	}
	plain, _ := newTestFS(t, nil)
	if want, _ := plain.Init(allCaps); want&fuse.FUSE_HANDLE_KILLPRIV_V2 != 0 {
		t.Errorf("INIT asks for HANDLE_KILLPRIV_V2 without --killpriv-v2")
	}
}
