package passthrough

import (
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// TestSessionReplacedKeepsCounters checks that DESTROY and INIT install new
// sessions, retire the old one (empty, dead) and continue the node and
// handle counters, so that IDs are never reused.
func TestSessionReplacedKeepsCounters(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "x")
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	s0 := fs.cur()
	f := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, f, unix.O_RDONLY)
	fs.Destroy()
	s1 := fs.cur()
	if s1 == s0 {
		t.Fatal("DESTROY kept the session")
	}
	s0.mu.Lock()
	dead, n := s0.dead, len(s0.inodes)
	s0.mu.Unlock()
	if !dead || n != 0 {
		t.Fatalf("retired session: dead=%v, %d records; want dead and empty", dead, n)
	}
	if got := fs.fdUsed.Load(); got != 0 {
		t.Fatalf("guest-fd slots after DESTROY = %d", got)
	}
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	g := mustLookup(t, fs, RootID, "f").NodeID
	if g <= f {
		t.Errorf("node ID after DESTROY+INIT = %d, want above %d", g, f)
	}
	if fh2 := mustOpen(t, fs, g, unix.O_RDONLY); fh2 <= fh {
		t.Errorf("handle after DESTROY+INIT = %d, want above %d", fh2, fh)
	}
}

// TestIndexNewInRetiredSession hands a new record to a session that was
// retired after the request took it (a LOOKUP racing with DESTROY): the
// record must land in the current session, not in the dead one where no one
// would ever release it.
func TestIndexNewInRetiredSession(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "x")
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	stale := fs.cur()
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	fd, err := unix.Open(join(dir, "f"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var stx unix.Statx_t
	if e := statxFD(fd, &stx); e != 0 {
		t.Fatal(e)
	}
	in, e := fs.newInode(fd, keyOf(&stx), uint32(stx.Mode), nil)
	if e != 0 {
		t.Fatal(e)
	}
	in.lookups = 1
	in.refs.Store(2)
	got, e := fs.indexNew(stale, true, in, in.key, nil)
	if e != 0 {
		t.Fatal(e)
	}
	defer fs.putInode(got)
	var eo fuse.EntryOut
	if e := fs.Lookup(root, RootID, nm("f"), &eo); e != 0 {
		t.Fatal(e)
	}
	if eo.NodeID != got.nodeid {
		t.Errorf("LOOKUP found node %d, the raced record is %d: not indexed in the current session", eo.NodeID, got.nodeid)
	}
	if lookups(fs, got.nodeid) != 2 {
		t.Errorf("lookup count = %d, want 2", lookups(fs, got.nodeid))
	}
	stale.mu.Lock()
	n := len(stale.inodes)
	stale.mu.Unlock()
	if n != 0 {
		t.Errorf("retired session holds %d records", n)
	}
}

// TestFailedRecords checks the records a migration destination keeps for
// what it could not restore: every request on a failed inode or handle gets
// the recorded error, FORGET counts a failed inode down and removes it, and
// RELEASE removes a failed handle.
func TestFailedRecords(t *testing.T) {
	fs, _ := newTestFS(t, nil)
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	s := fs.cur()
	s.mu.Lock()
	s.failed[50] = &failedInode{nodeid: 50, lookups: 3, err: unix.EIO}
	s.mu.Unlock()
	s.hmu.Lock()
	s.failedHandles[9] = &failedHandle{id: 9, nodeid: 50, flags: unix.O_RDONLY, err: unix.ESTALE}
	s.hmu.Unlock()

	var ao fuse.AttrOut
	if e := fs.Getattr(root, 50, &ao); e != unix.EIO {
		t.Errorf("GETATTR on a failed inode = %v, want EIO", e)
	}
	var eo fuse.EntryOut
	if e := fs.Lookup(root, 50, nm("x"), &eo); e != unix.EIO {
		t.Errorf("LOOKUP under a failed inode = %v, want EIO", e)
	}
	buf := make([]byte, 8)
	if _, e := fs.Read(root, 50, &fuse.ReadIn{Fh: 9, Size: 8}, [][]byte{buf}); e != unix.ESTALE {
		t.Errorf("READ on a failed handle = %v, want ESTALE", e)
	}
	if _, e := fs.Read(root, 51, &fuse.ReadIn{Fh: 9, Size: 8}, [][]byte{buf}); e != unix.EBADF {
		t.Errorf("READ on a failed handle through another node = %v, want EBADF", e)
	}
	if e := fs.Release(root, 50, &fuse.ReleaseIn{Fh: 9}); e != 0 {
		t.Errorf("RELEASE of a failed handle = %v", e)
	}
	if _, e := fs.Read(root, 50, &fuse.ReadIn{Fh: 9, Size: 8}, [][]byte{buf}); e != unix.EBADF {
		t.Errorf("READ after RELEASE = %v, want EBADF", e)
	}
	fs.Forget(50, 2)
	if e := fs.Getattr(root, 50, &ao); e != unix.EIO {
		t.Errorf("GETATTR after a partial FORGET = %v, want EIO", e)
	}
	fs.Forget(50, 1)
	if e := fs.Getattr(root, 50, &ao); e != unix.EBADF {
		t.Errorf("GETATTR after the last FORGET = %v, want EBADF", e)
	}
}

// TestAddEntryToRetiredSessionWithoutFollow checks that a migration walk
// over a session retired meanwhile gets EBADF and leaves nothing behind in
// either session.
func TestAddEntryToRetiredSessionWithoutFollow(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "x")
	stale := fs.cur()
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	base := fs.fdUsed.Load()
	fd, err := unix.Open(join(dir, "f"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if in, e := fs.addEntryIn(stale, fd); e != unix.EBADF || in != nil {
		t.Fatalf("addEntryIn on a retired session = %v, %v; want EBADF", in, e)
	}
	if got := fs.fdUsed.Load(); got != base {
		t.Errorf("guest-fd slots = %d, want %d", got, base)
	}
	fs.cur().mu.Lock()
	n := len(fs.cur().inodes)
	fs.cur().mu.Unlock()
	if n != 1 {
		t.Errorf("current session holds %d records, want the root only", n)
	}
}
