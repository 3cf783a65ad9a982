package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// MemMode selects how guest memory is announced to the back-end.
type MemMode int

const (
	// MemTable sends all regions in one SET_MEM_TABLE.
	MemTable MemMode = iota
	// AddMemReg sends one ADD_MEM_REG per region (QEMU with
	// CONFIGURE_MEM_SLOTS).
	AddMemReg
)

func (m MemMode) String() string {
	if m == AddMemReg {
		return "add-mem-reg"
	}
	return "set-mem-table"
}

// Options configures a Frontend. The zero value is usable.
type Options struct {
	// Regions is the guest memory layout; default: one 32 MiB region at
	// GPA 0x10000000 with mmap offset 0.
	Regions []RegionSpec
	// RingGPA and DataGPA select the regions (by any address inside them)
	// that hold the rings and the request buffers; default: the first and
	// the last region.
	RingGPA, DataGPA *uint64
	// QueueSize is the size of every queue; default 128.
	QueueSize int
	// NumQueues is the number of queues to set up; default 2.
	NumQueues int
	MemMode   MemMode
	// EventIdx negotiates VIRTIO_RING_F_EVENT_IDX.
	EventIdx bool
	// Indirect negotiates VIRTIO_RING_F_INDIRECT_DESC and makes Do submit
	// every chain through an indirect table.
	Indirect bool
	// NoReplyAck leaves VHOST_USER_PROTOCOL_F_REPLY_ACK unacked.
	NoReplyAck bool
	// BackendReq negotiates BACKEND_REQ and hands the back-end one end of
	// a socketpair with SET_BACKEND_REQ_FD, as QEMU does.
	BackendReq bool
	// AlwaysKick kicks after every submission, ignoring suppression.
	AlwaysKick bool
	// NoZeroOut skips clearing device-writable buffers before submission
	// (benchmarks).
	NoZeroOut bool
	// Timeout bounds every wait; default 10 s.
	Timeout time.Duration
	// Alive, if set, returns an error once the daemon has exited; waits
	// poll it so that a dead daemon ends them early.
	Alive func() error
}

// Frontend drives one vhost-user back-end.
type Frontend struct {
	Conn   *Conn
	Mem    *Memory
	Queues []*Queue

	// Negotiation results.
	Features         uint64 // from GET_FEATURES
	AckedFeatures    uint64
	ProtocolFeatures uint64 // from GET_PROTOCOL_FEATURES
	AckedProtocol    uint64
	QueueNum         uint64
	MaxMemSlots      uint64

	// Creds are placed in every FUSE in-header.
	UID, GID, PID uint32

	// BackendFD is the front-end end of the back-end request channel
	// (BackendReq), or -1.
	BackendFD int

	opts     Options
	replyAck bool
	alloc    *Allocator
	unique   uint64
	outViews [][]byte
	dirtyLog []byte // mapping of the log sent with SetLogBase, or nil
}

// New sets up guest memory and queues for the back-end connected on fd and
// performs the vhost-user handshake. The Frontend owns fd.
func New(fd int, opts Options) (*Frontend, error) {
	fe, err := NewUnconnected(fd, opts)
	if err != nil {
		return nil, err
	}
	if err := fe.Handshake(); err != nil {
		fe.Close()
		return nil, err
	}
	return fe, nil
}

