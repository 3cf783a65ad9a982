package passthrough

import (
	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// openName opens the guest name under the directory dirfd, never
// following a symbolic link and never leaving the directory.
func (fs *FS) openName(dirfd int, name fuse.Name, flags int, mode uint32) (int, unix.Errno) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if fs.useOpenat2 {
		return sysOpenat2(dirfd, ptr(name), uint64(flags), uint64(mode&07777),
			unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	}
	return sysOpenat(dirfd, ptr(name), flags, mode)
}

// reopen opens in's object for real: an O_PATH record through
// /proc/self/fd, a file handle record with open_by_handle_at. Only regular
// files and directories are opened (EBADF otherwise).
func (fs *FS) reopen(in *inode, flags int) (int, unix.Errno) {
	if !in.safeToOpen() {
		return -1, unix.EBADF
	}
	flags = (flags | unix.O_CLOEXEC) &^ unix.O_NOFOLLOW
	if in.fd < 0 {
		return sysOpenByHandleAt(in.mnt.fd, &in.fh.raw, flags)
	}
	var pn procName
	return sysOpenat(fs.procFD, pn.set(in.fd), flags, 0)
}

// lookup resolves name under parent and fills out, adding one lookup to
// the entry.
func (fs *FS) lookup(parent *inode, name fuse.Name, out *fuse.EntryOut) unix.Errno {
	fd, e := fs.openChild(parent, name, unix.O_PATH)
	if e != 0 {
		return e
	}
	if e := fs.entryFromFD(parent, fd, out); e != 0 {
		return e
	}
	if s := fs.cur(); s.track.Load() {
		fs.trackLookup(s, parent, name, out.NodeID)
	}
	return 0
}

// openChild opens the guest name under parent with openName.
func (fs *FS) openChild(parent *inode, name fuse.Name, flags int) (int, unix.Errno) {
	pfd, e := fs.pathFD(parent)
	if e != 0 {
		return -1, e
	}
	defer fs.donePath(parent, pfd)
	return fs.openName(pfd, name, flags, 0)
}

// entryFromFD registers the object open at the O_PATH descriptor fd (which
// it consumes) as a child of parent and fills out.
func (fs *FS) entryFromFD(parent *inode, fd int, out *fuse.EntryOut) unix.Errno {
	var stx unix.Statx_t
	var fh fileHandle
	fhp, e := fs.describe(fd, &stx, &fh)
	if e != 0 {
		return e
	}
	key := keyOf(&stx)
	in, e := fs.addEntry(fd, key, uint32(stx.Mode), fhp)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	out.NodeID = in.nodeid
	out.Generation = 0
	out.EntryValid = fs.timeoutSec
	out.EntryValidNsec = fs.timeoutNsec
	out.AttrValid = fs.timeoutSec
	out.AttrValidNsec = fs.timeoutNsec
	fillAttr(&out.Attr, &stx)
	if fs.cur().announce.Load() && in.isDir() && (key.dev != parent.key.dev || key.mntID != parent.key.mntID) {
		out.Attr.Flags |= fuse.FUSE_ATTR_SUBMOUNT
	}
	return 0
}

// Lookup implements fuse.FileSystem.Lookup.
func (fs *FS) Lookup(c *fuse.Context, parent uint64, name fuse.Name, out *fuse.EntryOut) unix.Errno {
	if !checkName(name) {
		return unix.EINVAL
	}
	p, e := fs.getInode(parent)
	if e != 0 {
		return e
	}
	defer fs.putInode(p)
	return fs.lookup(p, name, out)
}

// Getattr implements fuse.FileSystem.Getattr.
func (fs *FS) Getattr(c *fuse.Context, nodeid uint64, out *fuse.AttrOut) unix.Errno {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	return fs.getattr(in, out)
}

func (fs *FS) getattr(in *inode, out *fuse.AttrOut) unix.Errno {
	var stx unix.Statx_t
	if e := fs.statx(in, &stx); e != 0 {
		return e
	}
	out.AttrValid = fs.timeoutSec
	out.AttrValidNsec = fs.timeoutNsec
	fillAttr(&out.Attr, &stx)
	return 0
}

// Setattr implements fuse.FileSystem.Setattr. The steps run in the
// reference's order (mode, owner, size, times); the first failure is
// returned and earlier steps stay applied.
func (fs *FS) Setattr(c *fuse.Context, nodeid uint64, sin *fuse.SetattrIn, out *fuse.AttrOut) unix.Errno {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	valid := sin.Valid

	var h *handle
	if valid&fuse.FATTR_FH != 0 {
		if h, e = fs.getHandle(nodeid, sin.Fh); e != 0 {
			return e
		}
		defer fs.putHandle(h)
	}
	var inodeFD int
	if h == nil && valid&fuse.FATTR_SIZE != 0 {
		fd, e := fs.reopen(in, unix.O_RDWR|unix.O_NONBLOCK)
		if e != 0 {
			return e
		}
		defer unix.Close(fd)
		inodeFD = fd
	} else {
		fd, e := fs.pathFD(in)
		if e != 0 {
			return e
		}
		defer fs.donePath(in, fd)
		inodeFD = fd
	}
	var pn procName

	if valid&fuse.FATTR_MODE != 0 {
		var e unix.Errno
		if h != nil {
			e = errno(unix.Fchmod(h.fd, sin.Mode))
		} else {
			e = sysFchmodat(fs.procFD, pn.set(inodeFD), sin.Mode)
		}
		if e != 0 {
			return e
		}
	}
	if valid&(fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		uid, gid := ^uint32(0), ^uint32(0)
		if valid&fuse.FATTR_UID != 0 {
			uid = sin.UID
		}
		if valid&fuse.FATTR_GID != 0 {
			gid = sin.GID
		}
		if e := sysFchownat(inodeFD, &emptyPath[0], uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); e != 0 {
			return e
		}
	}
	if valid&fuse.FATTR_SIZE != 0 {
		fd := inodeFD
		if h != nil {
			fd = h.fd
		}
		if e := fs.ftruncateKillPriv(fd, int64(sin.Size), valid&fuse.FATTR_KILL_SUIDGID != 0); e != 0 {
			return e
		}
	}
	if valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 {
		ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if valid&fuse.FATTR_ATIME_NOW != 0 {
			ts[0].Nsec = unix.UTIME_NOW
		} else if valid&fuse.FATTR_ATIME != 0 {
			ts[0] = unix.Timespec{Sec: int64(sin.Atime), Nsec: int64(sin.Atimensec)}
		}
		if valid&fuse.FATTR_MTIME_NOW != 0 {
			ts[1].Nsec = unix.UTIME_NOW
		} else if valid&fuse.FATTR_MTIME != 0 {
			ts[1] = unix.Timespec{Sec: int64(sin.Mtime), Nsec: int64(sin.Mtimensec)}
		}
		var e unix.Errno
		if h != nil {
			e = sysUtimensat(h.fd, nil, &ts, 0)
		} else {
			e = sysUtimensat(fs.procFD, pn.set(inodeFD), &ts, 0)
		}
		if e != 0 {
			return e
		}
	}
	return fs.getattr(in, out)
}

// Readlink implements fuse.FileSystem.Readlink.
func (fs *FS) Readlink(c *fuse.Context, nodeid uint64, buf []byte) (int, unix.Errno) {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return 0, e
	}
	defer fs.putInode(in)
	if len(buf) == 0 {
		return 0, unix.EINVAL
	}
	fd, e := fs.pathFD(in)
	if e != 0 {
		return 0, e
	}
	defer fs.donePath(in, fd)
	return sysReadlinkat(fd, &emptyPath[0], buf)
}

