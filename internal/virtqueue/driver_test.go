package virtqueue

import (
	"encoding/binary"
	"testing"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/linux"
)

// Fake driver layout in a single region at GPA 0 (size memSize):
//
//	0x0000 descriptor table (N·16 bytes)
//	0x8000 avail ring
//	0xc000 used ring
//	0x10000.. data buffers and indirect tables
const (
	memSize   = 0x40000
	descGPA   = 0x0
	availGPA  = 0x8000
	usedGPA   = 0xc000
	bufferGPA = 0x10000
)

type driver struct {
	t     testing.TB
	mem   []byte
	gm    *guestmem.Memory
	q     *Queue
	size  uint32
	avail uint16 // driver's avail idx
	call  int
}

func newDriver(t testing.TB, size uint32) *driver {
	t.Helper()
	d := &driver{t: t, mem: make([]byte, memSize), gm: guestmem.NewMemory(), q: New(), size: size}
	if err := d.gm.Set([]*guestmem.Region{guestmem.NewRegion(0, 0x7f00_0000_0000, d.mem)}); err != nil {
		t.Fatal(err)
	}
	if err := d.q.SetSize(size); err != nil {
		t.Fatal(err)
	}
	tb := d.gm.Acquire()
	defer tb.Release()
	if err := d.q.SetAddr(tb, descGPA, availGPA, usedGPA, true); err != nil {
		t.Fatal(err)
	}
	fd, err := linux.NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	d.call = fd
	d.q.SetCallFD(fd)
	t.Cleanup(func() { linux.Close(d.q.Reset()); d.gm.Close() })
	return d
}

// setDesc writes descriptor i of the table at gpa.
func (d *driver) setDesc(table uint64, i int, addr uint64, length uint32, flags, next uint16) {
	b := d.mem[table+uint64(i)*16:]
	binary.LittleEndian.PutUint64(b, addr)
	binary.LittleEndian.PutUint32(b[8:], length)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

func (d *driver) publish(heads ...uint16) {
	for _, h := range heads {
		binary.LittleEndian.PutUint16(d.mem[availGPA+4+2*(uint64(d.avail)%uint64(d.size)):], h)
		d.avail++
	}
	binary.LittleEndian.PutUint16(d.mem[availGPA+2:], d.avail)
}

func (d *driver) setAvailIdx(v uint16) { binary.LittleEndian.PutUint16(d.mem[availGPA+2:], v) }

func (d *driver) usedIdx() uint16 { return binary.LittleEndian.Uint16(d.mem[usedGPA+2:]) }

func (d *driver) usedElem(i uint16) (id, length uint32) {
	off := usedGPA + 4 + 8*(uint64(i)%uint64(d.size))
	return binary.LittleEndian.Uint32(d.mem[off:]), binary.LittleEndian.Uint32(d.mem[off+4:])
}

func (d *driver) setUsedEvent(v uint16) {
	binary.LittleEndian.PutUint16(d.mem[availGPA+4+2*uint64(d.size):], v)
}

func (d *driver) availEvent() uint16 {
	return binary.LittleEndian.Uint16(d.mem[usedGPA+4+8*uint64(d.size):])
}

// called reports (and clears) whether the call eventfd was signalled.
func (d *driver) called() bool {
	var b [8]byte
	n, _ := linux.Read(d.call, b[:])
	return n == 8
}

// pop pops one chain with a fresh table reference.
func (d *driver) pop(c *Chain) (bool, error) {
	tb := d.gm.Acquire()
	defer tb.Release()
	return d.q.Pop(tb, c)
}

func (d *driver) push(c *Chain, n uint32) error {
	tb := d.gm.Acquire()
	defer tb.Release()
	return d.q.Push(tb, c, n)
}
