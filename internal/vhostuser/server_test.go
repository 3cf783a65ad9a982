package vhostuser

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func newFront(t *testing.T) *frontend {
	return startServer(t, &fakeBackend{proto: testProto})
}

func TestNegotiationAndGetters(t *testing.T) {
	f := newFront(t)
	f.negotiate(testProto)
	if got := f.call(VHOST_USER_GET_QUEUE_NUM); got != 2 {
		t.Errorf("GET_QUEUE_NUM = %d, want 2", got)
	}
	if got := f.call(VHOST_USER_GET_MAX_MEM_SLOTS); got != 509 {
		t.Errorf("GET_MAX_MEM_SLOTS = %d, want 509", got)
	}
	if got := f.ack(VHOST_USER_SET_OWNER, nil); got != 0 {
		t.Errorf("SET_OWNER ack = %d", got)
	}
	if got := f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures)); got != 0 {
		t.Errorf("SET_FEATURES ack = %d", got)
	}
	// NEED_REPLY on an always-replying request gives exactly one reply.
	f.send(VHOST_USER_GET_FEATURES, VHOST_USER_NEED_REPLY, nil)
	if got := f.recvU64(VHOST_USER_GET_FEATURES); got != testFeatures {
		t.Errorf("GET_FEATURES = %#x", got)
	}
	f.noReply()
	if err := f.wait(); err != nil {
		t.Errorf("Serve after clean disconnect = %v, want nil", err)
	}
}

// TestReplyAckRule checks that acks are sent only when REPLY_ACK was
// offered, acked and PROTOCOL_FEATURES was offered by GET_FEATURES.
func TestReplyAckRule(t *testing.T) {
	t.Run("not acked", func(t *testing.T) {
		f := newFront(t)
		f.negotiate(testProto &^ VHOST_USER_PROTOCOL_F_REPLY_ACK)
		f.send(VHOST_USER_SET_OWNER, VHOST_USER_NEED_REPLY, nil)
		f.noReply()
	})
	t.Run("GET_PROTOCOL_FEATURES never sent", func(t *testing.T) {
		f := newFront(t)
		f.call(VHOST_USER_GET_FEATURES)
		f.send(VHOST_USER_SET_PROTOCOL_FEATURES, 0, u64(testProto))
		f.send(VHOST_USER_SET_OWNER, VHOST_USER_NEED_REPLY, nil)
		f.noReply()
	})
	t.Run("no NEED_REPLY", func(t *testing.T) {
		f := newFront(t)
		f.negotiate(testProto)
		f.send(VHOST_USER_SET_OWNER, 0, nil)
		f.noReply()
	})
	t.Run("failing handler acks 1 then closes", func(t *testing.T) {
		f := newFront(t)
		f.negotiate(testProto)
		if got := f.ack(VHOST_USER_SET_OWNER, nil); got != 0 {
			t.Fatalf("first SET_OWNER ack = %d", got)
		}
		if got := f.ack(VHOST_USER_SET_OWNER, nil); got != 1 {
			t.Fatalf("second SET_OWNER ack = %d, want 1", got)
		}
		f.expectClosed()
	})
	t.Run("features not offered", func(t *testing.T) {
		f := newFront(t)
		f.negotiate(testProto)
		if got := f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures|1<<34)); got != 1 {
			t.Fatalf("SET_FEATURES(packed) ack = %d, want 1", got)
		}
		f.expectClosed()
	})
}