// statx fills stx for in's object.
func (fs *FS) statx(in *inode, stx *unix.Statx_t) unix.Errno {
	fd, e := fs.pathFD(in)
	if e != 0 {
		return e
	}
	defer fs.donePath(in, fd)
	return statxFD(fd, stx)
}

// create runs mk, which creates name under parent, with the requesting
// guest user's credentials, then looks the new object up.
func (fs *FS) create(c *fuse.Context, parent uint64, name fuse.Name, out *fuse.EntryOut, mk func(dirfd int, name *byte) unix.Errno) unix.Errno {
	if !checkName(name) {
		return unix.EINVAL
	}
	p, e := fs.getInode(parent)
	if e != 0 {
		return e
	}
	defer fs.putInode(p)
	pfd, e := fs.pathFD(p)
	if e != 0 {
		return e
	}
	defer fs.donePath(p, pfd)
	if e := fs.mkAsGuest(c, pfd, ptr(name), mk); e != 0 {
		return e
	}
	return fs.lookup(p, name, out)
}

// mkAsGuest runs mk(dirfd, name) with the calling thread's credentials
// switched to the requesting guest user's. The restore is deferred before
// the switch, so it runs on every path, a panic in mk included (the FUSE
// server recovers panics and goes on serving with this thread).
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (fs *FS) mkAsGuest(c *fuse.Context, dirfd int, name *byte, mk func(dirfd int, name *byte) unix.Errno) unix.Errno {
	var g credGuard
	defer g.restore()
	if e := fs.switchCreds(c, &g); e != 0 {
		return e
	}
	if e := fs.runPrivHook(); e != 0 {
		return e
	}
	return mk(dirfd, name)
}

