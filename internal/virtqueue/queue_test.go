package virtqueue

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/linux"
)

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func TestDirectChain(t *testing.T) {
	d := newDriver(t, 8)
	fill(d.mem[bufferGPA:bufferGPA+0x10], 0xa1)
	fill(d.mem[bufferGPA+0x100:bufferGPA+0x120], 0xa2)
	d.setDesc(descGPA, 3, bufferGPA, 0x10, VRING_DESC_F_NEXT, 5)
	d.setDesc(descGPA, 5, bufferGPA+0x100, 0x20, VRING_DESC_F_NEXT, 0)
	d.setDesc(descGPA, 0, bufferGPA+0x1000, 0x30, VRING_DESC_F_NEXT|VRING_DESC_F_WRITE, 7)
	d.setDesc(descGPA, 7, bufferGPA+0x2000, 0x40, VRING_DESC_F_WRITE, 0)
	d.publish(3)

	c := NewChain()
	ok, err := d.pop(c)
	if !ok || err != nil {
		t.Fatalf("Pop = %v, %v, want true, nil", ok, err)
	}
	if c.Head() != 3 || len(c.Readable()) != 2 || len(c.Writable()) != 2 || c.WritableLen() != 0x70 {
		t.Fatalf("chain head %d in %d out %d outLen %#x", c.Head(), len(c.Readable()), len(c.Writable()), c.WritableLen())
	}
	if !bytes.Equal(c.Readable()[0], d.mem[bufferGPA:bufferGPA+0x10]) || len(c.Readable()[1]) != 0x20 ||
		&c.Readable()[1][0] != &d.mem[bufferGPA+0x100] || &c.Writable()[1][0] != &d.mem[bufferGPA+0x2000] {
		t.Fatal("chain buffers do not alias guest memory as expected")
	}
	if ok, err := d.pop(c); ok || err != nil {
		t.Fatalf("Pop(empty) = %v, %v", ok, err)
	}
	// Reuse the chain to check Push uses the head it was popped with.
	d.publish(3)
	c2 := NewChain()
	if ok, err := d.pop(c2); !ok || err != nil {
		t.Fatal(err)
	}
	if err := d.push(c, 0x50); err != nil {
		t.Fatal(err)
	}
	if id, l := d.usedElem(0); id != 3 || l != 0x50 || d.usedIdx() != 1 {
		t.Fatalf("used[0] = {%d, %#x}, idx %d, want {3, 0x50}, 1", id, l, d.usedIdx())
	}
	if !d.called() {
		t.Error("call eventfd not signalled without EVENT_IDX")
	}
	// n beyond the writable space is clamped.
	if err := d.push(c2, 0x1000); err != nil {
		t.Fatal(err)
	}
	if _, l := d.usedElem(1); l != 0x70 {
		t.Errorf("used len = %#x, want clamp to 0x70", l)
	}
}

func TestIndirectChain(t *testing.T) {
	d := newDriver(t, 4)
	const itab = bufferGPA + 0x8000
	d.setDesc(itab, 0, bufferGPA, 0x28, VRING_DESC_F_NEXT, 2)
	d.setDesc(itab, 2, bufferGPA+0x100, 0x10, VRING_DESC_F_NEXT|VRING_DESC_F_WRITE, 1)
	d.setDesc(itab, 1, bufferGPA+0x200, 0x1000, VRING_DESC_F_WRITE, 0)
	// A readable descriptor in the main chain before the indirect one is
	// accepted; the indirect descriptor's NEXT flag is ignored.
	d.setDesc(descGPA, 1, bufferGPA+0x300, 8, VRING_DESC_F_NEXT, 2)
	d.setDesc(descGPA, 2, itab, 3*16, VRING_DESC_F_INDIRECT|VRING_DESC_F_NEXT, 3)
	d.publish(1)
	c := NewChain()
	if ok, err := d.pop(c); !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	if len(c.Readable()) != 2 || len(c.Writable()) != 2 || len(c.Readable()[0]) != 8 || len(c.Readable()[1]) != 0x28 ||
		len(c.Writable()[1]) != 0x1000 {
		t.Fatalf("indirect chain: in %d out %d", len(c.Readable()), len(c.Writable()))
	}
}

