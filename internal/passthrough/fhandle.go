package passthrough

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FileHandleMode is the --inode-file-handles option.
type FileHandleMode int

// File handle modes. The zero value is FileHandlesNever.
const (
	// FileHandlesNever holds every inode as an O_PATH descriptor.
	FileHandlesNever FileHandleMode = iota
	// FileHandlesPrefer holds an inode as a file handle where its file
	// system can make one, as an O_PATH descriptor elsewhere.
	FileHandlesPrefer
	// FileHandlesMandatory holds every inode as a file handle; a lookup on
	// a file system without handles fails with EOPNOTSUPP.
	FileHandlesMandatory
)

func (m FileHandleMode) String() string {
	switch m {
	case FileHandlesNever:
		return "never"
	case FileHandlesPrefer:
		return "prefer"
	case FileHandlesMandatory:
		return "mandatory"
	}
	return "FileHandleMode(" + strconv.Itoa(int(m)) + ")"
}

// maxHandleSize is MAX_HANDLE_SZ. A file system whose handles are larger
// counts as one without handles, as in the reference.
const maxHandleSize = 128

// fileHandle identifies an object for open_by_handle_at: the kernel's
// handle and the ID of the mount it was made on. It is comparable and
// serves as the key of the handle index.
type fileHandle struct {
	raw   rawHandle
	mntID uint64
}

// mountFD is a descriptor on the root of one mount, shared by every inode
// held as a file handle on that mount. refs is guarded by FS.mmu.
type mountFD struct {
	id   uint64
	fd   int
	refs int
}

// makeHandle fills fh with a file handle for the object open at fd, whose
// statx result is stx. It returns EOPNOTSUPP when the object's file system
// cannot make handles (or makes larger ones than maxHandleSize) and any
// other error as is.
func (fs *FS) makeHandle(fd int, stx *unix.Statx_t, fh *fileHandle) unix.Errno {
	if fs.handleHook != nil {
		if e := fs.handleHook(fd); e != 0 {
			return e
		}
	}
	fh.raw.bytes = maxHandleSize
	fh.raw.typ = 0
	var mnt int32
	e := sysNameToHandleAt(fd, &emptyPath[0], &fh.raw, &mnt, unix.AT_EMPTY_PATH)
	if e == unix.EOVERFLOW {
		return unix.EOPNOTSUPP
	}
	if e != 0 {
		return e
	}
	// Bytes past the handle's size stay zero, so that equal handles
	// compare equal as map keys.
	clear(fh.raw.data[fh.raw.bytes:])
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		fh.mntID = stx.Mnt_id
	} else {
		fh.mntID = uint64(uint32(mnt))
	}
	return 0
}

// noHandles handles a file system that cannot make file handles, found at
// the object open at fd with mount ID mntID: in prefer mode it warns once
// per file system and reports 0 (keep the O_PATH descriptor); in mandatory
// mode it logs once and returns EOPNOTSUPP.
func (fs *FS) noHandles(mntID uint64) unix.Errno {
	mandatory := fs.handleMode == FileHandlesMandatory
	fs.mmu.Lock()
	first := !fs.noHandleLogged[mntID]
	if first {
		fs.noHandleLogged[mntID] = true
	}
	fs.mmu.Unlock()
	if first {
		where := fs.mountName(mntID)
		if mandatory {
			fs.log.Error(where + ": Filesystem does not support file handles")
		} else {
			fs.log.Warn(where + ": Filesystem does not support file handles, falling back to O_PATH FDs")
		}
	}
	if mandatory {
		return unix.EOPNOTSUPP
	}
	return 0
}

// mountName describes mount mntID for a log line the way the reference
// does.
func (fs *FS) mountName(mntID uint64) string {
	if mp, err := fs.mountPoint(mntID); err == nil {
		return fmt.Sprintf("Filesystem mounted on %q (mount ID: %d)", mp, mntID)
	}
	return fmt.Sprintf("Filesystem with mount ID %d", mntID)
}