// createAsGuest is the creating open of CREATE, with the guest user's
// credentials like mkAsGuest.
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (fs *FS) createAsGuest(c *fuse.Context, dirfd int, name fuse.Name, flags int, mode uint32) (int, unix.Errno) {
	var g credGuard
	defer g.restore()
	if e := fs.switchCreds(c, &g); e != 0 {
		return -1, e
	}
	if e := fs.runPrivHook(); e != 0 {
		return -1, e
	}
	return fs.openName(dirfd, name, flags, mode)
}

// withoutFsetid removes CAP_FSETID from the calling thread's effective set
// when kill is set and --killpriv-v2 is on, as dropFsetid does, saving the
// sets in cs. It reports whether it did; if so the caller defers
// fs.restoreCaps(cs) at once, so that the capability comes back on every
// path. (A deferred call, not a closure, so that nothing is allocated.)
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (fs *FS) withoutFsetid(kill bool, cs *capState) (restore bool) {
	return kill && fs.cfg.KillprivV2 && fs.dropFsetid(cs)
}

// ftruncateKillPriv truncates fd, without CAP_FSETID if kill is set (and
// --killpriv-v2 is on); the capability is back on every path.
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (fs *FS) ftruncateKillPriv(fd int, size int64, kill bool) unix.Errno {
	var cs capState
	if fs.withoutFsetid(kill, &cs) {
		defer fs.restoreCaps(&cs)
	}
	if e := fs.runPrivHook(); e != 0 {
		return e
	}
	return errno(unix.Ftruncate(fd, size))
}

// reopenKillPriv is reopen, without CAP_FSETID if kill is set (and
// --killpriv-v2 is on), so that O_TRUNC clears the set-user-ID and
// set-group-ID bits; the capability is back on every path.
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (fs *FS) reopenKillPriv(in *inode, flags int, kill bool) (int, unix.Errno) {
	var cs capState
	if fs.withoutFsetid(kill, &cs) {
		defer fs.restoreCaps(&cs)
	}
	if e := fs.runPrivHook(); e != 0 {
		return -1, e
	}
	return fs.reopen(in, flags)
}

// runPrivHook runs the test hook FS.privHook, if set.
func (fs *FS) runPrivHook() unix.Errno {
	if fs.privHook != nil {
		return fs.privHook()
	}
	return 0
}

// Symlink implements fuse.FileSystem.Symlink.
func (fs *FS) Symlink(c *fuse.Context, parent uint64, name fuse.Name, target []byte, out *fuse.EntryOut) unix.Errno {
	// An empty target (just the NUL) is left to symlinkat(2), which
	// answers ENOENT.
	if len(target) < 1 || target[len(target)-1] != 0 {
		return unix.EINVAL
	}
	return fs.create(c, parent, name, out, func(dirfd int, name *byte) unix.Errno {
		return sysSymlinkat(ptr(target), dirfd, name)
	})
}

// Mknod implements fuse.FileSystem.Mknod. The guest's 32-bit device number
// is the kernel's own encoding and is passed unchanged.
func (fs *FS) Mknod(c *fuse.Context, parent uint64, name fuse.Name, in *fuse.MknodIn, out *fuse.EntryOut) unix.Errno {
	mode, rdev := in.Mode, in.Rdev
	return fs.create(c, parent, name, out, func(dirfd int, name *byte) unix.Errno {
		return sysMknodat(dirfd, name, mode, rdev)
	})
}

