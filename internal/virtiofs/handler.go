package virtiofs

import "virtiofsd/internal/fuse"

// requestHandler is what the device needs from the FUSE layer. It exists so
// that tests can drive the device with a fake; production code always uses
// fuseHandler.
type requestHandler interface {
	// newWorker returns per-thread request state.
	newWorker() requestWorker
	// destroy drops all file-system state (RESET_DEVICE).
	destroy()
}

// requestWorker serves requests on one locked OS thread.
type requestWorker interface {
	// Serve handles the request in the chain's readable buffers, writes
	// the reply contiguously from the start of the writable buffers and
	// returns the number of bytes written.
	Serve(in, out [][]byte) uint32
}

// fuseHandler adapts *fuse.Server to requestHandler.
type fuseHandler struct{ srv *fuse.Server }

func (h fuseHandler) newWorker() requestWorker { return h.srv.NewWorker() }
func (h fuseHandler) destroy()                 { h.srv.Destroy() }

var _ requestWorker = (*fuse.Worker)(nil)
