package daemon

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// End-to-end tests of --inode-file-handles and --killpriv-v2, run against
// both daemons.

const (
	initHandleKillprivV2 = 1 << 28 // FUSE_HANDLE_KILLPRIV_V2
	openKillSUIDGID      = 1 << 0  // FUSE_OPEN_KILL_SUIDGID (fuse_open_in.open_flags)
	writeKillSUIDGID     = 1 << 2  // FUSE_WRITE_KILL_SUIDGID
	fattrKillSUIDGID     = 1 << 11 // FATTR_KILL_SUIDGID
)

// TestInodeFileHandles runs the same operations in each file handle mode
// and checks the daemon's descriptor use: never keeps one O_PATH descriptor
// per known inode, prefer and mandatory keep none (the shared directory's
// file system makes file handles).
func TestInodeFileHandles(t *testing.T) {
	const files = 16
	for _, mode := range []string{"never", "prefer", "mandatory", "fallback", ""} {
		name := mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				var args []string
				if mode != "" {
					args = []string{"--inode-file-handles=" + mode}
				}
				d := startDaemon(t, spec, startOpts{args: args})
				for i := range files {
					writeHost(t, filepath.Join(d.Shared, "f"+strconv.Itoa(i)), []byte("data"), 0o644)
				}
				mustOK(t, "mkdir", os.Mkdir(filepath.Join(d.Shared, "dir"), 0o755))
				before := d.fdCount()
				var ids []uint64
				for i := range files {
					e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"+strconv.Itoa(i)))
					ids = append(ids, e.NodeID)
				}
				grown := d.fdCount() - before
				switch mode {
				case "never":
					if grown != files {
						t.Errorf("%d lookups opened %d descriptors, want %d (O_PATH per inode)", files, grown, files)
					}
				default: // file handles (the 1.13.3 default is prefer)
					if spec == reference && mode == "" {
						break // 1.13.2 defaults to never; see the note at the end of the file
					}
					if grown != 0 {
						t.Errorf("%d lookups opened %d descriptors, want 0 (file handles)\n%s", files, grown, d.fdList())
					}
				}

				// The operations work on handle-held inodes.
				f := ids[0]
				p := filepath.Join(d.Shared, "f0")
				checkAttr(t, "GETATTR", must[fe.AttrOut](t, "GETATTR")(d.FE.Getattr(f)).Attr, hostStat(t, p))
				o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(f, unix.O_RDWR))
				if n := must[uint32](t, "WRITE")(d.FE.Write(f, o.Fh, 4, []byte("more"), unix.O_RDWR)); n != 4 {
					t.Errorf("WRITE = %d", n)
				}
				if b := must[[]byte](t, "READ")(d.FE.Read(f, o.Fh, 0, 100)); string(b) != "datamore" {
					t.Errorf("READ = %q", b)
				}
				mustOK(t, "RELEASE", d.FE.Release(f, o.Fh))
				a := must[fe.AttrOut](t, "SETATTR")(d.FE.Setattr(f, fe.SetattrIn{Valid: fe.FATTR_SIZE, Size: 2}))
				if a.Attr.Size != 2 {
					t.Errorf("SETATTR size = %d", a.Attr.Size)
				}
				dir := must[fe.EntryOut](t, "LOOKUP dir")(d.FE.Lookup(root, "dir"))
				l := must[fe.EntryOut](t, "LINK")(d.FE.Link(f, dir.NodeID, "hard"))
				if l.NodeID != f || l.Attr.Nlink != 2 {
					t.Errorf("LINK = node %d nlink %d, want node %d nlink 2", l.NodeID, l.Attr.Nlink, f)
				}
				if h := must[fe.EntryOut](t, "LOOKUP dir/hard")(d.FE.Lookup(dir.NodeID, "hard")); h.NodeID != f {
					t.Errorf("LOOKUP dir/hard = node %d, want %d (one entry per inode)", h.NodeID, f)
				}
				mustOK(t, "RENAME", d.FE.Rename(root, "f1", dir.NodeID, "moved"))
				if m := must[fe.EntryOut](t, "LOOKUP moved")(d.FE.Lookup(dir.NodeID, "moved")); m.NodeID != ids[1] {
					t.Errorf("renamed file = node %d, want %d", m.NodeID, ids[1])
				}
				do := must[fe.OpenOut](t, "OPENDIR")(d.FE.Opendir(dir.NodeID, 0))
				ents := must[[]fe.Dirent](t, "READDIR")(d.FE.Readdir(dir.NodeID, do.Fh, 0, 4096))
				if got := strings.Join(direntNames(ents), ","); !strings.Contains(got, "hard") || !strings.Contains(got, "moved") {
					t.Errorf("READDIR = %s", got)
				}
				mustOK(t, "RELEASEDIR", d.FE.Releasedir(dir.NodeID, do.Fh))
				mustOK(t, "FORGET", d.FE.Forget(ids[2], 1))
				_, err := d.FE.Getattr(ids[2])
				wantErrno(t, "GETATTR after FORGET", err, unix.EBADF)
				if mode == "fallback" && !strings.Contains(d.Log(), "Use of deprecated value 'fallback' for '--inode-file-handles': Please use 'prefer' instead") {
					t.Errorf("no deprecation warning for 'fallback':\n%s", d.Log())
				}
				d.serves()
			})
		})
	}
}