func TestBadMessages(t *testing.T) {
	hdr := func(req, flags, size uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, req)
		b = binary.LittleEndian.AppendUint32(b, flags)
		return binary.LittleEndian.AppendUint32(b, size)
	}
	for _, tc := range []struct {
		name    string
		hdr     []byte
		payload []byte
		fds     int
	}{
		{"code 0", hdr(0, 1, 0), nil, 0},
		{"code 44", hdr(44, 1, 0), nil, 0},
		{"code huge", hdr(0xffffffff, 1, 0), nil, 0},
		{"oversize payload", hdr(uint32(VHOST_USER_SET_FEATURES), 1, 4097), nil, 0},
		{"version 0", hdr(uint32(VHOST_USER_GET_FEATURES), 0, 0), nil, 0},
		{"version 2", hdr(uint32(VHOST_USER_GET_FEATURES), 2, 0), nil, 0},
		{"reserved flag", hdr(uint32(VHOST_USER_GET_FEATURES), 1|0x10, 0), nil, 0},
		{"reply flag", hdr(uint32(VHOST_USER_GET_FEATURES), 1|4, 0), nil, 0},
		{"short fixed payload", hdr(uint32(VHOST_USER_SET_FEATURES), 1, 4), make([]byte, 4), 0},
		{"long fixed payload", hdr(uint32(VHOST_USER_SET_OWNER), 1, 8), make([]byte, 8), 0},
		{"fd on GET_FEATURES", hdr(uint32(VHOST_USER_GET_FEATURES), 1, 0), nil, 1},
		{"many fds on SET_OWNER", hdr(uint32(VHOST_USER_SET_OWNER), 1, 0), nil, 5},
		{"kick without fd", hdr(uint32(VHOST_USER_SET_VRING_KICK), 1, 8), u64(0), 0},
		{"kick nofd with fd", hdr(uint32(VHOST_USER_SET_VRING_KICK), 1, 8), u64(0x100), 1},
		{"call two fds", hdr(uint32(VHOST_USER_SET_VRING_CALL), 1, 8), u64(1), 2},
		{"too many fds", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 40), memTable(regionBytes(0, 4096, 0, 0)), 40},
		{"mem table fd mismatch", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 40), memTable(regionBytes(0, 4096, 0, 0)), 2},
		{"mem table zero regions", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 8), memTable(), 0},
		{"mem table size mismatch", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 48), append(memTable(regionBytes(0, 4096, 0, 0)), make([]byte, 8)...), 1},
		{"mem region size 0", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 40), memTable(regionBytes(0, 0, 0, 0)), 1},
		{"mem region overflow", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 40), memTable(regionBytes(^uint64(0), 2, 0, 0)), 1},
		{"enable value 2", hdr(uint32(VHOST_USER_SET_VRING_ENABLE), 1, 8), vstate(0, 2), 0},
		{"vring addr bad flags", hdr(uint32(VHOST_USER_SET_VRING_ADDR), 1, 40), vringAddr(0, 2, 0, 0, 0), 0},
		{"vring addr misaligned", hdr(uint32(VHOST_USER_SET_VRING_ADDR), 1, 40), vringAddr(0, 0, 8, 0, 0), 0},
		{"SET_LOG_FD without fd", hdr(uint32(VHOST_USER_SET_LOG_FD), 1, 0), nil, 0},
		{"SET_LOG_FD two fds", hdr(uint32(VHOST_USER_SET_LOG_FD), 1, 0), nil, 2},
		{"unsupported SEND_RARP", hdr(uint32(VHOST_USER_SEND_RARP), 1, 8), u64(0), 0},
		{"unsupported IOTLB_MSG", hdr(uint32(VHOST_USER_IOTLB_MSG), 1, 0), nil, 0},
		{"unsupported POSTCOPY_ADVISE", hdr(uint32(VHOST_USER_POSTCOPY_ADVISE), 1, 0), nil, 0},
		{"unsupported SET_INFLIGHT_FD", hdr(uint32(VHOST_USER_SET_INFLIGHT_FD), 1, 24), make([]byte, 24), 1},
		{"unsupported VRING_KICK", hdr(uint32(VHOST_USER_VRING_KICK), 1, 8), vstate(0, 0), 0},
		{"unsupported SET_STATUS", hdr(uint32(VHOST_USER_SET_STATUS), 1, 8), u64(0), 0},
		{"unsupported GET_SHARED_OBJECT", hdr(uint32(VHOST_USER_GET_SHARED_OBJECT), 1, 16), make([]byte, 16), 0},
		{"vring index out of range", hdr(uint32(VHOST_USER_SET_VRING_NUM), 1, 8), vstate(2, 128), 0},
		{"vring num not power of two", hdr(uint32(VHOST_USER_SET_VRING_NUM), 1, 8), vstate(0, 100), 0},
		{"vring num too large", hdr(uint32(VHOST_USER_SET_VRING_NUM), 1, 8), vstate(0, 65536), 0},
		{"vring addr without memory", hdr(uint32(VHOST_USER_SET_VRING_ADDR), 1, 40), vringAddr(0, 0, 0x1000, 0x2000, 0x3000), 0},
		{"GET_VRING_BASE index", hdr(uint32(VHOST_USER_GET_VRING_BASE), 1, 8), vstate(7, 0), 0},
		{"kick index out of range", hdr(uint32(VHOST_USER_SET_VRING_KICK), 1, 8), u64(5), 1},
		{"GPU_SET_SOCKET", hdr(uint32(VHOST_USER_GPU_SET_SOCKET), 1, 0), nil, 1},
		{"mmap offset beyond file", hdr(uint32(VHOST_USER_SET_MEM_TABLE), 1, 40), memTable(regionBytes(0, 0x2000, 0, 0x1000)), 1},
		{"device state without fd", hdr(uint32(VHOST_USER_SET_DEVICE_STATE_FD), 1, 8), vstate(0, 0), 0},
		{"config size 0", hdr(uint32(VHOST_USER_GET_CONFIG), 1, 12), make([]byte, 12), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFront(t)
			var fds []int
			for range tc.fds {
				fds = append(fds, memfd(t, 0x2000))
			}
			f.sendRaw(tc.hdr, tc.payload, fds...)
			for _, fd := range fds {
				unix.Close(fd)
			}
			f.expectClosed()
		})
	}
}