// NewUnconnected sets up guest memory and queues but sends nothing, for
// tests that script the vhost-user exchange themselves. The Frontend owns
// fd.
func NewUnconnected(fd int, opts Options) (*Frontend, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = 128
	}
	if opts.NumQueues == 0 {
		opts.NumQueues = 2
	}
	if len(opts.Regions) == 0 {
		opts.Regions = []RegionSpec{{GPA: 0x1000_0000, Size: 32 << 20}}
	}
	fe := &Frontend{
		Conn:      &Conn{FD: fd, timeout: opts.Timeout, alive: opts.Alive},
		opts:      opts,
		PID:       1,
		BackendFD: -1,
	}
	mem, err := NewMemory(opts.Regions)
	if err != nil {
		fe.Conn.Close()
		return nil, err
	}
	fe.Mem = mem
	regs := mem.Regions()
	ringGPA, dataGPA := regs[0].GPA, regs[len(regs)-1].GPA
	if opts.RingGPA != nil {
		ringGPA = *opts.RingGPA
	}
	if opts.DataGPA != nil {
		dataGPA = *opts.DataGPA
	}
	ringAlloc, err := mem.AllocatorFor(ringGPA)
	if err != nil {
		fe.Close()
		return nil, err
	}
	for i := 0; i < opts.NumQueues; i++ {
		q, err := newQueue(fe, i, opts.QueueSize, ringAlloc)
		if err != nil {
			fe.Close()
			return nil, err
		}
		q.eventIdx = opts.EventIdx
		fe.Queues = append(fe.Queues, q)
	}
	if fe.alloc, err = mem.AllocatorFor(dataGPA); err != nil {
		fe.Close()
		return nil, err
	}
	return fe, nil
}

// Close closes the connection, the eventfds and the guest memory.
func (fe *Frontend) Close() {
	fe.Conn.Close()
	if fe.BackendFD >= 0 {
		unix.Close(fe.BackendFD)
		fe.BackendFD = -1
	}
	for _, q := range fe.Queues {
		q.close()
	}
	if fe.Mem != nil {
		fe.Mem.Close()
	}
	fe.unmapLog()
}

// SetTimeout changes the bound on every wait.
func (fe *Frontend) SetTimeout(d time.Duration) {
	fe.opts.Timeout = d
	fe.Conn.SetTimeout(d)
}

// Alloc returns the allocator for request buffers.
func (fe *Frontend) Alloc() *Allocator { return fe.alloc }

// Options returns the options in effect.
func (fe *Frontend) Options() Options { return fe.opts }

func (fe *Frontend) aliveSuffix() string { return fe.Conn.aliveSuffix() }

func (fe *Frontend) waitFD(fd int, timeout time.Duration) error {
	return fe.Conn.waitReadable(fd, time.Now().Add(timeout))
}

// ReplyAck reports whether REPLY_ACK is in effect.
func (fe *Frontend) ReplyAck() bool { return fe.replyAck }

// Request sends a request that is answered only by an optional REPLY_ACK
// and, when REPLY_ACK is in effect, waits for the ack and fails on a
// non-zero one.
func (fe *Frontend) Request(req uint32, payload []byte, fds []int) error {
	var flags uint32
	if fe.replyAck {
		flags = VHOST_USER_NEED_REPLY
	}
	if err := fe.Conn.Send(req, flags, payload, fds); err != nil {
		return err
	}
	if !fe.replyAck {
		return nil
	}
	p, err := fe.Conn.RecvReply(req)
	if err != nil {
		return fmt.Errorf("request %d: %w", req, err)
	}
	if len(p) != 8 {
		return fmt.Errorf("request %d: ack size %d, want 8", req, len(p))
	}
	if v := binary.LittleEndian.Uint64(p); v != 0 {
		return fmt.Errorf("request %d: back-end acked %d", req, v)
	}
	return nil
}

// Get sends a request that always has a reply and returns its payload.
func (fe *Frontend) Get(req uint32, payload []byte) ([]byte, error) {
	if err := fe.Conn.Send(req, 0, payload, nil); err != nil {
		return nil, err
	}
	p, err := fe.Conn.RecvReply(req)
	if err != nil {
		return nil, fmt.Errorf("request %d: %w", req, err)
	}
	return p, nil
}

// GetU64 is Get for replies that carry one u64.
func (fe *Frontend) GetU64(req uint32) (uint64, error) {
	p, err := fe.Get(req, nil)
	if err != nil {
		return 0, err
	}
	if len(p) != 8 {
		return 0, fmt.Errorf("request %d: reply size %d, want 8", req, len(p))
	}
	return binary.LittleEndian.Uint64(p), nil
}

// Handshake runs the QEMU-style vhost-user set-up: feature and protocol
// negotiation, ownership, memory, then every queue.
func (fe *Frontend) Handshake() error {
	if err := fe.Negotiate(); err != nil {
		return err
	}
	if err := fe.SendMemory(fe.opts.MemMode); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	for _, q := range fe.Queues {
		if err := fe.StartQueue(q); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
	}
	return nil
}