// Mkdir implements fuse.FileSystem.Mkdir.
func (fs *FS) Mkdir(c *fuse.Context, parent uint64, name fuse.Name, in *fuse.MkdirIn, out *fuse.EntryOut) unix.Errno {
	mode := in.Mode
	return fs.create(c, parent, name, out, func(dirfd int, name *byte) unix.Errno {
		return sysMkdirat(dirfd, name, mode)
	})
}

func (fs *FS) unlink(parent uint64, name fuse.Name, flags int) unix.Errno {
	if !checkName(name) {
		return unix.EINVAL
	}
	p, e := fs.getInode(parent)
	if e != 0 {
		return e
	}
	defer fs.putInode(p)
	pfd, e := fs.pathFD(p)
	if e != 0 {
		return e
	}
	defer fs.donePath(p, pfd)
	// While a migration is prepared, the victim is identified before the
	// removal so that its migration info can be repaired after it.
	s := fs.cur()
	var victim inodeKey
	tracked := s.track.Load() && keyAt(pfd, ptr(name), &victim)
	if e := sysUnlinkat(pfd, ptr(name), flags); e != 0 {
		return e
	}
	if tracked {
		fs.trackRemoved(s, victim, p, name)
	}
	return 0
}

// Unlink implements fuse.FileSystem.Unlink.
func (fs *FS) Unlink(c *fuse.Context, parent uint64, name fuse.Name) unix.Errno {
	return fs.unlink(parent, name, 0)
}

// Rmdir implements fuse.FileSystem.Rmdir.
func (fs *FS) Rmdir(c *fuse.Context, parent uint64, name fuse.Name) unix.Errno {
	return fs.unlink(parent, name, unix.AT_REMOVEDIR)
}

// Rename implements fuse.FileSystem.Rename.
func (fs *FS) Rename(c *fuse.Context, olddir uint64, oldname fuse.Name, newdir uint64, newname fuse.Name, flags uint32) unix.Errno {
	if !checkName(oldname) || !checkName(newname) {
		return unix.EINVAL
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE|unix.RENAME_WHITEOUT) != 0 {
		return unix.EINVAL
	}
	var pp pathPair
	if e := fs.getPathPair(&pp, olddir, newdir); e != 0 {
		return e
	}
	defer fs.putPathPair(&pp)
	// While a migration is prepared, the objects involved are identified
	// before the rename so that their migration infos follow it.
	s := fs.cur()
	var moved, victim inodeKey
	tracked, hasVictim := false, false
	if s.track.Load() {
		tracked = keyAt(pp.fd[0], ptr(oldname), &moved)
		hasVictim = keyAt(pp.fd[1], ptr(newname), &victim)
	}
	if e := sysRenameat2(pp.fd[0], ptr(oldname), pp.fd[1], ptr(newname), flags); e != 0 {
		return e
	}
	if tracked {
		fs.trackRenamed(s, moved, victim, hasVictim, pp.in[0], oldname, pp.in[1], newname,
			flags&unix.RENAME_EXCHANGE != 0)
	}
	return 0
}

// pathPair holds references to two inodes and a descriptor usable as
// an O_PATH fd for each, for the operations that name two nodes.
type pathPair struct {
	in [2]*inode
	fd [2]int
}

// getPathPair fills pp for the node IDs a and b: the error of getInode
// for either, or the error of opening a handle-held inode. On error nothing is held.
func (fs *FS) getPathPair(pp *pathPair, a, b uint64) unix.Errno {
	*pp = pathPair{fd: [2]int{-1, -1}}
	for i, id := range [2]uint64{a, b} {
		var e unix.Errno
		if pp.in[i], e = fs.getInode(id); e != 0 {
			fs.putPathPair(pp)
			return e
		}
	}
	for i := range pp.in {
		fd, e := fs.pathFD(pp.in[i])
		if e != 0 {
			fs.putPathPair(pp)
			return e
		}
		pp.fd[i] = fd
	}
	return 0
}

// putPathPair releases what getPathPair took, in reverse order.
func (fs *FS) putPathPair(pp *pathPair) {
	for i := 1; i >= 0; i-- {
		if pp.fd[i] >= 0 {
			fs.donePath(pp.in[i], pp.fd[i])
		}
	}
	for i := 1; i >= 0; i-- {
		if pp.in[i] != nil {
			fs.putInode(pp.in[i])
		}
	}
	*pp = pathPair{fd: [2]int{-1, -1}}
}

