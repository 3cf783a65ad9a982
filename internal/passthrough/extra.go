package passthrough

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Path returns the current path of nodeid relative to the shared
// directory ("" for the root), as the kernel reports it for the inode's
// descriptor. It is meant for the migration code, which sends inodes by
// path. An object that was deleted, or moved outside the shared directory,
// has no such path (error).
func (fs *FS) Path(nodeid uint64) (string, error) {
	in, e := fs.getInode(nodeid)
	if e != 0 {
		return "", fmt.Errorf("find path of node %d: %w", nodeid, e)
	}
	defer fs.putInode(in)
	rootIn, e := fs.getInode(RootID)
	if e != 0 {
		return "", fmt.Errorf("find path of node %d: no root node", nodeid)
	}
	defer fs.putInode(rootIn)
	rootPath, err := fs.inodePath(rootIn)
	if err != nil {
		return "", err
	}
	p, err := fs.inodePath(in)
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

// inodePath returns the path the kernel reports for in's object.
func (fs *FS) inodePath(in *inode) (string, error) {
	fd, e := fs.pathFD(in)
	if e != 0 {
		return "", fmt.Errorf("open node %d: %w", in.nodeid, e)
	}
	defer fs.donePath(in, fd)
	return fs.fdPath(fd)
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