// TestInterleaved checks that readable buffers after writable ones are
// filtered by flag, in chain order (REF behaviour).
func TestInterleaved(t *testing.T) {
	d := newDriver(t, 4)
	d.setDesc(descGPA, 0, bufferGPA, 1, VRING_DESC_F_NEXT|VRING_DESC_F_WRITE, 1)
	d.setDesc(descGPA, 1, bufferGPA+0x10, 2, VRING_DESC_F_NEXT, 2)
	d.setDesc(descGPA, 2, bufferGPA+0x20, 3, VRING_DESC_F_WRITE, 0)
	d.publish(0)
	c := NewChain()
	if ok, err := d.pop(c); !ok || err != nil {
		t.Fatal(err)
	}
	if len(c.Readable()) != 1 || len(c.Readable()[0]) != 2 || len(c.Writable()) != 2 ||
		len(c.Writable()[0]) != 1 || len(c.Writable()[1]) != 3 {
		t.Fatalf("interleaved chain split wrongly: in %d out %d", len(c.Readable()), len(c.Writable()))
	}
}

// TestMalformedChains checks that each malformed chain is completed with
// used length 0 (or skipped), reported, and that the queue goes on.
func TestMalformedChains(t *testing.T) {
	const itab = bufferGPA + 0x8000
	for _, tc := range []struct {
		name   string
		setup  func(d *driver) uint16 // returns the head to publish
		want   error
		noUsed bool // the entry cannot be completed
	}{
		{"loop", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, bufferGPA, 1, VRING_DESC_F_NEXT, 1)
			d.setDesc(descGPA, 1, bufferGPA, 1, VRING_DESC_F_NEXT, 0)
			return 0
		}, ErrLoop, false},
		{"self loop", func(d *driver) uint16 {
			d.setDesc(descGPA, 2, bufferGPA, 1, VRING_DESC_F_NEXT, 2)
			return 2
		}, ErrLoop, false},
		{"indirect loop", func(d *driver) uint16 {
			d.setDesc(itab, 0, bufferGPA, 1, VRING_DESC_F_NEXT, 1)
			d.setDesc(itab, 1, bufferGPA, 1, VRING_DESC_F_NEXT, 0)
			d.setDesc(descGPA, 0, itab, 32, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, ErrLoop, false},
		{"next out of range", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, bufferGPA, 1, VRING_DESC_F_NEXT, 8)
			return 0
		}, ErrIndexRange, false},
		{"indirect next out of range", func(d *driver) uint16 {
			d.setDesc(itab, 0, bufferGPA, 1, VRING_DESC_F_NEXT, 2)
			d.setDesc(descGPA, 0, itab, 32, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, ErrIndexRange, false},
		{"nested indirect", func(d *driver) uint16 {
			d.setDesc(itab, 0, itab+0x100, 16, VRING_DESC_F_INDIRECT, 0)
			d.setDesc(descGPA, 0, itab, 16, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, ErrNestedIndirect, false},
		{"indirect len not multiple of 16", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, itab, 17, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, ErrIndirectLength, false},
		{"indirect len zero", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, itab, 0, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, ErrIndirectLength, false},
		{"indirect table too long", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, 0, 65536*16, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, ErrIndirectLength, false},
		{"indirect table outside memory", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, memSize-16, 32, VRING_DESC_F_INDIRECT, 0)
			return 0
		}, errIndirectAddress, false},
		{"buffer outside memory", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, memSize, 1, 0, 0)
			return 0
		}, ErrAddress, false},
		{"buffer address plus length overflows", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, ^uint64(0)-4, 0x10, 0, 0)
			return 0
		}, ErrAddress, false},
		{"buffer crosses region end", func(d *driver) uint16 {
			d.setDesc(descGPA, 0, memSize-8, 9, VRING_DESC_F_WRITE, 0)
			return 0
		}, ErrAddress, false},
		{"head out of range", func(d *driver) uint16 { return 8 }, ErrHeadRange, true},
		{"head far out of range", func(d *driver) uint16 { return 0xffff }, ErrHeadRange, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 8)
			d.publish(tc.setup(d))
			c := NewChain()
			ok, err := d.pop(c)
			if !ok || !errors.Is(err, tc.want) {
				t.Fatalf("Pop = %v, %v, want true, %v", ok, err, tc.want)
			}
			if tc.noUsed {
				if d.usedIdx() != 0 {
					t.Fatalf("used idx = %d after skipped entry, want 0", d.usedIdx())
				}
			} else {
				if id, l := d.usedElem(0); d.usedIdx() != 1 || l != 0 || id != uint32(c.Head()) {
					t.Fatalf("used = idx %d {%d, %d}, want 1 {%d, 0}", d.usedIdx(), id, l, c.Head())
				}
			}
			// The queue keeps working.
			d.setDesc(descGPA, 4, bufferGPA, 16, 0, 0)
			d.publish(4)
			if ok, err := d.pop(c); !ok || err != nil || c.Head() != 4 {
				t.Fatalf("Pop after bad chain = %v, %v, head %d", ok, err, c.Head())
			}
		})
	}
}

