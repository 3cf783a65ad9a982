package passthrough

import (
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/migration"
)

// waitPrepared waits for the running preparation to end.
func waitPrepared(t testing.TB, fs *FS) {
	t.Helper()
	fs.mig.mu.Lock()
	p := fs.mig.prep
	fs.mig.mu.Unlock()
	if p == nil {
		t.Fatal("no preparation running")
	}
	<-p.done
}

// mustSave prepares (waiting for the preparation) and saves.
func mustSave(t testing.TB, fs *FS) *migration.State {
	t.Helper()
	fs.prepareMigration()
	waitPrepared(t, fs)
	return mustSaveNow(t, fs)
}

func mustSaveNow(t testing.TB, fs *FS) *migration.State {
	t.Helper()
	st, err := fs.saveState()
	if err != nil {
		t.Fatalf("saveState: %v", err)
	}
	return st
}

// sessionSnapshot returns the current session's lookup counts by node ID
// and its handle IDs.
func sessionSnapshot(t testing.TB, fs *FS) (map[uint64]uint64, []uint64) {
	t.Helper()
	s := fs.cur()
	s.mu.Lock()
	m := make(map[uint64]uint64)
	for id, in := range s.inodes {
		m[id] = in.lookups
	}
	s.mu.Unlock()
	s.hmu.Lock()
	var hs []uint64
	for id := range s.handles {
		hs = append(hs, id)
	}
	s.hmu.Unlock()
	slices.Sort(hs)
	return m, hs
}

// checkCleared fails if a migration info or tracking is left.
func checkCleared(t testing.TB, fs *FS) {
	t.Helper()
	s := fs.cur()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, in := range s.inodes {
		if in.mig != nil {
			t.Errorf("node %d still has a migration info", id)
		}
	}
	if s.track.Load() {
		t.Error("tracking still on")
	}
}

// saveUnchanged prepares (unless sync), runs between (host changes), saves,
// and checks that the session and the process's descriptors are exactly as
// before.
func saveUnchanged(t *testing.T, fs *FS, sync bool, between func()) *migration.State {
	t.Helper()
	before, hb := sessionSnapshot(t, fs)
	fds := openFDs(t)
	if !sync {
		fs.prepareMigration()
		waitPrepared(t, fs)
	}
	if between != nil {
		between()
	}
	st := mustSaveNow(t, fs)
	checkCleared(t, fs)
	after, ha := sessionSnapshot(t, fs)
	if !mapsEqual(before, after) || !slices.Equal(hb, ha) {
		t.Errorf("session changed by the save:\nbefore %v %v\nafter  %v %v", before, hb, after, ha)
	}
	if n := openFDs(t); n != fds {
		t.Errorf("open descriptors: %d before, %d after", fds, n)
	}
	return st
}

