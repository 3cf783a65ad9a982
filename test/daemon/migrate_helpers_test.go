package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// Helpers of the migration tests (migrate_test.go): a FUSE session is
// built on a source daemon, its device state is moved at the vhost-user
// level (QEMU docs/interop/vhost-user.rst, "Migrating back-end state") to
// a destination daemon serving the same directory, and the guest's
// session continues there with the same rings, node IDs and handles.

// Migration modes (--migration-mode).
const (
	modeFindPaths   = "find-paths"
	modeFileHandles = "file-handles"
)

// migCase is one (source, destination, mode) combination.
type migCase struct {
	src, dst *daemonSpec
	mode     string
}

func (c migCase) name() string { return c.src.name + "-to-" + c.dst.name + "/" + c.mode }

// migCases lists every combination: ours and the reference in both
// roles (reference to reference is the control), in both modes.
func migCases() []migCase {
	var cs []migCase
	for _, mode := range []string{modeFindPaths, modeFileHandles} {
		for _, src := range daemons {
			for _, dst := range daemons {
				cs = append(cs, migCase{src, dst, mode})
			}
		}
	}
	return cs
}

// forEachMigCase runs fn as a subtest per combination.
func forEachMigCase(t *testing.T, fn func(t *testing.T, c migCase)) {
	t.Helper()
	for _, c := range migCases() {
		t.Run(c.name(), func(t *testing.T) {
			requireDaemon(t, c.src)
			requireDaemon(t, c.dst)
			fn(t, c)
		})
	}
}

// srcArgs are the source's options for mode.
func srcArgs(mode string) []string {
	if mode == modeFileHandles {
		return []string{"--migration-mode=file-handles"}
	}
	return nil
}

// dstArgs are the destination's options for mode: opening file handles
// needs CAP_DAC_READ_SEARCH, which ours keeps by default as root and the
// reference only on request.
func dstArgs(spec *daemonSpec, mode string, extra ...string) []string {
	var a []string
	if mode == modeFileHandles && !spec.hardened {
		a = append(a, "--modcaps=+dac_read_search")
	}
	return append(a, extra...)
}

// startDest starts a destination daemon serving shared without
// connecting to it: the front-end of the source moves over.
func startDest(t *testing.T, spec *daemonSpec, shared string, args ...string) *daemon {
	t.Helper()
	return startDestOpts(t, spec, shared, startOpts{args: args})
}

// startDestOpts is startDest with more options (o.noFE is implied).
func startDestOpts(t *testing.T, spec *daemonSpec, shared string, o startOpts) *daemon {
	t.Helper()
	o.noFE = true
	d := startDaemonIn(t, spec, shared, o)
	// A destination nobody connected to (the test ended before the
	// migration) waits for its front-end forever; a connection closed at
	// once ends it, and the harness's clean-up (which runs after this
	// one) then checks its exit.
	t.Cleanup(func() {
		if d.FE != nil || d.alive() != nil || d.connected {
			return
		}
		if fd, err := d.dial(); err == nil {
			unix.Close(fd)
		}
	})
	return d
}

// saveFrom runs the source side up to the saved state, in QEMU's order:
// the dirty log shared (when LOG_SHMFD is negotiated), dirty logging on
// (the source starts preparing), during (the guest still runs while the
// source prepares; may be nil), rings stopped, state read.
func saveFrom(t *testing.T, src *daemon, during func(f *fe.Frontend)) []byte {
	t.Helper()
	f := src.FE
	if f.AckedProtocol&fe.VHOST_USER_PROTOCOL_F_LOG_SHMFD != 0 {
		mustOK(t, src.spec.name+" source: set log base", f.SetLogBase(f.LogSize()))
	}
	mustOK(t, src.spec.name+" source: log all on", f.SetLogAll(true))
	if during != nil {
		during(f)
	}
	mustOK(t, src.spec.name+" source: stop rings", f.StopQueues())
	state, err := f.SaveState()
	if err != nil {
		t.Fatalf("%s source: %v\nlog:\n%s", src.spec.name, err, src.Log())
	}
	if len(state) == 0 {
		t.Fatalf("%s source: empty device state", src.spec.name)
	}
	return state
}