func TestEmptyChainCompleted(t *testing.T) {
	d := newDriver(t, 4)
	// A lone indirect table whose only descriptor... has no buffers is not
	// possible; a zero-length readable descriptor still counts as a buffer.
	d.setDesc(descGPA, 0, bufferGPA, 0, 0, 0)
	d.publish(0)
	c := NewChain()
	if ok, err := d.pop(c); !ok || err != nil || len(c.Readable()) != 1 {
		t.Fatalf("zero-length descriptor: %v, %v", ok, err)
	}
}

func TestChainLengthOverflow(t *testing.T) {
	// An 8 GiB sparse memfd region makes two 2 GiB buffers addressable.
	fd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, 8<<30); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, 4)
	big, err := guestmem.MapRegion(guestmem.RegionSpec{GPA: 1 << 32, Size: 8 << 30, UVA: 1 << 46}, fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.gm.Add(big); err != nil {
		t.Fatal(err)
	}
	d.setDesc(descGPA, 0, 1<<32, 0x8000_0000, VRING_DESC_F_NEXT, 1)
	d.setDesc(descGPA, 1, 1<<32+0x8000_0000, 0x7fff_fffe, VRING_DESC_F_NEXT|VRING_DESC_F_WRITE, 2)
	d.setDesc(descGPA, 2, 1<<32, 1, VRING_DESC_F_WRITE, 0)
	d.publish(0)
	c := NewChain()
	if ok, err := d.pop(c); !ok || err != nil {
		t.Fatalf("4 GiB - 1 chain: %v, %v", ok, err)
	}
	d.setDesc(descGPA, 2, 1<<32, 2, VRING_DESC_F_WRITE, 0)
	d.publish(0)
	if ok, err := d.pop(c); !ok || !errors.Is(err, ErrChainLength) {
		t.Fatalf("4 GiB + 1 chain: %v, %v, want ErrChainLength", ok, err)
	}
}

func TestSpanningTwoRegions(t *testing.T) {
	d := newDriver(t, 4)
	extra := make([]byte, 0x1000)
	if err := d.gm.Add(guestmem.NewRegion(memSize, 0, extra)); err != nil {
		t.Fatal(err)
	}
	d.setDesc(descGPA, 0, memSize-8, 16, 0, 0) // contiguous regions, still rejected
	d.setDesc(descGPA, 1, memSize+8, 16, 0, 0) // inside the second region
	d.publish(0, 1)
	c := NewChain()
	if ok, err := d.pop(c); !ok || !errors.Is(err, ErrAddress) {
		t.Fatalf("spanning buffer: %v, %v, want ErrAddress", ok, err)
	}
	if ok, err := d.pop(c); !ok || err != nil || &c.Readable()[0][0] != &extra[8] {
		t.Fatalf("second-region buffer: %v, %v", ok, err)
	}
}

func TestAvailIndexTooFar(t *testing.T) {
	d := newDriver(t, 4)
	d.setAvailIdx(5)
	c := NewChain()
	if ok, err := d.pop(c); ok || !errors.Is(err, ErrAvailIndex) {
		t.Fatalf("Pop = %v, %v, want false, ErrAvailIndex", ok, err)
	}
	if d.q.Base() != 0 {
		t.Fatal("next_avail moved on a bogus avail index")
	}
}

func TestIndexWrap(t *testing.T) {
	d := newDriver(t, 4)
	d.q.SetBase(0xfffe)
	d.avail = 0xfffe
	d.setDesc(descGPA, 0, bufferGPA, 1, VRING_DESC_F_WRITE, 0)
	c := NewChain()
	for i := 0; i < 6; i++ {
		d.publish(0)
		if ok, err := d.pop(c); !ok || err != nil {
			t.Fatalf("pop %d: %v, %v", i, ok, err)
		}
		if err := d.push(c, 1); err != nil {
			t.Fatal(err)
		}
	}
	if d.q.Base() != 4 || d.usedIdx() != 6 {
		t.Fatalf("next_avail %d used idx %d, want 4, 6", d.q.Base(), d.usedIdx())
	}
}

