package passthrough

import (
	"virtiofsd/internal/fuse"

	"golang.org/x/sys/unix"
)

// Extended attributes are not served yet: the options that enable them
// (--xattr, --posix-acl, --security-label, --xattrmap) are refused at
// start-up, so the FS always behaves like the reference daemon with
// extended attributes disabled and answers ENOSYS. The guest kernel then
// stops sending these requests and reports EOPNOTSUPP to applications.

// GetXattr implements fuse.FileSystem.GetXattr.
func (fs *FS) GetXattr(c *fuse.Context, nodeid uint64, name, buf []byte) (int, unix.Errno) {
	return 0, unix.ENOSYS
}

// ListXattr implements fuse.FileSystem.ListXattr.
func (fs *FS) ListXattr(c *fuse.Context, nodeid uint64, buf []byte) (int, unix.Errno) {
	return 0, unix.ENOSYS
}

// SetXattr implements fuse.FileSystem.SetXattr.
func (fs *FS) SetXattr(c *fuse.Context, nodeid uint64, name, value []byte, in *fuse.SetxattrIn) unix.Errno {
	return unix.ENOSYS
}

// RemoveXattr implements fuse.FileSystem.RemoveXattr.
func (fs *FS) RemoveXattr(c *fuse.Context, nodeid uint64, name []byte) unix.Errno {
	return unix.ENOSYS
}
