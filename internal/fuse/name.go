package fuse

import (
	"bytes"
	"log/slog"

	"golang.org/x/sys/unix"
)

// nameMax is NAME_MAX: the longest directory entry name, in bytes.
const nameMax = 255

// checkName validates a guest-supplied entry name n, given with its
// terminating NUL and without interior NULs. It is the only gate names pass
// before reaching the FileSystem: "", "." and ".." and names containing '/'
// get EINVAL (they would escape the directory or alias it), names longer
// than NAME_MAX get ENAMETOOLONG.
func checkName(n []byte) unix.Errno {
	b := n[:len(n)-1]
	switch {
	case len(b) == 0,
		len(b) == 1 && b[0] == '.',
		len(b) == 2 && b[0] == '.' && b[1] == '.':
		return unix.EINVAL
	case len(b) > nameMax:
		return unix.ENAMETOOLONG
	case bytes.IndexByte(b, '/') >= 0:
		return unix.EINVAL
	}
	return 0
}

// exactName parses the body from off to its end as one name: the name
// plus exactly one trailing NUL, no interior NUL ("exact" style).
func (w *Worker) exactName(off int) (Name, unix.Errno) {
	b := w.body[off:]
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, w.decodeError("name not NUL-terminated")
	}
	if bytes.IndexByte(b[:len(b)-1], 0) >= 0 {
		return nil, w.decodeError("NUL inside name")
	}
	return w.validName(b)
}

// splitName parses a name that ends at the first NUL at or after off
// ("first-NUL split" style) and returns it with the offset following it.
func (w *Worker) splitName(off int) (Name, int, unix.Errno) {
	i := bytes.IndexByte(w.body[off:], 0)
	if i < 0 {
		return nil, 0, w.decodeError("name not NUL-terminated")
	}
	b := w.body[off : off+i+1]
	n, errno := w.validName(b)
	return n, off + i + 1, errno
}

// validName runs checkName and logs rejected names.
func (w *Worker) validName(b []byte) (Name, unix.Errno) {
	if errno := checkName(b); errno != 0 {
		// An over-long name is an ordinary user error (the host would
		// refuse it the same way); the others are never sent by a
		// well-behaved guest kernel.
		level := slog.LevelWarn
		if errno == unix.ENAMETOOLONG {
			level = slog.LevelDebug
		}
		w.s.limited(level, "reject request: bad name", "opcode", w.hdr.Opcode, "unique", w.hdr.Unique, "len", len(b)-1, "errno", errno.Error())
		return nil, errno
	}
	return Name(b), 0
}