func mapsEqual(a, b map[uint64]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func inodeOf(st *migration.State, id uint64) *migration.Inode {
	for i := range st.Inodes {
		if st.Inodes[i].ID == id {
			return &st.Inodes[i]
		}
	}
	return nil
}

// pathOf follows the Path chain of id up to the root ("" for the root).
func pathOf(t testing.TB, st *migration.State, id uint64) string {
	t.Helper()
	var parts []string
	for n := 0; n < 100; n++ {
		in := inodeOf(st, id)
		if in == nil {
			t.Fatalf("node %d not in the state", id)
		}
		switch in.Location.Kind {
		case migration.LocRoot:
			slices.Reverse(parts)
			return strings.Join(parts, "/")
		case migration.LocPath:
			parts = append(parts, in.Location.Name)
			id = in.Location.Parent
		default:
			t.Fatalf("node %d has location %v", id, in.Location.Kind)
		}
	}
	t.Fatal("path chain too long")
	return ""
}

// checkState checks the invariants of a source's state: ascending IDs,
// RootNode for node 1 only, and the refcount contract with the guest's
// lookup counts in guest (nodes absent from guest have none).
func checkState(t testing.TB, st *migration.State, guest map[uint64]uint64) {
	t.Helper()
	if st.Version != migration.V2 {
		t.Errorf("version %v", st.Version)
	}
	children := map[uint64]uint64{}
	for i, in := range st.Inodes {
		if i > 0 && st.Inodes[i-1].ID >= in.ID {
			t.Errorf("inodes not ascending at %d", i)
		}
		if (in.Location.Kind == migration.LocRoot) != (in.ID == RootID) {
			t.Errorf("node %d: location %v", in.ID, in.Location.Kind)
		}
		if in.ID >= st.NextInode {
			t.Errorf("node %d >= next %d", in.ID, st.NextInode)
		}
		if in.Location.Kind == migration.LocPath {
			children[in.Location.Parent]++
			if inodeOf(st, in.Location.Parent) == nil {
				t.Errorf("node %d: parent %d not sent", in.ID, in.Location.Parent)
			}
		}
	}
	for _, in := range st.Inodes {
		if want := guest[in.ID] + children[in.ID]; in.Refcount != want {
			t.Errorf("node %d: refcount %d, want %d (guest %d + %d children)", in.ID, in.Refcount, want, guest[in.ID], children[in.ID])
		}
	}
	for i := 1; i < len(st.Handles); i++ {
		if st.Handles[i-1].ID >= st.Handles[i].ID {
			t.Errorf("handles not ascending at %d", i)
		}
	}
}

// forEachHandleMode runs f with --inode-file-handles never and prefer.
func forEachHandleMode(t *testing.T, f func(t *testing.T, mode FileHandleMode)) {
	for _, mode := range []FileHandleMode{FileHandlesNever, FileHandlesPrefer} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode != FileHandlesNever {
				requireRoot(t)
			}
			f(t, mode)
		})
	}
}

func TestSavePaths(t *testing.T) {
	forEachHandleMode(t, func(t *testing.T, mode FileHandleMode) {
		fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = mode })
		if err := os.MkdirAll(join(dir, "a/b/c"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, join(dir, "a/b/c/f"), "x")
		writeFile(t, join(dir, "top"), "y")
		if err := os.Symlink("a/b", join(dir, "a/b/c/link")); err != nil {
			t.Fatal(err)
		}
		a := mustLookup(t, fs, RootID, "a").NodeID
		b := mustLookup(t, fs, a, "b").NodeID
		c := mustLookup(t, fs, b, "c").NodeID
		f := mustLookup(t, fs, c, "f").NodeID
		mustLookup(t, fs, c, "f")
		link := mustLookup(t, fs, c, "link").NodeID
		top := mustLookup(t, fs, RootID, "top").NodeID
		// The guest keeps only f (twice) and top: a, b and c leave the
		// table and need records again for the paths.
		fs.Forget(a, 1)
		fs.Forget(b, 1)
		fs.Forget(c, 1)
		if lookups(fs, a)+lookups(fs, b)+lookups(fs, c) != 0 {
			t.Fatal("intermediate records still there")
		}
		st := saveUnchanged(t, fs, false, nil)
		checkState(t, st, map[uint64]uint64{RootID: 2, f: 2, top: 1, link: 1})
		if got := pathOf(t, st, f); got != "a/b/c/f" {
			t.Errorf("path of f = %q", got)
		}
		if got := pathOf(t, st, link); got != "a/b/c/link" {
			t.Errorf("path of the symbolic link = %q", got)
		}
		if got := pathOf(t, st, top); got != "top" {
			t.Errorf("path of top = %q", got)
		}
		if len(st.Inodes) != 7 {
			t.Errorf("%d inodes sent, want 7 (root, a, b, c, f, link, top)", len(st.Inodes))
		}
		for _, in := range st.Inodes {
			if in.FileHandle != nil {
				t.Errorf("node %d has a verification handle without --migration-verify-handles", in.ID)
			}
		}
		if st.NextInode != fs.cur().nextNode.Load() || st.MountPaths != nil {
			t.Errorf("next inode %d (session %d), mount paths %v", st.NextInode, fs.cur().nextNode.Load(), st.MountPaths)
		}
		// A second save (nothing prepared: synchronous) gives the same
		// locations.
		st2 := saveUnchanged(t, fs, true, nil)
		if got := pathOf(t, st2, f); got != "a/b/c/f" {
			t.Errorf("second save: path of f = %q", got)
		}
		checkState(t, st2, map[uint64]uint64{RootID: 2, f: 2, top: 1, link: 1})
	})
}