// Negotiate runs the first part of Handshake: GET_FEATURES,
// GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER, GET_QUEUE_NUM,
// GET_MAX_MEM_SLOTS and SET_FEATURES.
func (fe *Frontend) Negotiate() error {
	var err error
	if fe.Features, err = fe.GetU64(VHOST_USER_GET_FEATURES); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if fe.Features&VIRTIO_F_VERSION_1 == 0 || fe.Features&VHOST_USER_F_PROTOCOL_FEATURES == 0 {
		return fmt.Errorf("handshake: features %#x lack VERSION_1 or PROTOCOL_FEATURES", fe.Features)
	}
	if fe.ProtocolFeatures, err = fe.GetU64(VHOST_USER_GET_PROTOCOL_FEATURES); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	want := uint64(VHOST_USER_PROTOCOL_F_MQ | VHOST_USER_PROTOCOL_F_LOG_SHMFD |
		VHOST_USER_PROTOCOL_F_REPLY_ACK | VHOST_USER_PROTOCOL_F_RESET_DEVICE |
		VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS | VHOST_USER_PROTOCOL_F_DEVICE_STATE)
	if fe.opts.NoReplyAck {
		want &^= VHOST_USER_PROTOCOL_F_REPLY_ACK
	}
	if fe.opts.BackendReq {
		want |= VHOST_USER_PROTOCOL_F_BACKEND_REQ
	}
	fe.AckedProtocol = fe.ProtocolFeatures & want
	if err := fe.Conn.Send(VHOST_USER_SET_PROTOCOL_FEATURES, 0, u64(fe.AckedProtocol), nil); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	fe.replyAck = fe.AckedProtocol&VHOST_USER_PROTOCOL_F_REPLY_ACK != 0
	if err := fe.Request(VHOST_USER_SET_OWNER, nil, nil); err != nil {
		return fmt.Errorf("handshake: set owner: %w", err)
	}
	if fe.AckedProtocol&VHOST_USER_PROTOCOL_F_MQ != 0 {
		if fe.QueueNum, err = fe.GetU64(VHOST_USER_GET_QUEUE_NUM); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		if fe.QueueNum < uint64(len(fe.Queues)) {
			return fmt.Errorf("handshake: back-end has %d queues, want %d", fe.QueueNum, len(fe.Queues))
		}
	}
	if fe.AckedProtocol&VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS != 0 {
		if fe.MaxMemSlots, err = fe.GetU64(VHOST_USER_GET_MAX_MEM_SLOTS); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
	}
	if fe.opts.BackendReq {
		if fe.AckedProtocol&VHOST_USER_PROTOCOL_F_BACKEND_REQ == 0 {
			return errors.New("handshake: back-end does not offer BACKEND_REQ")
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("handshake: backend channel: %w", err)
		}
		fe.BackendFD = fds[0]
		err = fe.Request(VHOST_USER_SET_BACKEND_REQ_FD, nil, fds[1:])
		unix.Close(fds[1])
		if err != nil {
			return fmt.Errorf("handshake: set backend req fd: %w", err)
		}
	}
	fe.AckedFeatures = VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES
	if fe.opts.EventIdx {
		fe.AckedFeatures |= VIRTIO_RING_F_EVENT_IDX
	}
	if fe.opts.Indirect {
		fe.AckedFeatures |= VIRTIO_RING_F_INDIRECT_DESC
	}
	if fe.AckedFeatures&^fe.Features != 0 {
		return fmt.Errorf("handshake: back-end features %#x lack %#x", fe.Features, fe.AckedFeatures&^fe.Features)
	}
	if err := fe.Request(VHOST_USER_SET_FEATURES, u64(fe.AckedFeatures), nil); err != nil {
		return fmt.Errorf("handshake: set features: %w", err)
	}
	return nil
}

// MemTablePayload encodes the SET_MEM_TABLE body for regs.
func MemTablePayload(regs []*Region) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(regs)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, r := range regs {
		b = appendRegion(b, r)
	}
	return b
}