// Link implements fuse.FileSystem.Link. The link is made from the
// inode's descriptor through /proc/self/fd, so no path to the source is
// ever resolved.
func (fs *FS) Link(c *fuse.Context, nodeid, newparent uint64, newname fuse.Name, out *fuse.EntryOut) unix.Errno {
	if !checkName(newname) {
		return unix.EINVAL
	}
	var pp pathPair
	if e := fs.getPathPair(&pp, nodeid, newparent); e != 0 {
		return e
	}
	defer fs.putPathPair(&pp)
	var pn procName
	if e := sysLinkat(fs.procFD, pn.set(pp.fd[0]), pp.fd[1], ptr(newname), unix.AT_SYMLINK_FOLLOW); e != 0 {
		return e
	}
	return fs.lookup(pp.in[1], newname, out)
}

// openFlags normalises the flags of a guest OPEN: appends are emulated per
// write (RWF_APPEND), O_NOATIME is dropped unless preserved, with the
// writeback cache a write-only open becomes read-write (the guest page
// cache reads too), and O_DIRECT is dropped unless allowed.
func (fs *FS) openFlags(flags uint32) int {
	return fs.openFlagsFor(flags, fs.cur().writeback.Load())
}

// openFlagsFor is openFlags for a session whose writeback flag is
// writeback (a migration destination builds its session before installing
// it).
func (fs *FS) openFlagsFor(flags uint32, writeback bool) int {
	f := int(flags) &^ unix.O_APPEND
	if !fs.cfg.PreserveNoatime {
		f &^= unix.O_NOATIME
	}
	if writeback && f&unix.O_ACCMODE == unix.O_WRONLY {
		f = f&^unix.O_ACCMODE | unix.O_RDWR
	}
	if !fs.cfg.AllowDirectIO {
		f &^= unix.O_DIRECT
	}
	return f | unix.O_CLOEXEC
}

// openOutFlags returns FOPEN_* flags for the cache policy (§3.6).
func (fs *FS) openOutFlags(dir bool) uint32 {
	switch fs.cfg.Cache {
	case CacheNever:
		if !dir {
			return fuse.FOPEN_DIRECT_IO
		}
	case CacheMetadata:
		if dir {
			return fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
		}
		return fuse.FOPEN_DIRECT_IO
	case CacheAlways:
		if dir {
			return fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR
		}
		return fuse.FOPEN_KEEP_CACHE
	}
	return 0
}

// open opens nodeid with the guest's flags and registers a handle. With
// killPriv (FUSE_OPEN_KILL_SUIDGID) and --killpriv-v2, the open
// runs without CAP_FSETID, so that a truncation clears the set-user-ID and
// set-group-ID bits on the host.
func (fs *FS) open(nodeid uint64, flags uint32, killPriv bool, out *fuse.OpenOut) unix.Errno {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	f := fs.openFlags(flags)
	fd, e := fs.reopenKillPriv(in, f, killPriv)
	if e != 0 {
		return e
	}
	fh, e := fs.addHandle(nodeid, fd, fs.migrationOpenFlags(flags, true))
	if e != 0 {
		return e
	}
	out.Fh = fh
	out.OpenFlags = fs.openOutFlags(f&unix.O_DIRECTORY != 0)
	return 0
}

// Open implements fuse.FileSystem.Open.
func (fs *FS) Open(c *fuse.Context, nodeid uint64, in *fuse.OpenIn, out *fuse.OpenOut) unix.Errno {
	return fs.open(nodeid, in.Flags, in.OpenFlags&fuse.FUSE_OPEN_KILL_SUIDGID != 0, out)
}

// Opendir implements fuse.FileSystem.Opendir.
func (fs *FS) Opendir(c *fuse.Context, nodeid uint64, in *fuse.OpenIn, out *fuse.OpenOut) unix.Errno {
	return fs.open(nodeid, in.Flags|unix.O_DIRECTORY, false, out)
}