func TestSaveHardLinks(t *testing.T) {
	forEachHandleMode(t, func(t *testing.T, mode FileHandleMode) {
		fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = mode })
		os.Mkdir(join(dir, "d"), 0o755)
		writeFile(t, join(dir, "x"), "x")
		d := mustLookup(t, fs, RootID, "d").NodeID
		x := mustLookup(t, fs, RootID, "x").NodeID
		var eo fuse.EntryOut
		if e := fs.Link(root, x, d, nm("y"), &eo); e != 0 || eo.NodeID != x {
			t.Fatalf("Link = %v, node %d", e, eo.NodeID)
		}
		st := saveUnchanged(t, fs, false, nil)
		checkState(t, st, map[uint64]uint64{RootID: 2, d: 1, x: 2})
		if p := pathOf(t, st, x); p != "x" && p != "d/y" {
			t.Errorf("path of x = %q", p)
		}

		// The name the record was opened by is removed on the host: its
		// /proc/self/fd path is "(deleted)", the other link is found by
		// the traversal.
		if err := os.Remove(join(dir, "x")); err != nil {
			t.Fatal(err)
		}
		st = saveUnchanged(t, fs, false, nil)
		checkState(t, st, map[uint64]uint64{RootID: 2, d: 1, x: 2})
		if p := pathOf(t, st, x); p != "d/y" {
			t.Errorf("path of x after the host removed it = %q", p)
		}
	})
}

func TestSaveHandleFlags(t *testing.T) {
	for _, preserve := range []bool{false, true} {
		fs, dir := newTestFS(t, func(c *Config) { c.PreserveNoatime = preserve })
		writeFile(t, join(dir, "f"), "x")
		writeFile(t, join(dir, "old"), "x")
		os.Mkdir(join(dir, "d"), 0o755)
		f := mustLookup(t, fs, RootID, "f").NodeID
		d := mustLookup(t, fs, RootID, "d").NodeID
		noatime := int32(0)
		if preserve {
			noatime = unix.O_NOATIME
		}
		type tc struct {
			id   uint64
			fh   uint64
			want int32
		}
		var cases []tc
		fh := mustOpen(t, fs, f, unix.O_RDWR|unix.O_APPEND|unix.O_NOATIME|unix.O_TRUNC)
		cases = append(cases, tc{f, fh, unix.O_RDWR | noatime})
		fh = mustOpen(t, fs, f, unix.O_WRONLY|unix.O_CREAT|unix.O_SYNC)
		cases = append(cases, tc{f, fh, unix.O_WRONLY | unix.O_SYNC})
		var oo fuse.OpenOut
		if e := fs.Opendir(root, d, &fuse.OpenIn{Flags: unix.O_RDONLY | unix.O_NOATIME}, &oo); e != 0 {
			t.Fatal(e)
		}
		cases = append(cases, tc{d, oo.Fh, unix.O_DIRECTORY | noatime})
		var eo fuse.EntryOut
		cflags := uint32(unix.O_WRONLY | unix.O_APPEND | unix.O_NOATIME | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)
		if e := fs.Create(root, RootID, nm("new"), &fuse.CreateIn{Flags: cflags, Mode: 0o644}, &eo, &oo); e != 0 {
			t.Fatal(e)
		}
		cases = append(cases, tc{eo.NodeID, oo.Fh, unix.O_WRONLY | unix.O_APPEND | unix.O_NOATIME})
		cflags = unix.O_RDWR | unix.O_APPEND | unix.O_NOATIME | unix.O_CREAT | unix.O_TRUNC
		if e := fs.Create(root, RootID, nm("old"), &fuse.CreateIn{Flags: cflags, Mode: 0o644}, &eo, &oo); e != 0 {
			t.Fatal(e)
		}
		cases = append(cases, tc{eo.NodeID, oo.Fh, unix.O_RDWR | noatime})

		st := mustSave(t, fs)
		if len(st.Handles) != len(cases) {
			t.Fatalf("preserve=%v: %d handles, want %d", preserve, len(st.Handles), len(cases))
		}
		for i, c := range cases {
			h := st.Handles[i]
			if h.ID != c.fh || h.Inode != c.id || h.Flags != c.want {
				t.Errorf("preserve=%v case %d: handle %+v, want id %d inode %d flags %#x", preserve, i, h, c.fh, c.id, c.want)
			}
		}
		if st.NextHandle != fs.cur().nextHandle.Load() {
			t.Errorf("next handle %d", st.NextHandle)
		}
	}
}

