package virtiofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
	"virtiofsd/internal/migration"
	"virtiofsd/internal/vhostuser"
	"virtiofsd/internal/virtqueue"
)

// fakeHandler echoes the readable bytes of a request into its writable
// buffers. A request whose first byte is blockByte waits for release.
type fakeHandler struct {
	release   chan struct{}
	entered   chan struct{}
	destroyed atomic.Int32
	served    atomic.Int32
}

const blockByte = 0xbb

func newFakeHandler() *fakeHandler {
	return &fakeHandler{release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (h *fakeHandler) newWorker() requestWorker { return &fakeWorker{h: h} }
func (h *fakeHandler) destroy()                 { h.destroyed.Add(1) }

type fakeWorker struct{ h *fakeHandler }

func (w *fakeWorker) Serve(in, out [][]byte) uint32 {
	if len(in) > 0 && len(in[0]) > 0 && in[0][0] == blockByte {
		w.h.entered <- struct{}{}
		<-w.h.release
	}
	w.h.served.Add(1)
	var n uint32
	oi, off := 0, 0
	for _, b := range in {
		for len(b) > 0 && oi < len(out) {
			c := copy(out[oi][off:], b)
			b, off, n = b[c:], off+c, n+uint32(c)
			if off == len(out[oi]) {
				oi, off = oi+1, 0
			}
		}
	}
	return n
}

// Guest memory layout (one 2 MiB memfd region at GPA 0):
//
//	queue q rings at q·0x10000: desc +0, avail +0x4000, used +0x8000
//	queue q buffers at 0x100000 + q·0x40000: slot k in +k·0x1000, out +k·0x1000+0x800
const (
	guestSize = 2 << 20
	guestUVA  = 0x7e00_0000_0000
	qSize     = 64
	slots     = qSize / 2
	slotBytes = 0x800
)

func ringBase(q int) uint64  { return uint64(q) * 0x10000 }
func bufBase(q int) uint64   { return 0x100000 + uint64(q)*0x40000 }
func inGPA(q, k int) uint64  { return bufBase(q) + uint64(k)*0x1000 }
func outGPA(q, k int) uint64 { return inGPA(q, k) + slotBytes }

// testQueue is the driver side of one queue.
type testQueue struct {
	mu       sync.Mutex
	free     []int
	avail    uint16
	lastUsed uint16
	want     map[int][]byte // slot -> expected reply
	done     int
	kick     int
	call     int
}

// testDev is a front-end plus guest driver talking to a Device.
type testDev struct {
	t     *testing.T
	fd    int
	done  chan error
	mem   []byte
	memfd int // the guest RAM file, kept to simulate its truncation
	h     *fakeHandler
	logs  *syncBuffer
	q     [2]*testQueue
	err   error
	exit  bool
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// startDev runs a device with the fake handler and sets up both queues.
func startDev(t *testing.T, poolSize int, eventIdx bool) *testDev {
	t.Helper()
	return startDevHooks(t, poolSize, eventIdx, nil)
}

// startDevHooks is startDev with hooks installed in every queue worker.
func startDevHooks(t *testing.T, poolSize int, eventIdx bool, hooks *workerHooks) *testDev {
	t.Helper()
	return startDevConfig(t, poolSize, eventIdx, hooks, nil)
}

// startDevConfig is startDevHooks with state as the device's
// migration.Handler.
func startDevConfig(t *testing.T, poolSize int, eventIdx bool, hooks *workerHooks, state migration.Handler) *testDev {
	t.Helper()
	before := openFDs(t)
	h := newFakeHandler()
	logs := &syncBuffer{}
	dev := newDevice(h, Config{Tag: "testfs", ThreadPoolSize: poolSize, State: state,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	dev.hooks = hooks
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDev{t: t, fd: sp[0], done: make(chan error, 1), h: h, logs: logs}
	go func() { d.done <- dev.Serve(sp[1]) }()

	memfd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(memfd, guestSize); err != nil {
		t.Fatal(err)
	}
	d.mem, err = unix.Mmap(memfd, 0, guestSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(h.release)
		d.wait()
		unix.Close(d.fd)
		for _, q := range d.q {
			unix.Close(q.kick)
			unix.Close(q.call)
		}
		unix.Munmap(d.mem)
		unix.Close(d.memfd)
		if got := openFDs(t); got != before {
			t.Errorf("open fds after the connection = %d, want %d", got, before)
		}
	})

	d.call(vhostuser.VHOST_USER_GET_FEATURES, nil)
	wantProto := uint64(protocolFeatures | vhostuser.VHOST_USER_PROTOCOL_F_CONFIG)
	if state != nil {
		wantProto |= vhostuser.VHOST_USER_PROTOCOL_F_DEVICE_STATE
	}
	if got := d.call(vhostuser.VHOST_USER_GET_PROTOCOL_FEATURES, nil); got != wantProto {
		t.Fatalf("GET_PROTOCOL_FEATURES = %#x, want %#x", got, wantProto)
	}
	d.send(vhostuser.VHOST_USER_SET_PROTOCOL_FEATURES, 0, u64(protocolFeatures))
	d.ack(vhostuser.VHOST_USER_SET_OWNER, nil)
	feat := uint64(features)
	if !eventIdx {
		feat &^= vhostuser.VIRTIO_RING_F_EVENT_IDX
	}
	d.ack(vhostuser.VHOST_USER_SET_FEATURES, u64(feat))
	region := append(u64(0), u64(guestSize)...)
	region = append(region, u64(guestUVA)...)
	region = append(region, u64(0)...)
	d.ack(vhostuser.VHOST_USER_ADD_MEM_REG, append(u64(0), region...), memfd)
	d.memfd = memfd
	for i := range d.q {
		d.q[i] = &testQueue{want: map[int][]byte{}}
		for k := range slots {
			d.q[i].free = append(d.q[i].free, k)
		}
		d.setupRing(i)
	}
	return d
}

func (d *testDev) setupRing(i int) {
	q := d.q[i]
	var err error
	if q.kick <= 0 {
		if q.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			d.t.Fatal(err)
		}
		if q.call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			d.t.Fatal(err)
		}
	}
	d.ack(vhostuser.VHOST_USER_SET_VRING_NUM, vstate(uint32(i), qSize))
	d.ack(vhostuser.VHOST_USER_SET_VRING_BASE, vstate(uint32(i), uint32(q.avail)))
	addr := binary.LittleEndian.AppendUint32(nil, uint32(i))
	addr = binary.LittleEndian.AppendUint32(addr, 0)
	addr = binary.LittleEndian.AppendUint64(addr, guestUVA+ringBase(i))
	addr = binary.LittleEndian.AppendUint64(addr, guestUVA+ringBase(i)+0x8000)
	addr = binary.LittleEndian.AppendUint64(addr, guestUVA+ringBase(i)+0x4000)
	addr = binary.LittleEndian.AppendUint64(addr, 0)
	d.ack(vhostuser.VHOST_USER_SET_VRING_ADDR, addr)
	d.ack(vhostuser.VHOST_USER_SET_VRING_CALL, u64(uint64(i)), q.call)
	d.ack(vhostuser.VHOST_USER_SET_VRING_KICK, u64(uint64(i)), q.kick)
	d.ack(vhostuser.VHOST_USER_SET_VRING_ENABLE, vstate(uint32(i), 1))
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func vstate(idx, num uint32) []byte {
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, idx), num)
}

func (d *testDev) send(req vhostuser.Request, flags uint32, payload []byte, fds ...int) {
	d.t.Helper()
	msg := binary.LittleEndian.AppendUint32(nil, uint32(req))
	msg = binary.LittleEndian.AppendUint32(msg, vhostuser.VHOST_USER_VERSION|flags)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(len(payload)))
	msg = append(msg, payload...)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		n, err := unix.SendmsgN(d.fd, msg, oob, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			d.t.Fatalf("send %v: %v", req, err)
		}
		if msg, oob = msg[n:], nil; len(msg) == 0 {
			return
		}
	}
}

