package passthrough

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/migration"
)

// loadModes are the --inode-file-handles modes the load tests run in: never
// and prefer, or only the mode of the whole run when the package's tests
// are re-run with file handles (TestSuiteWithFileHandles).
func loadModes() []FileHandleMode {
	if os.Getenv("VIRTIOFSD_TEST_FILE_HANDLES") != "" {
		return []FileHandleMode{testHandleMode}
	}
	return []FileHandleMode{FileHandlesNever, FileHandlesPrefer}
}

// loadEnv is a shared directory with a sibling directory outside it, on the
// same file system:
//
//	share/d/f        "hello"
//	share/d/g        hard link to d/f
//	share/d/l        symlink to "f"
//	share/x/y        "y"
//	share/file       "top"
//	share/ld         symlink to "d"
//	share/esc        symlink to "../outside"
//	outside/marker   "secret"
//	outside/dir/
type loadEnv struct {
	base, share, outside string
}

func newLoadEnv(t testing.TB) *loadEnv {
	t.Helper()
	base := t.TempDir()
	env := &loadEnv{base: base, share: join(base, "share"), outside: join(base, "outside")}
	for _, d := range []string{env.share, join(env.share, "d"), join(env.share, "x"), env.outside, join(env.outside, "dir")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, join(env.share, "d", "f"), "hello")
	writeFile(t, join(env.share, "x", "y"), "y")
	writeFile(t, join(env.share, "file"), "top")
	writeFile(t, join(env.outside, "marker"), "secret")
	if err := os.Link(join(env.share, "d", "f"), join(env.share, "d", "g")); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"f", "d/l"}, {"d", "ld"}, {"../outside", "esc"}} {
		if err := os.Symlink(l[0], join(env.share, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// newFS returns a pristine FS (no INIT) over the share.
func (env *loadEnv) newFS(t testing.TB, mode FileHandleMode, mod func(*Config)) *FS {
	t.Helper()
	cfg := testConfig(env.share)
	cfg.InodeFileHandles = mode
	cfg.Writeback = true
	if mod != nil {
		mod(&cfg)
	}
	fs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Close)
	if fs.FileHandleMode() != mode {
		t.Skipf("file handles unavailable here (mode %v)", fs.FileHandleMode())
	}
	return fs
}

// baseState describes the environment as a find-paths source would after
// the guest looked up d, d/f (twice), d/g, d/l, x/y and file, with x only a
// path anchor, and opened three handles. It lists children before their
// parents, which the load must cope with.
func baseState() *migration.State {
	p := func(parent uint64, name string) migration.Location {
		return migration.Location{Kind: migration.LocPath, Parent: parent, Name: name}
	}
	return &migration.State{
		Version: migration.V2,
		Inodes: []migration.Inode{
			{ID: 8, Refcount: 1, Location: p(1, "file")},
			{ID: 7, Refcount: 1, Location: p(6, "y")},
			{ID: 6, Refcount: 1, Location: p(1, "x")}, // only y's anchor
			{ID: 5, Refcount: 1, Location: p(2, "l")},
			{ID: 4, Refcount: 1, Location: p(2, "g")}, // same file as 3
			{ID: 3, Refcount: 2, Location: p(2, "f")},
			{ID: 2, Refcount: 1 + 3, Location: p(1, "d")},
			{ID: 1, Refcount: 2 + 3, Location: migration.Location{Kind: migration.LocRoot}},
		},
		NextInode: 9,
		Handles: []migration.Handle{
			{ID: 0, Inode: 3, Flags: unix.O_WRONLY},
			{ID: 4, Inode: 2, Flags: unix.O_RDONLY | unix.O_DIRECTORY},
			{ID: 5, Inode: 8, Flags: unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_APPEND},
		},
		NextHandle: 6,
		Opts:       migration.NegotiatedOpts{Writeback: true, AnnounceSubmounts: true, SupGroupExtension: true},
	}
}

// wantLookups are the lookup counts after loading baseState (0: dropped).
var wantLookups = map[uint64]uint64{1: 2, 2: 1, 3: 2, 4: 1, 5: 1, 6: 0, 7: 1, 8: 1}

func getattr(fs *FS, nodeid uint64) (*fuse.AttrOut, unix.Errno) {
	var out fuse.AttrOut
	e := fs.Getattr(root, nodeid, &out)
	return &out, e
}

func readHandle(fs *FS, nodeid, fh uint64) (string, unix.Errno) {
	buf := make([]byte, 64)
	n, e := fs.Read(root, nodeid, &fuse.ReadIn{Fh: fh, Size: uint32(len(buf))}, [][]byte{buf})
	return string(buf[:n]), e
}

func inoOf(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestLoadPaths(t *testing.T) {
	requireRoot(t)
	for _, mode := range loadModes() {
		t.Run(mode.String(), func(t *testing.T) {
			env := newLoadEnv(t)
			before := openFDs(t)
			fs := env.newFS(t, mode, nil)
			if err := fs.loadState(baseState()); err != nil {
				t.Fatal(err)
			}
			s := fs.cur()
			if !s.writeback.Load() || !s.announce.Load() || !s.suppGroups.Load() {
				t.Errorf("negotiated flags not restored: writeback=%v announce=%v suppGroups=%v",
					s.writeback.Load(), s.announce.Load(), s.suppGroups.Load())
			}
			for id, want := range wantLookups {
				if got := lookups(fs, id); got != want {
					t.Errorf("lookups of node %d = %d, want %d", id, got, want)
				}
			}
			// Attributes: 3 and 4 are two IDs for one file.
			fIno := inoOf(t, join(env.share, "d", "f"))
			for _, id := range []uint64{3, 4} {
				a, e := getattr(fs, id)
				if e != 0 || a.Attr.Ino != fIno {
					t.Errorf("GETATTR(%d) = ino %d, %v; want ino %d", id, a.Attr.Ino, e, fIno)
				}
			}
			if _, e := getattr(fs, 6); e != unix.EBADF {
				t.Errorf("GETATTR of the dropped anchor = %v, want EBADF", e)
			}
			if a, e := getattr(fs, 7); e != 0 || a.Attr.Ino != inoOf(t, join(env.share, "x", "y")) {
				t.Errorf("GETATTR(7) = %v", e)
			}
			buf := make([]byte, 16)
			if n, e := fs.Readlink(root, 5, buf); e != 0 || string(buf[:n]) != "f" {
				t.Errorf("READLINK(5) = %q, %v", buf[:n], e)
			}

			// Handle 0 was write-only: under writeback it is reopened
			// read-write, and keeps the stream's flags for a later
			// migration.
			if fl := handleFlags(t, fs, 3, 0); fl&unix.O_ACCMODE != unix.O_RDWR {
				t.Errorf("handle 0 access mode = %#x, want O_RDWR", fl&unix.O_ACCMODE)
			}
			if got, e := readHandle(fs, 3, 0); e != 0 || got != "hello" {
				t.Errorf("READ through handle 0 = %q, %v", got, e)
			}
			h, _ := fs.getHandle(3, 0)
			if h.flags != unix.O_WRONLY {
				t.Errorf("handle 0 flags = %#x, want the stream's O_WRONLY", h.flags)
			}
			fs.putHandle(h)
			// Handle 5 asked for O_CREAT|O_TRUNC|O_EXCL|O_APPEND: none of
			// them is applied on reopening.
			if got, e := readHandle(fs, 8, 5); e != 0 || got != "top" {
				t.Errorf("READ through handle 5 = %q, %v (truncated?)", got, e)
			}
			if fl := handleFlags(t, fs, 8, 5); fl&(unix.O_APPEND) != 0 {
				t.Errorf("handle 5 flags %#x keep O_APPEND", fl)
			}
			data := []byte("TOP")
			if n, e := fs.Write(root, 8, &fuse.WriteIn{Fh: 5, Size: 3}, [][]byte{data}); e != 0 || n != 3 {
				t.Errorf("WRITE through handle 5 = %d, %v", n, e)
			}
			if b, _ := os.ReadFile(join(env.share, "file")); string(b) != "TOP" {
				t.Errorf("file after WRITE = %q", b)
			}
			// READDIR through the restored directory handle.
			dbuf := make([]byte, 4096)
			n, e := fs.Readdir(root, 2, &fuse.ReadIn{Fh: 4, Size: 4096}, dbuf)
			names, _ := direntNames(dbuf[:n])
			slices.Sort(names)
			if e != 0 || !slices.Equal(names, []string{".", "..", "f", "g", "l"}) {
				t.Errorf("READDIR = %v, %v", names, e)
			}

			// New IDs continue above next_inode / next_handle.
			writeFile(t, join(env.share, "new"), "n")
			if id := mustLookup(t, fs, RootID, "new").NodeID; id != 9 {
				t.Errorf("new node ID = %d, want 9", id)
			}
			if fh := mustOpen(t, fs, 9, unix.O_RDONLY); fh != 6 {
				t.Errorf("new handle = %d, want 6", fh)
			}
			// A LOOKUP of an object restored twice returns the first
			// record, with one more lookup.
			if id := mustLookup(t, fs, 2, "f").NodeID; id != 3 && id != 4 {
				t.Errorf("LOOKUP d/f = node %d, want 3 or 4", id)
			} else {
				fs.Forget(id, 1)
			}
			if id := mustLookup(t, fs, RootID, "d").NodeID; id != 2 || lookups(fs, 2) != 2 {
				t.Errorf("LOOKUP d = node %d with %d lookups, want 2 with 2", id, lookups(fs, 2))
			}

			// FORGET with the exact counts.
			fs.Forget(3, 1)
			if _, e := getattr(fs, 3); e != 0 {
				t.Errorf("node 3 gone after forgetting 1 of 2 lookups: %v", e)
			}
			fs.Forget(3, 1)
			if _, e := getattr(fs, 3); e != unix.EBADF {
				t.Errorf("node 3 after forgetting all lookups: %v, want EBADF", e)
			}
			if _, e := getattr(fs, 4); e != 0 {
				t.Errorf("node 4 after node 3 was forgotten: %v", e)
			}
			if got, e := readHandle(fs, 3, 0); e != 0 || got != "hello" {
				t.Errorf("READ through handle 0 after FORGET = %q, %v", got, e)
			}
			fs.Forget(2, 2)
			if _, e := getattr(fs, 2); e != unix.EBADF {
				t.Errorf("node 2 after forgetting all lookups: %v, want EBADF", e)
			}

			fs.Destroy()
			if got := fs.fdUsed.Load(); got != 0 {
				t.Errorf("guest-fd slots after DESTROY = %d", got)
			}
			fs.Close()
			if after := openFDs(t); after != before {
				t.Errorf("open fds: %d before, %d after", before, after)
			}
		})
	}
}

// TestLoadOverSession loads over a session built by INIT: the old records
// and handles are released and the stream's IDs serve.
func TestLoadOverSession(t *testing.T) {
	requireRoot(t)
	env := newLoadEnv(t)
	fs := env.newFS(t, testHandleMode, nil)
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	used := fs.fdUsed.Load()
	id := mustLookup(t, fs, RootID, "file").NodeID
	mustOpen(t, fs, id, unix.O_RDONLY)
	old := fs.cur()
	if err := fs.loadState(baseState()); err != nil {
		t.Fatal(err)
	}
	old.mu.Lock()
	dead := old.dead
	old.mu.Unlock()
	if !dead {
		t.Error("the session before the load was not retired")
	}
	fs.Destroy()
	if got := fs.fdUsed.Load(); got != used-used {
		t.Errorf("guest-fd slots after the load and DESTROY = %d, want 0", got)
	}
}

// TestLoadNextIDs checks that next_inode and next_handle below the IDs in
// the stream are raised above them, and that an empty stream (a source
// without FUSE session) installs an empty session with its counters.
func TestLoadNextIDs(t *testing.T) {
	requireRoot(t)
	env := newLoadEnv(t)
	fs := env.newFS(t, testHandleMode, nil)
	st := baseState()
	st.NextInode, st.NextHandle = 2, 0
	if err := fs.loadState(st); err != nil {
		t.Fatal(err)
	}
	if id := mustLookup(t, fs, RootID, "ld").NodeID; id != 9 {
		t.Errorf("new node ID = %d, want 9", id)
	}
	if fh := mustOpen(t, fs, 8, unix.O_RDONLY); fh != 6 {
		t.Errorf("new handle = %d, want 6", fh)
	}

	if err := fs.loadState(&migration.State{NextInode: 100, NextHandle: 50}); err != nil {
		t.Fatal(err)
	}
	s := fs.cur()
	if len(s.inodes) != 0 || s.nextNode.Load() != 100 || s.nextHandle.Load() != 50 {
		t.Errorf("empty stream: %d records, counters %d/%d", len(s.inodes), s.nextNode.Load(), s.nextHandle.Load())
	}
	if fs.fdUsed.Load() != 0 {
		t.Errorf("guest-fd slots = %d", fs.fdUsed.Load())
	}
}

// TestLoadOpts checks the negotiated options against the destination's
// configuration.
func TestLoadOpts(t *testing.T) {
	requireRoot(t)
	env := newLoadEnv(t)
	for _, c := range []struct {
		name string
		mod  func(*Config)
		opts migration.NegotiatedOpts
		want string
	}{
		{"writeback", func(c *Config) { c.Writeback = false }, migration.NegotiatedOpts{Writeback: true}, "source wants writeback enabled but it is disabled on the destination"},
		{"announce", func(c *Config) { c.AnnounceSubmounts = false }, migration.NegotiatedOpts{AnnounceSubmounts: true}, "source wants announce_submounts enabled but it is disabled on the destination"},
		{"posix_acl", nil, migration.NegotiatedOpts{PosixACL: true}, "source wants posix_acl enabled but it is disabled on the destination"},
		{"none", func(c *Config) { c.Writeback, c.AnnounceSubmounts = false, false }, migration.NegotiatedOpts{SupGroupExtension: true}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := env.newFS(t, testHandleMode, c.mod)
			st := baseState()
			st.Opts = c.opts
			err := fs.loadState(st)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				s := fs.cur()
				if s.writeback.Load() || s.announce.Load() || !s.suppGroups.Load() {
					t.Errorf("flags %v/%v/%v", s.writeback.Load(), s.announce.Load(), s.suppGroups.Load())
				}
				// No writeback: a write-only handle stays write-only.
				if fl := handleFlags(t, fs, 3, 0); fl&unix.O_ACCMODE != unix.O_WRONLY {
					t.Errorf("handle 0 access mode %#x without writeback", fl&unix.O_ACCMODE)
				}
				return
			}
			if err == nil || err.Error() != c.want {
				t.Fatalf("load = %v, want %q", err, c.want)
			}
		})
	}
}

// fileHandleOf makes the file handle of path as a source would send it.
func fileHandleOf(t testing.TB, path string) migration.FileHandle {
	t.Helper()
	h, mnt, err := unix.NameToHandleAt(unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		t.Skipf("name_to_handle_at(%s): %v", path, err)
	}
	return migration.FileHandle{MntID: uint64(mnt), Type: h.Type(), Bytes: h.Bytes()}
}

// TestLoadFullPathAndHandles restores inodes from FullPath and FileHandle
// locations (with mount paths, two source mount IDs for one mount) and a
// Path child of a FileHandle directory, and checks the verification
// handles.
func TestLoadFullPathAndHandles(t *testing.T) {
	requireRoot(t)
	for _, mode := range loadModes() {
		t.Run(mode.String(), func(t *testing.T) {
			env := newLoadEnv(t)
			before := openFDs(t)
			fs := env.newFS(t, mode, nil)
			hd := fileHandleOf(t, join(env.share, "d"))
			hf := fileHandleOf(t, join(env.share, "d", "f"))
			hroot := fileHandleOf(t, env.share)
			hf.MntID = 1000 // another source ID, mapped to a path on the same mount
			st := &migration.State{
				Version: migration.V2,
				Inodes: []migration.Inode{
					{ID: 1, Refcount: 2, Location: migration.Location{Kind: migration.LocRoot}, FileHandle: &hroot},
					{ID: 2, Refcount: 1 + 1, Location: migration.Location{Kind: migration.LocFileHandle, Handle: hd}},
					{ID: 3, Refcount: 1, Location: migration.Location{Kind: migration.LocFileHandle, Handle: hf}},
					{ID: 4, Refcount: 1, Location: migration.Location{Kind: migration.LocPath, Parent: 2, Name: "l"}},
					{ID: 5, Refcount: 1, Location: migration.Location{Kind: migration.LocFullPath, Name: "x/y"}},
					{ID: 6, Refcount: 1, Location: migration.Location{Kind: migration.LocFullPath, Name: "./d//l"}},
				},
				NextInode:  7,
				Handles:    []migration.Handle{{ID: 1, Inode: 3, Flags: unix.O_RDONLY}},
				NextHandle: 2,
				MountPaths: []migration.MountPath{{MntID: hd.MntID, Path: "."}, {MntID: 1000, Path: "x"}},
			}
			for _, openat2 := range []bool{true, false} {
				if openat2 && !fs.useOpenat2 {
					continue
				}
				fs.useOpenat2 = openat2
				if err := fs.loadState(st); err != nil {
					t.Fatalf("openat2=%v: %v", openat2, err)
				}
				for id, path := range map[uint64]string{2: "d", 3: "d/f", 4: "d/l", 5: "x/y", 6: "d/l"} {
					if a, e := getattr(fs, id); e != 0 || a.Attr.Ino != inoOf(t, join(env.share, path)) {
						t.Errorf("openat2=%v: GETATTR(%d) = %v, want %s", openat2, id, e, path)
					}
				}
				if got, e := readHandle(fs, 3, 1); e != 0 || got != "hello" {
					t.Errorf("READ = %q, %v", got, e)
				}
			}
			fs.Close()
			if after := openFDs(t); after != before {
				t.Errorf("open fds: %d before, %d after", before, after)
			}
		})
	}
}

// hostileCase is one malformed or malicious stream, derived from
// baseState. Under abort the load fails and changes nothing; under
// guest-error the inodes in failed and the handles in failedFH answer with
// an error and every other node of baseState works, unless hard says the
// load fails under both policies.
type hostileCase struct {
	name     string
	mod      func(st *migration.State, env *loadEnv, t testing.TB)
	hard     bool
	failed   []uint64
	failedFH []uint64
	gone     []uint64 // nodes of baseState dropped (guest-error)
}

// addInode appends an inode and, for a Path location, counts it in its
// parent's refcount as a source does.
func addInode(st *migration.State, id uint64, loc migration.Location) {
	st.Inodes = append(st.Inodes, migration.Inode{ID: id, Refcount: 1, Location: loc})
	if loc.Kind != migration.LocPath {
		return
	}
	for i := range st.Inodes {
		if st.Inodes[i].ID == loc.Parent {
			st.Inodes[i].Refcount++
		}
	}
}

func pathLoc(parent uint64, name string) migration.Location {
	return migration.Location{Kind: migration.LocPath, Parent: parent, Name: name}
}

func fullLoc(name string) migration.Location {
	return migration.Location{Kind: migration.LocFullPath, Name: name}
}

func handleLoc(h migration.FileHandle) migration.Location {
	return migration.Location{Kind: migration.LocFileHandle, Handle: h}
}

func setInode(st *migration.State, id uint64, f func(*migration.Inode)) {
	for i := range st.Inodes {
		if st.Inodes[i].ID == id {
			f(&st.Inodes[i])
		}
	}
}

func hostileCases() []hostileCase {
	path := func(name string) func(*migration.State, *loadEnv, testing.TB) {
		return func(st *migration.State, _ *loadEnv, _ testing.TB) { addInode(st, 20, pathLoc(1, name)) }
	}
	full := func(name string) func(*migration.State, *loadEnv, testing.TB) {
		return func(st *migration.State, _ *loadEnv, _ testing.TB) { addInode(st, 20, fullLoc(name)) }
	}
	outsideHandle := func(rel, mountPath string) func(*migration.State, *loadEnv, testing.TB) {
		return func(st *migration.State, env *loadEnv, t testing.TB) {
			h := fileHandleOf(t, join(env.base, rel))
			addInode(st, 20, handleLoc(h))
			st.MountPaths = []migration.MountPath{{MntID: h.MntID, Path: mountPath}}
		}
	}
	handle := func(id, inode uint64, flags int32) func(*migration.State, *loadEnv, testing.TB) {
		return func(st *migration.State, _ *loadEnv, _ testing.TB) {
			st.Handles = append(st.Handles, migration.Handle{ID: id, Inode: inode, Flags: flags})
		}
	}
	return []hostileCase{
		{name: "name dotdot", mod: path(".."), failed: []uint64{20}},
		{name: "name slash", mod: path("d/f"), failed: []uint64{20}},
		{name: "name empty", mod: path(""), failed: []uint64{20}},
		{name: "name dot", mod: path("."), failed: []uint64{20}},
		{name: "name NUL", mod: path("file\x00"), failed: []uint64{20}},
		{name: "name missing", mod: path("nope"), failed: []uint64{20}},
		{name: "parent is a file", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, pathLoc(8, "x"))
		}, failed: []uint64{20}},
		{name: "child of an escaping symlink", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, pathLoc(1, "esc"))
			addInode(st, 21, pathLoc(20, "marker"))
		}, failed: []uint64{21}},
		{name: "cycle", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, pathLoc(21, "d"))
			addInode(st, 21, pathLoc(20, "x"))
			setInode(st, 21, func(in *migration.Inode) { in.Refcount++ }) // 20 is its child
		}, failed: []uint64{20, 21}},
		{name: "self parent", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, pathLoc(20, "d"))
		}, failed: []uint64{20}},
		{name: "missing parent", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, pathLoc(99, "d"))
			addInode(st, 21, pathLoc(20, "f"))
		}, failed: []uint64{20, 21}},
		{name: "child of a failed parent", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, pathLoc(1, "nope"))
			addInode(st, 21, pathLoc(20, "f"))
		}, failed: []uint64{20, 21}},
		{name: "invalid", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, migration.Location{Kind: migration.LocInvalid})
		}, failed: []uint64{20}},
		{name: "fullpath absolute", mod: full("/etc/passwd"), failed: []uint64{20}},
		{name: "fullpath dotdot", mod: full("../outside/marker"), failed: []uint64{20}},
		{name: "fullpath inner dotdot", mod: full("d/../../outside/marker"), failed: []uint64{20}},
		{name: "fullpath escaping symlink", mod: full("esc/marker"), failed: []uint64{20}},
		{name: "fullpath through symlink", mod: full("ld/f"), failed: []uint64{20}},
		{name: "fullpath empty", mod: full(""), failed: []uint64{20}},
		{name: "verification mismatch", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			h := fileHandleOf(t, join(env.share, "d", "f"))
			addInode(st, 20, pathLoc(1, "file"))
			setInode(st, 20, func(in *migration.Inode) { in.FileHandle = &h })
		}, failed: []uint64{20}},
		{name: "verification match", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			h := fileHandleOf(t, join(env.share, "file"))
			h.MntID = 12345 // the source's mount ID is not compared
			addInode(st, 20, pathLoc(1, "file"))
			setInode(st, 20, func(in *migration.Inode) { in.FileHandle = &h })
		}},
		{name: "handle outside the share", mod: outsideHandle("outside/marker", "."), failed: []uint64{20}},
		{name: "directory handle outside the share", mod: outsideHandle("outside/dir", "."), failed: []uint64{20}},
		{name: "handle with escaping mount path", mod: outsideHandle("share/file", "esc"), failed: []uint64{20}},
		{name: "handle with mount path dotdot", mod: outsideHandle("share/file", ".."), failed: []uint64{20}},
		{name: "handle with absolute mount path", mod: outsideHandle("share/file", "/"), failed: []uint64{20}},
		{name: "handle inside the share", mod: outsideHandle("share/x/y", ".")},
		{name: "handle unknown mount", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			addInode(st, 20, handleLoc(fileHandleOf(t, join(env.share, "file"))))
		}, failed: []uint64{20}},
		{name: "handle oversized", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			h := fileHandleOf(t, join(env.share, "file"))
			h.Bytes = append(h.Bytes, make([]byte, maxHandleSize)...)
			addInode(st, 20, handleLoc(h))
			st.MountPaths = []migration.MountPath{{MntID: h.MntID, Path: "."}}
		}, failed: []uint64{20}},
		{name: "handle garbage", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			h := fileHandleOf(t, join(env.share, "file"))
			h.Type, h.Bytes = -7, []byte{1, 2, 3}
			addInode(st, 20, handleLoc(h))
			st.MountPaths = []migration.MountPath{{MntID: h.MntID, Path: "."}}
		}, failed: []uint64{20}},
		{name: "handle of unknown inode", mod: handle(9, 99, unix.O_RDONLY), failedFH: []uint64{9}},
		{name: "handle of failed inode", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			addInode(st, 20, migration.Location{Kind: migration.LocInvalid})
			st.Handles = append(st.Handles, migration.Handle{ID: 9, Inode: 20})
		}, failed: []uint64{20}, failedFH: []uint64{9}},
		{name: "handle of dropped anchor", mod: handle(9, 6, unix.O_RDONLY), failedFH: []uint64{9}},
		{name: "handle write on directory", mod: handle(9, 2, unix.O_WRONLY), failedFH: []uint64{9}},
		{name: "handle on symlink", mod: handle(9, 5, unix.O_RDONLY), failedFH: []uint64{9}},
		{name: "parent refcount too small", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			setInode(st, 2, func(in *migration.Inode) { in.Refcount = 1 })
		}, gone: []uint64{2}, failedFH: []uint64{4}},

		{name: "duplicate id", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 3, fullLoc("file"))
		}, hard: true},
		{name: "duplicate failed id", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, migration.Location{Kind: migration.LocInvalid})
			addInode(st, 20, migration.Location{Kind: migration.LocInvalid})
		}, hard: true},
		{name: "root twice", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 1, migration.Location{Kind: migration.LocRoot})
		}, hard: true},
		{name: "root missing", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			st.Inodes = slices.DeleteFunc(st.Inodes, func(in migration.Inode) bool { return in.ID == 1 })
		}, hard: true},
		{name: "root node with another id", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, migration.Location{Kind: migration.LocRoot})
		}, hard: true},
		{name: "node 1 as path", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			setInode(st, 1, func(in *migration.Inode) { in.Location = pathLoc(2, "x") })
		}, hard: true},
		{name: "node id 0", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 0, fullLoc("file"))
		}, hard: true},
		{name: "node id max", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, math.MaxUint64, fullLoc("file"))
		}, hard: true},
		{name: "unknown location kind", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			addInode(st, 20, migration.Location{Kind: 9})
		}, hard: true},
		{name: "duplicate handle id", mod: handle(4, 3, unix.O_RDONLY), hard: true},
		{name: "handle id max", mod: handle(math.MaxUint64, 3, unix.O_RDONLY), hard: true},
		{name: "root verification mismatch", mod: func(st *migration.State, env *loadEnv, t testing.TB) {
			h := fileHandleOf(t, join(env.share, "d"))
			setInode(st, 1, func(in *migration.Inode) { in.FileHandle = &h })
		}, hard: true},
		{name: "root refcount too small", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			setInode(st, 1, func(in *migration.Inode) { in.Refcount = 2 })
		}, hard: true},
		{name: "posix acl", mod: func(st *migration.State, _ *loadEnv, _ testing.TB) {
			st.Opts.PosixACL = true
		}, hard: true},
	}
}