func TestEventIdx(t *testing.T) {
	d := newDriver(t, 8)
	d.q.SetEventIdx(true)
	d.setDesc(descGPA, 0, bufferGPA, 16, VRING_DESC_F_WRITE, 0)
	c := NewChain()
	popPush := func() {
		t.Helper()
		d.publish(0)
		if ok, err := d.pop(c); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := d.push(c, 4); err != nil {
			t.Fatal(err)
		}
	}
	// used_event = 0: notify when used idx moves past 0.
	d.setUsedEvent(0)
	popPush()
	if !d.called() {
		t.Fatal("no notification when used idx crossed used_event")
	}
	// used_event = 0 again: the crossing already happened, no notification.
	popPush()
	if d.called() {
		t.Fatal("notification although used_event was not crossed")
	}
	// used_event = 3: next push moves idx 2 -> 3, not past 3: no notification.
	d.setUsedEvent(3)
	popPush()
	if d.called() {
		t.Fatal("notification before used_event was passed")
	}
	popPush() // 3 -> 4 crosses used_event 3
	if !d.called() {
		t.Fatal("no notification when crossing used_event")
	}

	// avail_event: EnableNotification publishes next_avail and reports
	// whether new chains are already available.
	tb := d.gm.Acquire()
	defer tb.Release()
	more, err := d.q.EnableNotification(tb)
	if err != nil || more || d.availEvent() != 4 {
		t.Fatalf("EnableNotification = %v, %v, avail_event %d, want false, nil, 4", more, err, d.availEvent())
	}
	d.publish(0)
	if more, _ := d.q.EnableNotification(tb); !more {
		t.Fatal("EnableNotification missed a chain published meanwhile")
	}
	// Without EVENT_IDX, EnableNotification does nothing.
	d.q.SetEventIdx(false)
	d.publish(0)
	if more, _ := d.q.EnableNotification(tb); more {
		t.Fatal("EnableNotification without EVENT_IDX = true")
	}
}

func TestNoCallFD(t *testing.T) {
	d := newDriver(t, 2)
	old := d.q.SetCallFD(-1)
	if old != d.call {
		t.Fatalf("SetCallFD returned %d, want %d", old, d.call)
	}
	d.q.SetCallFD(old)
	d.q.SetCallFD(-1)
	d.setDesc(descGPA, 0, bufferGPA, 16, VRING_DESC_F_WRITE, 0)
	d.publish(0)
	c := NewChain()
	d.pop(c)
	if err := d.push(c, 1); err != nil || d.called() {
		t.Fatalf("push without call fd: %v", err)
	}
	d.q.SetCallFD(d.call) // for cleanup
}

func TestSetAddrAndSize(t *testing.T) {
	d := newDriver(t, 8)
	tb := d.gm.Acquire()
	defer tb.Release()
	for _, tc := range []struct {
		desc, avail, used uint64
	}{
		{1, availGPA, usedGPA},           // misaligned desc
		{descGPA, availGPA + 1, usedGPA}, // misaligned avail
		{descGPA, availGPA, usedGPA + 2}, // misaligned used
		{memSize, availGPA, usedGPA},     // outside memory
		{descGPA, memSize - 16, usedGPA}, // avail ring crosses the end
	} {
		if err := d.q.SetAddr(tb, tc.desc, tc.avail, tc.used, true); err == nil {
			t.Errorf("SetAddr(%#x, %#x, %#x) succeeded", tc.desc, tc.avail, tc.used)
		}
	}
	for _, n := range []uint32{0, 3, 65536, 32769} {
		if err := d.q.SetSize(n); err == nil {
			t.Errorf("SetSize(%d) succeeded", n)
		}
	}
	if err := d.q.SetSize(MaxSize); err != nil {
		t.Error(err)
	}
	// A 32768-entry descriptor table does not fit in the 256 KiB region.
	if err := d.q.SetAddr(tb, descGPA, availGPA, usedGPA, true); !errors.Is(err, ErrRingMemory) {
		t.Errorf("SetAddr(too large ring) = %v, want ErrRingMemory", err)
	}
	d.q.SetSize(8)
	// SetAddr with resync reads next_used from the guest; without, it keeps it.
	copy(d.mem[0x20002:], []byte{9, 0})
	if err := d.q.SetAddr(tb, descGPA, availGPA, 0x20000, false); err != nil || d.q.NextUsed() != 0 {
		t.Fatalf("SetAddr(no resync) = %v, next_used %d, want 0", err, d.q.NextUsed())
	}
	if err := d.q.SetAddr(tb, descGPA, availGPA, 0x20000, true); err != nil || d.q.NextUsed() != 9 {
		t.Fatalf("SetAddr(resync) = %v, next_used %d, want 9", err, d.q.NextUsed())
	}
	// A ring not in memory fails the pass, not the process.
	if err := d.gm.Remove(0, memSize); err != nil {
		t.Fatal(err)
	}
	tb2 := d.gm.Acquire()
	defer tb2.Release()
	if ok, err := d.q.Pop(tb2, NewChain()); ok || !errors.Is(err, ErrRingMemory) {
		t.Fatalf("Pop without ring memory = %v, %v", ok, err)
	}
}

