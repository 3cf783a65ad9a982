package passthrough

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// The operations in this file are served by the reference daemon but are
// not (yet) part of fuse.FileSystem. They follow the same conventions, so
// that the interface can simply grow these methods.

// Fallocate handles FUSE_FALLOCATE: fallocate(2) on the handle's
// descriptor with the guest's mode.
func (fs *FS) Fallocate(c *fuse.Context, nodeid uint64, in *fuse.FallocateIn) unix.Errno {
	h := fs.getHandle(nodeid, in.Fh)
	if h == nil {
		return unix.EBADF
	}
	h.io.RLock()
	e := errno(unix.Fallocate(h.fd, in.Mode, int64(in.Offset), int64(in.Length)))
	h.io.RUnlock()
	fs.putHandle(h)
	return e
}

// Lseek handles FUSE_LSEEK (SEEK_DATA and SEEK_HOLE included). It moves
// the handle's file offset, so it takes the handle exclusively.
func (fs *FS) Lseek(c *fuse.Context, nodeid uint64, in *fuse.LseekIn, out *fuse.LseekOut) unix.Errno {
	h := fs.getHandle(nodeid, in.Fh)
	if h == nil {
		return unix.EBADF
	}
	h.io.Lock()
	off, err := unix.Seek(h.fd, int64(in.Offset), int(in.Whence))
	h.io.Unlock()
	fs.putHandle(h)
	if err != nil {
		return errno(err)
	}
	out.Offset = uint64(off)
	return 0
}

// CopyFileRange handles FUSE_COPY_FILE_RANGE between handle in.FhIn of
// nodeid and handle in.FhOut of in.NodeIDOut, returning the bytes copied.
// The flags go to the kernel unchanged (it rejects non-zero ones).
func (fs *FS) CopyFileRange(c *fuse.Context, nodeid uint64, in *fuse.CopyFileRangeIn) (int, unix.Errno) {
	hin := fs.getHandle(nodeid, in.FhIn)
	if hin == nil {
		return 0, unix.EBADF
	}
	defer fs.putHandle(hin)
	hout := fs.getHandle(in.NodeIDOut, in.FhOut)
	if hout == nil {
		return 0, unix.EBADF
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

// Syncfs handles FUSE_SYNCFS: syncfs(2) on the file system holding nodeid.
func (fs *FS) Syncfs(c *fuse.Context, nodeid uint64) unix.Errno {
	in := fs.getInode(nodeid)
	if in == nil {
		return unix.EBADF
	}
	fd, e := fs.reopen(in, unix.O_RDONLY|unix.O_NOFOLLOW)
	fs.putInode(in)
	if e != 0 {
		return e
	}
	e = errno(unix.Syncfs(fd))
	unix.Close(fd)
	return e
}

// Path returns the current path of nodeid relative to the shared
// directory ("" for the root), as the kernel reports it for the inode's
// descriptor. It is meant for the migration code, which sends inodes by
// path. An object that was deleted, or moved outside the shared directory,
// has no such path (error).
func (fs *FS) Path(nodeid uint64) (string, error) {
	in := fs.getInode(nodeid)
	if in == nil {
		return "", fmt.Errorf("find path of node %d: %w", nodeid, unix.EBADF)
	}
	defer fs.putInode(in)
	rootIn := fs.getInode(RootID)
	if rootIn == nil {
		return "", fmt.Errorf("find path of node %d: no root node", nodeid)
	}
	defer fs.putInode(rootIn)
	rootPath, err := fs.fdPath(rootIn.fd)
	if err != nil {
		return "", err
	}
	p, err := fs.fdPath(in.fd)
	if err != nil {
		return "", err
	}
	if p == rootPath {
		return "", nil
	}
	prefix := rootPath
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return "", fmt.Errorf("find path of node %d: %q is outside the shared directory", nodeid, p)
	}
	return rel, nil
}

// fdPath reads the /proc/self/fd link of fd. Unlinked objects have none.
func (fs *FS) fdPath(fd int) (string, error) {
	var pn procName
	buf := make([]byte, unix.PathMax)
	n, e := sysReadlinkat(fs.procFD, pn.set(fd), buf)
	if e != 0 {
		return "", fmt.Errorf("read link of fd %d: %w", fd, e)
	}
	if n == len(buf) {
		return "", fmt.Errorf("read link of fd %d: %w", fd, unix.ENAMETOOLONG)
	}
	p := string(buf[:n])
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, " (deleted)") {
		return "", fmt.Errorf("read link of fd %d: no path (%q)", fd, p)
	}
	return p, nil
}
