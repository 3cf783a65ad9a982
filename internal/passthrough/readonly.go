package passthrough

import (
	"virtiofsd/internal/fuse"

	"golang.org/x/sys/unix"
)

// ReadOnly is the file system of --readonly: it serves an FS but refuses
// every request that would modify the shared directory with EROFS, and
// filters open flags so that nothing is created or truncated. It does not
// make the host mount read-only (reads still update access times).
//
// Every fuse.FileSystem method is spelled out, none is promoted from the
// FS, so that a method added to the interface has to be classified here
// before the package builds again.
type ReadOnly struct {
	fs *FS
}

var _ fuse.FileSystem = (*ReadOnly)(nil)

// NewReadOnly returns the read-only view of fs. fs must not be served
// directly at the same time.
func NewReadOnly(fs *FS) *ReadOnly { return &ReadOnly{fs: fs} }

// FS returns the file system r serves.
func (r *ReadOnly) FS() *FS { return r.fs }

// readOnlyOpenFlags filters the flags of OPEN, OPENDIR and CREATE, in the
// reference's order: O_PATH passes unchanged; then a write access mode and
// O_EXCL get EROFS, O_TMPFILE and O_TRUNC get EINVAL, and O_CREAT is
// removed (create reports that it was there, to turn ENOENT into EROFS).
func readOnlyOpenFlags(flags uint32) (f uint32, create bool, errno unix.Errno) {
	if flags&unix.O_PATH != 0 {
		return flags, false, 0
	}
	switch {
	case flags&unix.O_ACCMODE != unix.O_RDONLY:
		return 0, false, unix.EROFS
	case flags&unix.O_EXCL != 0:
		return 0, false, unix.EROFS
	case flags&unix.O_TMPFILE == unix.O_TMPFILE:
		return 0, false, unix.EINVAL
	case flags&unix.O_TRUNC != 0:
		return 0, false, unix.EINVAL
	}
	return flags &^ unix.O_CREAT, flags&unix.O_CREAT != 0, 0
}

// open runs OPEN or OPENDIR with filtered flags. in is Worker memory and
// is filtered in place.
func (r *ReadOnly) open(c *fuse.Context, nodeid uint64, in *fuse.OpenIn, out *fuse.OpenOut, dir bool) unix.Errno {
	f, create, errno := readOnlyOpenFlags(in.Flags)
	if errno != 0 {
		return errno
	}
	in.Flags = f
	if dir {
		errno = r.fs.Opendir(c, nodeid, in, out)
	} else {
		errno = r.fs.Open(c, nodeid, in, out)
	}
	if errno == unix.ENOENT && create {
		return unix.EROFS
	}
	return errno
}

// Init implements fuse.FileSystem.Init.
func (r *ReadOnly) Init(capable uint64) (uint64, unix.Errno) { return r.fs.Init(capable) }

// Destroy implements fuse.FileSystem.Destroy.
func (r *ReadOnly) Destroy() { r.fs.Destroy() }

// Lookup implements fuse.FileSystem.Lookup.
func (r *ReadOnly) Lookup(c *fuse.Context, parent uint64, name fuse.Name, out *fuse.EntryOut) unix.Errno {
	return r.fs.Lookup(c, parent, name, out)
}

// Forget implements fuse.FileSystem.Forget.
func (r *ReadOnly) Forget(nodeid, nlookup uint64) { r.fs.Forget(nodeid, nlookup) }

// Getattr implements fuse.FileSystem.Getattr.
func (r *ReadOnly) Getattr(c *fuse.Context, nodeid uint64, out *fuse.AttrOut) unix.Errno {
	return r.fs.Getattr(c, nodeid, out)
}

// Setattr implements fuse.FileSystem.Setattr: EROFS.
func (r *ReadOnly) Setattr(c *fuse.Context, nodeid uint64, in *fuse.SetattrIn, out *fuse.AttrOut) unix.Errno {
	return unix.EROFS
}

// Readlink implements fuse.FileSystem.Readlink.
func (r *ReadOnly) Readlink(c *fuse.Context, nodeid uint64, buf []byte) (int, unix.Errno) {
	return r.fs.Readlink(c, nodeid, buf)
}