// getMount returns the shared descriptor for mount mntID with a reference
// the caller drops with putMount, creating it if needed. Failures are
// logged once per mount ID.
func (fs *FS) getMount(mntID uint64) (*mountFD, unix.Errno) {
	fs.mmu.Lock()
	defer fs.mmu.Unlock()
	if m := fs.mounts[mntID]; m != nil {
		m.refs++
		return m, 0
	}
	fd, err := fs.openMount(mntID)
	if err != nil {
		if !fs.mountErrLogged[mntID] {
			fs.mountErrLogged[mntID] = true
			fs.log.Error(fmt.Sprintf("Failed to open file handles for mount ID %d: %v", mntID, err))
		}
		var e unix.Errno
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, unix.EIO
	}
	m := &mountFD{id: mntID, fd: fd, refs: 1}
	fs.mounts[mntID] = m
	return m, 0
}

// putMount drops a reference taken by getMount; the last one closes the
// descriptor.
func (fs *FS) putMount(m *mountFD) {
	fs.mmu.Lock()
	m.refs--
	if m.refs == 0 {
		delete(fs.mounts, m.id)
		unix.Close(m.fd)
	}
	fs.mmu.Unlock()
}

// openMount opens the root of mount mntID as found in mountinfo and
// checks that it is that mount: O_PATH first, then, once checked, reopened
// read-only through /proc/self/fd.
func (fs *FS) openMount(mntID uint64) (int, error) {
	mp, err := fs.mountPoint(mntID)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Open(mp, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open mount point %q: %w", mp, err)
	}
	defer unix.Close(fd)
	var stx unix.Statx_t
	if e := statxFD(fd, &stx); e != 0 {
		return -1, fmt.Errorf("stat mount point %q: %w", mp, e)
	}
	if stx.Mask&unix.STATX_MNT_ID != 0 && stx.Mnt_id != mntID {
		return -1, fmt.Errorf("check mount point: mount point's (%q) mount ID (%d) does not match expected value (%d): %w",
			mp, stx.Mnt_id, mntID, unix.EIO)
	}
	if t := uint32(stx.Mode) & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
		return -1, fmt.Errorf("check mount point: mount point %q is not a regular file or directory: %w", mp, unix.EIO)
	}
	var pn procName
	rfd, e := sysOpenat(fs.procFD, pn.set(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if e != 0 {
		return -1, fmt.Errorf("reopen mount point %q for reading: %w", mp, e)
	}
	return rfd, nil
}

// mountPoint returns the mount point of mount mntID from a fresh read of
// the mountinfo file, as a path in the daemon's root (see
// stripMountPrefix).
func (fs *FS) mountPoint(mntID uint64) (string, error) {
	if fs.mountinfoFD < 0 {
		return "", fmt.Errorf("access /proc/self/mountinfo: %w", unix.EBADF)
	}
	var data []byte
	buf := make([]byte, 64*1024)
	for off := int64(0); ; {
		n, err := unix.Pread(fs.mountinfoFD, buf, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read /proc/self/mountinfo: %w", err)
		}
		if n == 0 {
			break
		}
		data = append(data, buf[:n]...)
		off += int64(n)
	}
	want := strconv.FormatUint(mntID, 10)
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) < 5 || string(f[0]) != want {
			continue
		}
		return stripMountPrefix(unescapeMountinfo(string(f[4])), fs.cfg.MountinfoPrefix), nil
	}
	return "", fmt.Errorf("find mount root for mount ID %d: %w", mntID, unix.EINVAL)
}