// TestInodeFileHandlesNoSupport puts a file system without file handles
// (procfs) inside the shared directory: prefer falls back to an O_PATH
// descriptor with a warning, mandatory fails the LOOKUP with EOPNOTSUPP.
func TestInodeFileHandlesNoSupport(t *testing.T) {
	for _, mode := range []string{"prefer", "mandatory"} {
		t.Run(mode, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				// Mounted before the daemon starts, so that the sandbox's
				// recursive bind mount of the share includes it.
				shared := filepath.Join(t.TempDir(), "shared")
				mp := filepath.Join(shared, "proc")
				mustOK(t, "mkdir", os.MkdirAll(mp, 0o755))
				if err := unix.Mount("proc", mp, "proc", 0, ""); err != nil {
					t.Skipf("cannot mount procfs: %v", err)
				}
				t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
				d := startDaemonIn(t, spec, shared, startOpts{args: []string{"--inode-file-handles=" + mode}})
				e, err := d.FE.Lookup(root, "proc")
				if mode == "mandatory" {
					wantErrno(t, "LOOKUP procfs", err, unix.EOPNOTSUPP)
					d.serves()
					return
				}
				mustOK(t, "LOOKUP procfs", err)
				before := d.fdCount()
				must[fe.EntryOut](t, "LOOKUP proc/self")(d.FE.Lookup(e.NodeID, "self"))
				if grown := d.fdCount() - before; grown != 1 {
					t.Errorf("LOOKUP on procfs opened %d descriptors, want 1 (O_PATH fallback)", grown)
				}
				must[fe.AttrOut](t, "GETATTR proc")(d.FE.Getattr(e.NodeID))
				want := "Filesystem does not support file handles, falling back to O_PATH FDs"
				waitLog(d, want)
				if n := strings.Count(d.Log(), want); n != 1 {
					t.Errorf("%d fallback warnings, want 1:\n%s", n, d.Log())
				}
				// Named as the sandboxed daemon sees it: the share is "/".
				if !strings.Contains(d.Log(), `"/proc"`) {
					t.Errorf("fallback warning does not name the mount point /proc:\n%s", d.Log())
				}
				d.serves()
			})
		})
	}
}

