package passthrough

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// RootID is the node ID of the shared directory.
const RootID uint64 = 1

// inodeKey identifies a host object: inode number, device and mount ID. The
// mount ID separates bind mounts of the same file system (equal st_dev).
type inodeKey struct {
	ino   uint64
	dev   uint64
	mntID uint64
}

// inode is one entry of the inode table.
//
// Immutable after insertion: nodeid, key, mode, fd, fh, mnt. lookups is
// protected by the mu of the session that indexes the record. refs is
// atomic.
type inode struct {
	nodeid uint64
	key    inodeKey
	// mode holds the file type bits (S_IFMT) seen at discovery.
	mode uint32
	// fd is the O_PATH descriptor on the object; closed when refs drops
	// to zero. A record held as a file handle (--inode-file-handles) has
	// fd == -1 and carries the handle and its mount's descriptor instead.
	fd int
	// fh is the file handle (nil for an O_PATH record) and mnt the shared
	// descriptor of its mount, released when refs drops to zero.
	fh  *fileHandle
	mnt *mountFD
	// lookups is the guest's lookup count. An indexed record always has
	// lookups > 0.
	lookups uint64
	// refs counts the table's reference (while indexed) plus one per
	// request currently using fd.
	refs atomic.Int32
	// charged tells whether fd occupies a guest-fd slot.
	charged bool
	// mig is where a migration destination finds the object again,
	// attached while a migration is prepared (migrate_save.go); nil
	// otherwise. A Path info holds one lookup on its parent. Guarded by
	// the session's mu.
	mig *migInfo
	// dropNext chains the records unindexed together when migration
	// infos are released; guarded by the session's mu.
	dropNext *inode
}

func (i *inode) isDir() bool { return i.mode&unix.S_IFMT == unix.S_IFDIR }

// safeToOpen reports whether the object may be opened for real: only
// regular files and directories, so that the daemon never blocks on a FIFO
// or triggers a device's side effects.
func (i *inode) safeToOpen() bool {
	t := i.mode & unix.S_IFMT
	return t == unix.S_IFREG || t == unix.S_IFDIR
}

// getInode returns the indexed record for nodeid with a reference the
// caller must drop with putInode. Otherwise it returns the error to answer:
// the recorded one for an inode a migration could not restore, EBADF for an
// unknown node.
func (fs *FS) getInode(nodeid uint64) (*inode, unix.Errno) {
	s := fs.cur()
	s.mu.Lock()
	in := s.inodes[nodeid]
	if in != nil {
		in.refs.Add(1)
		s.mu.Unlock()
		return in, 0
	}
	e := unix.EBADF
	if f := s.failed[nodeid]; f != nil {
		e = f.err
	}
	s.mu.Unlock()
	return nil, e
}

// putInode drops a reference; the last one closes the descriptor and
// returns its guest-fd slot.
func (fs *FS) putInode(in *inode) {
	if in.refs.Add(-1) == 0 {
		fs.closeInode(in)
	}
}

func (fs *FS) closeInode(in *inode) {
	if in.fd >= 0 {
		unix.Close(in.fd)
	}
	if in.mnt != nil {
		fs.putMount(in.mnt)
	}
	if in.charged {
		fs.uncharge()
	}
}

// forgetLocked subtracts n from the lookup count of in, saturating at
// zero, and unindexes it at zero. It reports whether the caller must drop
// the table's reference (after unlocking).
//
// Preconditions: s.mu is held and in is indexed in s.
func (s *session) forgetLocked(in *inode, n uint64) bool {
	if n >= in.lookups {
		in.lookups = 0
		s.unindexLocked(in)
		return true
	}
	in.lookups -= n
	return false
}

// Forget implements fuse.FileSystem.Forget.
func (fs *FS) Forget(nodeid, nlookup uint64) {
	s := fs.cur()
	s.mu.Lock()
	in := s.inodes[nodeid]
	drop := in != nil && s.forgetLocked(in, nlookup)
	var chain *inode
	if drop && in.mig != nil {
		chain = s.dropInfoLocked(in, nil)
	}
	if f := s.failed[nodeid]; in == nil && f != nil {
		if nlookup >= f.lookups {
			delete(s.failed, nodeid)
		} else {
			f.lookups -= nlookup
		}
	}
	s.mu.Unlock()
	if drop {
		fs.putInode(in)
	}
	fs.putChain(chain)
}