func TestLoadHostile(t *testing.T) {
	requireRoot(t)
	for _, mode := range loadModes() {
		t.Run(mode.String(), func(t *testing.T) {
			env := newLoadEnv(t)
			for _, c := range hostileCases() {
				t.Run(c.name+"/abort", func(t *testing.T) {
					fs := env.newFS(t, mode, nil)
					if _, e := fs.Init(allCaps); e != 0 {
						t.Fatal(e)
					}
					id := mustLookup(t, fs, RootID, "file").NodeID
					fh := mustOpen(t, fs, id, unix.O_RDONLY)
					st := baseState()
					c.mod(st, env, t)
					old, used, before := fs.cur(), fs.fdUsed.Load(), openFDs(t)
					err := fs.loadState(st)
					abortFails := c.hard || len(c.failed)+len(c.failedFH)+len(c.gone) > 0
					if !abortFails {
						if err != nil {
							t.Fatalf("load = %v, want success", err)
						}
						return
					}
					if err == nil {
						t.Fatal("load succeeded")
					}
					t.Log(err)
					if fs.cur() != old {
						t.Error("the failed load replaced the session")
					}
					if after := openFDs(t); after != before {
						t.Errorf("open fds: %d before, %d after the failed load", before, after)
					}
					if got := fs.fdUsed.Load(); got != used {
						t.Errorf("guest-fd slots: %d before, %d after", used, got)
					}
					if got, e := readHandle(fs, id, fh); e != 0 || got != "top" {
						t.Errorf("old session after the failed load: READ = %q, %v", got, e)
					}
				})
				t.Run(c.name+"/guest-error", func(t *testing.T) {
					fs := env.newFS(t, mode, func(c *Config) { c.MigrationOnError = OnErrorGuestError })
					st := baseState()
					c.mod(st, env, t)
					before := openFDs(t)
					err := fs.loadState(st)
					if c.hard {
						if err == nil {
							t.Fatal("load succeeded")
						}
						if after := openFDs(t); after != before {
							t.Errorf("open fds: %d before, %d after the failed load", before, after)
						}
						if fs.fdUsed.Load() != 0 {
							t.Errorf("guest-fd slots after the failed load: %d", fs.fdUsed.Load())
						}
						return
					}
					if err != nil {
						t.Fatalf("load = %v", err)
					}
					for _, id := range c.failed {
						s := fs.cur()
						s.mu.Lock()
						f := s.failed[id]
						s.mu.Unlock()
						if _, e := getattr(fs, id); f == nil || e != f.err || e == 0 {
							t.Errorf("GETATTR of failed node %d = %v, want its recorded error", id, e)
						}
					}
					for id, n := range wantLookups {
						if n == 0 || slices.Contains(c.gone, id) {
							continue
						}
						if _, e := getattr(fs, id); e != 0 {
							t.Errorf("GETATTR of good node %d = %v", id, e)
						}
					}
					for _, id := range c.gone {
						if _, e := getattr(fs, id); e != unix.EBADF {
							t.Errorf("GETATTR of dropped node %d = %v, want EBADF", id, e)
						}
					}
					for _, h := range st.Handles {
						_, e := readHandle(fs, h.Inode, h.ID)
						if slices.Contains(c.failedFH, h.ID) {
							s := fs.cur()
							s.hmu.Lock()
							f := s.failedHandles[h.ID]
							s.hmu.Unlock()
							if f == nil || e != f.err || e == 0 || f.flags != h.Flags {
								t.Errorf("READ through failed handle %d = %v, want its recorded error", h.ID, e)
							}
							if e := fs.Release(root, h.Inode, &fuse.ReleaseIn{Fh: h.ID}); e != 0 {
								t.Errorf("RELEASE of failed handle %d = %v", h.ID, e)
							}
						} else if e != 0 && e != unix.EISDIR {
							t.Errorf("READ through handle %d = %v", h.ID, e)
						}
					}
					// FORGET removes failed inodes like any other.
					for _, id := range c.failed {
						var n uint64
						setInode(st, id, func(in *migration.Inode) { n = in.Refcount })
						fs.Forget(id, n)
						if _, e := getattr(fs, id); e != unix.EBADF {
							t.Errorf("GETATTR of failed node %d after FORGET = %v, want EBADF", id, e)
						}
					}
					fs.Destroy()
					if fs.fdUsed.Load() != 0 {
						t.Errorf("guest-fd slots after DESTROY: %d", fs.fdUsed.Load())
					}
					if after := openFDs(t); after != before {
						t.Errorf("open fds: %d before, %d after the load and DESTROY", before, after)
					}
				})
			}
		})
	}
}