func appendRegion(b []byte, r *Region) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.GPA)
	b = binary.LittleEndian.AppendUint64(b, r.Size)
	b = binary.LittleEndian.AppendUint64(b, r.UVA)
	return binary.LittleEndian.AppendUint64(b, r.Offset)
}

// SingleRegionPayload encodes the ADD_MEM_REG/REM_MEM_REG body for r.
func SingleRegionPayload(r *Region) []byte { return appendRegion(make([]byte, 8), r) }

// SendMemory announces every region with SET_MEM_TABLE or ADD_MEM_REG.
func (fe *Frontend) SendMemory(mode MemMode) error {
	regs := fe.Mem.Regions()
	if mode == AddMemReg {
		if fe.AckedProtocol&VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS == 0 {
			return errors.New("add memory regions: CONFIGURE_MEM_SLOTS not negotiated")
		}
		for _, r := range regs {
			if err := fe.Request(VHOST_USER_ADD_MEM_REG, SingleRegionPayload(r), []int{r.FD}); err != nil {
				return fmt.Errorf("add memory region %#x: %w", r.GPA, err)
			}
		}
		return nil
	}
	fds := make([]int, len(regs))
	for i, r := range regs {
		fds[i] = r.FD
	}
	if err := fe.Request(VHOST_USER_SET_MEM_TABLE, MemTablePayload(regs), fds); err != nil {
		return fmt.Errorf("set memory table: %w", err)
	}
	return nil
}

// UVA translates a GPA to the front-end user address sent in
// SET_VRING_ADDR.
func (fe *Frontend) UVA(gpa uint64) (uint64, error) {
	r, err := fe.Mem.region(gpa, 1)
	if err != nil {
		return 0, err
	}
	return r.UVA + (gpa - r.GPA), nil
}

// VringAddrPayload encodes SET_VRING_ADDR for q.
func (fe *Frontend) VringAddrPayload(q *Queue) ([]byte, error) {
	d, err := fe.UVA(q.DescGPA)
	if err != nil {
		return nil, err
	}
	u, err := fe.UVA(q.UsedGPA)
	if err != nil {
		return nil, err
	}
	a, err := fe.UVA(q.AvailGPA)
	if err != nil {
		return nil, err
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(q.Index))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, d)
	b = binary.LittleEndian.AppendUint64(b, u)
	b = binary.LittleEndian.AppendUint64(b, a)
	return binary.LittleEndian.AppendUint64(b, 0), nil
}

// StartQueue configures and enables q: SET_VRING_NUM, SET_VRING_BASE,
// SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ENABLE.
func (fe *Frontend) StartQueue(q *Queue) error {
	idx := uint32(q.Index)
	if err := fe.Request(VHOST_USER_SET_VRING_NUM, vringState(idx, uint32(q.Size)), nil); err != nil {
		return fmt.Errorf("start queue %d: set num: %w", idx, err)
	}
	if err := fe.Request(VHOST_USER_SET_VRING_BASE, vringState(idx, uint32(q.Base)), nil); err != nil {
		return fmt.Errorf("start queue %d: set base: %w", idx, err)
	}
	addr, err := fe.VringAddrPayload(q)
	if err != nil {
		return fmt.Errorf("start queue %d: %w", idx, err)
	}
	if err := fe.Request(VHOST_USER_SET_VRING_ADDR, addr, nil); err != nil {
		return fmt.Errorf("start queue %d: set addr: %w", idx, err)
	}
	if err := fe.Request(VHOST_USER_SET_VRING_KICK, u64(uint64(idx)), []int{q.KickFD}); err != nil {
		return fmt.Errorf("start queue %d: set kick: %w", idx, err)
	}
	if err := fe.Request(VHOST_USER_SET_VRING_CALL, u64(uint64(idx)), []int{q.CallFD}); err != nil {
		return fmt.Errorf("start queue %d: set call: %w", idx, err)
	}
	if err := fe.Request(VHOST_USER_SET_VRING_ENABLE, vringState(idx, 1), nil); err != nil {
		return fmt.Errorf("start queue %d: enable: %w", idx, err)
	}
	return fe.barrier()
}