// Create implements fuse.FileSystem.Create. The file is created with a
// forced O_EXCL under the guest user's credentials, so this privileged path
// never opens an existing file; an existing file without the guest's own
// O_EXCL is looked up and opened like OPEN, with the daemon's credentials.
func (fs *FS) Create(c *fuse.Context, parent uint64, name fuse.Name, cin *fuse.CreateIn, entry *fuse.EntryOut, open *fuse.OpenOut) unix.Errno {
	if !checkName(name) {
		return unix.EINVAL
	}
	p, e := fs.getInode(parent)
	if e != 0 {
		return e
	}
	defer fs.putInode(p)
	pfd, e := fs.pathFD(p)
	if e != 0 {
		return e
	}
	defer fs.donePath(p, pfd)

	// O_PATH would make openat ignore O_CREAT and O_EXCL (openat2 refuses
	// it), so it is dropped; a Linux guest never sends it.
	cflags := int(cin.Flags)&^(unix.O_APPEND|unix.O_PATH) | unix.O_CREAT | unix.O_EXCL
	fd, e := fs.createAsGuest(c, pfd, name, cflags, cin.Mode)

	if e == unix.EEXIST && cin.Flags&unix.O_EXCL == 0 {
		return fs.openExisting(p, name, cin, entry, open)
	}
	if e != 0 {
		return e
	}

	// Build the entry from the new descriptor rather than by name, so that
	// entry and handle name the same object even if the name is replaced
	// meanwhile.
	var pn procName
	pathFD, e := sysOpenat(fs.procFD, pn.set(fd), unix.O_PATH|unix.O_CLOEXEC, 0)
	if e != 0 {
		unix.Close(fd)
		return e
	}
	if e := fs.entryFromFD(p, pathFD, entry); e != 0 {
		unix.Close(fd)
		return e
	}
	if s := fs.cur(); s.track.Load() {
		fs.trackLookup(s, p, name, entry.NodeID)
	}
	fh, e := fs.addHandle(entry.NodeID, fd, fs.migrationOpenFlags(cin.Flags, false))
	if e != 0 {
		fs.Forget(entry.NodeID, 1)
		*entry = fuse.EntryOut{}
		return e
	}
	open.Fh = fh
	open.OpenFlags = fs.openOutFlags(false)
	return 0
}

// openExisting is CREATE's fallback for a name that exists: LOOKUP and
// OPEN with the daemon's credentials. The lookup count it takes is given
// back on every path where the open does not succeed, a panic included,
// because the guest then never learns the node ID to forget it.
func (fs *FS) openExisting(p *inode, name fuse.Name, cin *fuse.CreateIn, entry *fuse.EntryOut, open *fuse.OpenOut) unix.Errno {
	if e := fs.lookup(p, name, entry); e != 0 {
		return e
	}
	opened := false
	defer func() {
		if !opened {
			fs.Forget(entry.NodeID, 1)
			*entry = fuse.EntryOut{}
		}
	}()
	if e := fs.open(entry.NodeID, cin.Flags, cin.OpenFlags&fuse.FUSE_OPEN_KILL_SUIDGID != 0, open); e != 0 {
		return e
	}
	opened = true
	return 0
}