// TestSaveTracking: guest renames and removals between the preparation
// and the save keep the infos current (checked before the save repairs
// anything), and the saved state is right.
func TestSaveTracking(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	for _, d := range []string{"d1", "d2"} {
		os.Mkdir(join(dir, d), 0o755)
	}
	for _, f := range []string{"d1/mv", "d1/gone", "d2/victim", "d1/linked"} {
		writeFile(t, join(dir, f), f)
	}
	d1 := mustLookup(t, fs, RootID, "d1").NodeID
	d2 := mustLookup(t, fs, RootID, "d2").NodeID
	mv := mustLookup(t, fs, d1, "mv").NodeID
	gone := mustLookup(t, fs, d1, "gone").NodeID
	victim := mustLookup(t, fs, d2, "victim").NodeID
	linked := mustLookup(t, fs, d1, "linked").NodeID
	var eo fuse.EntryOut
	if e := fs.Link(root, linked, d2, nm("other"), &eo); e != 0 {
		t.Fatal(e)
	}
	fs.prepareMigration()
	waitPrepared(t, fs)

	info := func(id uint64) *migInfo {
		s := fs.cur()
		s.mu.Lock()
		defer s.mu.Unlock()
		if in := s.inodes[id]; in != nil {
			return in.mig
		}
		return nil
	}
	if i := info(mv); i == nil || i.parent.nodeid != d1 || i.name != "mv" {
		t.Fatalf("info of mv after preparation: %+v", i)
	}
	// mv replaces victim.
	if e := fs.Rename(root, d1, nm("mv"), d2, nm("victim"), 0); e != 0 {
		t.Fatal(e)
	}
	if i := info(mv); i == nil || i.parent.nodeid != d2 || i.name != "victim" {
		t.Errorf("info of mv after rename: %+v", i)
	}
	if i := info(victim); i != nil {
		t.Errorf("replaced victim keeps info %+v", i)
	}
	if e := fs.Unlink(root, d1, nm("gone")); e != 0 {
		t.Fatal(e)
	}
	if i := info(gone); i != nil {
		t.Errorf("unlinked file keeps info %+v", i)
	}
	// linked loses the name its info has (or the other one): either way
	// it keeps an info under the remaining name, when that is its
	// /proc/self/fd path, or gets one at the save.
	if e := fs.Unlink(root, d1, nm("linked")); e != 0 {
		t.Fatal(e)
	}
	// A new name looked up while prepared gets an info at once.
	writeFile(t, join(dir, "d2/late"), "z")
	late := mustLookup(t, fs, d2, "late").NodeID
	if i := info(late); i == nil || i.parent.nodeid != d2 || i.name != "late" {
		t.Errorf("info of a record looked up while prepared: %+v", i)
	}

	st := mustSaveNow(t, fs)
	guest := map[uint64]uint64{RootID: 2, d1: 1, d2: 1, mv: 1, gone: 1, victim: 1, linked: 2, late: 1}
	checkState(t, st, guest)
	checkCleared(t, fs)
	if after, _ := sessionSnapshot(t, fs); !mapsEqual(after, guest) {
		t.Errorf("session after the save: %v, want %v", after, guest)
	}
	want := map[uint64]string{mv: "d2/victim", linked: "d2/other", late: "d2/late"}
	for id, p := range want {
		if got := pathOf(t, st, id); got != p {
			t.Errorf("path of %d = %q, want %q", id, got, p)
		}
	}
	for _, id := range []uint64{gone, victim} {
		if k := inodeOf(st, id).Location.Kind; k != migration.LocInvalid {
			t.Errorf("removed node %d sent as %v", id, k)
		}
	}
}

