package passthrough

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// TestSuiteWithFileHandles runs every test of the package again with file
// handles (prefer, then mandatory), in a child process of the test binary.
func TestSuiteWithFileHandles(t *testing.T) {
	if os.Getenv("VIRTIOFSD_TEST_FILE_HANDLES") != "" {
		t.Skip("already running with file handles")
	}
	requireRoot(t)
	if testing.Short() {
		t.Skip("short mode")
	}
	for _, mode := range []string{"prefer", "mandatory"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.count=1", "-test.timeout=4m")
			cmd.Env = append(os.Environ(), "VIRTIOFSD_TEST_FILE_HANDLES="+mode)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("tests with --inode-file-handles=%s failed: %v\n%s", mode, err, out)
			}
		})
	}
}

// logBuffer collects log lines of an FS.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// handleFS returns an initialised FS in the given file handle mode, with
// its log captured.
func handleFS(t *testing.T, mode FileHandleMode, mod func(*Config)) (*FS, string, *logBuffer) {
	t.Helper()
	requireRoot(t) // open_by_handle_at needs CAP_DAC_READ_SEARCH
	var lb logBuffer
	fs, dir := newTestFS(t, func(c *Config) {
		c.InodeFileHandles = mode
		c.Log = lb.logger()
		if mod != nil {
			mod(c)
		}
	})
	if got := fs.FileHandleMode(); got != mode {
		t.Fatalf("file handle mode after the self-test = %v, want %v (log: %s)", got, mode, lb.String())
	}
	return fs, dir, &lb
}

func record(fs *FS, nodeid uint64) *inode {
	fs.cur().mu.Lock()
	defer fs.cur().mu.Unlock()
	return fs.cur().inodes[nodeid]
}

