package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

// Desc is one split-ring descriptor (virtio 1.2 §2.7.5).
type Desc struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Next  uint16
}

// Buf is one buffer of a chain to submit.
type Buf struct {
	GPA   uint64
	Len   uint32
	Write bool // device-writable
}

// Used is one used ring element.
type Used struct {
	ID  uint32
	Len uint32
}

// Queue is the driver side of one split virtqueue in guest memory.
type Queue struct {
	Index    int
	Size     int // N, a power of two
	DescGPA  uint64
	AvailGPA uint64
	UsedGPA  uint64
	KickFD   int // eventfd the front-end writes
	CallFD   int // eventfd the back-end writes
	// Base is the avail index StartQueue sends in SET_VRING_BASE: 0 at
	// first, then what GET_VRING_BASE returned.
	Base uint16

	fe       *Frontend
	desc     []byte // 16·N
	avail    []byte // 8 + 2·N (2 bytes of padding after used_event)
	used     []byte // 8 + 8·N (2 bytes of padding after avail_event)
	eventIdx bool

	// Only the front-end writes these ring fields; shadows of them:
	availIdx   uint16 // next value of avail->idx
	availFlags uint16
	lastUsed   uint16 // used ring position consumed so far

	free    []uint16   // free descriptor indices
	chains  [][]uint16 // descriptor indices owned by each outstanding head
	pending []bool     // head is outstanding

	// Stray collects completions of heads nobody waited for (for example
	// chains whose wait timed out).
	Stray []Used
}

const ringAlign = 64

func newQueue(fe *Frontend, idx, n int, a *Allocator) (*Queue, error) {
	if n < 2 || n > 32768 || n&(n-1) != 0 {
		return nil, fmt.Errorf("create queue %d: size %d must be an even power of two ≤ 32768", idx, n)
	}
	q := &Queue{Index: idx, Size: n, fe: fe, KickFD: -1, CallFD: -1}
	var err error
	if q.DescGPA, err = a.Alloc(uint64(descSize*n), ringAlign); err != nil {
		return nil, err
	}
	if q.AvailGPA, err = a.Alloc(uint64(8+2*n), ringAlign); err != nil {
		return nil, err
	}
	if q.UsedGPA, err = a.Alloc(uint64(8+8*n), ringAlign); err != nil {
		return nil, err
	}
	q.desc, _ = fe.Mem.Bytes(q.DescGPA, uint64(descSize*n))
	q.avail, _ = fe.Mem.Bytes(q.AvailGPA, uint64(8+2*n))
	q.used, _ = fe.Mem.Bytes(q.UsedGPA, uint64(8+8*n))
	if !aligned4(q.avail, 0) || !aligned4(q.used, 0) {
		return nil, fmt.Errorf("create queue %d: rings not 4-aligned in the mapping", idx)
	}
	q.chains = make([][]uint16, n)
	q.pending = make([]bool, n)
	q.free = make([]uint16, 0, n)
	for i := n - 1; i >= 0; i-- {
		q.free = append(q.free, uint16(i))
	}
	if q.KickFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create queue %d kick eventfd: %w", idx, err)
	}
	if q.CallFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(q.KickFD)
		return nil, fmt.Errorf("create queue %d call eventfd: %w", idx, err)
	}
	return q, nil
}

func (q *Queue) close() {
	if q.KickFD >= 0 {
		unix.Close(q.KickFD)
		q.KickFD = -1
	}
	if q.CallFD >= 0 {
		unix.Close(q.CallFD)
		q.CallFD = -1
	}
}

// AllocDescs takes n descriptor slots from the free list.
func (q *Queue) AllocDescs(n int) ([]uint16, error) {
	if n <= 0 || n > len(q.free) {
		return nil, fmt.Errorf("allocate %d descriptors on queue %d: %d free", n, q.Index, len(q.free))
	}
	idx := make([]uint16, n)
	copy(idx, q.free[len(q.free)-n:])
	q.free = q.free[:len(q.free)-n]
	return idx, nil
}

// FreeDescs returns descriptor slots to the free list.
func (q *Queue) FreeDescs(idx []uint16) { q.free = append(q.free, idx...) }