// TestSaveHostChanges: the host renames and removes files between the
// preparation and the save; the save finds the renamed file under its new
// name and sends the removed one as Invalid.
func TestSaveHostChanges(t *testing.T) {
	forEachHandleMode(t, func(t *testing.T, mode FileHandleMode) {
		fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = mode })
		os.MkdirAll(join(dir, "a/sub"), 0o755)
		os.Mkdir(join(dir, "b"), 0o755)
		writeFile(t, join(dir, "a/sub/f"), "f")
		writeFile(t, join(dir, "a/del"), "d")
		a := mustLookup(t, fs, RootID, "a").NodeID
		sub := mustLookup(t, fs, a, "sub").NodeID
		f := mustLookup(t, fs, sub, "f").NodeID
		del := mustLookup(t, fs, a, "del").NodeID
		fs.Forget(sub, 1) // sub only stays as f's parent
		st := saveUnchanged(t, fs, false, func() {
			if err := os.Rename(join(dir, "a/sub"), join(dir, "b/moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(join(dir, "a/del")); err != nil {
				t.Fatal(err)
			}
		})
		checkState(t, st, map[uint64]uint64{RootID: 2, a: 1, f: 1, del: 1})
		if got := pathOf(t, st, f); got != "b/moved/f" {
			t.Errorf("path of f = %q, want b/moved/f", got)
		}
		if in := inodeOf(st, del); in.Location.Kind != migration.LocInvalid || in.Refcount != 1 {
			t.Errorf("deleted file sent as %+v", *in)
		}
	})
}

func TestSaveCancel(t *testing.T) {
	fs, dir := newTestFS(t, func(c *Config) { c.FDBudget = 5000 })
	os.Mkdir(join(dir, "d"), 0o755)
	d := mustLookup(t, fs, RootID, "d").NodeID
	for i := 0; i < 1000; i++ {
		name := "f" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		writeFile(t, join(dir, "d", name), "")
		mustLookup(t, fs, d, name)
	}
	fs.Forget(d, 1)
	before, hb := sessionSnapshot(t, fs)
	fds := openFDs(t)
	for i := 0; i < 3; i++ {
		fs.prepareMigration()
		if i == 1 {
			waitPrepared(t, fs) // cancel after a complete preparation too
		}
		fs.cancelMigration()
		checkCleared(t, fs)
		after, ha := sessionSnapshot(t, fs)
		if !mapsEqual(before, after) || !slices.Equal(hb, ha) {
			t.Fatalf("round %d: session changed by prepare+cancel", i)
		}
		if n := openFDs(t); n != fds {
			t.Errorf("round %d: open descriptors %d, were %d", i, n, fds)
		}
	}
	// Stopped in the middle, deterministically: the 100th record waits
	// until the stop flag is set.
	var calls atomic.Int64
	reached, release := make(chan struct{}), make(chan struct{})
	fs.mig.perRecord = func() {
		if calls.Add(1) == 100 {
			close(reached)
			<-release
		}
	}
	fs.prepareMigration()
	<-reached
	fs.mig.mu.Lock()
	fs.mig.prep.stop.Store(true)
	fs.mig.mu.Unlock()
	close(release)
	fs.cancelMigration()
	fs.mig.perRecord = nil
	if n := calls.Load(); n >= 1000 {
		t.Errorf("the preparation went on after being stopped (%d records)", n)
	}
	checkCleared(t, fs)
	if after, ha := sessionSnapshot(t, fs); !mapsEqual(before, after) || !slices.Equal(hb, ha) {
		t.Fatal("session changed by a preparation cancelled in the middle")
	}
	if n := openFDs(t); n != fds {
		t.Errorf("open descriptors %d, were %d", n, fds)
	}

	// Prepare twice (the second restarts the first), then save.
	st := saveUnchanged(t, fs, false, func() { fs.prepareMigration(); waitPrepared(t, fs) })
	if len(st.Inodes) != 1002 {
		t.Errorf("%d inodes, want 1002", len(st.Inodes))
	}
	// d was forgotten: it comes back as a record of the paths only.
	var dirs []migration.Inode
	for _, in := range st.Inodes {
		if in.Location.Kind == migration.LocPath && in.Location.Name == "d" {
			dirs = append(dirs, in)
		}
	}
	if len(dirs) != 1 || dirs[0].ID == d || dirs[0].Refcount != 1000 {
		t.Errorf("d: %+v", dirs)
	}
}