func TestDisconnect(t *testing.T) {
	t.Run("between messages", func(t *testing.T) {
		f := newFront(t)
		f.call(VHOST_USER_GET_FEATURES)
		if err := f.wait(); err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	})
	t.Run("mid header", func(t *testing.T) {
		f := newFront(t)
		f.sendRaw([]byte{1, 0, 0, 0, 1}, nil)
		if err := f.wait(); err == nil {
			t.Fatal("Serve = nil after a partial header")
		}
	})
	t.Run("mid payload", func(t *testing.T) {
		f := newFront(t)
		h := binary.LittleEndian.AppendUint32(nil, uint32(VHOST_USER_SET_FEATURES))
		h = binary.LittleEndian.AppendUint32(h, 1)
		h = binary.LittleEndian.AppendUint32(h, 8)
		fd := memfd(t, 1)
		f.sendRaw(h, []byte{1, 2, 3}, fd) // a leak of the received copy shows in cleanup
		unix.Close(fd)
		if err := f.wait(); err == nil {
			t.Fatal("Serve = nil after a partial payload")
		}
	})
}

func TestGates(t *testing.T) {
	for _, tc := range []struct {
		req     Request
		payload []byte
		fds     int
	}{
		{VHOST_USER_GET_QUEUE_NUM, nil, 0},
		{VHOST_USER_GET_MAX_MEM_SLOTS, nil, 0},
		{VHOST_USER_RESET_DEVICE, nil, 0},
		{VHOST_USER_REM_MEM_REG, make([]byte, 40), 0},
		{VHOST_USER_ADD_MEM_REG, make([]byte, 40), 1},
		{VHOST_USER_SET_BACKEND_REQ_FD, nil, 1},
		{VHOST_USER_GET_CONFIG, append(vstate(0, 4), make([]byte, 8)...), 0},
		{VHOST_USER_SET_LOG_BASE, make([]byte, 16), 1},
		{VHOST_USER_SET_VRING_ENABLE, vstate(0, 1), 0}, // needs virtio bit 30 acked
	} {
		t.Run(tc.req.String(), func(t *testing.T) {
			f := newFront(t)
			f.negotiate(0) // nothing acked
			var fds []int
			for range tc.fds {
				fds = append(fds, memfd(t, 4096))
			}
			f.send(tc.req, VHOST_USER_NEED_REPLY, tc.payload, fds...)
			for _, fd := range fds {
				unix.Close(fd)
			}
			f.expectClosed()
		})
	}
}

