package virtqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/linux"
)

// Queue errors that end a processing pass (the ring as a whole is unusable
// until reconfigured or fixed by the driver).
var (
	ErrNotReady   = errors.New("queue addresses not set")
	ErrRingMemory = errors.New("ring not inside guest memory")
	ErrAvailIndex = errors.New("driver advanced avail index by more than the queue size")
)

// Queue is the device side of one split virtqueue. All methods are safe for
// concurrent use.
type Queue struct {
	// enabled is the vhost-user ring enable state (SET_VRING_ENABLE); the
	// worker reads it on every kick without taking mu.
	enabled atomic.Bool

	mu sync.Mutex // guards every field below

	size                uint32 // power of two, 1..MaxSize
	desc, avail, used   uint64 // GPAs of the three areas
	usedLog             uint64 // GPA at which used-ring writes are logged
	addrSet             bool
	nextAvail, nextUsed uint16
	availIdx            uint16 // last valid avail->idx read; availIdx-nextAvail <= size
	numAdded            uint16 // used entries since the last notification check
	eventIdx            bool
	callFD              int // -1: no notifications
	view                ringView
}

// ringView caches the host views of the rings for one memory table.
type ringView struct {
	t                 *guestmem.Table // nil: invalid
	desc, avail, used []byte
}

// New returns a queue in its initial state (size MaxSize, no addresses,
// indices 0, no call fd).
func New() *Queue {
	q := &Queue{}
	q.resetLocked()
	return q
}

func (q *Queue) resetLocked() {
	q.enabled.Store(false)
	q.size = MaxSize
	q.desc, q.avail, q.used, q.usedLog, q.addrSet = 0, 0, 0, 0, false
	q.nextAvail, q.nextUsed, q.availIdx, q.numAdded = 0, 0, 0, 0
	q.eventIdx = false
	q.callFD = -1
	q.view = ringView{}
}

// Reset returns the queue to its initial state and returns the call fd it
// held (or -1) for the caller to close.
func (q *Queue) Reset() (callFD int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	fd := q.callFD
	q.resetLocked()
	return fd
}

// SetEnabled sets the ring's enable state.
func (q *Queue) SetEnabled(on bool) { q.enabled.Store(on) }

// Enabled reports the ring's enable state. A disabled ring is not
// processed; kicks that arrive meanwhile are dropped.
func (q *Queue) Enabled() bool { return q.enabled.Load() }

// SetSize sets the number of descriptors (SET_VRING_NUM).
func (q *Queue) SetSize(n uint32) error {
	if n == 0 || n > MaxSize || n&(n-1) != 0 {
		return fmt.Errorf("set queue size %d: not a power of two in 1..%d", n, MaxSize)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.size = n
	q.view = ringView{}
	return nil
}

// Size returns the number of descriptors.
func (q *Queue) Size() uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

// SetAddr sets the guest physical addresses of the rings (SET_VRING_ADDR).
// The rings must be aligned (desc 16, avail 2, used 4) and lie in guest
// memory. With resync, next_used is re-read from used->idx; pass false while
// the queue is running so that in-flight completions are not lost.
// Used-ring writes are logged at the used ring's own GPA.
func (q *Queue) SetAddr(t *guestmem.Table, desc, avail, used uint64, resync bool) error {
	return q.SetAddrLog(t, desc, avail, used, used, resync)
}

// SetAddrLog is SetAddr with the guest address at which writes to the used
// ring are recorded in the dirty log: the vring's log_guest_addr when the
// front-end set VHOST_VRING_F_LOG (QEMU docs/interop/vhost-user.rst,
// "Migration": the back-end logs used-ring updates at that address), which
// QEMU sets to the used ring's GPA.
func (q *Queue) SetAddrLog(t *guestmem.Table, desc, avail, used, usedLog uint64, resync bool) error {
	if desc%16 != 0 || avail%2 != 0 || used%4 != 0 {
		return fmt.Errorf("set ring addresses desc %#x avail %#x used %#x: misaligned", desc, avail, used)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	v, err := makeView(t, q.size, desc, avail, used)
	if err != nil {
		return fmt.Errorf("set ring addresses desc %#x avail %#x used %#x: %w", desc, avail, used, err)
	}
	q.desc, q.avail, q.used, q.usedLog, q.addrSet = desc, avail, used, usedLog, true
	q.view = v
	if resync {
		q.nextUsed = load16(ptr16(v.used, 2))
		q.numAdded = 0
	}
	return nil
}

// SetBase sets next_avail (SET_VRING_BASE).
func (q *Queue) SetBase(n uint16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nextAvail, q.availIdx = n, n
}

// Base returns next_avail (GET_VRING_BASE).
func (q *Queue) Base() uint16 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.nextAvail
}

// NextUsed returns next_used.
func (q *Queue) NextUsed() uint16 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.nextUsed
}

// SetEventIdx turns VIRTIO_RING_F_EVENT_IDX handling on or off.
func (q *Queue) SetEventIdx(on bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.eventIdx = on
}

// SetCallFD replaces the eventfd signalled on completions (-1: none) and
// returns the previous one for the caller to close. No signal is in
// progress on the old fd once SetCallFD returns.
func (q *Queue) SetCallFD(fd int) (old int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	old, q.callFD = q.callFD, fd
	return old
}

