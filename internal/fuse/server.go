package fuse

// Server decodes FUSE requests carried in scatter-gather buffers (one
// virtqueue descriptor chain each) and dispatches them to a FileSystem.
// It is safe for concurrent use by several Workers.
type Server struct {
	fs FileSystem
}

// NewServer returns a Server that forwards requests to fs.
func NewServer(fs FileSystem) *Server { return &Server{fs: fs} }

// Worker is the per-OS-thread scratch state used to serve requests without
// allocating. A Worker is owned by exactly one goroutine.
type Worker struct {
	s *Server
}

// NewWorker returns a new Worker for s.
func (s *Server) NewWorker() *Worker { return &Worker{s: s} }

// Serve handles one request. in holds the device-readable buffers of the
// chain in order and out the device-writable ones; both point into guest
// memory. Serve returns the number of bytes it wrote to out, which are always
// the first n bytes of the concatenation of out (the virtqueue used length).
// It returns 0 for requests that take no reply. Serve never panics because
// of request content.
//
// Preconditions: the calling goroutine is locked to its OS thread and that
// thread has its own fs context (unshare(CLONE_FS)).
func (w *Worker) Serve(in, out [][]byte) uint32 {
	panic("fuse: Serve is being written (issue 2)")
}

// Destroy drops all filesystem state, like FUSE_DESTROY. Used for
// vhost-user RESET_DEVICE.
func (s *Server) Destroy() {}
