package virtiofs

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/vhostuser"
	"virtiofsd/internal/virtqueue"
)

func TestFeaturesAndConfig(t *testing.T) {
	if features != 0x1_7400_0000 {
		t.Errorf("features = %#x, want 0x174000000", uint64(features))
	}
	if protocolFeatures != 0xA42B {
		t.Errorf("protocol features = %#x, want 0xa42b", uint64(protocolFeatures))
	}
	b := &backend{d: newDevice(newFakeHandler(), Config{})}
	if b.ProtocolFeatures() != 0xA42B || b.ReadConfig(make([]byte, 4), 0) || b.NumQueues() != 2 {
		t.Errorf("without tag: protocol %#x, config served, or %d queues", b.ProtocolFeatures(), b.NumQueues())
	}
	tag := "0123456789abcdef0123456789abcdef0123" // exactly 36 bytes, no NUL
	b = &backend{d: newDevice(newFakeHandler(), Config{Tag: tag})}
	if b.ProtocolFeatures() != 0xA62B {
		t.Errorf("with tag: protocol features = %#x, want 0xa62b", b.ProtocolFeatures())
	}
	p := make([]byte, 44)
	if !b.ReadConfig(p, 0) || string(p[:36]) != tag || binary.LittleEndian.Uint32(p[36:]) != 1 ||
		binary.LittleEndian.Uint32(p[40:]) != 0 {
		t.Errorf("config = %q", p)
	}
	p = make([]byte, 4)
	if !b.ReadConfig(p, 36) || binary.LittleEndian.Uint32(p) != 1 {
		t.Errorf("config at 36 = %v", p)
	}
	if !b.ReadConfig(p, 4000) || binary.LittleEndian.Uint32(p) != 0 {
		t.Errorf("config past the end = %v", p)
	}
	b = &backend{d: newDevice(newFakeHandler(), Config{Tag: "short"})}
	p = make([]byte, 8)
	if b.ReadConfig(p, 3); string(p) != "rt\x00\x00\x00\x00\x00\x00" {
		t.Errorf("config at 3 = %q", p)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Tag: "0123456789abcdef0123456789abcdef01234"}, // 37 bytes
		{Tag: "\xff"},
		{ThreadPoolSize: -1},
	} {
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := newDevice(newFakeHandler(), cfg).Serve(sp[1]); err == nil {
			t.Errorf("Serve(%+v) = nil, want error", cfg)
		}
		if _, err := unix.FcntlInt(uintptr(sp[1]), unix.F_GETFD, 0); err == nil {
			t.Errorf("Serve(%+v) did not close the connection", cfg)
			unix.Close(sp[1])
		}
		unix.Close(sp[0])
	}
}

func modes(t *testing.T, f func(t *testing.T, pool int, eventIdx bool)) {
	for _, m := range []struct {
		pool     int
		eventIdx bool
	}{{0, true}, {0, false}, {3, true}, {3, false}} {
		t.Run(fmt.Sprintf("pool=%d,event_idx=%v", m.pool, m.eventIdx), func(t *testing.T) {
			f(t, m.pool, m.eventIdx)
		})
	}
}

func TestRequestsComplete(t *testing.T) {
	modes(t, func(t *testing.T, pool int, eventIdx bool) {
		d := startDev(t, pool, eventIdx)
		for i := range 100 {
			q := i % 2
			msg := []byte(fmt.Sprintf("request %d on queue %d", i, q))
			d.post(q, msg, msg)
			d.kick(q)
		}
		d.waitDone(0, 50)
		d.waitDone(1, 50)
		if err := d.wait(); err != nil {
			t.Fatalf("Serve = %v, want nil after disconnect", err)
		}
	})
}

func TestMalformedChainCompletesEmpty(t *testing.T) {
	d := startDev(t, 0, true)
	q := d.q[1]
	// A chain pointing outside guest memory.
	q.mu.Lock()
	k := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	d.setDesc(1, 2*k, guestSize, 16, 0, 0)
	q.want[k] = []byte{}
	avail := ringBase(1) + 0x4000
	binary.LittleEndian.PutUint16(d.mem[avail+4+2*uint64(q.avail%qSize):], uint16(2*k))
	q.avail++
	storeFlagsIdx(d.mem, avail, q.avail)
	q.mu.Unlock()
	d.post(1, []byte("next"), []byte("next"))
	d.kick(1)
	d.waitDone(1, 2)
	if d.h.served.Load() != 1 {
		t.Errorf("handler saw %d requests, want 1", d.h.served.Load())
	}
}