// Read implements fuse.FileSystem.Read: preadv straight into dst until
// in.Size bytes are read or the file ends.
func (fs *FS) Read(c *fuse.Context, nodeid uint64, in *fuse.ReadIn, dst [][]byte) (int, unix.Errno) {
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return 0, e
	}
	defer fs.putHandle(h)
	h.io.RLock()
	defer h.io.RUnlock()
	var iov iovecs
	size, total := int(in.Size), 0
	for total < size {
		cnt, _ := iov.fill(dst, total, size-total)
		if cnt == 0 {
			break
		}
		n, e := sysPreadv(h.fd, iov[:cnt], int64(in.Offset)+int64(total))
		if e != 0 {
			if total > 0 {
				// The bytes already in the guest's buffers are
				// answered as a short read: the reply then covers
				// (and the dirty log records) every byte written.
				break
			}
			return 0, e
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, 0
}

// Write implements fuse.FileSystem.Write: pwritev2 straight from src.
// A guest O_APPEND file gets RWF_APPEND, except for writes from the
// guest's page cache (FUSE_WRITE_CACHE), which carry their own offset.
func (fs *FS) Write(c *fuse.Context, nodeid uint64, in *fuse.WriteIn, src [][]byte) (int, unix.Errno) {
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return 0, e
	}
	defer fs.putHandle(h)
	flags := 0
	if in.WriteFlags&fuse.FUSE_WRITE_CACHE == 0 && in.Flags&unix.O_APPEND != 0 {
		flags = unix.RWF_APPEND
	}
	var cs capState
	if fs.withoutFsetid(in.WriteFlags&fuse.FUSE_WRITE_KILL_SUIDGID != 0, &cs) {
		defer fs.restoreCaps(&cs)
	}
	if e := fs.runPrivHook(); e != 0 {
		return 0, e
	}
	h.io.RLock()
	defer h.io.RUnlock()
	var iov iovecs
	size, total := int(in.Size), 0
	for total < size {
		cnt, _ := iov.fill(src, total, size-total)
		if cnt == 0 {
			break
		}
		n, e := sysPwritev2(h.fd, iov[:cnt], int64(in.Offset)+int64(total), flags)
		if e != 0 {
			return 0, e
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, 0
}

// Statfs implements fuse.FileSystem.Statfs.
func (fs *FS) Statfs(c *fuse.Context, nodeid uint64, out *fuse.StatfsOut) unix.Errno {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	var st unix.Statfs_t
	fd, e := fs.pathFD(in)
	if e != 0 {
		return e
	}
	defer fs.donePath(in, fd)
	if e := errno(unix.Fstatfs(fd, &st)); e != 0 {
		return e
	}
	out.Blocks = st.Blocks
	out.Bfree = st.Bfree
	out.Bavail = st.Bavail
	out.Files = st.Files
	out.Ffree = st.Ffree
	out.Bsize = uint32(st.Bsize)
	out.Namelen = uint32(st.Namelen)
	out.Frsize = uint32(st.Frsize)
	if out.Frsize == 0 { // as fstatvfs(3) reports it
		out.Frsize = out.Bsize
	}
	return 0
}

// Release implements fuse.FileSystem.Release.
func (fs *FS) Release(c *fuse.Context, nodeid uint64, in *fuse.ReleaseIn) unix.Errno {
	return fs.removeHandle(nodeid, in.Fh)
}

// Releasedir implements fuse.FileSystem.Releasedir.
func (fs *FS) Releasedir(c *fuse.Context, nodeid uint64, in *fuse.ReleaseIn) unix.Errno {
	return fs.removeHandle(nodeid, in.Fh)
}

// Flush implements fuse.FileSystem.Flush: closing a duplicate of the
// handle's descriptor reports write-back errors (e.g. from NFS) without
// closing the handle.
func (fs *FS) Flush(c *fuse.Context, nodeid uint64, in *fuse.FlushIn) unix.Errno {
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return e
	}
	defer fs.putHandle(h)
	fd, err := unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return errno(err)
	}
	return errno(unix.Close(fd))
}

func (fs *FS) fsync(nodeid uint64, in *fuse.FsyncIn) unix.Errno {
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return e
	}
	defer fs.putHandle(h)
	if in.FsyncFlags&fuse.FUSE_FSYNC_FDATASYNC != 0 {
		return errno(unix.Fdatasync(h.fd))
	}
	return errno(unix.Fsync(h.fd))
}

// Fsync implements fuse.FileSystem.Fsync.
func (fs *FS) Fsync(c *fuse.Context, nodeid uint64, in *fuse.FsyncIn) unix.Errno {
	return fs.fsync(nodeid, in)
}

// Fsyncdir implements fuse.FileSystem.Fsyncdir.
func (fs *FS) Fsyncdir(c *fuse.Context, nodeid uint64, in *fuse.FsyncIn) unix.Errno {
	return fs.fsync(nodeid, in)
}

// Readdir implements fuse.FileSystem.Readdir: one getdents64 from the
// guest's cookie, under the handle's exclusive lock because the directory
// offset is shared state.
func (fs *FS) Readdir(c *fuse.Context, nodeid uint64, in *fuse.ReadIn, buf []byte) (int, unix.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return 0, e
	}
	defer fs.putHandle(h)
	h.io.Lock()
	defer h.io.Unlock()
	if e := errno(seek(h.fd, int64(in.Offset))); e != 0 {
		return 0, e
	}
	n, e := sysGetdents(h.fd, buf)
	if e != 0 {
		return 0, e
	}
	return n, 0
}

func seek(fd int, off int64) error {
	_, err := unix.Seek(fd, off, 0 /* SEEK_SET */)
	return err
}

