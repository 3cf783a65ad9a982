package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// migOpen is the open state of a session: file and directory handles and
// how far the guest has read the directory.
type migOpen struct {
	file, deep, wo, app, dir migHandle
	// dirSeen are the names read from dir so far, dirOff the offset of
	// the last one.
	dirSeen []string
	dirOff  uint64
	// gone is a node the guest forgot completely before the migration.
	gone uint64
	d1   uint64
}

const migReaddirSize = 1024

// buildSession builds the guest's session on the daemon f talks to.
func buildSession(t *testing.T, f *fe.Frontend, tr migTree) (*migSession, *migOpen) {
	t.Helper()
	s := newMigSession(t, tr.shared)
	o := &migOpen{}
	o.d1 = s.lookup(f, "", "d1").id
	s.lookup(f, "", "d1")
	s.lookup(f, "d1", "d2")
	for i := 0; i < 3; i++ {
		s.lookup(f, "d1/d2", "deep.txt")
	}
	file := s.lookup(f, "", "file.txt")
	if hard := s.lookup(f, "d1", "hard"); hard != file {
		t.Fatalf("hard link d1/hard is node %d, file.txt node %d", hard.id, file.id)
	}
	s.lookup(f, "d1", "hard")
	s.lookup(f, "", migNonASCII)
	s.lookup(f, "", migNonASCII)
	s.lookup(f, "", "sym")
	s.lookup(f, "", "fifo")
	s.lookup(f, "", "wo.txt")
	s.lookup(f, "", "app.txt")
	s.lookup(f, "", "many")
	// One lookup of the non-ASCII name is given back before the
	// migration, gone.txt entirely.
	mustOK(t, "forget", f.Forget(s.byRel[migNonASCII], 1))
	s.nodes[s.byRel[migNonASCII]].count--
	gone := s.lookup(f, "", "gone.txt")
	s.lookup(f, "", "gone.txt")
	mustOK(t, "forget", f.Forget(gone.id, 2))
	o.gone = gone.id
	delete(s.nodes, gone.id)
	delete(s.byRel, "gone.txt")
	if _, err := f.Getattr(o.gone); !errors.Is(err, unix.EBADF) {
		t.Fatalf("forgotten node %d: getattr %v, want EBADF", o.gone, err)
	}

	open := func(rel string, flags uint32, what string) migHandle {
		t.Helper()
		id := s.byRel[rel]
		h, err := f.Open(id, flags)
		if err != nil {
			t.Fatalf("open %s: %v", rel, err)
		}
		return migHandle{node: id, fh: h.Fh, flags: flags, what: what}
	}
	o.file = open("file.txt", unix.O_RDONLY, "read-only file.txt")
	o.deep = open("d1/d2/deep.txt", unix.O_RDONLY, "read-only deep.txt")
	o.wo = open("wo.txt", unix.O_WRONLY, "write-only wo.txt")
	o.app = open("app.txt", unix.O_WRONLY|unix.O_APPEND, "append app.txt")
	if got := must[[]byte](t, "read")(f.Read(o.file.node, o.file.fh, 0, 4096)); string(got) != migFileData {
		t.Fatalf("read file.txt = %q", got)
	}
	dh, err := f.Opendir(s.byRel["many"], unix.O_RDONLY)
	if err != nil {
		t.Fatalf("opendir many: %v", err)
	}
	o.dir = migHandle{node: s.byRel["many"], fh: dh.Fh, dir: true, what: "directory many"}
	for i := 0; i < 2; i++ {
		ds, err := f.Readdir(o.dir.node, o.dir.fh, o.dirOff, migReaddirSize)
		if err != nil || len(ds) == 0 {
			t.Fatalf("readdir many at %d: %d entries, %v", o.dirOff, len(ds), err)
		}
		o.dirSeen = append(o.dirSeen, direntNames(ds)...)
		o.dirOff = ds[len(ds)-1].Off
	}
	if len(o.dirSeen) >= len(tr.manyEntries) {
		t.Fatalf("readdir read %d entries at once, want part of %d", len(o.dirSeen), len(tr.manyEntries))
	}
	s.checkGetattr(f, "before the migration")
	return s, o
}