// TestGetVringBaseWaitsForInFlight shows that the GET_VRING_BASE reply is
// only sent after the request in flight has been completed.
func TestGetVringBaseWaitsForInFlight(t *testing.T) {
	modes(t, func(t *testing.T, pool int, eventIdx bool) {
		d := startDev(t, pool, eventIdx)
		d.post(1, []byte{blockByte, 'x'}, []byte{blockByte, 'x'})
		d.kick(1)
		select {
		case <-d.h.entered:
		case <-time.After(replyTimeout):
			t.Fatal("request did not reach the handler")
		}
		d.send(vhostuser.VHOST_USER_GET_VRING_BASE, 0, vstate(1, 0))
		if d.readable(300 * time.Millisecond) {
			t.Fatal("GET_VRING_BASE answered while a request was in flight")
		}
		if d.usedIdx(1) != 0 {
			t.Fatal("request completed before release")
		}
		d.h.release <- struct{}{}
		body := d.recv(vhostuser.VHOST_USER_GET_VRING_BASE)
		// Checked right after the reply: the completion is already there.
		if d.usedIdx(1) != 1 {
			t.Fatalf("used idx = %d when GET_VRING_BASE replied, want 1", d.usedIdx(1))
		}
		if binary.LittleEndian.Uint32(body[4:]) != 1 {
			t.Fatalf("GET_VRING_BASE = %v, want next_avail 1", body)
		}
		d.waitDone(1, 1)
		// The ring restarts where it stopped.
		d.setupRing(1)
		d.post(1, []byte("again"), []byte("again"))
		d.kick(1)
		d.waitDone(1, 2)
	})
}

func TestResetDevice(t *testing.T) {
	modes(t, func(t *testing.T, pool int, eventIdx bool) {
		d := startDev(t, pool, eventIdx)
		d.post(1, []byte{blockByte}, []byte{blockByte})
		d.kick(1)
		<-d.h.entered
		d.send(vhostuser.VHOST_USER_RESET_DEVICE, vhostuser.VHOST_USER_NEED_REPLY, nil)
		if d.readable(200 * time.Millisecond) {
			t.Fatal("RESET_DEVICE acked while a request was in flight")
		}
		d.h.release <- struct{}{}
		if v := binary.LittleEndian.Uint64(d.recv(vhostuser.VHOST_USER_RESET_DEVICE)); v != 0 {
			t.Fatalf("RESET_DEVICE ack = %d", v)
		}
		if d.h.destroyed.Load() != 1 {
			t.Fatal("RESET_DEVICE did not destroy the file-system state")
		}
		d.waitDone(1, 1)
		// A reset device is brought up again like a new one; the driver
		// restarts its rings from index 0.
		d.ack(vhostuser.VHOST_USER_SET_FEATURES, u64(features))
		for i := range d.q {
			q := d.q[i]
			q.avail, q.lastUsed = 0, 0
			clear(d.mem[ringBase(i) : ringBase(i)+0x10000])
			d.setupRing(i)
		}
		d.post(1, []byte("after reset"), []byte("after reset"))
		d.kick(1)
		d.waitDone(1, 2)
	})
}

func TestConcurrentKicks(t *testing.T) {
	for _, pool := range []int{0, 4} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			d := startDev(t, pool, true)
			const n = 300
			var wg sync.WaitGroup
			for q := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range n {
						msg := []byte(fmt.Sprintf("q%d-%d", q, i))
						d.post(q, msg, msg)
						d.kick(q)
					}
				}()
			}
			wg.Wait()
			d.waitDone(0, n)
			d.waitDone(1, n)
		})
	}
}

// TestDisabledRingDropsKicks checks that a disabled ring is not processed
// and that enabling it runs a pass.
func TestDisabledRingDropsKicks(t *testing.T) {
	p := newLoopProbe(1)
	d := startDevHooks(t, 0, true, p.hooks())
	// Enabling the ring at set-up ran one round. Disabling does not
	// interrupt a round in progress (like the reference), so let that one
	// end first.
	p.waitIdle(t, 1000, d.q[1].kick, func(s probeState) bool { return s.rounds >= 1 })
	d.ack(vhostuser.VHOST_USER_SET_VRING_ENABLE, vstate(1, 0))
	d.post(1, []byte("later"), []byte("later"))
	d.kick(1)
	p.waitIdle(t, 1000, d.q[1].kick, func(probeState) bool { return true })
	if d.usedIdx(1) != 0 {
		t.Fatal("disabled ring was processed")
	}
	d.ack(vhostuser.VHOST_USER_SET_VRING_ENABLE, vstate(1, 1))
	d.waitDone(1, 1)
}