func makeView(t *guestmem.Table, size uint32, desc, avail, used uint64) (ringView, error) {
	d, ok1 := t.Slice(desc, descBytes(size))
	a, ok2 := t.Slice(avail, availBytes(size))
	u, ok3 := t.Slice(used, usedBytes(size))
	if !ok1 || !ok2 || !ok3 {
		return ringView{}, ErrRingMemory
	}
	// The 16-bit atomics need host alignment too; it differs from the GPA
	// alignment only if a region was mapped from an unaligned file offset.
	if !hostAligned(a, 2) || !hostAligned(u, 4) {
		return ringView{}, fmt.Errorf("%w: host mapping misaligned", ErrRingMemory)
	}
	return ringView{t: t, desc: d, avail: a, used: u}, nil
}

// viewLocked returns the ring views for table t.
//
// Preconditions: q.mu is held; the caller holds a reference on t.
func (q *Queue) viewLocked(t *guestmem.Table) (*ringView, error) {
	if q.view.t == t {
		return &q.view, nil
	}
	if !q.addrSet {
		return nil, ErrNotReady
	}
	v, err := makeView(t, q.size, q.desc, q.avail, q.used)
	if err != nil {
		return nil, err
	}
	q.view = v
	return &q.view, nil
}

// Pop takes the next available chain into c.
//
//   - (true, nil): c holds a chain; complete it with Push.
//   - (true, err): a malformed chain was consumed and already completed
//     with used length 0 (or skipped if its head was out of range); log err
//     and call Pop again.
//   - (false, nil): no chain available.
//   - (false, err): the ring is unusable; log err and end the pass.
//
// Preconditions: the caller holds a reference on t until c is pushed.
func (q *Queue) Pop(t *guestmem.Table, c *Chain) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	v, err := q.viewLocked(t)
	if err != nil {
		return false, err
	}
	if q.nextAvail == q.availIdx {
		idx := load16(ptr16(v.avail, 2))
		if uint32(idx-q.nextAvail) > q.size {
			return false, fmt.Errorf("%w: avail idx %d, next %d, size %d", ErrAvailIndex, idx, q.nextAvail, q.size)
		}
		q.availIdx = idx
		if idx == q.nextAvail {
			return false, nil
		}
	}
	slot := uint64(q.nextAvail) & uint64(q.size-1)
	head := binary.LittleEndian.Uint16(v.avail[ringHeader+2*slot:])
	q.nextAvail++
	if err := walk(t, v.desc, q.size, head, c); err != nil {
		if err != ErrHeadRange {
			c.reset(head)
			q.pushLocked(t, v, head, 0, c)
		}
		return true, fmt.Errorf("pop chain at head %d: %w", head, err)
	}
	if len(c.in) == 0 && len(c.out) == 0 {
		q.pushLocked(t, v, head, 0, c)
		return true, fmt.Errorf("pop chain at head %d: %w", head, ErrEmptyChain)
	}
	return true, nil
}

// Push returns c to the driver with n bytes written to its writable
// buffers, marks the written guest memory dirty and signals the driver if
// needed. n larger than the writable space is clamped.
//
// Preconditions: t is the table c was popped with, still held.
func (q *Queue) Push(t *guestmem.Table, c *Chain, n uint32) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	v, err := q.viewLocked(t)
	if err != nil {
		return fmt.Errorf("push chain at head %d: %w", c.head, err)
	}
	return q.pushLocked(t, v, c.head, n, c)
}

// pushLocked adds one used element and notifies (spec/vhost.md §2.4).
//
// Preconditions: q.mu is held.
func (q *Queue) pushLocked(t *guestmem.Table, v *ringView, head uint16, n uint32, c *Chain) error {
	if uint32(head) >= q.size {
		return fmt.Errorf("push chain at head %d: %w", head, ErrHeadRange)
	}
	if uint64(n) > c.outLen {
		n = uint32(c.outLen)
	}
	t.MarkDirtyIovec(c.outGPA, c.out, uint64(n))

	off := ringHeader + usedElemSize*(uint64(q.nextUsed)&uint64(q.size-1))
	binary.LittleEndian.PutUint32(v.used[off:], uint32(head))
	binary.LittleEndian.PutUint32(v.used[off+4:], n)
	t.MarkDirty(q.usedLog+off, usedElemSize)
	q.nextUsed++
	q.numAdded++
	store16(ptr16(v.used, 2), q.nextUsed)
	t.MarkDirty(q.usedLog+2, 2)

	if q.callFD >= 0 && q.needsNotificationLocked(v) {
		return linux.Signal(q.callFD)
	}
	return nil
}

// needsNotificationLocked implements the event-index interrupt
// suppression test (spec/vhost.md §2.5; virtio v1.2 §2.7.10).
//
// Preconditions: q.mu is held.
func (q *Queue) needsNotificationLocked(v *ringView) bool {
	if !q.eventIdx {
		return true
	}
	fence() // used->idx store before the used_event load
	usedEvent := load16(ptr16(v.avail, ringHeader+2*uint64(q.size)))
	newIdx, old := q.nextUsed, q.nextUsed-q.numAdded
	q.numAdded = 0
	return newIdx-usedEvent-1 < newIdx-old
}

// EnableNotification asks the driver to kick for the next available chain
// and reports whether chains arrived meanwhile, in which case the caller
// must process the queue again. Without EVENT_IDX it does nothing and
// returns false: the device never suppresses kicks.
func (q *Queue) EnableNotification(t *guestmem.Table) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.eventIdx {
		return false, nil
	}
	v, err := q.viewLocked(t)
	if err != nil {
		return false, err
	}
	off := ringHeader + usedElemSize*uint64(q.size)
	store16(ptr16(v.used, off), q.nextAvail)
	t.MarkDirty(q.usedLog+off, 2)
	fence() // avail_event store before the avail->idx load
	return load16(ptr16(v.avail, 2)) != q.nextAvail, nil
}