// continueSession continues the session on d with the node IDs and
// handles of buildSession, and ends it: data read and written through the
// old handles, the directory read on from the old offset, attributes of
// every node, old and new lookups, every handle released and every node
// forgotten with exactly its count.
func continueSession(t *testing.T, d *daemon, tr migTree, s *migSession, o *migOpen) {
	t.Helper()
	f := d.FE
	who := d.spec.name
	if got, err := f.Read(o.file.node, o.file.fh, 0, 4096); err != nil || string(got) != migFileData {
		t.Fatalf("%s: read %s = %q, %v", who, o.file.what, got, err)
	}
	if got, err := f.Read(o.deep.node, o.deep.fh, 5, 4096); err != nil || string(got) != migDeepData[5:] {
		t.Fatalf("%s: read %s = %q, %v", who, o.deep.what, got, err)
	}
	const woData = "written on the way"
	if n, err := f.Write(o.wo.node, o.wo.fh, 2, []byte(woData), o.wo.flags); err != nil || n != uint32(len(woData)) {
		t.Fatalf("%s: write %s = %d, %v", who, o.wo.what, n, err)
	}
	if got, _ := os.ReadFile(filepath.Join(tr.shared, "wo.txt")); string(got) != "XX"+woData {
		t.Fatalf("%s: host wo.txt after the write = %q", who, got)
	}
	// The guest writes an O_APPEND file at offset 0; the data must still
	// land at the end.
	const appData = "at the end"
	if n, err := f.Write(o.app.node, o.app.fh, 0, []byte(appData), o.app.flags); err != nil || n != uint32(len(appData)) {
		t.Fatalf("%s: write %s = %d, %v", who, o.app.what, n, err)
	}
	if got, _ := os.ReadFile(filepath.Join(tr.shared, "app.txt")); string(got) != migAppData+appData {
		t.Fatalf("%s: host app.txt after the append = %q", who, got)
	}
	// The directory continues where the guest stopped.
	seen := append([]string(nil), o.dirSeen...)
	off := o.dirOff
	for i := 0; ; i++ {
		ds, err := f.Readdir(o.dir.node, o.dir.fh, off, migReaddirSize)
		if err != nil {
			t.Fatalf("%s: readdir %s at %d: %v", who, o.dir.what, off, err)
		}
		if len(ds) == 0 {
			break
		}
		if i > 2*len(tr.manyEntries) {
			t.Fatalf("%s: readdir %s does not end", who, o.dir.what)
		}
		seen = append(seen, direntNames(ds)...)
		off = ds[len(ds)-1].Off
	}
	checkAllOnce(t, who+": readdir "+o.dir.what+" before and after", seen, tr.manyEntries)
	if got, err := f.Readlink(s.byRel["sym"]); err != nil || got != "file.txt" {
		t.Fatalf("%s: readlink sym = %q, %v", who, got, err)
	}
	s.checkGetattr(f, who)
	if _, err := f.Getattr(o.gone); !errors.Is(err, unix.EBADF) {
		t.Fatalf("%s: node %d forgotten before the migration: getattr %v, want EBADF", who, o.gone, err)
	}
	// An old name gives its old node; new names give new nodes above
	// every old one.
	oldMax := max(s.maxID(), o.gone)
	if n := s.lookup(f, "", "d1"); n.id != o.d1 {
		t.Fatalf("%s: lookup d1 = node %d, before %d", who, n.id, o.d1)
	}
	for _, name := range []string{"fresh.txt", "gone.txt"} {
		if n := s.lookup(f, "", name); n.id <= oldMax {
			t.Fatalf("%s: lookup of %s gives node %d, not above the old nodes (up to %d)", who, name, n.id, oldMax)
		}
	}
	for _, h := range []migHandle{o.file, o.deep, o.wo, o.app} {
		mustOK(t, who+": release "+h.what, f.Release(h.node, h.fh))
	}
	mustOK(t, who+": releasedir "+o.dir.what, f.Releasedir(o.dir.node, o.dir.fh))
	if _, err := f.Read(o.file.node, o.file.fh, 0, 16); !errors.Is(err, unix.EBADF) {
		t.Fatalf("%s: read through released %s: %v, want EBADF", who, o.file.what, err)
	}
	s.forgetAll(f, who)
	d.serves()
}

