package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/linux"
	"virtiofsd/internal/virtqueue"
)

const (
	testFeatures = VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES | VIRTIO_RING_F_EVENT_IDX |
		VIRTIO_RING_F_INDIRECT_DESC | VHOST_F_LOG_ALL
	testProto = VHOST_USER_PROTOCOL_F_MQ | VHOST_USER_PROTOCOL_F_REPLY_ACK |
		VHOST_USER_PROTOCOL_F_BACKEND_REQ | VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD |
		VHOST_USER_PROTOCOL_F_RESET_DEVICE | VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS
)

// fakeBackend records what the server asks of the device.
type fakeBackend struct {
	proto  uint64
	config []byte

	mu     sync.Mutex
	events []string
	queues map[int]*virtqueue.Queue
	mem    *guestmem.Memory // from the last StartQueue
}

func (b *fakeBackend) record(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, fmt.Sprintf(format, args...))
}

func (b *fakeBackend) takeEvents() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.events
	b.events = nil
	return e
}

func (b *fakeBackend) Features() uint64         { return testFeatures }
func (b *fakeBackend) ProtocolFeatures() uint64 { return b.proto }
func (b *fakeBackend) NumQueues() int           { return 2 }
func (b *fakeBackend) ReadConfig(p []byte, off uint32) bool {
	if b.config == nil {
		return false
	}
	if int(off) < len(b.config) {
		copy(p, b.config[off:])
	}
	return true
}
func (b *fakeBackend) StartQueue(idx int, q *virtqueue.Queue, mem *guestmem.Memory, kick int) error {
	b.mu.Lock()
	if b.queues == nil {
		b.queues = map[int]*virtqueue.Queue{}
	}
	b.queues[idx] = q
	b.mem = mem
	b.mu.Unlock()
	// The kick fd must be valid while the queue runs.
	if _, err := unix.FcntlInt(uintptr(kick), unix.F_GETFD, 0); err != nil {
		return err
	}
	b.record("start %d enabled=%v", idx, q.Enabled())
	return nil
}
func (b *fakeBackend) StopQueue(idx int) { b.record("stop %d", idx) }
func (b *fakeBackend) WakeQueue(idx int) { b.record("wake %d", idx) }
func (b *fakeBackend) Reset()            { b.record("reset") }

// frontend is a scripted vhost-user front-end.
type frontend struct {
	t    *testing.T
	fd   int
	b    *fakeBackend
	done chan error
	err  error
	exit bool
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// startServer runs Serve on one end of a socketpair. At cleanup it checks
// that no descriptor leaked.
func startServer(t *testing.T, b *fakeBackend) *frontend {
	t.Helper()
	return startServerWith(t, b, b)
}

// startServerWith is startServer with sb as the Backend; fb (which sb
// wraps) provides the offered features.
func startServerWith(t *testing.T, fb *fakeBackend, sb Backend) *frontend {
	t.Helper()
	b := fb
	before := openFDs(t)
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 30} // bounds a failing test only
	unix.SetsockoptTimeval(sp[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	f := &frontend{t: t, fd: sp[0], b: b, done: make(chan error, 1)}
	go func() { f.done <- Serve(sp[1], sb, nil) }()
	t.Cleanup(func() {
		f.wait()
		unix.Close(f.fd)
		if got := openFDs(t); got != before {
			t.Errorf("open fds after the connection = %d, want %d", got, before)
		}
	})
	return f
}

// wait closes the front-end side and returns Serve's result.
func (f *frontend) wait() error {
	if !f.exit {
		unix.Shutdown(f.fd, unix.SHUT_WR)
		select {
		case f.err = <-f.done:
		case <-time.After(30 * time.Second):
			f.t.Fatal("Serve did not return after disconnect")
		}
		f.exit = true
	}
	return f.err
}

// expectClosed checks that the server ended the connection with an error.
func (f *frontend) expectClosed() {
	f.t.Helper()
	var buf [64]byte
	for {
		n, err := linux.Read(f.fd, buf[:])
		if errors.Is(err, unix.ECONNRESET) {
			break
		}
		if err != nil {
			f.t.Fatalf("read after fatal request: %v (want EOF)", err)
		}
		if n == 0 {
			break
		}
	}
	select {
	case f.err = <-f.done:
		f.exit = true
	case <-time.After(30 * time.Second):
		f.t.Fatal("Serve did not return")
	}
	if f.err == nil {
		f.t.Fatal("Serve returned nil after a protocol error")
	}
}

func (f *frontend) sendRaw(hdr []byte, payload []byte, fds ...int) {
	f.t.Helper()
	msg := append(append([]byte{}, hdr...), payload...)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for len(msg) > 0 {
		n, err := unix.SendmsgN(f.fd, msg, oob, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			f.t.Fatalf("send: %v", err)
		}
		msg, oob = msg[n:], nil
	}
}

func (f *frontend) send(req Request, flags uint32, payload []byte, fds ...int) {
	f.t.Helper()
	hdr := make([]byte, 12)
	binary.LittleEndian.PutUint32(hdr, uint32(req))
	binary.LittleEndian.PutUint32(hdr[4:], VHOST_USER_VERSION|flags)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(payload)))
	f.sendRaw(hdr, payload, fds...)
}