// readable reports whether a reply is waiting, within timeout. Signals
// (the runtime's preemption signal in particular) do not cut the wait
// short.
func (d *testDev) readable(timeout time.Duration) bool {
	d.t.Helper()
	fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
	n, err := linux.Poll(fds, timeout)
	if err != nil {
		d.t.Fatal(err)
	}
	return n > 0
}

// replyTimeout bounds the wait for a reply that must come. It only decides
// when a test fails, so it is generous: the machine may be loaded.
const replyTimeout = 30 * time.Second

func (d *testDev) recv(req vhostuser.Request) []byte {
	d.t.Helper()
	if !d.readable(replyTimeout) {
		d.t.Fatalf("no reply to %v", req)
	}
	hdr := make([]byte, 12)
	d.readFull(hdr)
	if got := vhostuser.Request(binary.LittleEndian.Uint32(hdr)); got != req || binary.LittleEndian.Uint32(hdr[4:]) != 5 {
		d.t.Fatalf("reply %v flags %#x, want %v", got, binary.LittleEndian.Uint32(hdr[4:]), req)
	}
	body := make([]byte, binary.LittleEndian.Uint32(hdr[8:]))
	d.readFull(body)
	return body
}

// readFull reads exactly len(p) bytes of a reply.
func (d *testDev) readFull(p []byte) {
	d.t.Helper()
	for len(p) > 0 {
		if !d.readable(replyTimeout) {
			d.t.Fatal("reply cut short")
		}
		n, err := linux.Read(d.fd, p)
		if err != nil {
			d.t.Fatal(err)
		}
		if n == 0 {
			d.t.Fatal("connection closed in the middle of a reply")
		}
		p = p[n:]
	}
}

