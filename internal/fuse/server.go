package fuse

import (
	"log/slog"
	"os"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Options configures a Server.
type Options struct {
	// Log receives the Server's messages; nil means slog.Default().
	Log *slog.Logger
	// Debug logs one line per request and reply at debug level.
	Debug bool
}

// Server decodes FUSE requests carried in scatter-gather buffers (one
// virtqueue descriptor chain each) and dispatches them to a FileSystem.
// It is safe for concurrent use by several Workers.
type Server struct {
	fs    FileSystem
	log   *slog.Logger
	debug bool

	// negotiated is the INIT flag set enabled for the session
	// (flags | flags2<<32); 0 before INIT and after DESTROY.
	negotiated atomic.Uint64

	// maxPages is fuse_init_out.max_pages: MaxWrite in host pages.
	maxPages uint16

	limiter rateLimiter
}

// NewServer returns a Server that forwards requests to fs, logging to
// slog.Default().
func NewServer(fs FileSystem) *Server { return NewServerWithOptions(fs, Options{}) }

// NewServerWithOptions returns a Server that forwards requests to fs.
func NewServerWithOptions(fs FileSystem, o Options) *Server {
	s := &Server{fs: fs, log: o.Log, debug: o.Debug}
	if s.log == nil {
		s.log = slog.Default()
	}
	page := os.Getpagesize()
	s.maxPages = uint16((MaxWrite + page - 1) / page)
	return s
}

// Negotiated returns the INIT flags enabled for the current session
// (flags | flags2<<32), or 0 before FUSE_INIT and after FUSE_DESTROY.
func (s *Server) Negotiated() uint64 { return s.negotiated.Load() }

// SetNegotiated replaces the negotiated INIT flag set. It is meant for a
// migration destination, which receives a session that was initialized on
// the source.
func (s *Server) SetNegotiated(flags uint64) { s.negotiated.Store(flags) }

// Destroy drops all filesystem state, like FUSE_DESTROY. Used for
// vhost-user RESET_DEVICE.
func (s *Server) Destroy() {
	s.fs.Destroy()
	s.negotiated.Store(0)
}

// readlinkBufSize is the size of the buffer FileSystem.Readlink fills.
const readlinkBufSize = 4096

// Worker is the per-OS-thread scratch state used to serve requests without
// allocating. A Worker is owned by exactly one goroutine.
//
// Every structure handed to the FileSystem by pointer lives here, so that
// nothing escapes to the heap per request.
type Worker struct {
	s *Server

	in      sgbuf    // cursor over the request bytes
	out     sgbuf    // cursor over the reply buffers
	outBufs [][]byte // the reply buffers, to rewind out
	outCap  int      // total reply buffer capacity

	hdr     InHeader
	ctx     Context
	body    []byte // copy of the request body after the header
	bodyLen int    // body length declared by hdr.Len

	// Reply state set by the handlers: payload slices written after the
	// header, or dataLen bytes the handler already wrote at offset 16.
	reply   [2][]byte
	nreply  int
	dataLen int

	// Decoded request bodies.
	getattrIn  GetattrIn
	setattrIn  SetattrIn
	mknodIn    MknodIn
	mkdirIn    MkdirIn
	openIn     OpenIn
	createIn   CreateIn
	releaseIn  ReleaseIn
	flushIn    FlushIn
	readIn     ReadIn
	writeIn    WriteIn
	fsyncIn    FsyncIn
	fallocIn   FallocateIn
	lseekIn    LseekIn
	copyIn     CopyFileRangeIn
	setxattrIn SetxattrIn

	// Reply structures.
	entry    EntryOut
	attr     AttrOut
	open     OpenOut
	statfs   StatfsOut
	writeOut WriteOut
	initOut  InitOut
	dirent   Dirent
	lseekOut LseekOut
	xattrOut GetxattrOut

	iov     [][]byte // view of guest memory for READ/WRITE
	dirbuf  []byte   // FileSystem.Readdir records; GETXATTR/LISTXATTR replies
	linkbuf []byte   // FileSystem.Readlink target
	gids    []uint32 // supplementary groups of a request extension
}

// NewWorker returns a new Worker for s.
func (s *Server) NewWorker() *Worker {
	return &Worker{
		s:       s,
		body:    make([]byte, 0, MaxRequestLen-inHeaderSize),
		iov:     make([][]byte, 0, 64),
		dirbuf:  make([]byte, MaxBufferSize),
		linkbuf: make([]byte, readlinkBufSize),
		gids:    make([]uint32, 0, 8),
	}
}

// Serve handles one request. in holds the device-readable buffers of the
// chain in order and out the device-writable ones; both point into guest
// memory. Serve returns the number of bytes it wrote to out, which are always
// the first n bytes of the concatenation of out (the virtqueue used length).
// It returns 0 for requests that take no reply. Serve never panics because
// of request content.
//
// Preconditions: the calling goroutine is locked to its OS thread and that
// thread has its own fs context (unshare(CLONE_FS)).
func (w *Worker) Serve(in, out [][]byte) (n uint32) {
	w.in.reset(in)
	w.out.reset(out)
	w.outBufs = out
	w.outCap = w.out.left
	defer func() {
		if r := recover(); r != nil {
			n = w.recovered(r)
		}
		// Keep no reference to guest memory between requests.
		w.in.bufs, w.out.bufs, w.outBufs = nil, nil, nil
	}()
	if w.in.left < inHeaderSize {
		w.s.warn("drop request: truncated header", "bytes", w.in.left)
		return 0
	}
	w.in.read(bytesOf(&w.hdr))
	return w.dispatch()
}

// dispatch runs the request whose header is in w.hdr.
func (w *Worker) dispatch() uint32 {
	h := &w.hdr
	if w.s.debug {
		w.s.log.Debug("request", "unique", h.Unique, "opcode", h.Opcode, "nodeid", h.NodeID, "len", h.Len)
	}
	if h.Len > MaxRequestLen {
		w.s.warn("reject request: too long", "opcode", h.Opcode, "unique", h.Unique, "len", h.Len)
		return w.replyError(unix.ENOMEM)
	}
	var o *op
	if uint32(h.Opcode) < uint32(len(ops)) {
		o = &ops[h.Opcode]
	}
	if o == nil || o.handle == nil {
		if w.s.debug {
			w.s.log.Debug("unknown request", "opcode", h.Opcode, "unique", h.Unique)
		}
		return w.replyError(unix.ENOSYS)
	}
	if int(h.Len) < inHeaderSize || int(h.Len)-inHeaderSize > w.in.left {
		return w.malformed("length does not match the buffers")
	}
	w.bodyLen = int(h.Len) - inHeaderSize
	if w.bodyLen < o.fixed {
		return w.malformed("body shorter than its fixed part")
	}
	if !o.noReply && w.outCap < outHeaderSize+o.outSize {
		// The reply could not be delivered: do not execute the request.
		w.s.warn("reject request: reply buffer too small", "opcode", h.Opcode,
			"unique", h.Unique, "capacity", w.outCap)
		return w.replyError(unix.EINVAL)
	}
	n := o.fixed
	if o.wholeBody {
		n = w.bodyLen
	}
	w.body = w.body[:n]
	w.in.read(w.body)
	w.ctx = Context{UID: h.UID, GID: h.GID, PID: h.PID}
	w.nreply = 0
	w.dataLen = 0

	errno := o.handle(w)
	if o.noReply {
		return 0
	}
	if errno != 0 {
		return w.replyError(errno)
	}
	return w.replyOK()
}

// malformed logs a request that cannot be decoded and answers it with
// EINVAL, or drops it if the opcode takes no reply.
func (w *Worker) malformed(why string) uint32 {
	w.s.warn("reject malformed request: "+why, "opcode", w.hdr.Opcode, "unique", w.hdr.Unique, "len", w.hdr.Len)
	if uint32(w.hdr.Opcode) < uint32(len(ops)) && ops[w.hdr.Opcode].noReply {
		return 0
	}
	return w.replyError(unix.EINVAL)
}

// decodeError logs a body that cannot be decoded and returns EINVAL for
// the handler to reply with.
func (w *Worker) decodeError(why string) unix.Errno {
	w.s.warn("reject malformed request: "+why, "opcode", w.hdr.Opcode, "unique", w.hdr.Unique)
	return unix.EINVAL
}

// setReply sets the reply payload to b (aliasing Worker memory).
func (w *Worker) setReply(b []byte) {
	w.reply[0] = b
	w.nreply = 1
}

// addReply appends b to the reply payload.
func (w *Worker) addReply(b []byte) {
	w.reply[w.nreply] = b
	w.nreply++
}

// replyOK writes a success header and the payload to out. A handler that
// wrote its data itself (dataLen) has already placed it at offset 16.
func (w *Worker) replyOK() uint32 {
	total := outHeaderSize + w.dataLen
	for i := 0; i < w.nreply; i++ {
		total += len(w.reply[i])
	}
	if total > w.outCap {
		// Unreachable for well-formed handlers: the dispatcher checks
		// fixed reply sizes and data handlers limit themselves to outCap.
		w.s.warn("reject request: reply does not fit", "opcode", w.hdr.Opcode, "unique", w.hdr.Unique, "reply", total, "capacity", w.outCap)
		return w.replyError(unix.EINVAL)
	}
	oh := OutHeader{Len: uint32(total), Unique: w.hdr.Unique}
	w.out.reset(w.outBufs)
	w.out.write(bytesOf(&oh))
	if w.dataLen == 0 {
		for i := 0; i < w.nreply; i++ {
			w.out.write(w.reply[i])
		}
	}
	if w.s.debug {
		w.s.log.Debug("reply", "unique", w.hdr.Unique, "len", total)
	}
	return uint32(total)
}

// replyError writes an error-only reply (16 bytes). If the reply buffers
// cannot hold it, nothing is written and 0 is returned.
func (w *Worker) replyError(errno unix.Errno) uint32 {
	if errno == 0 || errno > 4095 {
		w.s.warn("map invalid errno to EIO", "opcode", w.hdr.Opcode, "errno", uint64(errno))
		errno = unix.EIO
	}
	if w.outCap < outHeaderSize {
		w.s.warn("drop reply: no room for a reply header", "opcode", w.hdr.Opcode, "unique", w.hdr.Unique, "errno", errno.Error(), "capacity", w.outCap)
		return 0
	}
	oh := OutHeader{Len: uint32(outHeaderSize), Error: -int32(errno), Unique: w.hdr.Unique}
	w.out.reset(w.outBufs)
	w.out.write(bytesOf(&oh))
	if w.s.debug {
		w.s.log.Debug("reply", "unique", w.hdr.Unique, "error", errno.Error())
	}
	return uint32(outHeaderSize)
}

// recovered turns a panic raised while serving a request (by the
// FileSystem, or by a bug in this package) into an EIO reply.
func (w *Worker) recovered(r any) uint32 {
	w.s.limited(slog.LevelError, "recover panic in request handler", "opcode", w.hdr.Opcode,
		"unique", w.hdr.Unique, "panic", r, "stack", string(debug.Stack()))
	if uint32(w.hdr.Opcode) < uint32(len(ops)) && ops[w.hdr.Opcode].noReply {
		return 0
	}
	return w.replyError(unix.EIO)
}