// Symlink implements fuse.FileSystem.Symlink: EROFS.
func (r *ReadOnly) Symlink(c *fuse.Context, parent uint64, name fuse.Name, target []byte, out *fuse.EntryOut) unix.Errno {
	return unix.EROFS
}

// Mknod implements fuse.FileSystem.Mknod: EROFS.
func (r *ReadOnly) Mknod(c *fuse.Context, parent uint64, name fuse.Name, in *fuse.MknodIn, out *fuse.EntryOut) unix.Errno {
	return unix.EROFS
}

// Mkdir implements fuse.FileSystem.Mkdir: EROFS.
func (r *ReadOnly) Mkdir(c *fuse.Context, parent uint64, name fuse.Name, in *fuse.MkdirIn, out *fuse.EntryOut) unix.Errno {
	return unix.EROFS
}

// Unlink implements fuse.FileSystem.Unlink: EROFS.
func (r *ReadOnly) Unlink(c *fuse.Context, parent uint64, name fuse.Name) unix.Errno {
	return unix.EROFS
}

// Rmdir implements fuse.FileSystem.Rmdir: EROFS.
func (r *ReadOnly) Rmdir(c *fuse.Context, parent uint64, name fuse.Name) unix.Errno {
	return unix.EROFS
}

// Rename implements fuse.FileSystem.Rename (RENAME and RENAME2): EROFS.
func (r *ReadOnly) Rename(c *fuse.Context, olddir uint64, oldname fuse.Name, newdir uint64, newname fuse.Name, flags uint32) unix.Errno {
	return unix.EROFS
}

// Link implements fuse.FileSystem.Link: EROFS.
func (r *ReadOnly) Link(c *fuse.Context, nodeid, newparent uint64, newname fuse.Name, out *fuse.EntryOut) unix.Errno {
	return unix.EROFS
}

// Open implements fuse.FileSystem.Open with the read-only flag filter.
func (r *ReadOnly) Open(c *fuse.Context, nodeid uint64, in *fuse.OpenIn, out *fuse.OpenOut) unix.Errno {
	return r.open(c, nodeid, in, out, false)
}

// Create implements fuse.FileSystem.Create without creating anything: it
// looks the name up (a missing name is EROFS) and opens what it found
// through the flag filter. If the open does not succeed (an error, or a
// panic), the lookup count the lookup took is given back (the reference
// keeps it).
func (r *ReadOnly) Create(c *fuse.Context, parent uint64, name fuse.Name, in *fuse.CreateIn, entry *fuse.EntryOut, open *fuse.OpenOut) unix.Errno {
	if errno := r.fs.Lookup(c, parent, name, entry); errno != 0 {
		if errno == unix.ENOENT {
			return unix.EROFS
		}
		return errno
	}
	opened := false
	defer func() {
		if !opened {
			r.fs.Forget(entry.NodeID, 1)
			*entry = fuse.EntryOut{}
		}
	}()
	oin := fuse.OpenIn{Flags: in.Flags, OpenFlags: in.OpenFlags}
	if errno := r.open(c, entry.NodeID, &oin, open, false); errno != 0 {
		return errno
	}
	opened = true
	return 0
}

// Read implements fuse.FileSystem.Read.
func (r *ReadOnly) Read(c *fuse.Context, nodeid uint64, in *fuse.ReadIn, dst [][]byte) (int, unix.Errno) {
	return r.fs.Read(c, nodeid, in, dst)
}

// Write implements fuse.FileSystem.Write: EROFS.
func (r *ReadOnly) Write(c *fuse.Context, nodeid uint64, in *fuse.WriteIn, src [][]byte) (int, unix.Errno) {
	return 0, unix.EROFS
}

// Statfs implements fuse.FileSystem.Statfs.
func (r *ReadOnly) Statfs(c *fuse.Context, nodeid uint64, out *fuse.StatfsOut) unix.Errno {
	return r.fs.Statfs(c, nodeid, out)
}

// Release implements fuse.FileSystem.Release.
func (r *ReadOnly) Release(c *fuse.Context, nodeid uint64, in *fuse.ReleaseIn) unix.Errno {
	return r.fs.Release(c, nodeid, in)
}