// TestSaveForgetWhilePrepared: records only held by infos go away when the
// guest forgets the record that needed them.
func TestSaveForgetWhilePrepared(t *testing.T) {
	// Records held as O_PATH descriptors: the descriptors show when they go.
	fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = FileHandlesNever })
	os.MkdirAll(join(dir, "a/b"), 0o755)
	writeFile(t, join(dir, "a/b/f"), "")
	a := mustLookup(t, fs, RootID, "a").NodeID
	b := mustLookup(t, fs, a, "b").NodeID
	f := mustLookup(t, fs, b, "f").NodeID
	fs.Forget(a, 1)
	fs.Forget(b, 1)
	fds := openFDs(t)
	fs.prepareMigration()
	waitPrepared(t, fs)
	s := fs.cur()
	s.mu.Lock()
	n := len(s.inodes)
	s.mu.Unlock()
	if n != 4 {
		t.Fatalf("%d records while prepared, want 4", n)
	}
	fs.Forget(f, 1)
	s.mu.Lock()
	n = len(s.inodes)
	s.mu.Unlock()
	if n != 1 || lookups(fs, RootID) != 2 {
		t.Errorf("after forgetting f: %d records, root lookups %d; want 1 and 2", n, lookups(fs, RootID))
	}
	if got := openFDs(t); got != fds-1 {
		t.Errorf("open descriptors %d, want %d", got, fds-1)
	}
	fs.cancelMigration()
}

func TestSaveVerifyHandles(t *testing.T) {
	requireRoot(t)
	forEachHandleMode(t, func(t *testing.T, mode FileHandleMode) {
		fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = mode; c.MigrationVerifyHandles = true })
		os.Mkdir(join(dir, "d"), 0o755)
		writeFile(t, join(dir, "d/f"), "")
		d := mustLookup(t, fs, RootID, "d").NodeID
		f := mustLookup(t, fs, d, "f").NodeID
		st := mustSave(t, fs)
		checkState(t, st, map[uint64]uint64{RootID: 2, d: 1, f: 1})
		for id, p := range map[uint64]string{RootID: dir, d: join(dir, "d"), f: join(dir, "d/f")} {
			in := inodeOf(st, id)
			want, e := handleAt(unix.AT_FDCWD, &append([]byte(p), 0)[0], 0)
			if e != 0 {
				t.Fatal(e)
			}
			if in.FileHandle == nil || !sameHandle(in.FileHandle, want) || in.FileHandle.MntID != want.MntID {
				t.Errorf("node %d: verification handle %+v, want %+v", id, in.FileHandle, want)
			}
		}
	})
}

func TestSaveFileHandlesMode(t *testing.T) {
	requireRoot(t)
	forEachHandleMode(t, func(t *testing.T, mode FileHandleMode) {
		fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = mode; c.MigrationMode = MigrateFileHandles })
		os.MkdirAll(join(dir, "d/sub"), 0o755)
		writeFile(t, join(dir, "d/f"), "")
		d := mustLookup(t, fs, RootID, "d").NodeID
		f := mustLookup(t, fs, d, "f").NodeID
		fs.prepareMigration()
		waitPrepared(t, fs)
		sub := mustLookup(t, fs, d, "sub").NodeID // tracked
		st := mustSaveNow(t, fs)
		checkCleared(t, fs)
		checkState(t, st, map[uint64]uint64{RootID: 2, d: 1, f: 1, sub: 1})
		var mnt uint64
		for id, p := range map[uint64]string{d: "d", f: "d/f", sub: "d/sub"} {
			in := inodeOf(st, id)
			want, _ := handleAt(unix.AT_FDCWD, &append([]byte(join(dir, p)), 0)[0], 0)
			if in.Location.Kind != migration.LocFileHandle || !sameHandle(&in.Location.Handle, want) ||
				in.Location.Handle.MntID != want.MntID {
				t.Errorf("node %d: location %+v, want handle %+v", id, in.Location, want)
			}
			mnt = want.MntID
		}
		if len(st.MountPaths) != 1 || st.MountPaths[0] != (migration.MountPath{MntID: mnt, Path: "."}) {
			t.Errorf("mount paths %+v, want {%d .}", st.MountPaths, mnt)
		}
	})
}