// stripMountPrefix turns the mount point mp, a path in the namespace that
// mountinfo describes, into a path in the daemon's root when that root is
// the directory prefix of that namespace (the chroot sandbox; prefix is
// empty otherwise). Only a whole-component prefix counts: with prefix
// /srv/share, /srv/share/sub becomes /sub and /srv/share itself becomes /,
// but /srv/shared is outside. A mount point outside the prefix cannot be
// reached from the daemon's root; like the reference, it is taken to be the
// mount the shared directory itself is on, and "/" is returned: the mount
// ID check after opening it rejects any other mount with EIO.
func stripMountPrefix(mp, prefix string) string {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return mp
	}
	rest, ok := strings.CutPrefix(mp, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "/"
	}
	if rest == "" {
		return "/"
	}
	return rest
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !bytes.ContainsRune([]byte(s), '\\') {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// selfTestHandles checks at start-up that file handles work for the shared
// directory: a handle can be made for it, its mount can be opened and the
// handle opened again. In prefer mode a failure switches to never with a
// warning; in mandatory mode it is an error.
//
// Preconditions: fs.rootFD is open.
func (fs *FS) selfTestHandles() error {
	fd := fs.rootFD
	var stx unix.Statx_t
	if e := statxFD(fd, &stx); e != 0 {
		return fmt.Errorf("stat shared directory %s: %w", fs.cfg.Root, e)
	}
	var fh fileHandle
	switch e := fs.makeHandle(fd, &stx, &fh); e {
	case 0:
	case unix.EOPNOTSUPP:
		// Logged like a lookup on such a file system first, as the
		// reference does.
		if fs.noHandles(keyOf(&stx).mntID) != 0 {
			return fmt.Errorf("generate file handle for the shared directory: %w", e)
		}
		fs.log.Warn("Failed to generate a file handle for the root node, disabling file handles altogether")
		fs.handleMode = FileHandlesNever
		return nil
	default:
		return fmt.Errorf("generate file handle for the shared directory: %w", e)
	}
	m, e := fs.getMount(fh.mntID)
	if e == 0 {
		var hfd int
		hfd, e = sysOpenByHandleAt(m.fd, &fh.raw, unix.O_PATH|unix.O_CLOEXEC)
		if e == 0 {
			unix.Close(hfd)
		}
		fs.putMount(m)
	}
	if e == 0 {
		return nil
	}
	if fs.handleMode == FileHandlesMandatory {
		fs.log.Error(fmt.Sprintf("Failed to open file handle for the root node: %v", e))
		fs.log.Error("Refusing to use (mandatory) file handles, as they do not appear safe to use")
		return fmt.Errorf("open file handle of the shared directory: %w", e)
	}
	fs.log.Warn(fmt.Sprintf("Failed to open file handle for the root node: %v", e))
	fs.log.Warn("File handles do not appear safe to use, disabling file handles altogether")
	fs.handleMode = FileHandlesNever
	return nil
}

// pathFD returns an O_PATH descriptor on in's object: its own, or for an
// inode held as a file handle a temporary one the caller releases with
// donePath.
func (fs *FS) pathFD(in *inode) (int, unix.Errno) {
	if in.fd >= 0 {
		return in.fd, 0
	}
	return sysOpenByHandleAt(in.mnt.fd, &in.fh.raw, unix.O_PATH|unix.O_CLOEXEC)
}

// donePath releases a descriptor returned by pathFD.
func (fs *FS) donePath(in *inode, fd int) {
	if in.fd < 0 {
		unix.Close(fd)
	}
}

// handleFor decides how the object open at fd, with statx result stx, is
// held: it fills fh and reports true for a file handle, reports false for an
// O_PATH descriptor (never mode, or prefer mode on a file system without
// handles), or fails (mandatory mode without handles: EOPNOTSUPP; any other
// error of name_to_handle_at).
func (fs *FS) handleFor(fd int, stx *unix.Statx_t, fh *fileHandle) (bool, unix.Errno) {
	if fs.handleMode == FileHandlesNever {
		return false, 0
	}
	switch e := fs.makeHandle(fd, stx, fh); e {
	case 0:
		return true, 0
	case unix.EOPNOTSUPP:
		return false, fs.noHandles(keyOf(stx).mntID)
	default:
		return false, e
	}
}