// waitLog waits up to two seconds for the daemon's log to contain s (the
// log arrives through a pipe, possibly after the reply).
func waitLog(d *daemon, s string) bool {
	for range 200 {
		if strings.Contains(d.Log(), s) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// suidHostFile creates a set-user-ID, set-group-ID file owned by an
// unprivileged user.
func suidHostFile(t *testing.T, p string) {
	t.Helper()
	writeHost(t, p, []byte("0123456789"), 0o755)
	mustOK(t, "chown", os.Chown(p, 1000, 1000))
	mustOK(t, "chmod", os.Chmod(p, os.ModeSetuid|os.ModeSetgid|0o755))
}

func hostMode(t *testing.T, p string) uint32 { return hostStat(t, p).Mode & 0o7777 }

// TestKillprivV2 checks that with --killpriv-v2 negotiated the requests
// the guest flags clear the set-user-ID and set-group-ID bits on the host
// (the daemon, root, drops CAP_FSETID for them), and that otherwise the
// bits stay.
func TestKillprivV2(t *testing.T) {
	type op struct {
		name string
		do   func(t *testing.T, d *daemon, node uint64, kill bool)
	}
	ops := []op{
		{"write", func(t *testing.T, d *daemon, node uint64, kill bool) {
			o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(node, unix.O_WRONLY))
			var wf uint32
			if kill {
				wf = writeKillSUIDGID
			}
			b := binary.LittleEndian.AppendUint64(nil, o.Fh)
			b = binary.LittleEndian.AppendUint64(b, 0)
			b = binary.LittleEndian.AppendUint32(b, 3)
			b = binary.LittleEndian.AppendUint32(b, wf)
			b = binary.LittleEndian.AppendUint64(b, 0)
			b = binary.LittleEndian.AppendUint32(b, unix.O_WRONLY)
			b = binary.LittleEndian.AppendUint32(b, 0)
			p := must[[]byte](t, "WRITE")(d.FE.Call(fe.FUSE_WRITE, node, fe.WriteOutSize, b, []byte("abc")))
			if binary.LittleEndian.Uint32(p) != 3 {
				t.Errorf("WRITE = %x", p)
			}
			mustOK(t, "RELEASE", d.FE.Release(node, o.Fh))
		}},
		{"open-trunc", func(t *testing.T, d *daemon, node uint64, kill bool) {
			var of uint32
			if kill {
				of = openKillSUIDGID
			}
			p := must[[]byte](t, "OPEN O_TRUNC")(d.FE.Call(fe.FUSE_OPEN, node, fe.OpenOutSize, le32(unix.O_WRONLY|unix.O_TRUNC, of)))
			mustOK(t, "RELEASE", d.FE.Release(node, binary.LittleEndian.Uint64(p)))
		}},
		{"setattr-size", func(t *testing.T, d *daemon, node uint64, kill bool) {
			v := uint32(fe.FATTR_SIZE)
			if kill {
				v |= fattrKillSUIDGID
			}
			must[fe.AttrOut](t, "SETATTR size")(d.FE.Setattr(node, fe.SetattrIn{Valid: v, Size: 2}))
		}},
	}
	for _, tt := range []struct {
		name    string
		option  []string
		offer   bool // the guest offers HANDLE_KILLPRIV_V2
		flag    bool // the request carries the KILL_SUIDGID flag
		cleared bool
	}{
		{"on/flag", []string{"--killpriv-v2"}, true, true, true},
		{"on/no-flag", []string{"--killpriv-v2"}, true, false, false},
		{"compat/flag", []string{"-o", "killpriv_v2"}, true, true, true},
		{"off/flag", nil, true, true, false},
		// The reference honours the flags whenever the option is on, even
		// if the guest did not take it up (a Linux guest then never sends
		// them); so do we.
		{"not-offered/flag", []string{"--killpriv-v2"}, false, true, true},
		{"not-offered/no-flag", []string{"--killpriv-v2"}, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d := startDaemon(t, spec, startOpts{args: tt.option, noInit: true})
				offer := uint64(fe.DefaultInitFlags)
				if tt.offer {
					offer |= initHandleKillprivV2
				}
				init := must[fe.InitOut](t, "INIT")(d.FE.Init(offer))
				if got, want := init.Flags&initHandleKillprivV2 != 0, tt.offer && len(tt.option) > 0; got != want {
					t.Errorf("INIT reply has HANDLE_KILLPRIV_V2 = %v, want %v", got, want)
				}
				if !tt.offer && !waitLog(d, "Cannot enable KILLPRIV_V2, client does not support it") {
					t.Errorf("no warning for a guest without KILLPRIV_V2:\n%s", d.Log())
				}
				for _, o := range ops {
					p := filepath.Join(d.Shared, o.name)
					suidHostFile(t, p)
					e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, o.name))
					o.do(t, d, e.NodeID, tt.flag)
					want := uint32(0o6755)
					if tt.cleared {
						want = 0o755
					}
					if got := hostMode(t, p); got != want {
						t.Errorf("%s: host mode %#o, want %#o", o.name, got, want)
					}
				}
				d.serves()
			})
		})
	}
}