// connectDest moves the source's front-end to dst: connection,
// negotiation, memory; it returns the source's back-end, which stays
// connected (the source keeps serving if the migration fails).
func connectDest(t *testing.T, f *fe.Frontend, dst *daemon) *fe.Backend {
	t.Helper()
	fd, err := dst.dial()
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, dst.Log())
	}
	dst.connected = true
	old := f.Connect(fd, dst.alive)
	if err := f.Negotiate(); err != nil {
		f.Attach(old).Close()
		t.Fatalf("%s destination: %v\nlog:\n%s", dst.spec.name, err, dst.Log())
	}
	if f.AckedProtocol&fe.VHOST_USER_PROTOCOL_F_DEVICE_STATE == 0 {
		f.Attach(old).Close()
		t.Fatalf("%s destination does not offer DEVICE_STATE (protocol features %#x)", dst.spec.name, f.ProtocolFeatures)
	}
	if err := f.SendMemory(f.Options().MemMode); err != nil {
		f.Attach(old).Close()
		t.Fatalf("%s destination: %v\nlog:\n%s", dst.spec.name, err, dst.Log())
	}
	return old
}

// migrate moves the session of src to dst: save (during as in saveFrom),
// load, rings started on dst with the source's ring indexes, no FUSE
// INIT. The source's
// connection is closed (as when the source QEMU quits) and the source
// must exit cleanly.
func migrate(t *testing.T, src, dst *daemon, during func(f *fe.Frontend)) {
	t.Helper()
	state := saveFrom(t, src, during)
	f := src.FE
	old := connectDest(t, f, dst)
	if err := f.LoadState(state); err != nil {
		f.Attach(old).Close()
		t.Fatalf("%s destination: %v\nlog:\n%s", dst.spec.name, err, dst.Log())
	}
	dst.FE, src.FE = f, nil
	old.Close()
	if err := f.StartQueues(); err != nil {
		t.Fatalf("%s destination: %v\nlog:\n%s", dst.spec.name, err, dst.Log())
	}
	code, err := src.wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("%s source after the migration: exit code %d, %v\nlog:\n%s", src.spec.name, code, err, src.Log())
	}
	src.checkNoPanic()
	src.skipExitCheck = true
}

// migNode is one node the guest looked up.
type migNode struct {
	id    uint64
	rel   string // host path relative to the shared directory
	count uint64 // outstanding lookups
	typ   uint32 // S_IFMT bits
}

// migHandle is one open handle.
type migHandle struct {
	node  uint64
	fh    uint64
	dir   bool
	flags uint32 // open flags the guest used
	what  string
}

// migSession is what the guest holds: looked-up nodes with their exact
// counts and open handles.
type migSession struct {
	t      *testing.T
	shared string
	nodes  map[uint64]*migNode
	byRel  map[string]uint64
}

func newMigSession(t *testing.T, shared string) *migSession {
	return &migSession{t: t, shared: shared, nodes: map[uint64]*migNode{}, byRel: map[string]uint64{"": fe.FUSE_ROOT_ID}}
}

// lookup looks up name in the directory rel (relative to the shared
// directory) and counts it; two names of one inode (hard links) must give
// one node.
func (s *migSession) lookup(f *fe.Frontend, dir, name string) *migNode {
	s.t.Helper()
	parent, ok := s.byRel[dir]
	if !ok {
		s.t.Fatalf("lookup %q in %q: directory not looked up", name, dir)
	}
	rel := filepath.Join(dir, name)
	e, err := f.Lookup(parent, name)
	if err != nil {
		s.t.Fatalf("lookup %s: %v", rel, err)
	}
	st := hostStat(s.t, filepath.Join(s.shared, rel))
	if e.Attr.Ino != st.Ino {
		s.t.Fatalf("lookup %s: ino %d, host %d", rel, e.Attr.Ino, st.Ino)
	}
	n := s.nodes[e.NodeID]
	if n == nil {
		n = &migNode{id: e.NodeID, rel: rel, typ: st.Mode & unix.S_IFMT}
		s.nodes[e.NodeID] = n
	} else if hostStat(s.t, filepath.Join(s.shared, n.rel)).Ino != st.Ino {
		s.t.Fatalf("lookup %s: node %d already names %s", rel, e.NodeID, n.rel)
	}
	if _, ok := s.byRel[rel]; !ok {
		s.byRel[rel] = e.NodeID
	}
	n.count++
	return n
}

// renamed records that the guest renamed oldRel to newRel.
func (s *migSession) renamed(oldRel, newRel string) {
	s.t.Helper()
	id, ok := s.byRel[oldRel]
	if !ok {
		s.t.Fatalf("rename %s: not looked up", oldRel)
	}
	delete(s.byRel, oldRel)
	s.byRel[newRel] = id
	s.nodes[id].rel = newRel
}

// removed records that the name rel was removed on the host; its node
// is then known by another name it was looked up under.
func (s *migSession) removed(rel string) {
	s.t.Helper()
	id := s.byRel[rel]
	delete(s.byRel, rel)
	for r, other := range s.byRel {
		if other == id {
			s.nodes[id].rel = r
			return
		}
	}
	s.t.Fatalf("remove %s: node %d has no other name", rel, id)
}