// WriteDesc writes descriptor i of the table (i < Size).
func (q *Queue) WriteDesc(i uint16, d Desc) {
	b := q.desc[descSize*int(i) : descSize*int(i)+descSize]
	binary.LittleEndian.PutUint64(b[0:], d.Addr)
	binary.LittleEndian.PutUint32(b[8:], d.Len)
	binary.LittleEndian.PutUint16(b[12:], d.Flags)
	binary.LittleEndian.PutUint16(b[14:], d.Next)
}

// WriteDescAt writes a descriptor into a table at any GPA (for indirect
// tables).
func (q *Queue) WriteDescAt(gpa uint64, d Desc) error {
	b, err := q.fe.Mem.Bytes(gpa, descSize)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b[0:], d.Addr)
	binary.LittleEndian.PutUint32(b[8:], d.Len)
	binary.LittleEndian.PutUint16(b[12:], d.Flags)
	binary.LittleEndian.PutUint16(b[14:], d.Next)
	return nil
}

// Track records that head owns the descriptor slots idx, so that its
// completion returns them to the free list.
func (q *Queue) Track(head uint16, idx []uint16) {
	if int(head) < q.Size {
		q.chains[head] = append(q.chains[head][:0], idx...)
		q.pending[head] = true
	}
}

// Publish puts head into the next avail ring slot and publishes the new
// avail index (release: the atomic store orders every earlier descriptor
// and ring store). It does not kick.
func (q *Queue) Publish(head uint16) {
	slot := int(q.availIdx) & (q.Size - 1)
	binary.LittleEndian.PutUint16(q.avail[4+2*slot:], head)
	q.availIdx++
	q.storeAvailWord()
}

// SetAvailIdx publishes an arbitrary avail index (hostile tests: claiming
// more entries than the ring holds).
func (q *Queue) SetAvailIdx(v uint16) {
	q.availIdx = v
	q.storeAvailWord()
}

// AvailIdx returns the front-end's avail index.
func (q *Queue) AvailIdx() uint16 { return q.availIdx }

func (q *Queue) storeAvailWord() {
	atomicStore32(q.avail, 0, uint32(q.availFlags)|uint32(q.availIdx)<<16)
}

// UsedIdx loads used->idx (acquire).
func (q *Queue) UsedIdx() uint16 { return uint16(atomicLoad32(q.used, 0) >> 16) }

func (q *Queue) usedFlags() uint16 { return uint16(atomicLoad32(q.used, 0)) }

func (q *Queue) availEvent() uint16 { return uint16(atomicLoad32(q.used, 4+8*q.Size)) }

// setUsedEvent asks the device to notify once it publishes the used entry
// at position v. The two bytes after used_event are padding we own.
func (q *Queue) setUsedEvent(v uint16) { atomicStore32(q.avail, 4+2*q.Size, uint32(v)) }

// needKick decides whether the back-end wants a kick after the avail index
// moved from old to q.availIdx (virtio 1.2 §2.7.10 and §2.7.13.3).
func (q *Queue) needKick(old uint16) bool {
	if q.eventIdx {
		ev := q.availEvent()
		return q.availIdx-ev-1 < q.availIdx-old
	}
	return q.usedFlags()&VRING_USED_F_NO_NOTIFY == 0
}

// Kick writes the kick eventfd.
func (q *Queue) Kick() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(q.KickFD, one[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil && err != unix.EAGAIN {
			return fmt.Errorf("kick queue %d: %w", q.Index, err)
		}
		return nil
	}
}

// PublishAndKick publishes head and kicks if the back-end asked for it.
func (q *Queue) PublishAndKick(head uint16) error {
	old := q.availIdx
	q.Publish(head)
	if q.fe.opts.AlwaysKick || q.needKick(old) {
		return q.Kick()
	}
	return nil
}