// Known differences from the reference binary (1.13.2) in these tests:
//   - the default --inode-file-handles is prefer for us (1.13.3) and never
//     for 1.13.2, so the default run checks descriptor use on ours only.

// TestInodeFileHandlesUnlinked: a known node whose file was removed is
// still reachable through its O_PATH descriptor (never), but its file
// handle is stale (prefer), on both daemons.
func TestInodeFileHandlesUnlinked(t *testing.T) {
	for _, mode := range []string{"never", "prefer"} {
		t.Run(mode, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d := startDaemon(t, spec, startOpts{args: []string{"--inode-file-handles=" + mode}})
				writeHost(t, filepath.Join(d.Shared, "f"), []byte("x"), 0o644)
				mustOK(t, "mkdir", os.Mkdir(filepath.Join(d.Shared, "d"), 0o755))
				f := must[fe.EntryOut](t, "LOOKUP f")(d.FE.Lookup(root, "f"))
				dir := must[fe.EntryOut](t, "LOOKUP d")(d.FE.Lookup(root, "d"))
				mustOK(t, "UNLINK", d.FE.Unlink(root, "f"))
				mustOK(t, "RMDIR", d.FE.Rmdir(root, "d"))
				for _, n := range []uint64{f.NodeID, dir.NodeID} {
					a, err := d.FE.Getattr(n)
					if mode == "never" {
						if err != nil || a.Attr.Nlink != 0 {
							t.Errorf("GETATTR removed node %d = nlink %d, %v; want nlink 0", n, a.Attr.Nlink, err)
						}
						continue
					}
					wantErrno(t, "GETATTR removed node", err, unix.ESTALE)
				}
				d.serves()
			})
		})
	}
}

// TestInodeFileHandlesStartup serves a file system without file handles
// (procfs) as the shared directory: the start-up self-test turns prefer
// into never with a warning, and mandatory refuses to start.
func TestInodeFileHandlesStartup(t *testing.T) {
	for _, mode := range []string{"prefer", "mandatory"} {
		t.Run(mode, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				shared := filepath.Join(t.TempDir(), "proc")
				mustOK(t, "mkdir", os.Mkdir(shared, 0o755))
				if err := unix.Mount("proc", shared, "proc", 0, ""); err != nil {
					t.Skipf("cannot mount procfs: %v", err)
				}
				t.Cleanup(func() { unix.Unmount(shared, unix.MNT_DETACH) })
				args := []string{"--inode-file-handles=" + mode}
				// In the namespace sandbox the shared directory is the
				// root, and mount points are named as the daemon sees them.
				lines := []string{`Filesystem mounted on "/" (mount ID: `}
				if mode == "mandatory" {
					d := startDaemonIn(t, spec, shared, startOpts{args: args, noFE: true})
					d.skipExitCheck = true
					code, err := d.wait(10 * time.Second)
					if err != nil || code != 1 {
						t.Errorf("exit = %d, %v; want 1", code, err)
					}
					lines = append(lines, "): Filesystem does not support file handles\n",
						"Failed to create internal filesystem representation: Operation not supported (os error 95)")
					for _, l := range lines {
						if !strings.Contains(d.Log(), l) {
							t.Errorf("log lacks %q:\n%s", l, d.Log())
						}
					}
					return
				}
				d := startDaemonIn(t, spec, shared, startOpts{args: args})
				lines = append(lines, "): Filesystem does not support file handles, falling back to O_PATH FDs",
					"Failed to generate a file handle for the root node, disabling file handles altogether")
				for _, l := range lines {
					if !waitLog(d, l) {
						t.Errorf("log lacks %q:\n%s", l, d.Log())
					}
				}
				before := d.fdCount()
				must[fe.EntryOut](t, "LOOKUP self")(d.FE.Lookup(root, "self"))
				if grown := d.fdCount() - before; grown != 1 {
					t.Errorf("LOOKUP opened %d descriptors, want 1 (never mode)", grown)
				}
				d.serves()
			})
		})
	}
}
