package passthrough

import (
	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// Tracking: while a migration is prepared (session.track), requests keep
// the migration infos current, so that the save finds little to repair.
// Every hook runs only when tracking is on; the request paths pay one
// atomic load otherwise. The save re-checks every path anyway, so a change
// that slips between a hook's check and the preparation is repaired there.

// keyAt fills key with the identity of dirfd/name (final symbolic link not
// followed); false if it cannot be examined.
func keyAt(dirfd int, name *byte, key *inodeKey) bool {
	var stx unix.Statx_t
	if sysStatx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &stx) != 0 {
		return false
	}
	*key = keyOf(&stx)
	return true
}

// guestName returns a guest name without its NUL.
func guestName(name fuse.Name) string { return string(name[:len(name)-1]) }

// trackLookup gives record nodeid, just looked up as name under parent, an
// info if it has none.
func (fs *FS) trackLookup(s *session, parent *inode, name fuse.Name, nodeid uint64) {
	in := s.get(nodeid)
	if in == nil {
		return
	}
	defer fs.putInode(in)
	s.mu.Lock()
	has := in.mig != nil
	s.mu.Unlock()
	if has {
		return
	}
	if fs.cfg.MigrationMode == MigrateFileHandles {
		fs.attachHandle(s, in)
		return
	}
	fs.attachPath(s, in, parent, guestName(name), false)
}

// byKey returns the record of s for key with a reference, or nil.
func (s *session) byKeyRef(key inodeKey) *inode {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.byKey[key]
	if in != nil {
		in.refs.Add(1)
	}
	return in
}

// trackRemoved handles the removal of name from parent, which named the
// object key: a record whose info is that name loses it and gets another
// one from /proc/self/fd if it is still reachable (another hard link).
func (fs *FS) trackRemoved(s *session, key inodeKey, parent *inode, name fuse.Name) {
	if fs.cfg.MigrationMode == MigrateFileHandles {
		return // a file handle outlives its names
	}
	in := s.byKeyRef(key)
	if in == nil {
		return
	}
	defer fs.putInode(in)
	n := guestName(name)
	s.mu.Lock()
	var chain *inode
	dropped := false
	if info := in.mig; info != nil && info.parent == parent && info.name == n {
		chain = s.dropInfoLocked(in, nil)
		dropped = true
	}
	s.mu.Unlock()
	fs.putChain(chain)
	if dropped {
		w := fs.newWalker(s, nil)
		defer w.close()
		w.derive(in)
	}
}

// trackRenamed handles a successful rename of olddir/oldname (object a) to
// newdir/newname (object b before the rename, if hasB): b, if replaced,
// is handled like a removal; with exchange it moves to the old name.
func (fs *FS) trackRenamed(s *session, a, b inodeKey, hasB bool, olddir *inode, oldname fuse.Name,
	newdir *inode, newname fuse.Name, exchange bool) {
	if fs.cfg.MigrationMode == MigrateFileHandles {
		return
	}
	if hasB && b != a {
		if exchange {
			if in := s.byKeyRef(b); in != nil {
				fs.attachPath(s, in, olddir, guestName(oldname), true)
				fs.putInode(in)
			}
		} else {
			fs.trackRemoved(s, b, newdir, newname)
		}
	}
	if in := s.byKeyRef(a); in != nil {
		fs.attachPath(s, in, newdir, guestName(newname), true)
		fs.putInode(in)
	}
}