// PopUsed consumes the next used element, if any.
func (q *Queue) PopUsed() (Used, bool) {
	if q.UsedIdx() == q.lastUsed {
		return Used{}, false
	}
	slot := int(q.lastUsed) & (q.Size - 1)
	e := q.used[4+8*slot : 12+8*slot]
	u := Used{ID: binary.LittleEndian.Uint32(e[0:]), Len: binary.LittleEndian.Uint32(e[4:])}
	q.lastUsed++
	if u.ID < uint32(q.Size) && q.pending[u.ID] {
		q.pending[u.ID] = false
		q.FreeDescs(q.chains[u.ID])
		q.chains[u.ID] = q.chains[u.ID][:0]
	}
	return u, true
}

// ErrTimeout is returned when an operation did not complete in time.
var ErrTimeout = errors.New("timed out")

// ErrClosed is returned when the back-end closed the vhost-user connection.
var ErrClosed = errors.New("back-end closed the connection")

// WaitUsed waits for the completion of head and returns its element.
// Completions of other heads are kept in Stray, where a later WaitUsed for
// them finds them.
func (q *Queue) WaitUsed(head uint16) (Used, error) {
	for i, u := range q.Stray {
		if u.ID == uint32(head) {
			q.Stray = append(q.Stray[:i], q.Stray[i+1:]...)
			return u, nil
		}
	}
	deadline := time.Now().Add(q.fe.opts.Timeout)
	for {
		for {
			u, ok := q.PopUsed()
			if !ok {
				break
			}
			if u.ID == uint32(head) {
				return u, nil
			}
			q.Stray = append(q.Stray, u)
		}
		if q.eventIdx {
			q.setUsedEvent(q.lastUsed)
			if q.UsedIdx() != q.lastUsed {
				continue
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			if q.UsedIdx() != q.lastUsed {
				return Used{}, fmt.Errorf("wait for head %d on queue %d: completed without notification", head, q.Index)
			}
			return Used{}, fmt.Errorf("wait for head %d on queue %d: %w%s", head, q.Index, ErrTimeout, q.fe.aliveSuffix())
		}
		if err := q.fe.waitFD(q.CallFD, left); err != nil {
			return Used{}, fmt.Errorf("wait for head %d on queue %d: %w", head, q.Index, err)
		}
		drainEventfd(q.CallFD)
	}
}

// PendingCall reports whether the call eventfd has been signalled, and
// clears it.
func (q *Queue) PendingCall() bool { return drainEventfd(q.CallFD) }

func drainEventfd(fd int) bool {
	var b [8]byte
	n, _ := linux.Read(fd, b[:])
	return n == 8
}

// SubmitChain writes bufs as one chain (through an indirect table if
// indirect is set), publishes it and kicks. It returns the head index.
func (q *Queue) SubmitChain(bufs []Buf, indirect bool) (uint16, error) {
	if len(bufs) == 0 {
		return 0, errors.New("submit chain: no buffers")
	}
	if indirect {
		tbl, err := q.fe.alloc.Alloc(uint64(descSize*len(bufs)), 16)
		if err != nil {
			return 0, err
		}
		for i, b := range bufs {
			d := Desc{Addr: b.GPA, Len: b.Len}
			if b.Write {
				d.Flags |= VRING_DESC_F_WRITE
			}
			if i+1 < len(bufs) {
				d.Flags |= VRING_DESC_F_NEXT
				d.Next = uint16(i + 1)
			}
			if err := q.WriteDescAt(tbl+uint64(descSize*i), d); err != nil {
				return 0, err
			}
		}
		idx, err := q.AllocDescs(1)
		if err != nil {
			return 0, err
		}
		q.WriteDesc(idx[0], Desc{Addr: tbl, Len: uint32(descSize * len(bufs)), Flags: VRING_DESC_F_INDIRECT})
		q.Track(idx[0], idx)
		return idx[0], q.PublishAndKick(idx[0])
	}
	idx, err := q.AllocDescs(len(bufs))
	if err != nil {
		return 0, err
	}
	for i, b := range bufs {
		d := Desc{Addr: b.GPA, Len: b.Len}
		if b.Write {
			d.Flags |= VRING_DESC_F_WRITE
		}
		if i+1 < len(bufs) {
			d.Flags |= VRING_DESC_F_NEXT
			d.Next = idx[i+1]
		}
		q.WriteDesc(idx[i], d)
	}
	q.Track(idx[0], idx)
	return idx[0], q.PublishAndKick(idx[0])
}