// addEntry registers the object open at fd (an O_PATH descriptor the caller
// hands over) with identity key, type mode and, if not nil, file handle fh,
// or adds one lookup to the existing record for it, and returns the record
// with a reference for the caller. fd is consumed in every case. A record
// with a file handle keeps no descriptor and takes no guest-fd slot; one
// without takes a slot (ENFILE when the budget is exhausted).
func (fs *FS) addEntry(fd int, key inodeKey, mode uint32, fh *fileHandle) (*inode, unix.Errno) {
	return fs.addEntryTo(fs.cur(), true, fd, key, mode, fh)
}

// addEntryTo is addEntry in session s. If s is retired meanwhile, the
// record goes to the current session when follow is set (a guest request
// racing with DESTROY or INIT: the record must not be left in a table
// nobody releases), and the call fails with EBADF otherwise (a migration
// walk over s, which has no business in another session).
func (fs *FS) addEntryTo(s *session, follow bool, fd int, key inodeKey, mode uint32, fh *fileHandle) (*inode, unix.Errno) {
	s.mu.Lock()
	if s.dead && !follow {
		s.mu.Unlock()
		unix.Close(fd)
		return nil, unix.EBADF
	}
	if in := s.findLocked(key, fh); in != nil {
		in.lookups++
		in.refs.Add(1)
		s.mu.Unlock()
		unix.Close(fd)
		return in, 0
	}
	s.mu.Unlock()

	// Not known: build the record outside the lock, then insert; a
	// concurrent insert of the same object wins and this tentative record
	// is dropped.
	in, e := fs.newInode(fd, key, mode, fh)
	if e != 0 {
		return nil, e
	}
	in.lookups = 1
	in.refs.Store(2) // the table's and the caller's
	return fs.indexNew(s, follow, in, key, fh)
}

// indexNew indexes the new record in (one lookup, the table's and the
// caller's references) in session s, unless s already has a record for the
// same object: then in is dropped and the existing record returned with one
// more lookup and a reference for the caller. A session retired meanwhile
// is handled as addEntryTo says.
func (fs *FS) indexNew(s *session, follow bool, in *inode, key inodeKey, fh *fileHandle) (*inode, unix.Errno) {
	for {
		s.mu.Lock()
		if !s.dead {
			break
		}
		s.mu.Unlock()
		if !follow {
			fs.closeInode(in)
			return nil, unix.EBADF
		}
		s = fs.cur()
	}
	if won := s.findLocked(key, fh); won != nil {
		won.lookups++
		won.refs.Add(1)
		s.mu.Unlock()
		fs.closeInode(in)
		return won, 0
	}
	in.nodeid = s.nextNode.Add(1) - 1
	s.insertLocked(in)
	s.mu.Unlock()
	return in, 0
}

// describe fills stx for the object open at the O_PATH descriptor fd and
// makes its file handle in fh when the file handle mode wants one, which it
// returns (nil: the record is to keep fd). On error fd is closed.
func (fs *FS) describe(fd int, stx *unix.Statx_t, fh *fileHandle) (*fileHandle, unix.Errno) {
	if e := statxFD(fd, stx); e != 0 {
		unix.Close(fd)
		return nil, e
	}
	hasFH, e := fs.handleFor(fd, stx, fh)
	if e != 0 {
		unix.Close(fd)
		return nil, e
	}
	if !hasFH {
		return nil, 0
	}
	return fh, 0
}

// newInode builds an unindexed record (no node ID, counts zero) for the
// object open at the O_PATH descriptor fd, which it consumes: with a file
// handle the descriptor is closed and the mount's shared descriptor taken,
// without one the descriptor is kept and a guest-fd slot charged.
func (fs *FS) newInode(fd int, key inodeKey, mode uint32, fh *fileHandle) (*inode, unix.Errno) {
	in := &inode{key: key, mode: mode & unix.S_IFMT, fd: fd}
	if fh != nil {
		m, e := fs.getMount(fh.mntID)
		unix.Close(fd)
		if e != 0 {
			return nil, e
		}
		h := *fh
		in.fd, in.fh, in.mnt = -1, &h, m
		return in, 0
	}
	if !fs.charge() {
		unix.Close(fd)
		return nil, unix.ENFILE
	}
	in.charged = true
	return in, 0
}

// keyOf returns the identity key of a statx result.
func keyOf(stx *unix.Statx_t) inodeKey {
	k := inodeKey{ino: stx.Ino, dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor)}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		k.mntID = stx.Mnt_id
	}
	return k
}