func (d *testDev) call(req vhostuser.Request, payload []byte) uint64 {
	d.t.Helper()
	d.send(req, 0, payload)
	return binary.LittleEndian.Uint64(d.recv(req))
}

// recvCall sends a request that always has a reply and returns the reply.
func (d *testDev) recvCall(req vhostuser.Request, payload []byte) []byte {
	d.t.Helper()
	d.send(req, 0, payload)
	return d.recv(req)
}

func pollNow(t *testing.T, fd int) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := linux.Poll(fds, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func (d *testDev) ack(req vhostuser.Request, payload []byte, fds ...int) {
	d.t.Helper()
	d.send(req, vhostuser.VHOST_USER_NEED_REPLY, payload, fds...)
	if v := binary.LittleEndian.Uint64(d.recv(req)); v != 0 {
		d.t.Fatalf("%v ack = %d", req, v)
	}
}

func (d *testDev) wait() error {
	if !d.exit {
		unix.Shutdown(d.fd, unix.SHUT_WR)
		select {
		case d.err = <-d.done:
		case <-time.After(replyTimeout):
			d.t.Fatal("Serve did not return")
		}
		d.exit = true
	}
	return d.err
}

func (d *testDev) le16(gpa uint64) uint16 { return binary.LittleEndian.Uint16(d.mem[gpa:]) }

func (d *testDev) setDesc(q, i int, addr uint64, l uint32, flags, next uint16) {
	b := d.mem[ringBase(q)+uint64(i)*16:]
	binary.LittleEndian.PutUint64(b, addr)
	binary.LittleEndian.PutUint32(b[8:], l)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

// reapLocked consumes used elements, checking each reply.
func (d *testDev) reapLocked(qi int) error {
	q := d.q[qi]
	used := ringBase(qi) + 0x8000
	for idx := d.le16(used + 2); q.lastUsed != idx; q.lastUsed++ {
		off := used + 4 + 8*uint64(q.lastUsed%qSize)
		head := int(binary.LittleEndian.Uint32(d.mem[off:]))
		n := binary.LittleEndian.Uint32(d.mem[off+4:])
		k := head / 2
		want, ok := q.want[k]
		if !ok || head%2 != 0 {
			return fmt.Errorf("queue %d: unexpected used head %d", qi, head)
		}
		out := d.mem[outGPA(qi, k) : outGPA(qi, k)+uint64(n)]
		if !bytes.Equal(out, want) {
			return fmt.Errorf("queue %d slot %d: reply %q (len %d), want %q", qi, k, out, n, want)
		}
		delete(q.want, k)
		q.free = append(q.free, k)
		q.done++
	}
	return nil
}

// post publishes a two-descriptor chain (request in, reply space out) and
// returns its slot. It waits for a free slot if needed.
func (d *testDev) post(qi int, req []byte, wantReply []byte) int {
	q := d.q[qi]
	deadline := time.Now().Add(replyTimeout)
	for {
		q.mu.Lock()
		if err := d.reapLocked(qi); err != nil {
			q.mu.Unlock()
			panic(err)
		}
		if len(q.free) > 0 {
			break
		}
		q.mu.Unlock()
		if time.Now().After(deadline) {
			panic("no free descriptor slot")
		}
		time.Sleep(100 * time.Microsecond)
	}
	defer q.mu.Unlock()
	k := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	copy(d.mem[inGPA(qi, k):], req)
	clear(d.mem[outGPA(qi, k) : outGPA(qi, k)+slotBytes])
	d.setDesc(qi, 2*k, inGPA(qi, k), uint32(len(req)), virtqueue.VRING_DESC_F_NEXT, uint16(2*k+1))
	d.setDesc(qi, 2*k+1, outGPA(qi, k), slotBytes, virtqueue.VRING_DESC_F_WRITE, 0)
	q.want[k] = wantReply
	avail := ringBase(qi) + 0x4000
	binary.LittleEndian.PutUint16(d.mem[avail+4+2*uint64(q.avail%qSize):], uint16(2*k))
	q.avail++
	storeFlagsIdx(d.mem, avail, q.avail) // release: entries before the index
	return k
}

func (d *testDev) kick(qi int) {
	if err := linux.Signal(d.q[qi].kick); err != nil {
		panic(err)
	}
}

// waitDone waits until n chains of queue qi were completed and checked.
func (d *testDev) waitDone(qi, n int) {
	d.t.Helper()
	q := d.q[qi]
	deadline := time.Now().Add(replyTimeout)
	for {
		q.mu.Lock()
		err := d.reapLocked(qi)
		done := q.done
		q.mu.Unlock()
		if err != nil {
			d.t.Fatal(err)
		}
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("queue %d: %d of %d requests completed", qi, done, n)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (d *testDev) usedIdx(qi int) uint16 { return d.le16(ringBase(qi) + 0x8000 + 2) }

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loopProbe observes one queue worker through workerHooks, so that tests
// can wait for the worker to have handled an event and gone back to
// waiting, instead of sleeping.
type loopProbe struct {
	queue   int
	changed chan struct{} // signalled (non-blocking) on every update

	mu      sync.Mutex
	rounds  int  // processing rounds started
	idles   int  // times the worker went back to waiting
	waiting bool // in (or about to enter) its wait for events
}

func newLoopProbe(queue int) *loopProbe {
	return &loopProbe{queue: queue, changed: make(chan struct{}, 1)}
}

func (p *loopProbe) update(f func()) {
	p.mu.Lock()
	f()
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *loopProbe) hooks() *workerHooks {
	return &workerHooks{
		round: func(q int) {
			if q == p.queue {
				p.update(func() { p.rounds++; p.waiting = false })
			}
		},
		idle: func(q int) {
			if q == p.queue {
				p.update(func() { p.idles++; p.waiting = true })
			}
		},
		woke: func(q int) {
			if q == p.queue {
				p.update(func() { p.waiting = false })
			}
		},
	}
}

// probeState is a snapshot of a loopProbe.
type probeState struct{ rounds, idles int }

// waitIdle waits until the worker has consumed every kick on kickFD (the
// test's copy of the queue's kick eventfd; only the worker reads it),
// finished handling it, waits for events again, and done(state) holds. It
// fails the test if the worker starts more than maxRounds rounds in total
// (it spins) or nothing happens for replyTimeout.
func (p *loopProbe) waitIdle(t *testing.T, maxRounds int, kickFD int, done func(probeState) bool) probeState {
	t.Helper()
	for {
		// The kick is checked before the worker's state: a drained kick
		// seen here and "waiting" seen afterwards mean the worker went back
		// to waiting after it drained the kick (the wake-up hook clears
		// "waiting" before the drain).
		drained := !pollNow(t, kickFD)
		p.mu.Lock()
		st, waiting := probeState{p.rounds, p.idles}, p.waiting
		p.mu.Unlock()
		if st.rounds > maxRounds {
			t.Fatalf("queue %d worker ran %d processing rounds, want at most %d: it does not wait for kicks",
				p.queue, st.rounds, maxRounds)
		}
		if drained && waiting && done(st) {
			return st
		}
		select {
		case <-p.changed:
		case <-time.After(replyTimeout):
			t.Fatalf("queue %d worker did not go back to waiting (%+v)", p.queue, st)
		}
	}
}
