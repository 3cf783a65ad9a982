package vhostuser

import (
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/virtqueue"
)

const logProto = testProto | VHOST_USER_PROTOCOL_F_LOG_SHMFD

// namedFDs counts this process's descriptors that refer to the memfd
// called name.
func namedFDs(t *testing.T, name string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(target, "/memfd:"+name+" ") {
			n++
		}
	}
	return n
}

func namedMemfd(t *testing.T, name string, size int64) int {
	t.Helper()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestLogFD checks that SET_LOG_FD is accepted with one descriptor, which
// is held until replaced, until RESET_DEVICE or until the connection ends
// (startServer checks that nothing leaks).
func TestLogFD(t *testing.T) {
	f := startServer(t, &fakeBackend{proto: logProto})
	f.negotiate(logProto)
	for i := range 2 {
		fd := namedMemfd(t, "logfd", 4096)
		if got := f.ack(VHOST_USER_SET_LOG_FD, nil, fd); got != 0 {
			t.Fatalf("SET_LOG_FD #%d ack = %d, want 0", i+1, got)
		}
		unix.Close(fd)
		if n := namedFDs(t, "logfd"); n != 1 {
			t.Fatalf("after SET_LOG_FD #%d the server holds %d log fds, want 1", i+1, n)
		}
	}
	if got := f.ack(VHOST_USER_RESET_DEVICE, nil); got != 0 {
		t.Fatalf("RESET_DEVICE ack = %d", got)
	}
	if n := namedFDs(t, "logfd"); n != 0 {
		t.Fatalf("after RESET_DEVICE the server holds %d log fds, want 0", n)
	}
	fd := namedMemfd(t, "logfd", 4096)
	f.ack(VHOST_USER_SET_LOG_FD, nil, fd)
	unix.Close(fd)
	if err := f.wait(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if n := namedFDs(t, "logfd"); n != 0 {
		t.Fatalf("after disconnect the server holds %d log fds, want 0", n)
	}
}

// TestLogBaseCoverage checks the SET_LOG_BASE size check: the log must
// hold the bit of the last page of every region, counted from GPA 0.
func TestLogBaseCoverage(t *testing.T) {
	const (
		hiGPA = 0x1_0000_0000    // page 0x100000: byte 0x20000 of the log
		need  = hiGPA/4096/8 + 1 // bytes covering the page at hiGPA
	)
	setup := func(t *testing.T) *frontend {
		f := startServer(t, &fakeBackend{proto: logProto})
		f.negotiate(logProto)
		lo, hi := memfd(t, 0x20000), memfd(t, 0x1000)
		defer unix.Close(lo)
		defer unix.Close(hi)
		if got := f.ack(VHOST_USER_SET_MEM_TABLE,
			memTable(regionBytes(0, 0x20000, 0x7f00_0000_0000, 0), regionBytes(hiGPA, 0x1000, 0x7f00_1000_0000, 0)),
			lo, hi); got != 0 {
			t.Fatal("SET_MEM_TABLE failed")
		}
		return f
	}
	setLog := func(f *frontend, size uint64) {
		fd := memfd(t, 0x21000)
		defer unix.Close(fd)
		f.send(VHOST_USER_SET_LOG_BASE, VHOST_USER_NEED_REPLY, append(u64(size), u64(0)...), fd)
	}
	t.Run("too small", func(t *testing.T) {
		f := setup(t)
		setLog(f, need-1)
		f.expectClosed()
	})
	t.Run("exact", func(t *testing.T) {
		f := setup(t)
		setLog(f, need)
		h, b := f.recv()
		if h.Request != VHOST_USER_SET_LOG_BASE || len(b) != sizeLog {
			t.Fatalf("SET_LOG_BASE reply = %v %x", h.Request, b)
		}
		// A region added afterwards beyond the log is accepted (QEMU grows
		// the log before it adds memory; pages beyond the log are skipped).
		mem := memfd(t, 0x1000)
		defer unix.Close(mem)
		if got := f.ack(VHOST_USER_ADD_MEM_REG, append(u64(0), regionBytes(2*hiGPA, 0x1000, 0x7f00_2000_0000, 0)...), mem); got != 0 {
			t.Fatal("ADD_MEM_REG after SET_LOG_BASE failed")
		}
	})
}

// logRing is a running ring 1 of a fakeBackend server with guest memory
// [0, 0x40000) mapped in the test as well.
type logRing struct {
	f   *frontend
	b   *fakeBackend
	mem []byte
	q   *virtqueue.Queue
}

const (
	lrUVA   = 0x7f00_0000_0000
	lrDesc  = 0x0
	lrAvail = 0x1000
	lrUsed  = 0x2000
	lrSize  = 8
)

func newLogRing(t *testing.T, vringFlags uint32, logGuest uint64) *logRing {
	t.Helper()
	b := &fakeBackend{proto: logProto}
	f := startServer(t, b)
	f.negotiate(logProto)
	f.ack(VHOST_USER_SET_OWNER, nil)
	if got := f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures&^VHOST_F_LOG_ALL)); got != 0 {
		t.Fatal("SET_FEATURES failed")
	}
	fd := memfd(t, 0x40000)
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, 0x40000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	if got := f.ack(VHOST_USER_SET_MEM_TABLE, memTable(regionBytes(0, 0x40000, lrUVA, 0)), fd); got != 0 {
		t.Fatal("SET_MEM_TABLE failed")
	}
	f.ack(VHOST_USER_SET_VRING_NUM, vstate(1, lrSize))
	addr := vringAddr(1, vringFlags, lrUVA+lrDesc, lrUVA+lrUsed, lrUVA+lrAvail)
	binary.LittleEndian.PutUint64(addr[32:], logGuest)
	if got := f.ack(VHOST_USER_SET_VRING_ADDR, addr); got != 0 {
		t.Fatal("SET_VRING_ADDR failed")
	}
	kick := eventfd(t)
	defer unix.Close(kick)
	f.ack(VHOST_USER_SET_VRING_KICK, u64(1), kick)
	b.mu.Lock()
	q := b.queues[1]
	b.mu.Unlock()
	if q == nil {
		t.Fatal("ring 1 not started")
	}
	return &logRing{f: f, b: b, mem: mem, q: q}
}

