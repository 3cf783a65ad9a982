package fuse

import (
	"bytes"
	"log/slog"
	"strconv"

	"golang.org/x/sys/unix"
)

// op describes how the dispatcher prepares one opcode.
type op struct {
	// fixed is the size of the fixed request struct after the header;
	// shorter bodies are malformed.
	fixed int
	// wholeBody copies the whole body (names, extensions) instead of the
	// fixed part only.
	wholeBody bool
	// noReply marks requests the guest expects no reply for.
	noReply bool
	// outSize is the fixed reply payload size; the request is not executed
	// if the reply buffers cannot hold it. Variable replies use 0 and check
	// their own space.
	outSize int
	// handle runs the request and returns the errno to reply with; on
	// success it has set the reply payload.
	handle func(w *Worker) unix.Errno
}

// ops is the dispatch table, indexed by opcode. Opcodes without a handler
// (locks, BMAP, IOCTL, POLL, DAX mappings, TMPFILE, STATX and
// unknown ones) get ENOSYS.
var ops = [...]op{
	FUSE_LOOKUP:          {wholeBody: true, outSize: sizeof[EntryOut](), handle: doLookup},
	FUSE_FORGET:          {fixed: sizeof[ForgetIn](), noReply: true, handle: doForget},
	FUSE_GETATTR:         {fixed: sizeof[GetattrIn](), outSize: sizeof[AttrOut](), handle: doGetattr},
	FUSE_SETATTR:         {fixed: sizeof[SetattrIn](), outSize: sizeof[AttrOut](), handle: doSetattr},
	FUSE_READLINK:        {handle: doReadlink},
	FUSE_SYMLINK:         {wholeBody: true, outSize: sizeof[EntryOut](), handle: doSymlink},
	FUSE_MKNOD:           {fixed: sizeof[MknodIn](), wholeBody: true, outSize: sizeof[EntryOut](), handle: doMknod},
	FUSE_MKDIR:           {fixed: sizeof[MkdirIn](), wholeBody: true, outSize: sizeof[EntryOut](), handle: doMkdir},
	FUSE_UNLINK:          {wholeBody: true, handle: doUnlink},
	FUSE_RMDIR:           {wholeBody: true, handle: doRmdir},
	FUSE_RENAME:          {fixed: sizeof[RenameIn](), wholeBody: true, handle: doRename},
	FUSE_LINK:            {fixed: sizeof[LinkIn](), wholeBody: true, outSize: sizeof[EntryOut](), handle: doLink},
	FUSE_OPEN:            {fixed: sizeof[OpenIn](), outSize: sizeof[OpenOut](), handle: doOpen},
	FUSE_READ:            {fixed: sizeof[ReadIn](), handle: doRead},
	FUSE_WRITE:           {fixed: sizeof[WriteIn](), outSize: sizeof[WriteOut](), handle: doWrite},
	FUSE_STATFS:          {outSize: sizeof[StatfsOut](), handle: doStatfs},
	FUSE_RELEASE:         {fixed: sizeof[ReleaseIn](), handle: doRelease},
	FUSE_FSYNC:           {fixed: sizeof[FsyncIn](), handle: doFsync},
	FUSE_SETXATTR:        {fixed: setxattrCompatSize, wholeBody: true, handle: doSetxattr},
	FUSE_GETXATTR:        {fixed: sizeof[GetxattrIn](), wholeBody: true, handle: doGetxattr},
	FUSE_LISTXATTR:       {fixed: sizeof[GetxattrIn](), handle: doListxattr},
	FUSE_REMOVEXATTR:     {wholeBody: true, handle: doRemovexattr},
	FUSE_FLUSH:           {fixed: sizeof[FlushIn](), handle: doFlush},
	FUSE_INIT:            {fixed: sizeof[InitIn](), wholeBody: true, outSize: sizeof[InitOut](), handle: doInit},
	FUSE_OPENDIR:         {fixed: sizeof[OpenIn](), outSize: sizeof[OpenOut](), handle: doOpendir},
	FUSE_READDIR:         {fixed: sizeof[ReadIn](), handle: doReaddir},
	FUSE_RELEASEDIR:      {fixed: sizeof[ReleaseIn](), handle: doReleasedir},
	FUSE_FSYNCDIR:        {fixed: sizeof[FsyncIn](), handle: doFsyncdir},
	FUSE_GETLK:           {},
	FUSE_SETLK:           {},
	FUSE_SETLKW:          {},
	FUSE_ACCESS:          {fixed: sizeof[AccessIn](), handle: doAccess},
	FUSE_CREATE:          {fixed: sizeof[CreateIn](), wholeBody: true, outSize: sizeof[EntryOut]() + sizeof[OpenOut](), handle: doCreate},
	FUSE_INTERRUPT:       {noReply: true, handle: doInterrupt},
	FUSE_BMAP:            {},
	FUSE_DESTROY:         {noReply: true, handle: doDestroy},
	FUSE_IOCTL:           {},
	FUSE_POLL:            {},
	FUSE_NOTIFY_REPLY:    {},
	FUSE_BATCH_FORGET:    {fixed: sizeof[BatchForgetIn](), wholeBody: true, noReply: true, handle: doBatchForget},
	FUSE_FALLOCATE:       {fixed: sizeof[FallocateIn](), handle: doFallocate},
	FUSE_READDIRPLUS:     {fixed: sizeof[ReadIn](), handle: doReaddirplus},
	FUSE_RENAME2:         {fixed: sizeof[Rename2In](), wholeBody: true, handle: doRename2},
	FUSE_LSEEK:           {fixed: sizeof[LseekIn](), outSize: sizeof[LseekOut](), handle: doLseek},
	FUSE_COPY_FILE_RANGE: {fixed: sizeof[CopyFileRangeIn](), outSize: sizeof[WriteOut](), handle: doCopyFileRange},
	FUSE_SETUPMAPPING:    {},
	FUSE_REMOVEMAPPING:   {},
	FUSE_SYNCFS:          {handle: doSyncfs},
	FUSE_TMPFILE:         {},
	FUSE_STATX:           {},
}