func TestDirtyLogging(t *testing.T) {
	d := newDriver(t, 8)
	var words [4]uint32 // 128 pages
	bits := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 16)
	if err := d.gm.SetLog(guestmem.NewLog(bits)); err != nil {
		t.Fatal(err)
	}
	// Reply buffers on pages 0x20 (two bytes at its end) and 0x21..0x22.
	d.setDesc(descGPA, 0, bufferGPA, 16, VRING_DESC_F_NEXT, 1) // readable: never logged
	d.setDesc(descGPA, 1, 0x20ffe, 2, VRING_DESC_F_NEXT|VRING_DESC_F_WRITE, 2)
	d.setDesc(descGPA, 2, 0x21000, 0x2000, VRING_DESC_F_WRITE, 0)
	d.publish(0)
	c := NewChain()
	if ok, err := d.pop(c); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := d.push(c, 0x1002); err != nil { // 2 bytes + 0x1000: pages 0x20, 0x21
		t.Fatal(err)
	}
	want := make([]byte, 16)
	want[usedGPA/4096/8] |= 1 << (usedGPA / 4096 % 8) // used element and idx (page 0xc)
	want[4] |= 0b11                                   // pages 0x20, 0x21
	if !bytes.Equal(bits, want) {
		t.Fatalf("dirty bitmap = %08b, want %08b", bits, want)
	}
}

func TestPopPushAllocs(t *testing.T) {
	d := newDriver(t, 256)
	d.setDesc(descGPA, 0, bufferGPA, 40, VRING_DESC_F_NEXT, 1)
	d.setDesc(descGPA, 1, bufferGPA+0x100, 16, VRING_DESC_F_WRITE, 0)
	c := NewChain()
	allocs := testing.AllocsPerRun(1000, func() {
		d.publish(0)
		tb := d.gm.Acquire()
		if ok, err := d.q.Pop(tb, c); !ok || err != nil {
			panic("pop failed")
		}
		if err := d.q.Push(tb, c, 16); err != nil {
			panic(err)
		}
		tb.Release()
		linux.Drain(d.call)
	})
	if allocs != 0 {
		t.Errorf("Pop+Push allocations = %v, want 0", allocs)
	}
}

// TestDirtyLogUsedAtLogAddr checks that with a separate log address
// (SET_VRING_ADDR with VHOST_VRING_F_LOG) the used element, used idx and
// avail_event are logged at that address, not at the used ring's own page.
func TestDirtyLogUsedAtLogAddr(t *testing.T) {
	d := newDriver(t, 8)
	var words [4]uint32 // 128 pages
	bits := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 16)
	if err := d.gm.SetLog(guestmem.NewLog(bits)); err != nil {
		t.Fatal(err)
	}
	const logAddr = 0x3_0ffc // used ring logged across pages 0x30 and 0x31
	tb := d.gm.Acquire()
	err := d.q.SetAddrLog(tb, descGPA, availGPA, usedGPA, logAddr, true)
	tb.Release()
	if err != nil {
		t.Fatal(err)
	}
	d.q.SetEventIdx(true)
	d.setDesc(descGPA, 0, bufferGPA, 16, VRING_DESC_F_NEXT, 1)
	d.setDesc(descGPA, 1, 0x2_0000, 0x1000, VRING_DESC_F_WRITE, 0)
	d.publish(0)
	c := NewChain()
	if ok, err := d.pop(c); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := d.push(c, 0); err != nil { // nothing written into the buffer
		t.Fatal(err)
	}
	want := make([]byte, 16)
	want[0x30/8] |= 1 << (0x30 % 8) // used idx at logAddr+2
	want[0x31/8] |= 1 << (0x31 % 8) // used element 0 at logAddr+4
	if !bytes.Equal(bits, want) {
		t.Fatalf("after push: dirty bitmap = %08b, want %08b", bits, want)
	}
	clear(bits)
	tb = d.gm.Acquire()
	_, err = d.q.EnableNotification(tb) // writes avail_event at used+4+8*size
	tb.Release()
	if err != nil {
		t.Fatal(err)
	}
	if d.availEvent() != 1 {
		t.Fatalf("avail_event = %d, want 1", d.availEvent())
	}
	clear(want)
	want[0x31/8] |= 1 << (0x31 % 8)
	if !bytes.Equal(bits, want) {
		t.Fatalf("after avail_event: dirty bitmap = %08b, want %08b", bits, want)
	}
}