// TestBadAvailIndexWaitsForKick has the driver move avail->idx more than
// the queue size ahead of the device (the ring holds at most that many,
// virtio v1.2 §2.7.6). The worker must log the broken ring once, stop
// processing it until the next kick instead of spinning, and serve the
// ring again once the index is valid.
func TestBadAvailIndexWaitsForKick(t *testing.T) {
	modes(t, func(t *testing.T, pool int, eventIdx bool) {
		p := newLoopProbe(1)
		d := startDevHooks(t, pool, eventIdx, p.hooks())
		d.post(1, []byte("before"), []byte("before"))
		d.kick(1)
		d.waitDone(1, 1)

		const msg = "queue ring unusable"
		avail := ringBase(1) + 0x4000
		storeFlagsIdx(d.mem, avail, d.q[1].avail+qSize+1)
		d.kick(1)
		// Rounds left over from the set-up are few; a worker that retries
		// the bad index without waiting runs without bound.
		st := p.waitIdle(t, 50, d.q[1].kick, func(probeState) bool { return strings.Contains(d.logs.String(), msg) })
		for range 3 {
			// Every kick re-checks the ring once, and says nothing new.
			prev := st.rounds
			d.kick(1)
			st = p.waitIdle(t, prev+1, d.q[1].kick, func(s probeState) bool { return s.rounds > prev })
		}
		if n := strings.Count(d.logs.String(), msg); n != 1 {
			t.Errorf("broken ring logged %d times, want once:\n%s", n, d.logs.String())
		}
		if d.usedIdx(1) != 1 {
			t.Errorf("used idx = %d, want 1", d.usedIdx(1))
		}

		// The driver repairs its index: the ring is served again.
		storeFlagsIdx(d.mem, avail, d.q[1].avail)
		d.post(1, []byte("after"), []byte("after"))
		d.kick(1)
		d.waitDone(1, 2)
		if !strings.Contains(d.logs.String(), "queue ring usable again") {
			t.Errorf("end of the broken-ring episode not logged:\n%s", d.logs.String())
		}
	})
}

// TestPoolSurvivesPopFaults makes popping fault on vanished guest memory
// more often than the pool has requests: every request must go back to
// the free list, so the queue still serves afterwards and the control
// plane still gets answers.
func TestPoolSurvivesPopFaults(t *testing.T) {
	const pool = 2
	p := newLoopProbe(1)
	d := startDevHooks(t, pool, true, p.hooks())
	d.post(1, []byte("before"), []byte("before"))
	d.kick(1)
	d.waitDone(1, 1)
	st := p.waitIdle(t, 1000, d.q[1].kick, func(probeState) bool { return true })

	if err := unix.Ftruncate(d.memfd, 0); err != nil {
		t.Fatal(err)
	}
	for range 2*(2*pool) + 1 {
		prev := st.rounds
		d.kick(1)
		// A lost request makes the worker block for a free one: it never
		// waits for events again.
		st = p.waitIdle(t, 1000, d.q[1].kick, func(s probeState) bool { return s.rounds > prev })
	}
	if n := strings.Count(d.logs.String(), "queue processing aborted"); n < 2*pool+1 {
		t.Fatalf("%d faults logged, want at least %d:\n%s", n, 2*pool+1, d.logs.String())
	}
	if err := unix.Ftruncate(d.memfd, guestSize); err != nil {
		t.Fatal(err)
	}

	// The guest memory came back zeroed: the driver restarts the ring.
	body := d.recvCall(vhostuser.VHOST_USER_GET_VRING_BASE, vstate(1, 0))
	if got := binary.LittleEndian.Uint32(body[4:]); got != 1 {
		t.Errorf("GET_VRING_BASE next_avail = %d, want 1", got)
	}
	q := d.q[1]
	q.avail, q.lastUsed = 0, 0
	d.setupRing(1)
	d.post(1, []byte("after"), []byte("after"))
	d.kick(1)
	d.waitDone(1, 2)
	d.ack(vhostuser.VHOST_USER_RESET_DEVICE, nil)
}