func TestOpenBeneath(t *testing.T) {
	env := newLoadEnv(t)
	fs := env.newFS(t, FileHandlesNever, nil)
	for _, openat2 := range []bool{true, false} {
		if openat2 && !fs.useOpenat2 {
			continue
		}
		fs.useOpenat2 = openat2
		for _, c := range []struct {
			path string
			want string // relative to the share; "" = must fail
		}{
			{"d/f", "d/f"}, {".", "."}, {"./d/./f", "d/f"}, {"d//f/", "d/f"}, {"d/l", "d/l"}, {"esc", "esc"},
			{"", ""}, {"/d", ""}, {"..", ""}, {"d/../file", ""}, {"esc/marker", ""}, {"ld/f", ""},
			{"d/f/x", ""}, {"d\x00", ""}, {"nope", ""},
		} {
			fd, e := fs.openBeneath(fs.rootFD, c.path)
			if c.want == "" {
				if e == 0 {
					unix.Close(fd)
					t.Errorf("openat2=%v: openBeneath(%q) succeeded", openat2, c.path)
				}
				continue
			}
			if e != 0 {
				t.Errorf("openat2=%v: openBeneath(%q) = %v", openat2, c.path, e)
				continue
			}
			var st unix.Stat_t
			err := unix.Fstat(fd, &st)
			unix.Close(fd)
			if err != nil || st.Ino != inoOf(t, join(env.share, c.want)) {
				t.Errorf("openat2=%v: openBeneath(%q) opened another object", openat2, c.path)
			}
		}
	}
}