// TestLogBaseNotOffered checks that SET_LOG_BASE fails cleanly when
// LOG_SHMFD was not offered (and therefore cannot have been acked).
func TestLogBaseNotOffered(t *testing.T) {
	f := newFront(t)
	f.negotiate(testProto)
	log := memfd(t, 4096)
	f.send(VHOST_USER_SET_LOG_BASE, 0, append(u64(4096), u64(0)...), log)
	unix.Close(log)
	f.expectClosed()
}

func TestLogBaseOffered(t *testing.T) {
	f := startServer(t, &fakeBackend{proto: testProto | VHOST_USER_PROTOCOL_F_LOG_SHMFD})
	f.negotiate(testProto | VHOST_USER_PROTOCOL_F_LOG_SHMFD)
	log := memfd(t, 4096)
	body := append(u64(4096), u64(0)...)
	f.send(VHOST_USER_SET_LOG_BASE, 0, body, log)
	unix.Close(log)
	h, b := f.recv()
	if h.Request != VHOST_USER_SET_LOG_BASE || !slices.Equal(b, body) {
		t.Fatalf("SET_LOG_BASE reply = %v %x, want echo %x", h.Request, b, body)
	}
}

func TestConfig(t *testing.T) {
	cfg := make([]byte, 40)
	copy(cfg, "myfs")
	cfg[36] = 1
	getConfig := func(f *frontend, off, size uint32) (ConfigHeader, []byte) {
		t.Helper()
		p := binary.LittleEndian.AppendUint32(nil, off)
		p = binary.LittleEndian.AppendUint32(p, size)
		p = binary.LittleEndian.AppendUint32(p, 0)
		p = append(p, make([]byte, size)...)
		f.send(VHOST_USER_GET_CONFIG, VHOST_USER_NEED_REPLY, p)
		h, b := f.recv()
		if h.Request != VHOST_USER_GET_CONFIG || len(b) < 12 {
			t.Fatalf("GET_CONFIG reply %v size %d", h.Request, len(b))
		}
		c := ConfigHeader{binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])}
		return c, b[12:]
	}
	f := startServer(t, &fakeBackend{proto: testProto | VHOST_USER_PROTOCOL_F_CONFIG, config: cfg})
	f.negotiate(testProto | VHOST_USER_PROTOCOL_F_CONFIG)
	c, data := getConfig(f, 0, 40)
	if c.Size != 40 || !slices.Equal(data, cfg) {
		t.Fatalf("GET_CONFIG(0, 40) = %+v %q", c, data)
	}
	c, data = getConfig(f, 36, 8) // past the end: zero padded
	if c.Offset != 36 || c.Size != 8 || !slices.Equal(data, []byte{1, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("GET_CONFIG(36, 8) = %+v %v", c, data)
	}
	// SET_CONFIG is accepted and ignored.
	p := append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 0), 4), 0, 0, 0, 0, 'x', 'x', 'x', 'x')
	if got := f.ack(VHOST_USER_SET_CONFIG, p); got != 0 {
		t.Fatalf("SET_CONFIG ack = %d", got)
	}

	// Without a config space (no tag) the reply has size 0.
	g := startServer(t, &fakeBackend{proto: testProto | VHOST_USER_PROTOCOL_F_CONFIG})
	g.negotiate(testProto | VHOST_USER_PROTOCOL_F_CONFIG)
	if c, data := getConfig(g, 0, 40); c.Size != 0 || len(data) != 0 {
		t.Fatalf("GET_CONFIG without config = %+v, %d bytes", c, len(data))
	}
}