// TestMemoryHotplugWhileRunning adds and removes a region while requests
// flow; requests keep completing and nothing leaks.
func TestMemoryHotplugWhileRunning(t *testing.T) {
	d := startDev(t, 2, true)
	for i := range 20 {
		fd, err := unix.MemfdCreate("hotplug", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		unix.Ftruncate(fd, 0x10000)
		region := append(u64(0x1000_0000), u64(0x10000)...)
		region = append(region, u64(0x7d00_0000_0000)...)
		region = append(region, u64(0)...)
		d.ack(vhostuser.VHOST_USER_ADD_MEM_REG, append(u64(0), region...), fd)
		unix.Close(fd)
		msg := []byte(fmt.Sprintf("hotplug %d", i))
		d.post(1, msg, msg)
		d.kick(1)
		d.ack(vhostuser.VHOST_USER_REM_MEM_REG, append(u64(0), region...))
	}
	d.waitDone(1, 20)
}

// TestServeAllocs checks that the serial pop → Serve → push path does not
// allocate.
func TestServeAllocs(t *testing.T) {
	mem := make([]byte, 0x20000)
	gm := guestmem.NewMemory()
	if err := gm.Add(guestmem.NewRegion(0, 0, mem)); err != nil {
		t.Fatal(err)
	}
	defer gm.Close()
	q := virtqueue.New()
	q.SetSize(16)
	tb := gm.Acquire()
	if err := q.SetAddr(tb, 0, 0x1000, 0x2000, true); err != nil {
		t.Fatal(err)
	}
	tb.Release()
	q.SetEnabled(true)
	h := newFakeHandler()
	w := &queueWorker{q: q, mem: gm, fw: h.newWorker(), chain: virtqueue.NewChain(), log: newDevice(h, Config{}).log}
	put := func(b []byte, v ...uint64) {
		binary.LittleEndian.PutUint64(b, v[0])
		binary.LittleEndian.PutUint32(b[8:], uint32(v[1]))
		binary.LittleEndian.PutUint16(b[12:], uint16(v[2]))
		binary.LittleEndian.PutUint16(b[14:], uint16(v[3]))
	}
	put(mem[0:], 0x4000, 64, virtqueue.VRING_DESC_F_NEXT, 1)
	put(mem[16:], 0x5000, 64, virtqueue.VRING_DESC_F_WRITE, 0)
	var avail uint16
	allocs := testing.AllocsPerRun(500, func() {
		avail++
		binary.LittleEndian.PutUint16(mem[0x1002:], avail)
		w.process()
	})
	if allocs != 0 {
		t.Errorf("allocations per request = %v, want 0", allocs)
	}
	if got := binary.LittleEndian.Uint16(mem[0x2002:]); got != avail {
		t.Errorf("used idx = %d, want %d", got, avail)
	}
}

// TestPoolAllocs checks that handing chains to the pool and completing
// them there does not allocate.
func TestPoolAllocs(t *testing.T) {
	mem := make([]byte, 0x20000)
	gm := guestmem.NewMemory()
	if err := gm.Add(guestmem.NewRegion(0, 0, mem)); err != nil {
		t.Fatal(err)
	}
	defer gm.Close()
	q := virtqueue.New()
	q.SetSize(16)
	tb := gm.Acquire()
	if err := q.SetAddr(tb, 0, 0x1000, 0x2000, true); err != nil {
		t.Fatal(err)
	}
	tb.Release()
	q.SetEnabled(true)
	h := newFakeHandler()
	log := newDevice(h, Config{}).log
	p, err := startPool(h, 2, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	w := &queueWorker{q: q, mem: gm, pool: p, chain: virtqueue.NewChain(), log: log}
	binary.LittleEndian.PutUint64(mem[0:], 0x4000)
	binary.LittleEndian.PutUint32(mem[8:], 64)
	binary.LittleEndian.PutUint16(mem[12:], virtqueue.VRING_DESC_F_NEXT)
	binary.LittleEndian.PutUint16(mem[14:], 1)
	binary.LittleEndian.PutUint64(mem[16:], 0x5000)
	binary.LittleEndian.PutUint32(mem[24:], 64)
	binary.LittleEndian.PutUint16(mem[28:], virtqueue.VRING_DESC_F_WRITE)
	var avail uint16
	allocs := testing.AllocsPerRun(500, func() {
		avail++
		binary.LittleEndian.PutUint16(mem[0x1002:], avail)
		w.process()
		w.inflight.Wait()
	})
	if allocs != 0 {
		t.Errorf("allocations per pooled request = %v, want 0", allocs)
	}
	if q.NextUsed() != avail {
		t.Errorf("next used = %d, want %d", q.NextUsed(), avail)
	}
}

// TestGuestMemoryVanishes truncates the guest RAM file under a running
// queue: the resulting SIGBUS must be turned into a logged error, and the
// daemon must keep answering the front-end.
func TestGuestMemoryVanishes(t *testing.T) {
	for _, pool := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			p := newLoopProbe(1)
			d := startDevHooks(t, pool, true, p.hooks())
			d.post(1, []byte("before"), []byte("before"))
			d.kick(1)
			d.waitDone(1, 1)
			d.post(1, []byte("lost"), []byte("lost"))
			if err := unix.Ftruncate(d.memfd, 0); err != nil {
				t.Fatal(err)
			}
			d.kick(1)
			p.waitIdle(t, 1000, d.q[1].kick, func(probeState) bool { return strings.Contains(d.logs.String(), "aborted") })
			if got := d.call(vhostuser.VHOST_USER_GET_FEATURES, nil); got != features {
				t.Fatalf("GET_FEATURES after memory loss = %#x", got)
			}
			// Stopping the ring still works.
			d.send(vhostuser.VHOST_USER_GET_VRING_BASE, 0, vstate(1, 0))
			d.recv(vhostuser.VHOST_USER_GET_VRING_BASE)
			if err := unix.Ftruncate(d.memfd, guestSize); err != nil {
				t.Fatal(err)
			}
		})
	}
}