func TestPathUnder(t *testing.T) {
	for _, c := range []struct{ dir, p, rel string }{
		{"/srv/share", "/srv/share", "."},
		{"/srv/share", "/srv/share/a/b", "a/b"},
		{"/srv/share", "/srv/shared/a", ""},
		{"/srv/share", "/srv", ""},
		{"/", "/a", "a"},
		{"/", "/", "."},
	} {
		rel, ok := pathUnder(c.dir, c.p)
		if (c.rel == "") == ok || rel != c.rel {
			t.Errorf("pathUnder(%q, %q) = %q, %v; want %q", c.dir, c.p, rel, ok, c.rel)
		}
	}
}

// fuzzReader hands out the fuzz input byte by byte, zeros past its end.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) next() int {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return int(c)
}

// FuzzLoadState loads states built from the fuzz input out of names,
// paths and file handles that include escapes from the shared directory,
// and checks that the load neither panics nor leaks a descriptor, and that
// no restored inode or handle is outside the share.
func FuzzLoadState(f *testing.F) {
	requireRoot(f)
	env := newLoadEnv(f)
	var handles []migration.FileHandle
	for _, p := range []string{"share", "share/d", "share/d/f", "share/x", "outside/marker", "outside/dir", "."} {
		h, mnt, err := unix.NameToHandleAt(unix.AT_FDCWD, join(env.base, p), 0)
		if err != nil {
			f.Skipf("name_to_handle_at: %v", err)
		}
		handles = append(handles, migration.FileHandle{MntID: uint64(mnt), Type: h.Type(), Bytes: h.Bytes()})
	}
	mnt := handles[0].MntID
	handles = append(handles, migration.FileHandle{MntID: mnt, Type: 1, Bytes: make([]byte, 200)})
	var outsideKeys []inodeKey
	for _, p := range []string{env.outside, join(env.outside, "marker"), join(env.outside, "dir"), env.base} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			f.Fatal(err)
		}
		outsideKeys = append(outsideKeys, inodeKey{ino: st.Ino, dev: st.Dev})
	}
	names := []string{"d", "f", "g", "l", "x", "y", "file", "esc", "ld", "..", ".", "", "a/b", "/", "marker",
		"outside", "d/f", "../outside/marker", "/etc/passwd", "esc/marker", "ld/f", "x/y", "d/../..", "f\x00"}
	mountPaths := []string{".", "d", "..", "/", "esc", "../outside", "d/f", "x"}
	flagSet := []int32{unix.O_RDONLY, unix.O_WRONLY, unix.O_RDWR | unix.O_TRUNC, unix.O_DIRECTORY,
		unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL, -1, unix.O_PATH, unix.O_TMPFILE | unix.O_RDWR}

	f.Add([]byte{0, 0, 3, 1, 3, 0, 0, 0, 0, 2, 2, 1, 1, 0, 0, 3, 2, 1, 2, 1, 0})
	f.Add([]byte{1, 1, 5, 1, 2, 0, 0, 0, 0, 2, 1, 4, 0, 0, 0, 3, 1, 4, 0, 2, 0, 4, 1, 4, 0, 4, 0, 5, 1, 3, 0, 16, 0, 2, 1, 2, 3, 0, 0})
	f.Add([]byte{0, 1, 4, 1, 9, 0, 0, 0, 0, 2, 1, 1, 3, 0, 0, 3, 1, 1, 2, 9, 0, 4, 1, 1, 3, 1, 0, 1, 1, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{b: data}
		mode := []FileHandleMode{FileHandlesNever, FileHandlesPrefer}[r.next()%2]
		onErr := MigrationOnError(r.next() % 2)
		st := &migration.State{Version: migration.V2}
		if v := r.next(); v%4 != 0 {
			st.Inodes = append(st.Inodes, migration.Inode{ID: RootID, Refcount: uint64(v / 4 % 8),
				Location: migration.Location{Kind: migration.LocRoot}})
		}
		for n := r.next() % 9; n > 0; n-- {
			in := migration.Inode{ID: uint64(r.next() % 10), Refcount: uint64(r.next() % 4)}
			in.Location.Kind = migration.LocationKind(r.next() % 6)
			in.Location.Parent = uint64(r.next() % 10)
			in.Location.Name = names[r.next()%len(names)]
			in.Location.Handle = handles[r.next()%len(handles)]
			if v := r.next(); v%4 == 0 {
				h := handles[v/4%len(handles)]
				in.FileHandle = &h
			}
			st.Inodes = append(st.Inodes, in)
		}
		for n := r.next() % 4; n > 0; n-- {
			st.Handles = append(st.Handles, migration.Handle{ID: uint64(r.next() % 6), Inode: uint64(r.next() % 10),
				Flags: flagSet[r.next()%len(flagSet)]})
		}
		for n := r.next() % 3; n > 0; n-- {
			id := mnt
			if r.next()%2 == 1 {
				id = 7
			}
			st.MountPaths = append(st.MountPaths, migration.MountPath{MntID: id, Path: mountPaths[r.next()%len(mountPaths)]})
		}
		st.NextInode, st.NextHandle = uint64(r.next()), uint64(r.next())
		o := r.next()
		st.Opts = migration.NegotiatedOpts{Writeback: o&1 != 0, AnnounceSubmounts: o&2 != 0, PosixACL: o&4 != 0, SupGroupExtension: o&8 != 0}

		before := openFDs(t)
		cfg := testConfig(env.share)
		cfg.InodeFileHandles, cfg.MigrationOnError, cfg.Writeback = mode, onErr, true
		fs, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = fs.loadState(st)
		s := fs.cur()
		check := func(what string, fd int) {
			var stx unix.Statx_t
			if e := statxFD(fd, &stx); e != 0 {
				t.Errorf("%s: stat: %v", what, e)
				return
			}
			k := keyOf(&stx)
			k.mntID = 0
			if slices.Contains(outsideKeys, k) {
				t.Errorf("%s is outside the shared directory", what)
			}
			if p, err := fs.fdPath(fd); err == nil && !strings.HasPrefix(p+"/", env.share+"/") {
				t.Errorf("%s is %q, outside the shared directory", what, p)
			}
		}
		for id, in := range s.inodes {
			fd, e := fs.pathFD(in)
			if e != 0 {
				t.Errorf("node %d: %v", id, e)
				continue
			}
			check(fmt.Sprintf("node %d", id), fd)
			fs.donePath(in, fd)
		}
		for id, h := range s.handles {
			check(fmt.Sprintf("handle %d", id), h.fd)
		}
		fs.Close()
		if after := openFDs(t); after != before {
			t.Fatalf("open fds: %d before, %d after", before, after)
		}
		for p, want := range map[string]string{"share/d/f": "hello", "share/file": "top", "outside/marker": "secret"} {
			if b, err := os.ReadFile(join(env.base, p)); err != nil || string(b) != want {
				t.Fatalf("%s changed: %q, %v", p, b, err)
			}
		}
		if ents, _ := os.ReadDir(env.share); len(ents) != 5 {
			t.Fatalf("the shared directory has %d entries, want 5", len(ents))
		}
	})
}