// opNames holds the C names of the opcodes, indexed by opcode.
var opNames = [...]string{
	FUSE_LOOKUP: "LOOKUP", FUSE_FORGET: "FORGET", FUSE_GETATTR: "GETATTR",
	FUSE_SETATTR: "SETATTR", FUSE_READLINK: "READLINK", FUSE_SYMLINK: "SYMLINK",
	FUSE_MKNOD: "MKNOD", FUSE_MKDIR: "MKDIR", FUSE_UNLINK: "UNLINK",
	FUSE_RMDIR: "RMDIR", FUSE_RENAME: "RENAME", FUSE_LINK: "LINK",
	FUSE_OPEN: "OPEN", FUSE_READ: "READ", FUSE_WRITE: "WRITE",
	FUSE_STATFS: "STATFS", FUSE_RELEASE: "RELEASE", FUSE_FSYNC: "FSYNC",
	FUSE_SETXATTR: "SETXATTR", FUSE_GETXATTR: "GETXATTR", FUSE_LISTXATTR: "LISTXATTR",
	FUSE_REMOVEXATTR: "REMOVEXATTR", FUSE_FLUSH: "FLUSH", FUSE_INIT: "INIT",
	FUSE_OPENDIR: "OPENDIR", FUSE_READDIR: "READDIR", FUSE_RELEASEDIR: "RELEASEDIR",
	FUSE_FSYNCDIR: "FSYNCDIR", FUSE_GETLK: "GETLK", FUSE_SETLK: "SETLK",
	FUSE_SETLKW: "SETLKW", FUSE_ACCESS: "ACCESS", FUSE_CREATE: "CREATE",
	FUSE_INTERRUPT: "INTERRUPT", FUSE_BMAP: "BMAP", FUSE_DESTROY: "DESTROY",
	FUSE_IOCTL: "IOCTL", FUSE_POLL: "POLL", FUSE_NOTIFY_REPLY: "NOTIFY_REPLY",
	FUSE_BATCH_FORGET: "BATCH_FORGET", FUSE_FALLOCATE: "FALLOCATE",
	FUSE_READDIRPLUS: "READDIRPLUS", FUSE_RENAME2: "RENAME2", FUSE_LSEEK: "LSEEK",
	FUSE_COPY_FILE_RANGE: "COPY_FILE_RANGE", FUSE_SETUPMAPPING: "SETUPMAPPING",
	FUSE_REMOVEMAPPING: "REMOVEMAPPING", FUSE_SYNCFS: "SYNCFS", FUSE_TMPFILE: "TMPFILE",
	FUSE_STATX: "STATX",
}