func TestSaveSubmountPath(t *testing.T) {
	fs, dir := newTestFS(t, func(c *Config) { c.MigrationMode = MigrateFileHandles })
	os.MkdirAll(join(dir, "m"), 0o755)
	mountOrSkip(t, join(dir, "m"), "")
	writeFile(t, join(dir, "m/f"), "")
	m := mustLookup(t, fs, RootID, "m").NodeID
	f := mustLookup(t, fs, m, "f").NodeID
	st := mustSave(t, fs)
	in := inodeOf(st, f)
	if in.Location.Kind != migration.LocFileHandle {
		t.Fatalf("f: %+v", in)
	}
	var found bool
	for _, mp := range st.MountPaths {
		if mp.MntID == in.Location.Handle.MntID {
			found = true
			if mp.Path != "m" {
				t.Errorf("mount path of the submount = %q, want m", mp.Path)
			}
		}
	}
	if !found || len(st.MountPaths) != 1 {
		t.Errorf("mount paths %+v", st.MountPaths)
	}
}

func TestRelativeMount(t *testing.T) {
	for _, c := range []struct{ mp, share, want string }{
		{"/srv/share", "/srv/share", "."},
		{"/srv/share/", "/srv/share", "."},
		{"/srv/share/sub", "/srv/share", "sub"},
		{"/srv/share/a/b", "/srv/share/", "a/b"},
		{"/srv/shared", "/srv/share", "."}, // a sibling sharing a name prefix
		{"/", "/srv/share", "."},
		{"/sub", "/", "sub"},
		{"/", "/", "."},
	} {
		if got := relativeMount(c.mp, c.share); got != c.want {
			t.Errorf("relativeMount(%q, %q) = %q, want %q", c.mp, c.share, got, c.want)
		}
	}
}