// maxID is the largest node ID looked up.
func (s *migSession) maxID() uint64 {
	var m uint64
	for id := range s.nodes {
		m = max(m, id)
	}
	return m
}

// ids lists the looked-up node IDs in ascending order.
func (s *migSession) ids() []uint64 {
	var ids []uint64
	for id := range s.nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// checkGetattr checks GETATTR of every node against the host.
func (s *migSession) checkGetattr(f *fe.Frontend, who string) {
	s.t.Helper()
	for _, id := range s.ids() {
		n := s.nodes[id]
		a, err := f.Getattr(id)
		if err != nil {
			s.t.Fatalf("%s: getattr node %d (%s): %v", who, id, n.rel, err)
		}
		checkAttr(s.t, fmt.Sprintf("%s: getattr node %d (%s)", who, id, n.rel), a.Attr, hostStat(s.t, filepath.Join(s.shared, n.rel)))
	}
}

// forgetAll forgets every node with exactly its outstanding count, in two
// steps that show the count is exact: one short of it the node still
// answers, with the last one it is gone (EBADF).
func (s *migSession) forgetAll(f *fe.Frontend, who string) {
	s.t.Helper()
	for _, id := range s.ids() {
		n := s.nodes[id]
		if n.count > 1 {
			mustOK(s.t, "forget", f.Forget(id, n.count-1))
		}
		if _, err := f.Getattr(id); err != nil {
			s.t.Fatalf("%s: node %d (%s) with one lookup left: getattr %v", who, id, n.rel, err)
		}
		mustOK(s.t, "forget", f.Forget(id, 1))
		if _, err := f.Getattr(id); !errors.Is(err, unix.EBADF) {
			s.t.Fatalf("%s: node %d (%s) forgotten %d times: getattr %v, want EBADF (gone)", who, id, n.rel, n.count, err)
		}
		delete(s.nodes, id)
	}
}

// migTree is the host tree the session is built on.
type migTree struct {
	shared string
	// many is a directory with manyEntries entries.
	manyEntries []string
}

const (
	migNonASCII = "fé ü–ö.txt"
	migFileData = "the file's data, read after the migration\n"
	migDeepData = "deep data\n"
	migAppData  = "appended: "
	migManyN    = 300
)

// newMigTree makes the tree: nested directories, a hard link, a
// non-ASCII name, a symlink, a FIFO, files to write and a directory with
// many entries.
func newMigTree(t *testing.T) migTree {
	t.Helper()
	shared := filepath.Join(t.TempDir(), "shared")
	for _, d := range []string{"", "d1", "d1/d2", "many"} {
		if err := os.Mkdir(filepath.Join(shared, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeHost(t, filepath.Join(shared, "file.txt"), []byte(migFileData), 0o644)
	writeHost(t, filepath.Join(shared, "d1/d2/deep.txt"), []byte(migDeepData), 0o644)
	writeHost(t, filepath.Join(shared, "wo.txt"), []byte("XXXXXXXXXXXXXXXXXXXX"), 0o644)
	writeHost(t, filepath.Join(shared, "app.txt"), []byte(migAppData), 0o644)
	writeHost(t, filepath.Join(shared, migNonASCII), []byte("non-ASCII"), 0o644)
	writeHost(t, filepath.Join(shared, "gone.txt"), []byte("forgotten before the migration"), 0o644)
	writeHost(t, filepath.Join(shared, "late.txt"), []byte("looked up while the source prepares"), 0o644)
	writeHost(t, filepath.Join(shared, "fresh.txt"), []byte("looked up only after the migration"), 0o644)
	if err := os.Link(filepath.Join(shared, "file.txt"), filepath.Join(shared, "d1/hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file.txt", filepath.Join(shared, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(shared, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := migTree{shared: shared}
	for i := 0; i < migManyN; i++ {
		name := fmt.Sprintf("entry-with-a-longish-name-%04d", i)
		writeHost(t, filepath.Join(shared, "many", name), nil, 0o644)
		tr.manyEntries = append(tr.manyEntries, name)
	}
	return tr
}

// checkAllOnce checks that got holds every name of want plus "." and ".."
// exactly once.
func checkAllOnce(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, n := range got {
		seen[n]++
	}
	var bad []string
	for _, n := range append([]string{".", ".."}, want...) {
		if seen[n] != 1 {
			bad = append(bad, fmt.Sprintf("%s×%d", n, seen[n]))
		}
		delete(seen, n)
	}
	for n, c := range seen {
		bad = append(bad, fmt.Sprintf("unexpected %s×%d", n, c))
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("%s: %d names, not every entry exactly once: %s", what, len(got), strings.Join(bad, ", "))
	}
}