// whilePreparing is the guest's activity while the source prepares its
// state: a name looked up for the first time, and an open file renamed
// into another directory. The source must describe both as they are when
// it saves.
func whilePreparing(t *testing.T, f *fe.Frontend, s *migSession, o *migOpen) {
	t.Helper()
	s.lookup(f, "", "late.txt")
	s.lookup(f, "", "late.txt")
	mustOK(t, "rename while preparing", f.Rename(s.byRel["d1/d2"], "deep.txt", s.byRel["d1"], "moved.txt"))
	s.renamed("d1/d2/deep.txt", "d1/moved.txt")
	if got, err := f.Read(o.deep.node, o.deep.fh, 0, 4096); err != nil || string(got) != migDeepData {
		t.Fatalf("read %s while preparing = %q, %v", o.deep.what, got, err)
	}
}

// TestMigrateSession moves a FUSE session between two daemons serving the
// same directory and continues it on the destination with the guest's
// node IDs, lookup counts and handles.
func TestMigrateSession(t *testing.T) {
	forEachMigCase(t, func(t *testing.T, c migCase) {
		tr := newMigTree(t)
		src := startDaemonIn(t, c.src, tr.shared, startOpts{args: srcArgs(c.mode)})
		dst := startDest(t, c.dst, tr.shared, dstArgs(c.dst, c.mode)...)
		s, o := buildSession(t, src.FE, tr)
		// The name file.txt was looked up under goes away on the host;
		// the inode is still reachable through its other link, which a
		// find-paths source must find by searching the shared directory.
		if err := os.Remove(filepath.Join(tr.shared, "file.txt")); err != nil {
			t.Fatal(err)
		}
		s.removed("file.txt")
		migrate(t, src, dst, func(f *fe.Frontend) { whilePreparing(t, f, s, o) })
		continueSession(t, dst, tr, s, o)
	})
}

// TestMigrateRefused: a destination that cannot apply the state (it
// serves another, empty directory and aborts on error) reports failure at
// CHECK_DEVICE_STATE, and the source, whose rings are restarted, continues
// the session as if nothing happened. Find-paths mode only: file handles
// name inodes of the whole file system, so a destination serving another
// directory of the same file system would find them.
func TestMigrateRefused(t *testing.T) {
	for _, c := range migCases() {
		if c.mode != modeFindPaths {
			continue
		}
		t.Run(c.name(), func(t *testing.T) {
			requireDaemon(t, c.src)
			requireDaemon(t, c.dst)
			tr := newMigTree(t)
			src := startDaemonIn(t, c.src, tr.shared, startOpts{args: srcArgs(c.mode)})
			empty := filepath.Join(t.TempDir(), "empty")
			if err := os.Mkdir(empty, 0o755); err != nil {
				t.Fatal(err)
			}
			dst := startDest(t, c.dst, empty, "--migration-on-error=abort")
			s, o := buildSession(t, src.FE, tr)
			state := saveFrom(t, src, nil)
			f := src.FE
			old := connectDest(t, f, dst)
			err := f.LoadState(state)
			f.Attach(old).Close()
			if !errors.Is(err, fe.ErrStateCheck) {
				t.Fatalf("%s destination serving an empty directory: load = %v, want a failed check\nlog:\n%s", c.dst.name, err, dst.Log())
			}
			if ents, _ := os.ReadDir(empty); len(ents) != 0 {
				t.Errorf("%s destination left %d entries in its empty directory", c.dst.name, len(ents))
			}
			// The migration failed: QEMU turns logging off and restarts
			// the source's rings.
			mustOK(t, "source: log all off", f.SetLogAll(false))
			mustOK(t, "source: restart rings", f.StartQueues())
			continueSession(t, src, tr, s, o)
		})
	}
}

// TestMigrateCancelled: a migration cancelled while the source prepares
// (dirty logging turned on, then off without a save, as QEMU does when a
// migration is cancelled before the device stops) leaves the source
// serving, and a later migration of the same session succeeds.
func TestMigrateCancelled(t *testing.T) {
	forEachMigCase(t, func(t *testing.T, c migCase) {
		tr := newMigTree(t)
		src := startDaemonIn(t, c.src, tr.shared, startOpts{args: srcArgs(c.mode)})
		dst := startDest(t, c.dst, tr.shared, dstArgs(c.dst, c.mode)...)
		s, o := buildSession(t, src.FE, tr)
		f := src.FE
		mustOK(t, "source: log all on", f.SetLogAll(true))
		s.lookup(f, "", "late.txt")
		mustOK(t, "source: log all off", f.SetLogAll(false))
		s.checkGetattr(f, "after the cancelled migration")
		migrate(t, src, dst, func(f *fe.Frontend) { whilePreparing(t, f, s, o) })
		continueSession(t, dst, tr, s, o)
	})
}
