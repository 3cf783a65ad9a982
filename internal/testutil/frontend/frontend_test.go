package frontend

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEcho(t *testing.T) {
	regions := []RegionSpec{{GPA: 0x1000, Size: 1 << 20}, {GPA: 1 << 33, Size: 2 << 20, FileOffset: 8192}}
	ring := uint64(1 << 33)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"add-mem-reg", Options{MemMode: AddMemReg}},
		{"regions", Options{Regions: regions, RingGPA: &ring}},
		{"regions-add-mem-reg-indirect", Options{Regions: regions, MemMode: AddMemReg, Indirect: true}},
		{"event-idx", Options{EventIdx: true}},
		{"no-reply-ack", Options{NoReplyAck: true}},
		{"small-queue", Options{QueueSize: 4, Indirect: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev, f := newTestFrontend(t, c.opts)
			if f.QueueNum != 2 || f.MaxMemSlots != 8 {
				t.Errorf("QueueNum %d MaxMemSlots %d", f.QueueNum, f.MaxMemSlots)
			}
			if got := f.ReplyAck(); got == c.opts.NoReplyAck {
				t.Errorf("ReplyAck() = %v", got)
			}
			wantMem := uint32(VHOST_USER_SET_MEM_TABLE)
			if c.opts.MemMode == AddMemReg {
				wantMem = VHOST_USER_ADD_MEM_REG
			}
			dev.mu.Lock()
			var sawMem bool
			for _, r := range dev.log {
				sawMem = sawMem || r == wantMem
			}
			dev.mu.Unlock()
			if !sawMem {
				t.Errorf("memory not announced with request %d", wantMem)
			}
			// More calls than the queue size, so indices wrap.
			for i := 0; i < 300; i++ {
				body := bytes.Repeat([]byte{byte(i)}, 1+i%50)
				p, err := f.Call(FUSE_LOOKUP, 1, 64, body[:len(body)/2], body[len(body)/2:])
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if !bytes.Equal(p, body) {
					t.Fatalf("call %d: echo %x, want %x", i, p, body)
				}
			}
		})
	}
}

func TestTimeoutAndClose(t *testing.T) {
	dev, f := newTestFrontend(t, Options{Timeout: 300 * time.Millisecond})
	dev.silent.Store(true)
	start := time.Now()
	_, err := f.Getattr(1)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Getattr on a silent device = %v, want ErrTimeout", err)
	}
	// Far above 300 ms (the machine may be loaded), below the 10 s default.
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	unix.Shutdown(dev.fd, unix.SHUT_RDWR)
	_, err = f.Getattr(1)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Getattr after close = %v, want ErrClosed", err)
	}
}

func TestAlive(t *testing.T) {
	// The death is noticed well before the timeout; the margin allows for
	// a loaded machine.
	dev, f := newTestFrontend(t, Options{Timeout: 30 * time.Second})
	dev.silent.Store(true)
	f.Conn.alive = func() error { return errors.New("daemon exited: status 3") }
	start := time.Now()
	_, err := f.Getattr(1)
	if !errors.Is(err, ErrClosed) || time.Since(start) > 15*time.Second {
		t.Fatalf("Getattr with a dead daemon = %v after %v", err, time.Since(start))
	}
}

func TestCheckReply(t *testing.T) {
	hdr := func(n uint32, e int32, u uint64) []byte {
		b := le32s(n, uint32(e))
		return append(b, le64s(u)...)
	}
	for _, c := range []struct {
		name string
		out  []byte
		used uint32
		ok   bool
	}{
		{"ok", hdr(16, 0, 7), 16, true},
		{"error", hdr(16, -2, 7), 16, true},
		{"short", hdr(16, 0, 7), 8, false},
		{"len-mismatch", hdr(20, 0, 7), 16, false},
		{"wrong-unique", hdr(16, 0, 8), 16, false},
		{"positive-error", hdr(16, 2, 7), 16, false},
		{"error-with-payload", append(hdr(24, -2, 7), make([]byte, 8)...), 24, false},
	} {
		views := [][]byte{c.out[:16], c.out[16:]}
		_, _, err := checkReply(FUSE_GETATTR, 7, views, c.used)
		if (err == nil) != c.ok {
			t.Errorf("%s: checkReply = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func TestParseDirents(t *testing.T) {
	rec := func(ino, off uint64, typ uint32, name string) []byte {
		b := le64s(ino, off)
		b = append(b, le32s(uint32(len(name)), typ)...)
		b = append(b, name...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		return b
	}
	p := append(rec(5, 1, 4, "."), rec(9, 2, 8, "file-name")...)
	ds, err := ParseDirents(p, false)
	if err != nil || len(ds) != 2 || ds[1].Name != "file-name" || ds[1].Ino != 9 || ds[1].Off != 2 || ds[1].Type != 8 {
		t.Fatalf("ParseDirents = %+v, %v", ds, err)
	}
	if _, err := ParseDirents(p[:len(p)-8], false); err == nil {
		t.Error("truncated record accepted")
	}
	plus := append(make([]byte, EntryOutSize), rec(3, 1, 8, "x")...)
	plus[0] = 42
	ds, err = ParseDirents(plus, true)
	if err != nil || len(ds) != 1 || ds[0].Entry.NodeID != 42 {
		t.Fatalf("ParseDirents plus = %+v, %v", ds, err)
	}
}

func TestMemory(t *testing.T) {
	m, err := NewMemory([]RegionSpec{{GPA: 0x10000, Size: 8192}, {GPA: 0x20000, Size: 4096, FileOffset: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Bytes(0x10000, 8192); err != nil {
		t.Error(err)
	}
	for _, c := range []struct{ gpa, n uint64 }{
		{0x10000, 8193}, {0xffff, 2}, {0x12000, 1}, {0x1ffff, 2}, {^uint64(0), 2}, {0x20000, 4097},
	} {
		if _, err := m.Bytes(c.gpa, c.n); err == nil {
			t.Errorf("Bytes(%#x, %d) accepted", c.gpa, c.n)
		}
	}
	a, err := m.AllocatorFor(0x10000)
	if err != nil {
		t.Fatal(err)
	}
	g1, _ := a.Alloc(3, 1)
	g2, _ := a.Alloc(8, 64)
	if g1 != 0x10000 || g2 != 0x10040 {
		t.Errorf("Alloc = %#x, %#x", g1, g2)
	}
	mark := a.Mark()
	if _, err := a.Alloc(8192, 1); err == nil {
		t.Error("allocation beyond the region accepted")
	}
	g3, _ := a.Alloc(16, 16)
	a.Release(mark)
	if g4, _ := a.Alloc(16, 16); g4 != g3 {
		t.Errorf("after Release Alloc = %#x, want %#x", g4, g3)
	}
	if _, err := NewMemory([]RegionSpec{{GPA: 0, Size: 8192}, {GPA: 4096, Size: 4096}}); err == nil {
		t.Error("overlapping regions accepted")
	}
	if _, err := NewMemory([]RegionSpec{{GPA: 0, Size: 100}}); err == nil {
		t.Error("unaligned region size accepted")
	}
}

func TestNeedKick(t *testing.T) {
	_, f := newTestFrontend(t, Options{EventIdx: true})
	q := f.Queues[QueueRequest]
	// avail_event = 10: kick only when the new entries cross index 10.
	atomicStore32(q.used, 4+8*q.Size, 10)
	q.availIdx = 9
	if q.needKick(5) {
		t.Error("kick requested before reaching avail_event")
	}
	q.availIdx = 11
	if !q.needKick(9) {
		t.Error("no kick after crossing avail_event")
	}
	q.availIdx = 0
}
