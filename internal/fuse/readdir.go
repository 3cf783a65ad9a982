package fuse

import (
	"bytes"
	"encoding/binary"
	"log/slog"

	"golang.org/x/sys/unix"
)

// linux_dirent64 layout: d_ino u64, d_off s64, d_reclen u16, d_type u8,
// d_name (NUL-terminated, padded to 8 bytes).
const (
	direntInoOff    = 0
	direntOffOff    = 8
	direntReclenOff = 16
	direntTypeOff   = 18
	direntNameOff   = 19
)

// zeros supplies dirent name padding.
var zeros [8]byte

func doReaddir(w *Worker) unix.Errno     { return w.readdir(false) }
func doReaddirplus(w *Worker) unix.Errno { return w.readdir(true) }

// readdir answers READDIR (plus=false) and READDIRPLUS: it has the file
// system fill a Worker buffer of the requested size with linux_dirent64
// records from one getdents64 call, and encodes them as fuse_dirent (or
// fuse_direntplus) records straight into the reply buffers, stopping at the
// first one that does not fit.
func (w *Worker) readdir(plus bool) unix.Errno {
	w.readIn, _ = decode[ReadIn](w.body)
	size := int(w.readIn.Size)
	if size > MaxBufferSize || w.outCap < size {
		return unix.ENOMEM
	}
	if size == 0 {
		return 0
	}
	buf := w.dirbuf[:size]
	n, errno := w.s.fs.Readdir(&w.ctx, w.hdr.NodeID, &w.readIn, buf)
	if errno != 0 {
		return errno
	}
	if n < 0 || n > size {
		w.s.limited(slog.LevelError, "file system returned a bad readdir length", "len", n, "size", size)
		return unix.EIO
	}
	buf = buf[:n]
	limit := min(size, w.outCap-outHeaderSize)
	w.out.reset(w.outBufs)
	w.out.skip(outHeaderSize)
	written := 0
	for len(buf) > 0 {
		d, ok := parseDirent(buf)
		if !ok {
			w.s.limited(slog.LevelError, "file system returned a malformed directory record", "nodeid", w.hdr.NodeID)
			if written == 0 {
				return unix.EIO
			}
			break
		}
		buf = buf[d.reclen:]
		nameLen := len(d.name) - 1
		pad := (8 - nameLen%8) % 8
		recLen := sizeof[Dirent]() + nameLen + pad
		if plus {
			recLen += sizeof[EntryOut]()
		}
		if written+recLen > limit {
			// Checked before the lookup: an entry that is not sent
			// must not take a lookup reference.
			break
		}
		if plus {
			w.entry = EntryOut{}
			if isDotOrDotDot(d.name) {
				w.entry.Attr.Ino = d.ino
				w.entry.Attr.Mode = uint32(d.typ) << 12
			} else if errno := w.s.fs.Lookup(&w.ctx, w.hdr.NodeID, Name(d.name), &w.entry); errno != 0 {
				if written == 0 {
					return errno
				}
				break
			}
			w.out.write(bytesOf(&w.entry))
		}
		w.dirent = Dirent{Ino: d.ino, Off: d.off, Namelen: uint32(nameLen), Type: uint32(d.typ)}
		w.out.write(bytesOf(&w.dirent))
		w.out.write(d.name[:nameLen])
		w.out.write(zeros[:pad])
		written += recLen
	}
	w.dataLen = written
	return 0
}

// hostDirent is one decoded linux_dirent64 record.
type hostDirent struct {
	ino    uint64
	off    uint64
	typ    uint8
	name   []byte // with its terminating NUL
	reclen int
}

// parseDirent decodes the linux_dirent64 record at the start of b. The
// records come from the host kernel but are still bounds-checked: the
// record must lie within b and hold a NUL-terminated name that passes
// checkName or is "." or "..".
func parseDirent(b []byte) (hostDirent, bool) {
	var d hostDirent
	if len(b) < direntNameOff+2 {
		return d, false
	}
	d.reclen = int(binary.NativeEndian.Uint16(b[direntReclenOff:]))
	if d.reclen < direntNameOff+2 || d.reclen > len(b) {
		return d, false
	}
	i := bytes.IndexByte(b[direntNameOff:d.reclen], 0)
	if i <= 0 {
		return d, false
	}
	d.name = b[direntNameOff : direntNameOff+i+1]
	if !isDotOrDotDot(d.name) && checkName(d.name) != 0 {
		return d, false
	}
	d.ino = binary.NativeEndian.Uint64(b[direntInoOff:])
	d.off = binary.NativeEndian.Uint64(b[direntOffOff:])
	d.typ = b[direntTypeOff]
	return d, true
}

// isDotOrDotDot reports whether the NUL-terminated name n is "." or "..".
func isDotOrDotDot(n []byte) bool {
	return len(n) == 2 && n[0] == '.' || len(n) == 3 && n[0] == '.' && n[1] == '.'
}