func TestFileHandleOps(t *testing.T) {
	for _, mode := range []FileHandleMode{FileHandlesPrefer, FileHandlesMandatory} {
		t.Run(mode.String(), func(t *testing.T) {
			fs, dir, _ := handleFS(t, mode, nil)
			writeFile(t, join(dir, "f"), "hello")
			if err := os.Mkdir(join(dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("f", join(dir, "l")); err != nil {
				t.Fatal(err)
			}
			if fs.fdUsed.Load() != 0 {
				t.Errorf("guest fds in use after INIT = %d, want 0 (root held as a handle)", fs.fdUsed.Load())
			}
			base := openFDs(t)
			f := mustLookup(t, fs, RootID, "f")
			d := mustLookup(t, fs, RootID, "d")
			l := mustLookup(t, fs, RootID, "l")
			for _, id := range []uint64{RootID, f.NodeID, d.NodeID, l.NodeID} {
				if in := record(fs, id); in == nil || in.fd != -1 || in.fh == nil || in.charged {
					t.Fatalf("node %d is not held as an uncharged file handle: %+v", id, in)
				}
			}
			// Three records, no descriptor of their own; one shared mount
			// descriptor (the root's mount was already open).
			if got := openFDs(t); got != base {
				t.Errorf("open fds after 3 lookups = %d, want %d", got, base)
			}
			if len(fs.mounts) != 1 {
				t.Errorf("mount descriptors = %d, want 1", len(fs.mounts))
			}
			if fs.fdUsed.Load() != 0 {
				t.Errorf("guest fds in use after lookups = %d, want 0", fs.fdUsed.Load())
			}

			var ao fuse.AttrOut
			if e := fs.Getattr(root, f.NodeID, &ao); e != 0 || ao.Attr.Size != 5 {
				t.Errorf("Getattr = %v size %d", e, ao.Attr.Size)
			}
			buf := make([]byte, 16)
			if n, e := fs.Readlink(root, l.NodeID, buf); e != 0 || string(buf[:n]) != "f" {
				t.Errorf("Readlink = %q, %v", buf[:n], e)
			}
			fh := mustOpen(t, fs, f.NodeID, unix.O_RDWR)
			if fs.fdUsed.Load() != 1 {
				t.Errorf("guest fds in use after OPEN = %d, want 1", fs.fdUsed.Load())
			}
			if n, e := fs.Write(root, f.NodeID, &fuse.WriteIn{Fh: fh, Size: 3}, [][]byte{[]byte("HEL")}); n != 3 || e != 0 {
				t.Errorf("Write = %d, %v", n, e)
			}
			rb := make([]byte, 5)
			if n, e := fs.Read(root, f.NodeID, &fuse.ReadIn{Fh: fh, Size: 5}, [][]byte{rb}); n != 5 || e != 0 || string(rb) != "HELlo" {
				t.Errorf("Read = %q, %d, %v", rb, n, e)
			}
			if e := fs.Release(root, f.NodeID, &fuse.ReleaseIn{Fh: fh}); e != 0 {
				t.Errorf("Release = %v", e)
			}
			sin := &fuse.SetattrIn{Valid: fuse.FATTR_MODE | fuse.FATTR_SIZE | fuse.FATTR_MTIME, Mode: 0o600, Size: 2, Mtime: 12345}
			if e := fs.Setattr(root, f.NodeID, sin, &ao); e != 0 || ao.Attr.Size != 2 || ao.Attr.Mode&0o7777 != 0o600 || ao.Attr.Mtime != 12345 {
				t.Errorf("Setattr = %v, attr %+v", e, ao.Attr)
			}
			var eo fuse.EntryOut
			if e := fs.Mkdir(root, d.NodeID, nm("sub"), &fuse.MkdirIn{Mode: 0o755}, &eo); e != 0 {
				t.Errorf("Mkdir under a handle directory = %v", e)
			}
			if e := fs.Link(root, f.NodeID, d.NodeID, nm("hard"), &eo); e != 0 || eo.NodeID != f.NodeID || eo.Attr.Nlink != 2 {
				t.Errorf("Link = %v, node %d (want %d), nlink %d", e, eo.NodeID, f.NodeID, eo.Attr.Nlink)
			}
			// The same inode through another name is the same record.
			if h := mustLookup(t, fs, d.NodeID, "hard"); h.NodeID != f.NodeID {
				t.Errorf("Lookup(d/hard) = node %d, want %d", h.NodeID, f.NodeID)
			}
			if e := fs.Rename(root, RootID, nm("f"), d.NodeID, nm("moved"), 0); e != 0 {
				t.Errorf("Rename = %v", e)
			}
			if m := mustLookup(t, fs, d.NodeID, "moved"); m.NodeID != f.NodeID {
				t.Errorf("renamed file = node %d, want %d", m.NodeID, f.NodeID)
			}
			dh := mustOpen(t, fs, d.NodeID, unix.O_RDONLY|unix.O_DIRECTORY)
			rd := make([]byte, 4096)
			n, e := fs.Readdir(root, d.NodeID, &fuse.ReadIn{Fh: dh}, rd)
			names, _ := direntNames(rd[:n])
			if e != 0 || !strings.Contains(strings.Join(names, ","), "moved") {
				t.Errorf("Readdir = %v, %v", names, e)
			}
			fs.Releasedir(root, d.NodeID, &fuse.ReleaseIn{Fh: dh})
			var so fuse.StatfsOut
			if e := fs.Statfs(root, f.NodeID, &so); e != 0 || so.Bsize == 0 {
				t.Errorf("Statfs = %v", e)
			}
			if e := fs.Access(root, f.NodeID, unix.R_OK); e != 0 {
				t.Errorf("Access = %v", e)
			}
			if e := fs.Unlink(root, d.NodeID, nm("hard")); e != 0 {
				t.Errorf("Unlink = %v", e)
			}
			// (With two links, a handle may be opened through either name.)
			if p, err := fs.Path(f.NodeID); err != nil || p != "d/moved" {
				t.Errorf("Path = %q, %v", p, err)
			}

			// Forgetting everything releases the mount descriptor.
			fs.Destroy()
			if len(fs.mounts) != 0 || len(fs.cur().byHandle) != 0 {
				t.Errorf("after Destroy: %d mount fds, %d handle index entries", len(fs.mounts), len(fs.cur().byHandle))
			}
			if got := openFDs(t); got >= base {
				t.Errorf("open fds after Destroy = %d, want < %d (mount fd closed)", got, base)
			}
		})
	}
}

// TestFileHandleIdentity checks that a record held as a file handle is
// found by its handle only: an inode number match alone (the number may
// have been given to a new file) is not enough.
func TestFileHandleIdentity(t *testing.T) {
	fs, dir, _ := handleFS(t, FileHandlesPrefer, nil)
	writeFile(t, join(dir, "f"), "x")
	f := mustLookup(t, fs, RootID, "f")
	in := record(fs, f.NodeID)
	other := *in.fh
	other.raw.data[other.raw.bytes-1] ^= 0xff
	fs.cur().mu.Lock()
	byKeyOnly := fs.cur().findLocked(in.key, nil)
	byOther := fs.cur().findLocked(in.key, &other)
	byOwn := fs.cur().findLocked(in.key, in.fh)
	fs.cur().mu.Unlock()
	if byKeyOnly != nil || byOther != nil {
		t.Errorf("a handle record was matched by inode key alone")
	}
	if byOwn != in {
		t.Errorf("a handle record was not found by its own handle")
	}

	// The real thing: delete the file and create files until one gets the
	// same inode number (file systems reuse freed numbers quickly).
	oldIno := f.Attr.Ino
	if err := os.Remove(join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	for i := range 64 {
		name := "g" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		writeFile(t, join(dir, name), "y")
		var st unix.Stat_t
		if err := unix.Stat(join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ino != oldIno {
			continue
		}
		g := mustLookup(t, fs, RootID, name)
		if g.NodeID == f.NodeID {
			t.Fatalf("new file %s with the recycled inode number %d got the deleted file's node %d", name, oldIno, f.NodeID)
		}
		return
	}
	t.Logf("inode number %d was not recycled; only the index check ran", oldIno)
}

// TestFileHandleFallback covers a file system without file handles (a
// procfs mount inside the shared directory): prefer keeps an O_PATH
// descriptor for it and warns once, mandatory fails the lookup.
func TestFileHandleFallback(t *testing.T) {
	for _, mode := range []FileHandleMode{FileHandlesPrefer, FileHandlesMandatory} {
		t.Run(mode.String(), func(t *testing.T) {
			fs, dir, lb := handleFS(t, mode, nil)
			mp := join(dir, "proc")
			if err := os.Mkdir(mp, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("proc", mp, "proc", 0, ""); err != nil {
				t.Skipf("cannot mount procfs: %v", err)
			}
			t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
			var eo fuse.EntryOut
			e := fs.Lookup(root, RootID, nm("proc"), &eo)
			if mode == FileHandlesMandatory {
				if e != unix.EOPNOTSUPP {
					t.Fatalf("Lookup(procfs) in mandatory mode = %v, want EOPNOTSUPP", e)
				}
				fs.Lookup(root, RootID, nm("proc"), &eo)
				if n := strings.Count(lb.String(), "does not support file handles"); n != 1 {
					t.Errorf("%d log lines about missing handles, want 1:\n%s", n, lb)
				}
				return
			}
			if e != 0 {
				t.Fatalf("Lookup(procfs) = %v", e)
			}
			in := record(fs, eo.NodeID)
			if in.fd < 0 || in.fh != nil || !in.charged {
				t.Fatalf("procfs root is not held as a charged O_PATH descriptor: %+v", in)
			}
			self := mustLookup(t, fs, eo.NodeID, "self")
			if in := record(fs, self.NodeID); in.fd < 0 {
				t.Errorf("procfs entry is not held as an O_PATH descriptor")
			}
			var ao fuse.AttrOut
			if e := fs.Getattr(root, self.NodeID, &ao); e != 0 {
				t.Errorf("Getattr(proc/self) = %v", e)
			}
			log := lb.String()
			if n := strings.Count(log, "Filesystem does not support file handles, falling back to O_PATH FDs"); n != 1 {
				t.Errorf("%d fallback warnings, want 1:\n%s", n, log)
			}
			if !strings.Contains(log, `Filesystem mounted on \"`+mp+`\"`) {
				t.Errorf("fallback warning does not name the mount point %s:\n%s", mp, log)
			}
			// The shared directory's own files still use handles.
			writeFile(t, join(dir, "f"), "x")
			if in := record(fs, mustLookup(t, fs, RootID, "f").NodeID); in.fh == nil {
				t.Errorf("file on the shared directory's file system is not held as a handle")
			}
		})
	}
}

// TestFileHandleSubmount checks that a second file system with handles
// (tmpfs) gets its own mount descriptor, released with its last record.
func TestFileHandleSubmount(t *testing.T) {
	fs, dir, _ := handleFS(t, FileHandlesMandatory, nil)
	mp := join(dir, "tmp")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	writeFile(t, join(mp, "x"), "x")
	d := mustLookup(t, fs, RootID, "tmp")
	x := mustLookup(t, fs, d.NodeID, "x")
	if d.Attr.Flags&fuse.FUSE_ATTR_SUBMOUNT == 0 {
		t.Errorf("tmpfs mount point not flagged as a submount")
	}
	if len(fs.mounts) != 2 {
		t.Fatalf("mount descriptors = %d, want 2", len(fs.mounts))
	}
	var ao fuse.AttrOut
	if e := fs.Getattr(root, x.NodeID, &ao); e != 0 || ao.Attr.Size != 1 {
		t.Errorf("Getattr(tmp/x) = %v", e)
	}
	fs.Forget(x.NodeID, 1)
	if len(fs.mounts) != 2 {
		t.Errorf("mount descriptor released while the mount point record still uses it")
	}
	fs.Forget(d.NodeID, 1)
	if len(fs.mounts) != 1 {
		t.Errorf("mount descriptors after forgetting the tmpfs records = %d, want 1", len(fs.mounts))
	}
}

// TestFileHandleSelfTest covers the start-up self-test: without handles
// for the shared directory, or without the capability to open them,
// prefer turns into never and mandatory refuses to start.
func TestFileHandleSelfTest(t *testing.T) {
	requireRoot(t)
	noHandles := func(int) unix.Errno { return unix.EOPNOTSUPP }
	for _, tt := range []struct {
		name      string
		mode      FileHandleMode
		hook      func(int) unix.Errno
		noDACRead bool
		wantErr   bool
		wantLog   string
	}{
		{"prefer/no-handles", FileHandlesPrefer, noHandles, false, false, "Failed to generate a file handle for the root node, disabling file handles altogether"},
		{"mandatory/no-handles", FileHandlesMandatory, noHandles, false, true, ": Filesystem does not support file handles"},
		{"prefer/no-capability", FileHandlesPrefer, nil, true, false, "File handles do not appear safe to use, disabling file handles altogether"},
		{"mandatory/no-capability", FileHandlesMandatory, nil, true, true, "Refusing to use (mandatory) file handles, as they do not appear safe to use"},
		{"prefer/ok", FileHandlesPrefer, nil, false, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var lb logBuffer
			cfg := testConfig(t.TempDir())
			cfg.InodeFileHandles = tt.mode
			cfg.handleHook = tt.hook
			cfg.Log = lb.logger()
			var fs *FS
			var err error
			onLockedThread(t, func() {
				if tt.noDACRead {
					var cs capState
					if e := sysCapget(&cs); e != 0 {
						t.Error(e)
						return
					}
					cs.data[0].Effective &^= 1 << unix.CAP_DAC_READ_SEARCH
					if e := sysCapset(&cs); e != 0 {
						t.Error(e)
						return
					}
				}
				fs, err = New(cfg)
			})
			if fs != nil {
				defer fs.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("New = %v, want error %v (log: %s)", err, tt.wantErr, lb.String())
			}
			if !strings.Contains(lb.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, lb.String())
			}
			if err == nil {
				want := tt.mode
				if tt.wantLog != "" {
					want = FileHandlesNever
				}
				if fs.FileHandleMode() != want {
					t.Errorf("mode = %v, want %v", fs.FileHandleMode(), want)
				}
			}
		})
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:                 "/a/b",
		`/with\040space`:       "/with space",
		`/tab\011nl\012bs\134`: "/tab\tnl\nbs\\",
		`/trail\04`:            `/trail\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestZeroAllocsFileHandles(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	fs, dir, _ := handleFS(t, FileHandlesPrefer, nil)
	writeFile(t, join(dir, "f"), string(make([]byte, 4096)))
	id := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, id, unix.O_RDWR)
	name := nm("f")
	var eo fuse.EntryOut
	var ao fuse.AttrOut
	buf := make([]byte, 4096)
	iov := [][]byte{buf}
	rin := &fuse.ReadIn{Fh: fh, Size: 4096}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for what, f := range map[string]func(){
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
	} {
		if got := testing.AllocsPerRun(200, f); got != 0 {
			t.Errorf("%s: %v allocations per call, want 0", what, got)
		}
	}
}