// TestRingLifecycle drives memory, ring setup, start, enable, kick
// replacement, GET_VRING_BASE and RESET_DEVICE.
func TestRingLifecycle(t *testing.T) {
	b := &fakeBackend{proto: testProto}
	f := startServer(t, b)
	f.negotiate(testProto)
	f.ack(VHOST_USER_SET_OWNER, nil)
	if got := f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures)); got != 0 {
		t.Fatal("SET_FEATURES failed")
	}
	const uva = 0x7f00_0000_0000
	mem := memfd(t, 0x20000)
	if got := f.ack(VHOST_USER_SET_MEM_TABLE, memTable(regionBytes(0, 0x20000, uva, 0)), mem); got != 0 {
		t.Fatal("SET_MEM_TABLE failed")
	}
	unix.Close(mem)
	// A second region through ADD_MEM_REG, then removed again (with an fd,
	// which is tolerated and closed).
	mem2 := memfd(t, 0x1000)
	if got := f.ack(VHOST_USER_ADD_MEM_REG, append(u64(0), regionBytes(0x100000, 0x1000, uva+0x100000, 0)...), mem2); got != 0 {
		t.Fatal("ADD_MEM_REG failed")
	}
	if got := f.ack(VHOST_USER_ADD_MEM_REG, append(u64(0), regionBytes(0x100800, 0x1000, 0, 0)...), mem2); got != 1 {
		t.Fatal("overlapping ADD_MEM_REG succeeded")
	}
	unix.Close(mem2)
	f.expectClosed()

	b = &fakeBackend{proto: testProto}
	f = startServer(t, b)
	f.negotiate(testProto)
	f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures))
	mem = memfd(t, 0x20000)
	mem2 = memfd(t, 0x1000)
	f.ack(VHOST_USER_ADD_MEM_REG, append(u64(0), regionBytes(0, 0x20000, uva, 0)...), mem)
	f.ack(VHOST_USER_ADD_MEM_REG, append(u64(0), regionBytes(0x100000, 0x1000, uva+0x100000, 0)...), mem2)
	if got := f.ack(VHOST_USER_REM_MEM_REG, append(u64(0), regionBytes(0x100000, 0x1000, 0, 0)...), mem2); got != 0 {
		t.Fatal("REM_MEM_REG with fd failed")
	}
	unix.Close(mem)
	unix.Close(mem2)

	if got := f.ack(VHOST_USER_SET_VRING_NUM, vstate(1, 64)); got != 0 {
		t.Fatal("SET_VRING_NUM failed")
	}
	if got := f.ack(VHOST_USER_SET_VRING_BASE, vstate(1, 0x10005)); got != 0 {
		t.Fatal("SET_VRING_BASE failed")
	}
	if got := f.ack(VHOST_USER_SET_VRING_ADDR, vringAddr(1, 0, uva, uva+0x2000, uva+0x1000)); got != 0 {
		t.Fatal("SET_VRING_ADDR failed")
	}
	if got := f.ack(VHOST_USER_SET_VRING_ADDR, vringAddr(1, 0, uva+0x200000, uva+0x2000, uva+0x1000)); got != 1 {
		t.Fatal("SET_VRING_ADDR outside memory succeeded")
	}
	f.expectClosed()

	b = &fakeBackend{proto: testProto}
	f = startServer(t, b)
	f.negotiate(testProto)
	f.ack(VHOST_USER_SET_FEATURES, u64(testFeatures))
	mem = memfd(t, 0x20000)
	f.ack(VHOST_USER_SET_MEM_TABLE, memTable(regionBytes(0, 0x20000, uva, 0)), mem)
	unix.Close(mem)
	f.ack(VHOST_USER_SET_VRING_NUM, vstate(1, 64))
	f.ack(VHOST_USER_SET_VRING_BASE, vstate(1, 0x10005))
	f.ack(VHOST_USER_SET_VRING_ADDR, vringAddr(1, 1, uva, uva+0x2000, uva+0x1000))
	call := eventfd(t)
	if got := f.ack(VHOST_USER_SET_VRING_CALL, u64(1), call); got != 0 {
		t.Fatal("SET_VRING_CALL failed")
	}
	if ev := b.takeEvents(); len(ev) != 0 {
		t.Fatalf("events before a kick fd = %v", ev)
	}
	kick := eventfd(t)
	if got := f.ack(VHOST_USER_SET_VRING_KICK, u64(1), kick); got != 0 {
		t.Fatal("SET_VRING_KICK failed")
	}
	if ev := b.takeEvents(); !slices.Equal(ev, []string{"start 1 enabled=false"}) {
		t.Fatalf("events after kick = %v", ev)
	}
	f.ack(VHOST_USER_SET_VRING_ENABLE, vstate(1, 1))
	f.ack(VHOST_USER_SET_VRING_ENABLE, vstate(1, 1)) // no change, no wake
	if ev := b.takeEvents(); !slices.Equal(ev, []string{"wake 1"}) {
		t.Fatalf("events after enable = %v", ev)
	}
	// Replacing the kick fd of a running ring stops and restarts it.
	f.ack(VHOST_USER_SET_VRING_KICK, u64(1), kick)
	if ev := b.takeEvents(); !slices.Equal(ev, []string{"stop 1", "start 1 enabled=true"}) {
		t.Fatalf("events after kick replacement = %v", ev)
	}
	// Replacing the call fd does not restart.
	f.ack(VHOST_USER_SET_VRING_CALL, u64(1), call)
	f.ack(VHOST_USER_SET_VRING_ERR, u64(1), call)
	f.ack(VHOST_USER_SET_VRING_ERR, u64(0x101))
	if ev := b.takeEvents(); len(ev) != 0 {
		t.Fatalf("events after call replacement = %v", ev)
	}
	f.send(VHOST_USER_GET_VRING_BASE, 0, vstate(1, 0))
	h, body := f.recv()
	if h.Request != VHOST_USER_GET_VRING_BASE || !slices.Equal(body, vstate(1, 5)) {
		t.Fatalf("GET_VRING_BASE = %v %v, want {1, 5}", h.Request, body)
	}
	if ev := b.takeEvents(); !slices.Equal(ev, []string{"stop 1"}) {
		t.Fatalf("events after GET_VRING_BASE = %v", ev)
	}
	// Restart and reset.
	f.ack(VHOST_USER_SET_VRING_KICK, u64(1), kick)
	f.ack(VHOST_USER_SET_VRING_KICK, u64(0), kick)
	b.takeEvents()
	if got := f.ack(VHOST_USER_RESET_DEVICE, nil); got != 0 {
		t.Fatal("RESET_DEVICE failed")
	}
	ev := b.takeEvents()
	slices.Sort(ev)
	if !slices.Equal(ev, []string{"reset", "stop 0", "stop 1"}) {
		t.Fatalf("events after RESET_DEVICE = %v", ev)
	}
	if b.queues[1].Enabled() || b.queues[1].Base() != 0 {
		t.Fatal("RESET_DEVICE left the ring enabled or its index set")
	}
	// Without PROTOCOL_FEATURES acked rings are enabled at SET_FEATURES.
	f.ack(VHOST_USER_SET_FEATURES, u64(VIRTIO_F_VERSION_1))
	if !b.queues[1].Enabled() {
		t.Fatal("SET_FEATURES without bit 30 did not enable the rings")
	}
	unix.Close(kick)
	unix.Close(call)
	if err := f.wait(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

// TestUnsupportedRequests checks every request code the device does not
// implement: each one ends the connection without a reply.
func TestUnsupportedRequests(t *testing.T) {
	for _, req := range []Request{
		VHOST_USER_SEND_RARP, VHOST_USER_NET_SET_MTU, VHOST_USER_IOTLB_MSG,
		VHOST_USER_SET_VRING_ENDIAN, VHOST_USER_CREATE_CRYPTO_SESSION, VHOST_USER_CLOSE_CRYPTO_SESSION,
		VHOST_USER_POSTCOPY_ADVISE, VHOST_USER_POSTCOPY_LISTEN, VHOST_USER_POSTCOPY_END,
		VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_SET_INFLIGHT_FD, VHOST_USER_VRING_KICK,
		VHOST_USER_SET_STATUS, VHOST_USER_GET_STATUS, VHOST_USER_GET_SHARED_OBJECT,
	} {
		t.Run(req.String(), func(t *testing.T) {
			// Even with every protocol feature offered and acked.
			f := startServer(t, &fakeBackend{proto: ^uint64(0)})
			f.negotiate(^uint64(0))
			f.send(req, VHOST_USER_NEED_REPLY, u64(0))
			f.expectClosed()
		})
	}
}

func TestOwnerAndBackendChannel(t *testing.T) {
	f := newFront(t)
	f.negotiate(testProto)
	if got := f.ack(VHOST_USER_SET_OWNER, nil); got != 0 {
		t.Fatal("SET_OWNER failed")
	}
	if got := f.ack(VHOST_USER_RESET_OWNER, nil); got != 0 {
		t.Fatal("RESET_OWNER failed")
	}
	// RESET_OWNER cleared the owner and the acked protocol features, but
	// like the reference the REPLY_ACK state is only re-evaluated by the
	// next feature request.
	if got := f.ack(VHOST_USER_SET_OWNER, nil); got != 0 {
		t.Fatal("SET_OWNER after RESET_OWNER failed")
	}
	f.call(VHOST_USER_GET_FEATURES)
	f.send(VHOST_USER_SET_VRING_BASE, VHOST_USER_NEED_REPLY, vstate(0, 0))
	f.noReply()
	f.send(VHOST_USER_SET_PROTOCOL_FEATURES, 0, u64(testProto))
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ack(VHOST_USER_SET_BACKEND_REQ_FD, nil, sp[1]); got != 0 {
		t.Fatal("SET_BACKEND_REQ_FD failed")
	}
	unix.Close(sp[1])
	// The back-end keeps the channel open (but sends nothing) until the
	// connection ends.
	unix.SetNonblock(sp[0], true)
	if _, err := unix.Read(sp[0], make([]byte, 1)); err != unix.EAGAIN {
		t.Fatalf("backend channel read = %v, want EAGAIN (open and idle)", err)
	}
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Read(sp[0], make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("backend channel after disconnect = %d, %v, want EOF", n, err)
	}
	unix.Close(sp[0])
}

// TestProtocolFeaturesNotOffered checks that SET_PROTOCOL_FEATURES with a
// bit that GET_PROTOCOL_FEATURES did not offer fails (ack 1, then the
// connection ends), like SET_FEATURES.
func TestProtocolFeaturesNotOffered(t *testing.T) {
	for _, extra := range []uint64{VHOST_USER_PROTOCOL_F_LOG_SHMFD, VHOST_USER_PROTOCOL_F_STATUS, 1 << 63} {
		t.Run(fmt.Sprintf("%#x", extra), func(t *testing.T) {
			f := newFront(t)
			f.negotiate(testProto) // REPLY_ACK in effect
			if got := f.ack(VHOST_USER_SET_PROTOCOL_FEATURES, u64(testProto|extra)); got != 1 {
				t.Fatalf("SET_PROTOCOL_FEATURES(%#x) ack = %d, want 1", testProto|extra, got)
			}
			f.expectClosed()
		})
	}
	t.Run("subset", func(t *testing.T) {
		f := newFront(t)
		f.negotiate(testProto)
		if got := f.ack(VHOST_USER_SET_PROTOCOL_FEATURES, u64(VHOST_USER_PROTOCOL_F_REPLY_ACK)); got != 0 {
			t.Fatalf("SET_PROTOCOL_FEATURES(REPLY_ACK) ack = %d, want 0", got)
		}
	})
}

// TestMemSlotLimit adds as many regions as GET_MAX_MEM_SLOTS allows; one
// more is refused (ack 1, then the connection ends).
func TestMemSlotLimit(t *testing.T) {
	f := newFront(t)
	f.negotiate(testProto)
	slots := f.call(VHOST_USER_GET_MAX_MEM_SLOTS)
	const size = 4096
	fd := memfd(t, size)
	defer unix.Close(fd)
	region := func(i uint64) []byte {
		return append(u64(0), regionBytes(i*size, size, 0x7f00_0000_0000+i*size, 0)...)
	}
	for i := range slots {
		if got := f.ack(VHOST_USER_ADD_MEM_REG, region(i), fd); got != 0 {
			t.Fatalf("ADD_MEM_REG #%d ack = %d, want 0", i+1, got)
		}
	}
	if got := f.ack(VHOST_USER_ADD_MEM_REG, region(slots), fd); got != 1 {
		t.Fatalf("ADD_MEM_REG #%d ack = %d, want 1", slots+1, got)
	}
	f.expectClosed()
}