// String returns the opcode's name without the FUSE_ prefix, or its number.
func (o Opcode) String() string {
	if uint32(o) < uint32(len(opNames)) && opNames[o] != "" {
		return opNames[o]
	}
	if o == CUSE_INIT {
		return "CUSE_INIT"
	}
	return "OPCODE_" + strconv.FormatUint(uint64(o), 10)
}

// entryReply zeroes the EntryOut reply and makes it the payload.
func (w *Worker) entryReply() *EntryOut {
	w.entry = EntryOut{}
	w.setReply(bytesOf(&w.entry))
	return &w.entry
}

// attrReply zeroes the AttrOut reply and makes it the payload.
func (w *Worker) attrReply() *AttrOut {
	w.attr = AttrOut{}
	w.setReply(bytesOf(&w.attr))
	return &w.attr
}

// openReply zeroes the OpenOut reply and makes it the payload.
func (w *Worker) openReply() *OpenOut {
	w.open = OpenOut{}
	w.setReply(bytesOf(&w.open))
	return &w.open
}

func doLookup(w *Worker) unix.Errno {
	name, errno := w.exactName(0)
	if errno != 0 {
		return errno
	}
	return w.s.fs.Lookup(&w.ctx, w.hdr.NodeID, name, w.entryReply())
}

func doForget(w *Worker) unix.Errno {
	in, _ := decode[ForgetIn](w.body)
	w.s.fs.Forget(w.hdr.NodeID, in.Nlookup)
	return 0
}

// maxBatchForget bounds BATCH_FORGET like the reference: count×16 may not
// exceed 1 MiB.
const maxBatchForget = MaxBufferSize / 16

func doBatchForget(w *Worker) unix.Errno {
	in, _ := decode[BatchForgetIn](w.body)
	hs := sizeof[BatchForgetIn]()
	one := sizeof[ForgetOne]()
	if in.Count > maxBatchForget || int(in.Count)*one > len(w.body)-hs {
		return w.decodeError("batch forget count exceeds the body")
	}
	for i := 0; i < int(in.Count); i++ {
		f, _ := decode[ForgetOne](w.body[hs+i*one:])
		w.s.fs.Forget(f.NodeID, f.Nlookup)
	}
	return 0
}

func doGetattr(w *Worker) unix.Errno {
	w.getattrIn, _ = decode[GetattrIn](w.body)
	return w.s.fs.Getattr(&w.ctx, w.hdr.NodeID, w.attrReply())
}

func doSetattr(w *Worker) unix.Errno {
	w.setattrIn, _ = decode[SetattrIn](w.body)
	return w.s.fs.Setattr(&w.ctx, w.hdr.NodeID, &w.setattrIn, w.attrReply())
}

func doReadlink(w *Worker) unix.Errno {
	n, errno := w.s.fs.Readlink(&w.ctx, w.hdr.NodeID, w.linkbuf)
	if errno != 0 {
		return errno
	}
	if n < 0 || n > len(w.linkbuf) {
		w.s.limited(slog.LevelError, "file system returned a bad readlink length", "len", n)
		return unix.EIO
	}
	if outHeaderSize+n > w.outCap {
		w.s.warn("reject request: reply buffer too small", "opcode", w.hdr.Opcode, "unique", w.hdr.Unique, "capacity", w.outCap, "reply", outHeaderSize+n)
		return unix.EINVAL
	}
	w.setReply(w.linkbuf[:n])
	return 0
}

func doSymlink(w *Worker) unix.Errno {
	name, off, errno := w.splitName(0)
	if errno != 0 {
		return errno
	}
	i := bytes.IndexByte(w.body[off:], 0)
	if i < 0 {
		return w.decodeError("symlink target not NUL-terminated")
	}
	target := w.body[off : off+i+1]
	if errno := w.parseExtensions(off + i + 1); errno != 0 {
		return errno
	}
	return w.s.fs.Symlink(&w.ctx, w.hdr.NodeID, name, target, w.entryReply())
}

func doMknod(w *Worker) unix.Errno {
	w.mknodIn, _ = decode[MknodIn](w.body)
	name, off, errno := w.splitName(sizeof[MknodIn]())
	if errno != 0 {
		return errno
	}
	if errno := w.parseExtensions(off); errno != 0 {
		return errno
	}
	return w.s.fs.Mknod(&w.ctx, w.hdr.NodeID, name, &w.mknodIn, w.entryReply())
}