// barrier makes sure the back-end has handled every message sent so far.
// With REPLY_ACK each request was acked already; without it, QEMU's trick
// is used: GET_FEATURES always has a reply and requests are handled in
// order.
func (fe *Frontend) barrier() error {
	if fe.replyAck {
		return nil
	}
	if _, err := fe.GetU64(VHOST_USER_GET_FEATURES); err != nil {
		return fmt.Errorf("synchronise with back-end: %w", err)
	}
	return nil
}

// GetVringBase stops q with GET_VRING_BASE and returns the back-end's next
// avail index, which also becomes q.Base for the next StartQueue.
func (fe *Frontend) GetVringBase(q *Queue) (uint16, error) {
	p, err := fe.Get(VHOST_USER_GET_VRING_BASE, vringState(uint32(q.Index), 0))
	if err != nil {
		return 0, err
	}
	if len(p) != 8 || binary.LittleEndian.Uint32(p) != uint32(q.Index) {
		return 0, fmt.Errorf("get vring base %d: bad reply %x", q.Index, p)
	}
	q.Base = uint16(binary.LittleEndian.Uint32(p[4:]))
	return q.Base, nil
}

// DoView submits one chain made of a device-readable buffer per element
// of in and a device-writable buffer of each size in outSizes, waits for
// its completion and returns views of the writable buffers (in guest
// memory, valid until the next submission) and the used length.
func (fe *Frontend) DoView(q int, in [][]byte, outSizes []int) ([][]byte, uint32, error) {
	if q < 0 || q >= len(fe.Queues) {
		return nil, 0, fmt.Errorf("submit on queue %d: no such queue", q)
	}
	queue := fe.Queues[q]
	mark := fe.alloc.Mark()
	defer fe.alloc.Release(mark)
	var bufsArr [16]Buf
	bufs := bufsArr[:0]
	for _, b := range in {
		gpa, err := fe.alloc.Alloc(uint64(len(b)), 8)
		if err != nil {
			return nil, 0, err
		}
		dst, _ := fe.Mem.Bytes(gpa, uint64(len(b)))
		copy(dst, b)
		bufs = append(bufs, Buf{GPA: gpa, Len: uint32(len(b))})
	}
	fe.outViews = fe.outViews[:0]
	total := 0
	for _, n := range outSizes {
		var gpa uint64
		var err error
		if fe.opts.NoZeroOut {
			gpa, err = fe.alloc.AllocRaw(uint64(n), 64)
		} else {
			gpa, err = fe.alloc.Alloc(uint64(n), 64)
		}
		if err != nil {
			return nil, 0, err
		}
		v, _ := fe.Mem.Bytes(gpa, uint64(n))
		fe.outViews = append(fe.outViews, v)
		bufs = append(bufs, Buf{GPA: gpa, Len: uint32(n), Write: true})
		total += n
	}
	head, err := queue.SubmitChain(bufs, fe.opts.Indirect)
	if err != nil {
		return nil, 0, err
	}
	u, err := queue.WaitUsed(head)
	if err != nil {
		return nil, 0, err
	}
	if int64(u.Len) > int64(total) {
		return fe.outViews, u.Len, fmt.Errorf("used length %d exceeds the %d writable bytes", u.Len, total)
	}
	return fe.outViews, u.Len, nil
}

// Do is DoView returning a copy of the first usedLen bytes written.
func (fe *Frontend) Do(q int, in [][]byte, outSizes []int) ([]byte, uint32, error) {
	views, used, err := fe.DoView(q, in, outSizes)
	if err != nil {
		return nil, used, err
	}
	return Gather(views, used), used, nil
}

// Gather copies the first n bytes of the concatenation of views.
func Gather(views [][]byte, n uint32) []byte {
	out := make([]byte, 0, n)
	for _, v := range views {
		if uint32(len(out)) >= n {
			break
		}
		k := min(uint32(len(v)), n-uint32(len(out)))
		out = append(out, v[:k]...)
	}
	return out
}
