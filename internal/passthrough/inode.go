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
// Immutable after insertion: nodeid, key, mode, fd. lookups is protected by
// FS.mu. refs is atomic.
type inode struct {
	nodeid uint64
	key    inodeKey
	// mode holds the file type bits (S_IFMT) seen at discovery.
	mode uint32
	// fd is the O_PATH descriptor on the object; closed when refs drops
	// to zero. A record created from a file handle (--inode-file-handles)
	// will have fd == -1 and carry the handle and its mount ID instead.
	fd int
	// lookups is the guest's lookup count. An indexed record always has
	// lookups > 0.
	lookups uint64
	// refs counts the table's reference (while indexed) plus one per
	// request currently using fd.
	refs atomic.Int32
	// charged tells whether fd occupies a guest-fd slot.
	charged bool
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
// caller must drop with putInode, or nil.
func (fs *FS) getInode(nodeid uint64) *inode {
	fs.mu.Lock()
	in := fs.inodes[nodeid]
	if in != nil {
		in.refs.Add(1)
	}
	fs.mu.Unlock()
	return in
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
	if in.charged {
		fs.uncharge()
	}
}

// forgetLocked subtracts n from the lookup count of in, saturating at
// zero, and unindexes it at zero. It reports whether the caller must drop
// the table's reference (after unlocking).
//
// Preconditions: fs.mu is held and in is indexed.
func (fs *FS) forgetLocked(in *inode, n uint64) bool {
	if n >= in.lookups {
		in.lookups = 0
		delete(fs.inodes, in.nodeid)
		if cur, ok := fs.byKey[in.key]; ok && cur == in {
			delete(fs.byKey, in.key)
		}
		return true
	}
	in.lookups -= n
	return false
}

// Forget implements fuse.FileSystem.Forget.
func (fs *FS) Forget(nodeid, nlookup uint64) {
	fs.mu.Lock()
	in := fs.inodes[nodeid]
	drop := in != nil && fs.forgetLocked(in, nlookup)
	fs.mu.Unlock()
	if drop {
		fs.putInode(in)
	}
}

// addEntry registers the object open at fd (an O_PATH descriptor the caller
// hands over) with identity key and type mode, or adds one lookup to the
// existing record for it, and returns the record with a reference for the
// caller. fd is consumed in every case. ENFILE when a new record would exceed
// the guest-fd budget.
func (fs *FS) addEntry(fd int, key inodeKey, mode uint32) (*inode, unix.Errno) {
	fs.mu.Lock()
	if in := fs.byKey[key]; in != nil {
		in.lookups++
		in.refs.Add(1)
		fs.mu.Unlock()
		unix.Close(fd)
		return in, 0
	}
	fs.mu.Unlock()

	// Not known: charge a slot and build the record outside the lock,
	// then insert; a concurrent insert of the same object wins and this
	// tentative record is dropped (its node ID is simply never used).
	if !fs.charge() {
		unix.Close(fd)
		return nil, unix.ENFILE
	}
	in := &inode{
		nodeid:  fs.nextNode.Add(1) - 1,
		key:     key,
		mode:    mode & unix.S_IFMT,
		fd:      fd,
		lookups: 1,
		charged: true,
	}
	in.refs.Store(2) // the table's and the caller's
	fs.mu.Lock()
	if won := fs.byKey[key]; won != nil {
		won.lookups++
		won.refs.Add(1)
		fs.mu.Unlock()
		fs.closeInode(in)
		return won, 0
	}
	fs.inodes[in.nodeid] = in
	fs.byKey[key] = in
	fs.mu.Unlock()
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
