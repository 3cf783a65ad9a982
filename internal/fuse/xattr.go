package fuse

import (
	"bytes"
	"log/slog"

	"golang.org/x/sys/unix"
)

// Extended attribute requests. Their names are attribute names such as
// "user.comment", not directory entries: they may contain '/' and '.', so
// they only have to be NUL-terminated (checkName does not apply). The file
// system reads and writes values through Worker.dirbuf, which is free while
// no READDIR runs on the same Worker.

// setxattrCompatSize is the size of struct fuse_setxattr_in without
// FUSE_SETXATTR_EXT: only size and flags.
const setxattrCompatSize = 8

// xattrName parses the body from off to its end as an attribute name: the
// name plus exactly one trailing NUL, no interior NUL.
func (w *Worker) xattrName(off int) ([]byte, unix.Errno) {
	b := w.body[off:]
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, w.decodeError("attribute name not NUL-terminated")
	}
	if bytes.IndexByte(b[:len(b)-1], 0) >= 0 {
		return nil, w.decodeError("NUL inside attribute name")
	}
	return b, 0
}

// doSetxattr decodes SETXATTR: the 16-byte fuse_setxattr_in if
// FUSE_SETXATTR_EXT was negotiated, else its first 8 bytes, then
// "name\0value" where the value is exactly in.Size bytes.
func doSetxattr(w *Worker) unix.Errno {
	fixed := setxattrCompatSize
	if w.s.negotiated.Load()&FUSE_SETXATTR_EXT != 0 {
		fixed = sizeof[SetxattrIn]()
	}
	if len(w.body) < fixed {
		return w.decodeError("body shorter than its fixed part")
	}
	w.setxattrIn = SetxattrIn{}
	copy(bytesOf(&w.setxattrIn), w.body[:fixed])
	rest := w.body[fixed:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return w.decodeError("attribute name not NUL-terminated")
	}
	name, value := rest[:i+1], rest[i+1:]
	if uint64(w.setxattrIn.Size) != uint64(len(value)) {
		return w.decodeError("attribute value length does not match its size")
	}
	return w.s.fs.SetXattr(&w.ctx, w.hdr.NodeID, name, value, &w.setxattrIn)
}

// doGetxattr decodes GETXATTR: fuse_getxattr_in, then the name. Size 0
// asks for the value's length (reply fuse_getxattr_out); otherwise the
// reply is the value itself.
func doGetxattr(w *Worker) unix.Errno {
	in, _ := decode[GetxattrIn](w.body)
	name, errno := w.xattrName(sizeof[GetxattrIn]())
	if errno != 0 {
		return errno
	}
	if in.Size > MaxBufferSize {
		return unix.ENOMEM
	}
	if in.Size == 0 && w.outCap < outHeaderSize+sizeof[GetxattrOut]() {
		return w.replyTooSmall(outHeaderSize + sizeof[GetxattrOut]())
	}
	n, errno := w.s.fs.GetXattr(&w.ctx, w.hdr.NodeID, name, w.dirbuf[:in.Size])
	if errno != 0 {
		return errno
	}
	return w.xattrReply(in.Size, n)
}

// doListxattr decodes LISTXATTR: fuse_getxattr_in only. Size 0 asks for
// the list's length; otherwise the reply is the NUL-separated names.
func doListxattr(w *Worker) unix.Errno {
	in, _ := decode[GetxattrIn](w.body)
	if in.Size > MaxBufferSize {
		return unix.ENOMEM
	}
	if in.Size == 0 && w.outCap < outHeaderSize+sizeof[GetxattrOut]() {
		return w.replyTooSmall(outHeaderSize + sizeof[GetxattrOut]())
	}
	n, errno := w.s.fs.ListXattr(&w.ctx, w.hdr.NodeID, w.dirbuf[:in.Size])
	if errno != 0 {
		return errno
	}
	return w.xattrReply(in.Size, n)
}

// xattrReply sets the reply of GETXATTR and LISTXATTR once the file system
// returned n for a request of the given size: the length alone for size 0,
// else the first n bytes of dirbuf.
func (w *Worker) xattrReply(size uint32, n int) unix.Errno {
	if size == 0 {
		if n < 0 || uint64(n) > 1<<32-1 {
			w.s.limited(slog.LevelError, "file system returned a bad attribute length", "len", n)
			return unix.EIO
		}
		w.xattrOut = GetxattrOut{Size: uint32(n)}
		w.setReply(bytesOf(&w.xattrOut))
		return 0
	}
	if n < 0 || n > int(size) {
		w.s.limited(slog.LevelError, "file system returned a bad attribute length", "len", n, "size", size)
		return unix.EIO
	}
	if outHeaderSize+n > w.outCap {
		return w.replyTooSmall(outHeaderSize + n)
	}
	w.setReply(w.dirbuf[:n])
	return 0
}

// replyTooSmall logs a reply that does not fit the guest's buffers.
func (w *Worker) replyTooSmall(need int) unix.Errno {
	w.s.warn("reject request: reply buffer too small", "opcode", w.hdr.Opcode, "unique", w.hdr.Unique, "capacity", w.outCap, "reply", need)
	return unix.EINVAL
}

func doRemovexattr(w *Worker) unix.Errno {
	name, errno := w.xattrName(0)
	if errno != 0 {
		return errno
	}
	return w.s.fs.RemoveXattr(&w.ctx, w.hdr.NodeID, name)
}
