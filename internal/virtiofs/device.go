package virtiofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"unicode/utf8"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/linux"
	"virtiofsd/internal/migration"
	"virtiofsd/internal/vhostuser"
)

// Feature bits offered to the front-end (spec/vhost.md §1.4).
const (
	// features = VHOST_F_LOG_ALL | INDIRECT_DESC | EVENT_IDX |
	// PROTOCOL_FEATURES | VERSION_1 = 0x1_7400_0000.
	features = vhostuser.VHOST_F_LOG_ALL | vhostuser.VIRTIO_RING_F_INDIRECT_DESC |
		vhostuser.VIRTIO_RING_F_EVENT_IDX | vhostuser.VHOST_USER_F_PROTOCOL_FEATURES |
		vhostuser.VIRTIO_F_VERSION_1

	// protocolFeatures = MQ | LOG_SHMFD | REPLY_ACK | BACKEND_REQ | BACKEND_SEND_FD |
	// RESET_DEVICE | CONFIGURE_MEM_SLOTS = 0xA42B (LOG_SHMFD: the dirty log
	// for live migration). DEVICE_STATE is added with the device-state
	// transfer; CONFIG only with a tag.
	protocolFeatures = vhostuser.VHOST_USER_PROTOCOL_F_MQ | vhostuser.VHOST_USER_PROTOCOL_F_REPLY_ACK |
		vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_REQ | vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD |
		vhostuser.VHOST_USER_PROTOCOL_F_RESET_DEVICE | vhostuser.VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS |
		vhostuser.VHOST_USER_PROTOCOL_F_LOG_SHMFD
)

// Config space layout (virtio v1.2 §5.11.4).
const (
	tagSize    = 36
	configSize = tagSize + 4 // tag + num_request_queues (no notify_buf_size)
)

// Queue layout: 0 = hiprio, 1.. = request queues (spec/vhost.md §1.7).
const defaultRequestQueues = 1

// Config configures a Device.
type Config struct {
	// Tag, if non-empty, is served in the config space and enables the
	// vhost-user CONFIG protocol feature. At most 36 bytes of UTF-8.
	Tag string
	// ThreadPoolSize is the number of request threads shared by all queues
	// of the device; 0 runs requests inline on each queue's own thread.
	ThreadPoolSize int
	// Log receives the device's log messages; nil discards them.
	Log *slog.Logger
	// State, if non-nil, saves and loads the file system's state for live
	// migration: DEVICE_STATE is offered, VHOST_F_LOG_ALL turning on and
	// off calls Prepare and Cancel, and device state transfers call Save
	// and Load. With nil, DEVICE_STATE is not offered and transfers are
	// refused.
	State migration.Handler
}

// Device is the virtio-fs vhost-user back-end.
type Device struct {
	h             requestHandler
	cfg           Config
	log           *slog.Logger
	requestQueues int
	hooks         *workerHooks // nil outside tests
}

// New returns a Device serving srv.
func New(srv *fuse.Server, cfg Config) *Device { return newDevice(fuseHandler{srv}, cfg) }

func newDevice(h requestHandler, cfg Config) *Device {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Device{h: h, cfg: cfg, log: log, requestQueues: defaultRequestQueues}
}

func (d *Device) validate() error {
	if len(d.cfg.Tag) > tagSize || !utf8.ValidString(d.cfg.Tag) {
		return fmt.Errorf("invalid tag %q: must be at most %d bytes of UTF-8", d.cfg.Tag, tagSize)
	}
	if d.cfg.ThreadPoolSize < 0 {
		return fmt.Errorf("invalid thread pool size %d", d.cfg.ThreadPoolSize)
	}
	return nil
}

// numQueues returns hiprio plus the request queues.
func (d *Device) numQueues() int { return 1 + d.requestQueues }