func (f *frontend) recv() (Header, []byte) {
	f.t.Helper()
	hdr := make([]byte, 12)
	if err := readFull(f.fd, hdr); err != nil {
		f.t.Fatalf("receive reply header: %v", err)
	}
	h := Header{
		Request: Request(binary.LittleEndian.Uint32(hdr)),
		Flags:   binary.LittleEndian.Uint32(hdr[4:]),
		Size:    binary.LittleEndian.Uint32(hdr[8:]),
	}
	if h.Flags != 5 {
		f.t.Fatalf("reply flags = %#x, want 0x5", h.Flags)
	}
	body := make([]byte, h.Size)
	if err := readFull(f.fd, body); err != nil {
		f.t.Fatalf("receive reply body: %v", err)
	}
	return h, body
}

func readFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := linux.Read(fd, p)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("unexpected EOF")
		}
		p = p[n:]
	}
	return nil
}

// recvU64 receives a u64 reply to req.
func (f *frontend) recvU64(req Request) uint64 {
	f.t.Helper()
	h, b := f.recv()
	if h.Request != req || h.Size != 8 {
		f.t.Fatalf("reply = %v size %d, want %v size 8", h.Request, h.Size, req)
	}
	return binary.LittleEndian.Uint64(b)
}

// call sends a request that always replies with a u64.
func (f *frontend) call(req Request) uint64 {
	f.t.Helper()
	f.send(req, 0, nil)
	return f.recvU64(req)
}

// noReply checks that nothing was answered to the previous request by
// using GET_FEATURES as a barrier, like QEMU does.
func (f *frontend) noReply() {
	f.t.Helper()
	f.send(VHOST_USER_GET_FEATURES, 0, nil)
	if h, _ := f.recv(); h.Request != VHOST_USER_GET_FEATURES {
		f.t.Fatalf("unexpected reply to %v", h.Request)
	}
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func vstate(idx, num uint32) []byte {
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, idx), num)
}

// negotiate performs QEMU's opening sequence with REPLY_ACK.
func (f *frontend) negotiate(ackProto uint64) {
	f.t.Helper()
	if got := f.call(VHOST_USER_GET_FEATURES); got != testFeatures {
		f.t.Fatalf("GET_FEATURES = %#x", got)
	}
	if got := f.call(VHOST_USER_GET_PROTOCOL_FEATURES); got != f.b.proto {
		f.t.Fatalf("GET_PROTOCOL_FEATURES = %#x", got)
	}
	f.send(VHOST_USER_SET_PROTOCOL_FEATURES, 0, u64(ackProto))
	f.noReply()
}

// ack sends req with NEED_REPLY and returns the ack value.
func (f *frontend) ack(req Request, payload []byte, fds ...int) uint64 {
	f.t.Helper()
	f.send(req, VHOST_USER_NEED_REPLY, payload, fds...)
	return f.recvU64(req)
}

func memfd(t *testing.T, size int64) int {
	t.Helper()
	fd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	return fd
}

func eventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// regionBytes encodes a VhostUserMemoryRegion.
func regionBytes(gpa, size, uva, off uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, gpa)
	b = binary.LittleEndian.AppendUint64(b, size)
	b = binary.LittleEndian.AppendUint64(b, uva)
	return binary.LittleEndian.AppendUint64(b, off)
}

func memTable(regions ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(regions)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, r := range regions {
		b = append(b, r...)
	}
	return b
}

func vringAddr(idx, flags uint32, desc, used, avail uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, idx)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, desc)
	b = binary.LittleEndian.AppendUint64(b, used)
	b = binary.LittleEndian.AppendUint64(b, avail)
	return binary.LittleEndian.AppendUint64(b, 0)
}