// Access implements fuse.FileSystem.Access with the reference's mode-bit
// algorithm: only the owner, the primary group and the "other" bits count
// (no supplementary groups, no ACLs); guest root may read and write
// anything and execute anything with at least one x bit.
func (fs *FS) Access(c *fuse.Context, nodeid uint64, mask uint32) unix.Errno {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	var stx unix.Statx_t
	if e := fs.statx(in, &stx); e != 0 {
		return e
	}
	return accessCheck(uint32(stx.Mode), stx.Uid, stx.Gid, c.UID, c.GID, mask)
}

func accessCheck(mode, fuid, fgid, uid, gid, mask uint32) unix.Errno {
	m := mask & 7
	if m == 0 {
		return 0
	}
	owner, group := fuid == uid, fgid == gid
	if m&unix.R_OK != 0 && !(uid == 0 || (owner && mode&0o400 != 0) || (group && mode&0o040 != 0) || mode&0o004 != 0) {
		return unix.EACCES
	}
	if m&unix.W_OK != 0 && !(uid == 0 || (owner && mode&0o200 != 0) || (group && mode&0o020 != 0) || mode&0o002 != 0) {
		return unix.EACCES
	}
	if m&unix.X_OK != 0 && !((uid == 0 && mode&0o111 != 0) || (owner && mode&0o100 != 0) || (group && mode&0o010 != 0) || mode&0o001 != 0) {
		return unix.EACCES
	}
	return 0
}

// errno extracts the errno of a system call error; anything else is EIO.
func errno(err error) unix.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EIO
}

// Fallocate implements fuse.FileSystem.Fallocate: fallocate(2) on the handle's
// descriptor with the guest's mode.
func (fs *FS) Fallocate(c *fuse.Context, nodeid uint64, in *fuse.FallocateIn) unix.Errno {
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return e
	}
	defer fs.putHandle(h)
	h.io.RLock()
	defer h.io.RUnlock()
	return errno(unix.Fallocate(h.fd, in.Mode, int64(in.Offset), int64(in.Length)))
}

// Lseek implements fuse.FileSystem.Lseek (SEEK_DATA and SEEK_HOLE
// included). It moves the handle's file offset, so it takes the handle
// exclusively.
func (fs *FS) Lseek(c *fuse.Context, nodeid uint64, in *fuse.LseekIn, out *fuse.LseekOut) unix.Errno {
	h, e := fs.getHandle(nodeid, in.Fh)
	if e != 0 {
		return e
	}
	defer fs.putHandle(h)
	h.io.Lock()
	defer h.io.Unlock()
	off, err := unix.Seek(h.fd, int64(in.Offset), int(in.Whence))
	if err != nil {
		return errno(err)
	}
	out.Offset = uint64(off)
	return 0
}

// CopyFileRange implements fuse.FileSystem.CopyFileRange between handle
// in.FhIn of nodeid and handle in.FhOut of in.NodeIDOut, returning the
// bytes copied. Both handles must match their node IDs (EBADF). The flags
// go to the kernel unchanged (it rejects non-zero ones).
func (fs *FS) CopyFileRange(c *fuse.Context, nodeid uint64, in *fuse.CopyFileRangeIn) (int, unix.Errno) {
	hin, e := fs.getHandle(nodeid, in.FhIn)
	if e != 0 {
		return 0, e
	}
	defer fs.putHandle(hin)
	hout, e := fs.getHandle(in.NodeIDOut, in.FhOut)
	if e != 0 {
		return 0, e
	}
	defer fs.putHandle(hout)
	hin.io.RLock()
	defer hin.io.RUnlock()
	if hout != hin {
		hout.io.RLock()
		defer hout.io.RUnlock()
	}
	offIn, offOut := int64(in.OffIn), int64(in.OffOut)
	n, err := unix.CopyFileRange(hin.fd, &offIn, hout.fd, &offOut, int(in.Len), int(in.Flags))
	if err != nil {
		return 0, errno(err)
	}
	return n, 0
}

// Syncfs implements fuse.FileSystem.Syncfs: syncfs(2) on a descriptor
// reopened from nodeid (regular files and directories only, else EBADF).
func (fs *FS) Syncfs(c *fuse.Context, nodeid uint64) unix.Errno {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return e
	}
	defer fs.putInode(in)
	fd, e := fs.reopen(in, unix.O_RDONLY|unix.O_NOFOLLOW)
	if e != 0 {
		return e
	}
	defer unix.Close(fd)
	return errno(unix.Syncfs(fd))
}