// Serve runs the vhost-user protocol on the connected socket connFD, which it
// takes ownership of. It returns nil when the front-end disconnects and an
// error on a protocol error; either way the connection is closed, every
// queue worker has stopped and guest memory has been released.
func (d *Device) Serve(connFD int) error {
	if err := d.validate(); err != nil {
		linux.Close(connFD)
		return err
	}
	// Every request thread gets its own fs context; refuse to start if the
	// sandbox forbids it (spec/fs.md §1.8 step 19).
	if err := linux.ProbeUnshareFS(); err != nil {
		linux.Close(connFD)
		return fmt.Errorf("start request threads: %w", err)
	}
	b := &backend{d: d, workers: make([]*queueWorker, d.numQueues())}
	if d.cfg.ThreadPoolSize > 0 {
		p, err := startPool(d.h, d.cfg.ThreadPoolSize, d.log)
		if err != nil {
			linux.Close(connFD)
			return err
		}
		b.pool = p
		defer p.stop()
	}
	if d.cfg.State != nil {
		return vhostuser.Serve(connFD, stateBackend{b}, d.log)
	}
	return vhostuser.Serve(connFD, b, d.log)
}

// backend implements vhostuser.Backend for one connection.
type backend struct {
	d       *Device
	pool    *pool          // nil in serial mode
	workers []*queueWorker // nil entries: queue not started
	// running counts the started queue workers. The control goroutine
	// changes it; a device state transfer reads it.
	running atomic.Int32
}

var _ vhostuser.Backend = (*backend)(nil)

// Features implements vhostuser.Backend.Features.
func (b *backend) Features() uint64 { return features }

// ProtocolFeatures implements vhostuser.Backend.ProtocolFeatures.
func (b *backend) ProtocolFeatures() uint64 {
	p := uint64(protocolFeatures)
	if b.d.cfg.Tag != "" {
		p |= vhostuser.VHOST_USER_PROTOCOL_F_CONFIG
	}
	if b.d.cfg.State != nil {
		p |= vhostuser.VHOST_USER_PROTOCOL_F_DEVICE_STATE
	}
	return p
}

// NumQueues implements vhostuser.Backend.NumQueues.
func (b *backend) NumQueues() int { return b.d.numQueues() }

// ReadConfig implements vhostuser.Backend.ReadConfig.
func (b *backend) ReadConfig(p []byte, off uint32) bool {
	if b.d.cfg.Tag == "" {
		return false
	}
	var cfg [configSize]byte
	copy(cfg[:tagSize], b.d.cfg.Tag)
	binary.LittleEndian.PutUint32(cfg[tagSize:], uint32(b.d.requestQueues))
	clear(p)
	if uint64(off) < configSize {
		copy(p, cfg[off:])
	}
	return true
}

// Reset implements vhostuser.Backend.Reset.
func (b *backend) Reset() { b.d.h.destroy() }

// stateBackend is the backend of a device with a migration.Handler.
type stateBackend struct{ *backend }

var _ vhostuser.StateBackend = stateBackend{}

// errQueuesRunning refuses a transfer while a queue worker may still run
// requests; vhostuser refuses it earlier, this keeps the file system safe
// whatever the control plane does.
var errQueuesRunning = errors.New("device state transfer while a queue is running")

// LogAll implements vhostuser.StateBackend.LogAll.
func (b stateBackend) LogAll(on bool) {
	if on {
		b.d.cfg.State.Prepare()
	} else {
		b.d.cfg.State.Cancel()
	}
}

// SaveState implements vhostuser.StateBackend.SaveState.
func (b stateBackend) SaveState(w io.Writer) error {
	if b.running.Load() != 0 {
		return errQueuesRunning
	}
	return b.d.cfg.State.Save(w)
}

// LoadState implements vhostuser.StateBackend.LoadState.
func (b stateBackend) LoadState(r io.Reader) error {
	if b.running.Load() != 0 {
		return errQueuesRunning
	}
	return b.d.cfg.State.Load(r)
}