// Flush implements fuse.FileSystem.Flush.
func (r *ReadOnly) Flush(c *fuse.Context, nodeid uint64, in *fuse.FlushIn) unix.Errno {
	return r.fs.Flush(c, nodeid, in)
}

// Fsync implements fuse.FileSystem.Fsync.
func (r *ReadOnly) Fsync(c *fuse.Context, nodeid uint64, in *fuse.FsyncIn) unix.Errno {
	return r.fs.Fsync(c, nodeid, in)
}

// Opendir implements fuse.FileSystem.Opendir with the read-only flag
// filter.
func (r *ReadOnly) Opendir(c *fuse.Context, nodeid uint64, in *fuse.OpenIn, out *fuse.OpenOut) unix.Errno {
	return r.open(c, nodeid, in, out, true)
}

// Readdir implements fuse.FileSystem.Readdir.
func (r *ReadOnly) Readdir(c *fuse.Context, nodeid uint64, in *fuse.ReadIn, buf []byte) (int, unix.Errno) {
	return r.fs.Readdir(c, nodeid, in, buf)
}

// Releasedir implements fuse.FileSystem.Releasedir.
func (r *ReadOnly) Releasedir(c *fuse.Context, nodeid uint64, in *fuse.ReleaseIn) unix.Errno {
	return r.fs.Releasedir(c, nodeid, in)
}

// Fsyncdir implements fuse.FileSystem.Fsyncdir.
func (r *ReadOnly) Fsyncdir(c *fuse.Context, nodeid uint64, in *fuse.FsyncIn) unix.Errno {
	return r.fs.Fsyncdir(c, nodeid, in)
}

// Access implements fuse.FileSystem.Access: asking for write access is
// EROFS, whatever the node.
func (r *ReadOnly) Access(c *fuse.Context, nodeid uint64, mask uint32) unix.Errno {
	if mask&unix.W_OK != 0 {
		return unix.EROFS
	}
	return r.fs.Access(c, nodeid, mask)
}

// Fallocate implements fuse.FileSystem.Fallocate: EROFS.
func (r *ReadOnly) Fallocate(c *fuse.Context, nodeid uint64, in *fuse.FallocateIn) unix.Errno {
	return unix.EROFS
}

// Lseek implements fuse.FileSystem.Lseek.
func (r *ReadOnly) Lseek(c *fuse.Context, nodeid uint64, in *fuse.LseekIn, out *fuse.LseekOut) unix.Errno {
	return r.fs.Lseek(c, nodeid, in, out)
}

// CopyFileRange implements fuse.FileSystem.CopyFileRange: EROFS.
func (r *ReadOnly) CopyFileRange(c *fuse.Context, nodeid uint64, in *fuse.CopyFileRangeIn) (int, unix.Errno) {
	return 0, unix.EROFS
}

// Syncfs implements fuse.FileSystem.Syncfs.
func (r *ReadOnly) Syncfs(c *fuse.Context, nodeid uint64) unix.Errno {
	return r.fs.Syncfs(c, nodeid)
}

// GetXattr implements fuse.FileSystem.GetXattr.
func (r *ReadOnly) GetXattr(c *fuse.Context, nodeid uint64, name, buf []byte) (int, unix.Errno) {
	return r.fs.GetXattr(c, nodeid, name, buf)
}

// ListXattr implements fuse.FileSystem.ListXattr.
func (r *ReadOnly) ListXattr(c *fuse.Context, nodeid uint64, buf []byte) (int, unix.Errno) {
	return r.fs.ListXattr(c, nodeid, buf)
}

// SetXattr implements fuse.FileSystem.SetXattr: EROFS, even where
// extended attributes are disabled.
func (r *ReadOnly) SetXattr(c *fuse.Context, nodeid uint64, name, value []byte, in *fuse.SetxattrIn) unix.Errno {
	return unix.EROFS
}

// RemoveXattr implements fuse.FileSystem.RemoveXattr: EROFS, even where
// extended attributes are disabled.
func (r *ReadOnly) RemoveXattr(c *fuse.Context, nodeid uint64, name []byte) unix.Errno {
	return unix.EROFS
}
