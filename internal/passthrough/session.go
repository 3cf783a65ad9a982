package passthrough

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// session is the state of one FUSE session with the guest: the inode and
// handle tables, the ID allocators and the flags negotiated at INIT. The FS
// (configuration and host resources: descriptors on the shared directory,
// /proc and mountinfo, the mount descriptor table, the guest-fd budget)
// serves whichever session is current.
//
// A session is built in one of two ways and then installed whole:
//   - by FUSE INIT (FS.Init): a root record and the negotiated flags;
//   - by loading a migration stream (FS.loadState): every record the
//     source described, with its node ID and lookup count, the open
//     handles, the allocators and the negotiated flags.
//
// It is walked for saving by FS.saveState. DESTROY (and INIT or a load
// replacing it) retires it: the tables are emptied, the records released,
// and the session is marked dead so that a request still in flight cannot
// index a new record in it (it goes to the current session instead).
type session struct {
	// mu is one mutex for the whole inode table, held only for map
	// operations. Measured with BenchmarkLookupParallel and
	// BenchmarkGetattrParallel (2 CPUs, -mutexprofile): under 0.1% of the
	// run time is spent waiting for it, the system calls dominate, so
	// striping would buy nothing.
	mu     sync.Mutex
	inodes map[uint64]*inode   // guarded by mu
	byKey  map[inodeKey]*inode // guarded by mu
	// byHandle indexes the records held as file handles; guarded by mu.
	byHandle map[fileHandle]*inode
	// failed holds the inodes a migration destination could not restore
	// under --migration-on-error=guest-error, by node ID; guarded by mu.
	// Every request on one gets the recorded error; FORGET works as usual.
	failed map[uint64]*failedInode
	// dead is set (under mu and hmu) when the session is retired.
	dead bool

	hmu     sync.Mutex
	handles map[uint64]*handle // guarded by hmu
	// failedHandles are the handles a migration destination could not
	// reopen (guest-error policy); guarded by hmu. Requests on one get the
	// recorded error; RELEASE removes it.
	failedHandles map[uint64]*failedHandle
	hdead         bool // dead, as seen under hmu

	// nextNode and nextHandle hand out node and handle IDs. A session
	// that replaces another continues its counters (DESTROY does not reset
	// them), so IDs are never reused while the daemon lives.
	nextNode   atomic.Uint64
	nextHandle atomic.Uint64

	// Negotiated at INIT, or restored from a migration stream.
	writeback  atomic.Bool
	announce   atomic.Bool
	suppGroups atomic.Bool

	// track is set while a migration is prepared: requests keep the
	// records' migration infos current (migrate_save.go). Written under mu.
	track atomic.Bool
}

// newSession returns an empty session whose allocators continue those of
// prev (nil: the first session, node IDs from 2 and handles from 0).
func newSession(prev *session) *session {
	s := &session{
		inodes:   make(map[uint64]*inode),
		byKey:    make(map[inodeKey]*inode),
		byHandle: make(map[fileHandle]*inode),
		handles:  make(map[uint64]*handle),

		failed:        make(map[uint64]*failedInode),
		failedHandles: make(map[uint64]*failedHandle),
	}
	if prev != nil {
		s.nextNode.Store(prev.nextNode.Load())
		s.nextHandle.Store(prev.nextHandle.Load())
	} else {
		s.nextNode.Store(RootID + 1)
	}
	return s
}

// failedInode is an inode a migration destination could not restore.
type failedInode struct {
	nodeid  uint64
	lookups uint64 // guarded by the session's mu
	err     unix.Errno
}

// failedHandle is a handle a migration destination could not reopen. flags
// are kept so that a later migration forwards the handle unchanged.
type failedHandle struct {
	id, nodeid uint64
	flags      int32
	err        unix.Errno
}

// insertLocked indexes in.
//
// Preconditions: s.mu is held and s is not dead.
func (s *session) insertLocked(in *inode) {
	s.inodes[in.nodeid] = in
	s.byKey[in.key] = in
	if in.fh != nil {
		s.byHandle[*in.fh] = in
	}
}

// unindexLocked removes in from the tables.
//
// Preconditions: s.mu is held and in is indexed.
func (s *session) unindexLocked(in *inode) {
	delete(s.inodes, in.nodeid)
	if cur, ok := s.byKey[in.key]; ok && cur == in {
		delete(s.byKey, in.key)
	}
	if in.fh != nil {
		if cur, ok := s.byHandle[*in.fh]; ok && cur == in {
			delete(s.byHandle, *in.fh)
		}
	}
}

// findLocked returns the indexed record for an object with identity key
// and, if fh is not nil, file handle fh: by handle first, then by key, but
// a key hit only counts if that record holds an O_PATH descriptor (a record
// held as a handle does not pin its inode, whose number may since have been
// given to another object).
//
// Preconditions: s.mu is held.
func (s *session) findLocked(key inodeKey, fh *fileHandle) *inode {
	if fh != nil {
		if in := s.byHandle[*fh]; in != nil {
			return in
		}
	}
	if in := s.byKey[key]; in != nil && in.fd >= 0 {
		return in
	}
	return nil
}

// retire marks s dead and empties it, returning what it held so that the
// caller releases the table's references (FS.releaseAll).
func (s *session) retire() ([]*inode, []*handle) {
	s.hmu.Lock()
	s.hdead = true
	handles := make([]*handle, 0, len(s.handles))
	for _, h := range s.handles {
		handles = append(handles, h)
	}
	s.handles = make(map[uint64]*handle)
	s.failedHandles = make(map[uint64]*failedHandle)
	s.hmu.Unlock()

	s.mu.Lock()
	s.dead = true
	inodes := make([]*inode, 0, len(s.inodes))
	for _, in := range s.inodes {
		in.lookups = 0
		inodes = append(inodes, in)
	}
	s.inodes = make(map[uint64]*inode)
	s.byKey = make(map[inodeKey]*inode)
	s.byHandle = make(map[fileHandle]*inode)
	s.failed = make(map[uint64]*failedInode)
	s.mu.Unlock()
	return inodes, handles
}