func doMkdir(w *Worker) unix.Errno {
	w.mkdirIn, _ = decode[MkdirIn](w.body)
	name, off, errno := w.splitName(sizeof[MkdirIn]())
	if errno != 0 {
		return errno
	}
	if errno := w.parseExtensions(off); errno != 0 {
		return errno
	}
	return w.s.fs.Mkdir(&w.ctx, w.hdr.NodeID, name, &w.mkdirIn, w.entryReply())
}

func doUnlink(w *Worker) unix.Errno {
	name, errno := w.exactName(0)
	if errno != 0 {
		return errno
	}
	return w.s.fs.Unlink(&w.ctx, w.hdr.NodeID, name)
}

func doRmdir(w *Worker) unix.Errno {
	name, errno := w.exactName(0)
	if errno != 0 {
		return errno
	}
	return w.s.fs.Rmdir(&w.ctx, w.hdr.NodeID, name)
}

// renameFlags are the RENAME2 flags passed on (RENAME_NOREPLACE,
// RENAME_EXCHANGE, RENAME_WHITEOUT); other bits are dropped like the
// reference does.
const renameFlags = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE | unix.RENAME_WHITEOUT

func doRename(w *Worker) unix.Errno {
	in, _ := decode[RenameIn](w.body)
	return w.rename(in.Newdir, 0, sizeof[RenameIn]())
}

func doRename2(w *Worker) unix.Errno {
	in, _ := decode[Rename2In](w.body)
	return w.rename(in.Newdir, in.Flags&renameFlags, sizeof[Rename2In]())
}

// rename parses "old\0new\0" at off and renames.
func (w *Worker) rename(newdir uint64, flags uint32, off int) unix.Errno {
	oldname, off, errno := w.splitName(off)
	if errno != 0 {
		return errno
	}
	newname, errno := w.exactName(off)
	if errno != 0 {
		return errno
	}
	return w.s.fs.Rename(&w.ctx, w.hdr.NodeID, oldname, newdir, newname, flags)
}

func doLink(w *Worker) unix.Errno {
	in, _ := decode[LinkIn](w.body)
	name, errno := w.exactName(sizeof[LinkIn]())
	if errno != 0 {
		return errno
	}
	return w.s.fs.Link(&w.ctx, in.OldNodeID, w.hdr.NodeID, name, w.entryReply())
}

func doOpen(w *Worker) unix.Errno {
	w.openIn, _ = decode[OpenIn](w.body)
	return w.s.fs.Open(&w.ctx, w.hdr.NodeID, &w.openIn, w.openReply())
}

func doOpendir(w *Worker) unix.Errno {
	w.openIn, _ = decode[OpenIn](w.body)
	return w.s.fs.Opendir(&w.ctx, w.hdr.NodeID, &w.openIn, w.openReply())
}

func doCreate(w *Worker) unix.Errno {
	w.createIn, _ = decode[CreateIn](w.body)
	name, off, errno := w.splitName(sizeof[CreateIn]())
	if errno != 0 {
		return errno
	}
	if errno := w.parseExtensions(off); errno != 0 {
		return errno
	}
	w.entry = EntryOut{}
	w.open = OpenOut{}
	w.setReply(bytesOf(&w.entry))
	w.addReply(bytesOf(&w.open))
	return w.s.fs.Create(&w.ctx, w.hdr.NodeID, name, &w.createIn, &w.entry, &w.open)
}

// doRead reads straight into the reply buffers after the 16 header bytes.
func doRead(w *Worker) unix.Errno {
	w.readIn, _ = decode[ReadIn](w.body)
	n := min(int(w.readIn.Size), w.outCap-outHeaderSize)
	w.out.reset(w.outBufs)
	w.out.skip(outHeaderSize)
	dst := w.out.view(w.iov[:0], n)
	w.iov = dst[:0]
	w.readIn.Size = uint32(n)
	got, errno := w.s.fs.Read(&w.ctx, w.hdr.NodeID, &w.readIn, dst)
	clear(dst)
	if errno != 0 {
		return errno
	}
	if got < 0 || got > n {
		w.s.limited(slog.LevelError, "file system returned a bad read length", "len", got, "size", n)
		return unix.EIO
	}
	w.dataLen = got
	return 0
}