// setLog installs a fresh 4 KiB log and returns a view of it.
func (r *logRing) setLog(t *testing.T) []byte {
	t.Helper()
	fd := namedMemfd(t, "logbase", 4096)
	view, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(view) })
	body := append(u64(4096), u64(0)...)
	r.f.send(VHOST_USER_SET_LOG_BASE, VHOST_USER_NEED_REPLY, body, fd)
	unix.Close(fd)
	if h, b := r.f.recv(); h.Request != VHOST_USER_SET_LOG_BASE || !slices.Equal(b, body) {
		t.Fatalf("SET_LOG_BASE reply = %v %x", h.Request, b)
	}
	// The server keeps the mapping, not the descriptor.
	if n := namedFDs(t, "logbase"); n != 0 {
		t.Fatalf("%d log descriptors open after SET_LOG_BASE, want 0", n)
	}
	return view
}

// complete offers one chain (a readable buffer at 0x10000 and n bytes
// writable at gpa), pops it as the device does and completes it with
// written bytes.
func (r *logRing) complete(t *testing.T, gpa uint64, n, written uint32) {
	t.Helper()
	le := binary.LittleEndian
	put := func(i int, addr uint64, length uint32, flags, next uint16) {
		d := r.mem[lrDesc+16*i:]
		le.PutUint64(d, addr)
		le.PutUint32(d[8:], length)
		le.PutUint16(d[12:], flags)
		le.PutUint16(d[14:], next)
	}
	put(0, 0x10000, 16, virtqueue.VRING_DESC_F_NEXT, 1)
	put(1, gpa, n, virtqueue.VRING_DESC_F_WRITE, 0)
	idx := le.Uint16(r.mem[lrAvail+2:])
	le.PutUint16(r.mem[lrAvail+4+2*uint64(idx%lrSize):], 0)
	le.PutUint16(r.mem[lrAvail+2:], idx+1)
	tb := r.b.mem.Acquire()
	defer tb.Release()
	c := virtqueue.NewChain()
	if ok, err := r.q.Pop(tb, c); !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	if err := r.q.Push(tb, c, written); err != nil {
		t.Fatal(err)
	}
}

// pages returns the dirty pages of a log view.
func pages(log []byte) []uint64 {
	var p []uint64
	for i, b := range log {
		for bit := range 8 {
			if b&(1<<bit) != 0 {
				p = append(p, uint64(i*8+bit))
			}
		}
	}
	return p
}

// TestLogUsedRingAddress checks where used-ring writes are logged: at the
// used ring's GPA without VHOST_VRING_F_LOG, at log_guest_addr with it.
func TestLogUsedRingAddress(t *testing.T) {
	t.Run("no flag", func(t *testing.T) {
		r := newLogRing(t, 0, 0x3_0000) // log address ignored without the flag
		log := r.setLog(t)
		r.complete(t, 0x2_0000, 0x3000, 0x1001)
		if got, want := pages(log), []uint64{0x2, 0x20, 0x21}; !slices.Equal(got, want) {
			t.Fatalf("dirty pages = %#x, want %#x", got, want)
		}
	})
	t.Run("flag", func(t *testing.T) {
		r := newLogRing(t, VHOST_VRING_F_LOG, 0x3_0000)
		log := r.setLog(t)
		r.complete(t, 0x2_0000, 0x3000, 0x1001)
		if got, want := pages(log), []uint64{0x20, 0x21, 0x30}; !slices.Equal(got, want) {
			t.Fatalf("dirty pages = %#x, want %#x", got, want)
		}
	})
}

// TestLogSwitchAndLogAll checks that a second SET_LOG_BASE takes over from
// the first for a running ring, and that VHOST_F_LOG_ALL can be acked and
// cleared at any time without changing what is logged: logging follows the
// installed log.
func TestLogSwitchAndLogAll(t *testing.T) {
	r := newLogRing(t, 0, 0)
	r.complete(t, 0x2_0000, 16, 16) // no log yet: nothing to record
	log1 := r.setLog(t)
	r.complete(t, 0x2_1000, 16, 16)
	if got, want := pages(log1), []uint64{0x2, 0x21}; !slices.Equal(got, want) {
		t.Fatalf("first log: dirty pages = %#x, want %#x", got, want)
	}
	if got := r.f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures)); got != 0 {
		t.Fatal("SET_FEATURES with LOG_ALL failed")
	}
	log2 := r.setLog(t)
	clear(log1)
	r.complete(t, 0x2_2000, 16, 16)
	if got := pages(log1); len(got) != 0 {
		t.Fatalf("first log written after the switch: pages %#x", got)
	}
	if got, want := pages(log2), []uint64{0x2, 0x22}; !slices.Equal(got, want) {
		t.Fatalf("second log: dirty pages = %#x, want %#x", got, want)
	}
	if got := r.f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures&^VHOST_F_LOG_ALL)); got != 0 {
		t.Fatal("SET_FEATURES clearing LOG_ALL failed")
	}
	clear(log2)
	r.complete(t, 0x2_3000, 16, 16)
	if got, want := pages(log2), []uint64{0x2, 0x23}; !slices.Equal(got, want) {
		t.Fatalf("after LOG_ALL cleared: dirty pages = %#x, want %#x", got, want)
	}
	if err := r.f.wait(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}