// TestSaveNonUTF8: a record whose name is not UTF-8 is sent as Invalid with
// its refcount, and so are its descendants; the traversal skips it.
func TestSaveNonUTF8(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	bad := "bad\xff"
	os.Mkdir(join(dir, bad), 0o755)
	writeFile(t, join(dir, bad, "f"), "")
	writeFile(t, join(dir, "ok"), "")
	d := mustLookup(t, fs, RootID, bad).NodeID
	f := mustLookup(t, fs, d, "f").NodeID
	ok := mustLookup(t, fs, RootID, "ok").NodeID
	st := saveUnchanged(t, fs, false, nil)
	checkState(t, st, map[uint64]uint64{RootID: 2, d: 1, f: 1, ok: 1})
	for _, id := range []uint64{d, f} {
		if k := inodeOf(st, id).Location.Kind; k != migration.LocInvalid {
			t.Errorf("node %d sent as %v, want Invalid", id, k)
		}
	}
	if pathOf(t, st, ok) != "ok" {
		t.Error("ok not found")
	}
	// Looked up while prepared: tracking must not attach the name either.
	st = saveUnchanged(t, fs, false, func() {
		writeFile(t, join(dir, "late\xfe"), "")
		late := mustLookup(t, fs, RootID, "late\xfe").NodeID
		st := mustSaveNow(t, fs)
		if in := inodeOf(st, late); in == nil || in.Location.Kind != migration.LocInvalid {
			t.Errorf("late non-UTF-8 name sent as %+v", in)
		}
		fs.Forget(late, 1)
		fs.prepareMigration()
		waitPrepared(t, fs)
	})
	for _, in := range st.Inodes {
		if !utf8Valid(in.Location.Name) {
			t.Errorf("node %d: name %q is not UTF-8", in.ID, in.Location.Name)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

// TestSaveFailedForwarded: inodes and handles a previous incoming migration
// could not restore are sent on unchanged.
func TestSaveFailedForwarded(t *testing.T) {
	fs, _ := newTestFS(t, nil)
	s := fs.cur()
	s.mu.Lock()
	s.failed[77] = &failedInode{nodeid: 77, lookups: 3, err: unix.EIO}
	s.mu.Unlock()
	s.hmu.Lock()
	s.failedHandles[9] = &failedHandle{id: 9, nodeid: 77, flags: unix.O_RDWR | unix.O_APPEND, err: unix.EIO}
	s.hmu.Unlock()
	s.nextNode.Store(100)
	s.nextHandle.Store(10)
	st := mustSave(t, fs)
	checkState(t, st, map[uint64]uint64{RootID: 2, 77: 3})
	if in := inodeOf(st, 77); in == nil || in.Location.Kind != migration.LocInvalid {
		t.Errorf("failed inode: %+v", in)
	}
	if len(st.Handles) != 1 || st.Handles[0] != (migration.Handle{ID: 9, Inode: 77, Flags: unix.O_RDWR | unix.O_APPEND}) {
		t.Errorf("handles %+v", st.Handles)
	}
	if st.NextInode != 100 || st.NextHandle != 10 {
		t.Errorf("next %d %d", st.NextInode, st.NextHandle)
	}
}

func TestSaveNegotiatedOpts(t *testing.T) {
	fs, _ := newTestFS(t, func(c *Config) { c.Writeback = true })
	st := mustSave(t, fs)
	if st.Opts != (migration.NegotiatedOpts{Writeback: true, AnnounceSubmounts: true, SupGroupExtension: true}) {
		t.Errorf("opts %+v", st.Opts)
	}
	if _, e := fs.Init(allCaps &^ (fuse.FUSE_WRITEBACK_CACHE | fuse.FUSE_SUBMOUNTS | fuse.FUSE_CREATE_SUPP_GROUP)); e != 0 {
		t.Fatal(e)
	}
	if st := mustSave(t, fs); st.Opts != (migration.NegotiatedOpts{}) {
		t.Errorf("opts %+v, want none", st.Opts)
	}
	fs.Destroy()
	st = mustSave(t, fs)
	if len(st.Inodes) != 0 || st.Opts != (migration.NegotiatedOpts{}) {
		t.Errorf("after DESTROY: %+v", st)
	}
}

// TestSaveConfirmPaths: --migration-confirm-paths repairs a path whose name
// now holds another object with the same kind of file.
func TestSaveConfirmPaths(t *testing.T) {
	fs, dir := newTestFS(t, func(c *Config) { c.MigrationConfirmPaths = true })
	writeFile(t, join(dir, "f"), "")
	f := mustLookup(t, fs, RootID, "f").NodeID
	fs.prepareMigration()
	waitPrepared(t, fs)
	os.Rename(join(dir, "f"), join(dir, "g"))
	writeFile(t, join(dir, "f"), "") // another file under the old name
	st := mustSaveNow(t, fs)
	if got := pathOf(t, st, f); got != "g" {
		t.Errorf("path of f = %q, want g", got)
	}
}

// TestSaveConfirmPathsReusedInode: the file a record held as a file handle
// is deleted on the host and a new file under the same name gets the same
// inode number; --migration-confirm-paths tells them apart by file handle
// and sends the record as Invalid.
func TestSaveConfirmPathsReusedInode(t *testing.T) {
	requireRoot(t)
	fs, dir := newTestFS(t, func(c *Config) { c.InodeFileHandles = FileHandlesPrefer; c.MigrationConfirmPaths = true })
	if fs.FileHandleMode() != FileHandlesPrefer {
		t.Skip("no file handles on the test directory")
	}
	writeFile(t, join(dir, "f"), "")
	e := mustLookup(t, fs, RootID, "f")
	st := saveUnchanged(t, fs, false, func() {
		os.Remove(join(dir, "f"))
		writeFile(t, join(dir, "f"), "")
		var stx unix.Stat_t
		if err := unix.Lstat(join(dir, "f"), &stx); err != nil || stx.Ino != e.Attr.Ino {
			t.Skip("the file system did not reuse the inode number")
		}
	})
	if in := inodeOf(st, e.NodeID); in == nil || in.Location.Kind != migration.LocInvalid {
		t.Errorf("record of the deleted file sent as %+v", in)
	}
}