// doWrite hands the file system the WRITE data where it lies in guest
// memory.
func doWrite(w *Worker) unix.Errno {
	w.writeIn, _ = decode[WriteIn](w.body)
	size := int(w.writeIn.Size)
	if size > w.bodyLen-sizeof[WriteIn]() {
		return w.decodeError("write size exceeds the request")
	}
	src := w.in.view(w.iov[:0], size)
	w.iov = src[:0]
	got, errno := w.s.fs.Write(&w.ctx, w.hdr.NodeID, &w.writeIn, src)
	clear(src)
	if errno != 0 {
		return errno
	}
	if got < 0 || got > size {
		w.s.limited(slog.LevelError, "file system returned a bad write length", "len", got, "size", size)
		return unix.EIO
	}
	w.writeOut = WriteOut{Size: uint32(got)}
	w.setReply(bytesOf(&w.writeOut))
	return 0
}

func doStatfs(w *Worker) unix.Errno {
	w.statfs = StatfsOut{}
	w.setReply(bytesOf(&w.statfs))
	return w.s.fs.Statfs(&w.ctx, w.hdr.NodeID, &w.statfs)
}

func doRelease(w *Worker) unix.Errno {
	w.releaseIn, _ = decode[ReleaseIn](w.body)
	return w.s.fs.Release(&w.ctx, w.hdr.NodeID, &w.releaseIn)
}

func doReleasedir(w *Worker) unix.Errno {
	w.releaseIn, _ = decode[ReleaseIn](w.body)
	return w.s.fs.Releasedir(&w.ctx, w.hdr.NodeID, &w.releaseIn)
}

func doFlush(w *Worker) unix.Errno {
	w.flushIn, _ = decode[FlushIn](w.body)
	return w.s.fs.Flush(&w.ctx, w.hdr.NodeID, &w.flushIn)
}

func doFsync(w *Worker) unix.Errno {
	w.fsyncIn, _ = decode[FsyncIn](w.body)
	return w.s.fs.Fsync(&w.ctx, w.hdr.NodeID, &w.fsyncIn)
}

func doFsyncdir(w *Worker) unix.Errno {
	w.fsyncIn, _ = decode[FsyncIn](w.body)
	return w.s.fs.Fsyncdir(&w.ctx, w.hdr.NodeID, &w.fsyncIn)
}

func doAccess(w *Worker) unix.Errno {
	in, _ := decode[AccessIn](w.body)
	return w.s.fs.Access(&w.ctx, w.hdr.NodeID, in.Mask)
}

func doFallocate(w *Worker) unix.Errno {
	w.fallocIn, _ = decode[FallocateIn](w.body)
	return w.s.fs.Fallocate(&w.ctx, w.hdr.NodeID, &w.fallocIn)
}

func doLseek(w *Worker) unix.Errno {
	w.lseekIn, _ = decode[LseekIn](w.body)
	w.lseekOut = LseekOut{}
	w.setReply(bytesOf(&w.lseekOut))
	return w.s.fs.Lseek(&w.ctx, w.hdr.NodeID, &w.lseekIn, &w.lseekOut)
}

// doCopyFileRange replies with the byte count truncated to 32 bits, as
// struct fuse_write_out holds no more.
func doCopyFileRange(w *Worker) unix.Errno {
	w.copyIn, _ = decode[CopyFileRangeIn](w.body)
	n, errno := w.s.fs.CopyFileRange(&w.ctx, w.hdr.NodeID, &w.copyIn)
	if errno != 0 {
		return errno
	}
	if n < 0 || uint64(n) > w.copyIn.Len {
		w.s.limited(slog.LevelError, "file system returned a bad copy length", "len", n, "size", w.copyIn.Len)
		return unix.EIO
	}
	w.writeOut = WriteOut{Size: uint32(n)}
	w.setReply(bytesOf(&w.writeOut))
	return 0
}

// doSyncfs does not read the body (struct fuse_syncfs_in holds only
// padding).
func doSyncfs(w *Worker) unix.Errno {
	return w.s.fs.Syncfs(&w.ctx, w.hdr.NodeID)
}

// doInterrupt ignores the request: requests are never cancelled.
func doInterrupt(w *Worker) unix.Errno { return 0 }

func doDestroy(w *Worker) unix.Errno {
	w.s.Destroy()
	return 0
}
