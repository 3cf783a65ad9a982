package virtiofs

import (
	"log/slog"

	"virtiofsd/internal/fuse"
)

// Config configures a Device.
type Config struct {
	// Tag, if non-empty, is served in the config space and enables the
	// vhost-user CONFIG protocol feature.
	Tag string
	// ThreadPoolSize is the number of worker threads per request queue;
	// 0 runs requests inline on the queue's own worker.
	ThreadPoolSize int
	Log            *slog.Logger
}

// Device is the virtio-fs vhost-user back-end.
type Device struct {
	srv *fuse.Server
	cfg Config
}

// New returns a Device serving srv.
func New(srv *fuse.Server, cfg Config) *Device { return &Device{srv: srv, cfg: cfg} }

// Serve runs the vhost-user protocol on the connected socket connFD, which it
// takes ownership of. It returns nil when the front-end disconnects and an
// error on a protocol error; either way the connection is closed.
func (d *Device) Serve(connFD int) error {
	panic("virtiofs: Serve is being written (issue 2)")
}