// TestCheckInsideReResolves covers the second step of the file handle
// check: a path the kernel prints as if inside the shared directory (as it
// does inside a chroot for an object it cannot connect to the process's
// root) must name the same object when resolved beneath the shared
// directory. The shared directory's path is faked to be its parent, so
// that outside/marker prints like a path inside it; share/outside/marker
// exists too, as another file.
func TestCheckInsideReResolves(t *testing.T) {
	requireRoot(t)
	env := newLoadEnv(t)
	fs := env.newFS(t, FileHandlesNever, nil)
	if err := os.MkdirAll(join(env.share, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, join(env.share, "outside", "marker"), "decoy")
	l := &loader{fs: fs, sharePath: env.base}
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{join(env.outside, "marker"), false}, // resolves to the decoy, another object
		{join(env.outside, "dir"), false},    // does not resolve at all
		{join(env.share, "outside", "marker"), false},
	} {
		fd, err := unix.Open(c.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var stx unix.Statx_t
		if e := statxFD(fd, &stx); e != 0 {
			t.Fatal(e)
		}
		ie := l.checkInside(fd, &stx)
		unix.Close(fd)
		if (ie == nil) != c.ok {
			t.Errorf("checkInside(%s) = %v, want ok=%v", c.path, ie, c.ok)
		}
	}
	// With the true path, objects inside pass.
	l = &loader{fs: fs}
	fd, err := unix.Open(join(env.share, "outside", "marker"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var stx unix.Statx_t
	if e := statxFD(fd, &stx); e != 0 {
		t.Fatal(e)
	}
	if ie := l.checkInside(fd, &stx); ie != nil {
		t.Errorf("checkInside of a file inside: %v", ie)
	}
}

// TestLoadHandleFlags checks the adjustments of a normal OPEN on restored
// handles: O_DIRECT only with --allow-direct-io, O_NOATIME only with
// --preserve-noatime, close-on-exec always, the stream's flags kept.
func TestLoadHandleFlags(t *testing.T) {
	requireRoot(t)
	env := newLoadEnv(t)
	for _, c := range []struct {
		name        string
		mod         func(*Config)
		direct, noa bool
	}{
		{"default", nil, false, false},
		{"allowed", func(c *Config) { c.AllowDirectIO, c.PreserveNoatime = true, true }, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := env.newFS(t, testHandleMode, c.mod)
			st := baseState()
			const flags = unix.O_RDONLY | unix.O_DIRECT | unix.O_NOATIME
			st.Handles = append(st.Handles, migration.Handle{ID: 9, Inode: 8, Flags: flags})
			if err := fs.loadState(st); err != nil {
				t.Fatal(err)
			}
			fl := handleFlags(t, fs, 8, 9)
			if got := fl&unix.O_DIRECT != 0; got != c.direct {
				t.Errorf("O_DIRECT kept = %v, want %v", got, c.direct)
			}
			if got := fl&unix.O_NOATIME != 0; got != c.noa {
				t.Errorf("O_NOATIME kept = %v, want %v", got, c.noa)
			}
			h, _ := fs.getHandle(8, 9)
			defer fs.putHandle(h)
			if h.flags != flags {
				t.Errorf("stored flags %#x, want %#x", h.flags, flags)
			}
			fdfl, err := unix.FcntlInt(uintptr(h.fd), unix.F_GETFD, 0)
			if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
				t.Errorf("handle descriptor without close-on-exec (%#x, %v)", fdfl, err)
			}
		})
	}
}

// vectorA is test vector A of docs/migration.md (a find-paths source): the
// root, dir, dir/fé.txt, a lost inode, and two handles.
var vectorA = []byte{
	0x01, 0x04, 0x01, 0x03, 0x00, 0x00, 0x02, 0x01, 0x01, 0x01, 0x03, 0x64, 0x69, 0x72, 0x00, 0xc8,
	0x01, 0x01, 0x01, 0x02, 0x07, 0x66, 0xc3, 0xa9, 0x2e, 0x74, 0x78, 0x74, 0x00, 0xc9, 0x01, 0x05,
	0x02, 0x00, 0xca, 0x01, 0x02, 0x00, 0xc8, 0x01, 0x00, 0x84, 0x80, 0x04, 0x07, 0x02, 0x00, 0x01,
	0x08, 0x00, 0x01, 0x00, 0x01, 0x00,
}

// vectorAState is vectorA decoded.
func vectorAState() *migration.State {
	return &migration.State{
		Version: migration.V2,
		Inodes: []migration.Inode{
			{ID: 1, Refcount: 3, Location: migration.Location{Kind: migration.LocRoot}},
			{ID: 2, Refcount: 1, Location: pathLoc(1, "dir")},
			{ID: 200, Refcount: 1, Location: pathLoc(2, "fé.txt")},
			{ID: 201, Refcount: 5, Location: migration.Location{Kind: migration.LocInvalid}},
		},
		NextInode:  202,
		Handles:    []migration.Handle{{ID: 0, Inode: 200, Flags: 0x8002}, {ID: 7, Inode: 2, Flags: -1}},
		NextHandle: 8,
		Opts:       migration.NegotiatedOpts{AnnounceSubmounts: true, SupGroupExtension: true},
	}
}

// TestLoadVectorA loads vector A (decoded by migration.Decode when the
// codec is available, else its hand-decoded form): under abort the lost
// inode fails the load; under guest-error it fails alone, dir (only an
// anchor) is dropped with the handle on it, and dir/fé.txt is served.
func TestLoadVectorA(t *testing.T) {
	requireRoot(t)
	st, err := migration.Decode(vectorA)
	if err != nil {
		t.Logf("codec unavailable (%v): using the hand-decoded state", err)
		st = vectorAState()
	}
	dir := t.TempDir()
	if err := os.Mkdir(join(dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, join(dir, "dir", "fé.txt"), "vector")
	for _, onErr := range []MigrationOnError{OnErrorAbort, OnErrorGuestError} {
		cfg := testConfig(dir)
		cfg.MigrationOnError = onErr
		fs, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer fs.Close()
		err = fs.loadState(st)
		if onErr == OnErrorAbort {
			if err == nil || !strings.Contains(err.Error(), "source has lost inode 201") {
				t.Errorf("abort: load = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, e := readHandle(fs, 200, 0); e != 0 || got != "vector" {
			t.Errorf("READ through handle 0 = %q, %v", got, e)
		}
		if _, e := getattr(fs, 201); e != unix.EIO {
			t.Errorf("GETATTR of the lost inode = %v, want EIO", e)
		}
		if _, e := getattr(fs, 2); e != unix.EBADF {
			t.Errorf("GETATTR of the dropped anchor = %v, want EBADF", e)
		}
		if _, e := readHandle(fs, 2, 7); e != unix.EBADF {
			t.Errorf("READ through the handle of the dropped anchor = %v, want EBADF", e)
		}
		if id := mustLookup(t, fs, RootID, "dir").NodeID; id != 202 {
			t.Errorf("new node ID = %d, want 202", id)
		}
	}
}
