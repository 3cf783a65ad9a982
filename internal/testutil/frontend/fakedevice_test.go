package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

// fakeDevice is a minimal vhost-user back-end written against the
// protocol text, for testing the front-end without a daemon: it maps the
// memfds it receives, translates ring addresses through the announced user
// addresses, and answers every chain on queue 1 with a FUSE-style reply
// that echoes the request body.
type fakeDevice struct {
	t  *testing.T
	fd int

	mu       sync.Mutex
	regions  []fakeRegion
	acked    uint64
	features uint64
	rings    [2]fakeRing
	// silent: never complete chains.
	silent atomic.Bool
	log    []uint32 // request codes received

	wg   sync.WaitGroup
	stop chan struct{}
}

type fakeRegion struct {
	gpa, size, uva uint64
	data           []byte
}

type fakeRing struct {
	num                uint32
	desc, avail, used  uint64 // GPAs
	kick, call         int
	nextAvail, nextUse uint16
	started            bool
}

const fakeProtocol = VHOST_USER_PROTOCOL_F_MQ | VHOST_USER_PROTOCOL_F_REPLY_ACK | VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS

func newFakeDevice(t *testing.T) (*fakeDevice, int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDevice{t: t, fd: fds[0], stop: make(chan struct{})}
	for i := range d.rings {
		d.rings[i].kick, d.rings[i].call = -1, -1
	}
	d.wg.Add(1)
	go d.serve()
	t.Cleanup(d.close)
	return d, fds[1]
}

func (d *fakeDevice) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	unix.Shutdown(d.fd, unix.SHUT_RDWR)
	d.wg.Wait()
	unix.Close(d.fd)
	for _, r := range d.regions {
		unix.Munmap(r.data)
	}
	for _, r := range d.rings {
		if r.kick >= 0 {
			unix.Close(r.kick)
		}
		if r.call >= 0 {
			unix.Close(r.call)
		}
	}
}

func (d *fakeDevice) translate(gpa, n uint64) []byte {
	for _, r := range d.regions {
		if gpa >= r.gpa && gpa+n >= gpa && gpa+n <= r.gpa+r.size {
			return r.data[gpa-r.gpa : gpa-r.gpa+n]
		}
	}
	return nil
}

func (d *fakeDevice) uvaToGPA(uva uint64) (uint64, bool) {
	for _, r := range d.regions {
		if uva >= r.uva && uva < r.uva+r.size {
			return uva - r.uva + r.gpa, true
		}
	}
	return 0, false
}

func (d *fakeDevice) reply(req uint32, payload []byte) {
	b := binary.LittleEndian.AppendUint32(nil, req)
	b = binary.LittleEndian.AppendUint32(b, VHOST_USER_VERSION|VHOST_USER_REPLY)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	linux.WriteAll(d.fd, append(b, payload...))
}

// recvFull reads exactly len(p) bytes, the descriptors coming with the
// first of them into oob. Signals do not interrupt it.
func (d *fakeDevice) recvFull(p, oob []byte) (oobn int, err error) {
	for got := 0; got < len(p); {
		n, on, _, _, err := unix.Recvmsg(d.fd, p[got:], oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return oobn, err
		}
		if n == 0 {
			return oobn, errors.New("connection closed")
		}
		if got == 0 {
			oobn, oob = on, nil
		}
		got += n
	}
	return oobn, nil
}

func (d *fakeDevice) serve() {
	defer d.wg.Done()
	for {
		hdr := make([]byte, HeaderSize)
		oob := make([]byte, unix.CmsgSpace(8*4))
		oobn, err := d.recvFull(hdr, oob)
		if err != nil {
			return
		}
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for i := range msgs {
				f, _ := unix.ParseUnixRights(&msgs[i])
				fds = append(fds, f...)
			}
		}
		req := binary.LittleEndian.Uint32(hdr)
		flags := binary.LittleEndian.Uint32(hdr[4:])
		p := make([]byte, binary.LittleEndian.Uint32(hdr[8:]))
		if _, err := d.recvFull(p, nil); err != nil {
			return
		}
		d.mu.Lock()
		d.log = append(d.log, req)
		err = d.handle(req, p, fds)
		d.mu.Unlock()
		if err != nil {
			d.t.Errorf("fake device: request %d: %v", req, err)
			return
		}
		if flags&VHOST_USER_NEED_REPLY != 0 && d.acked&VHOST_USER_PROTOCOL_F_REPLY_ACK != 0 {
			switch req {
			case VHOST_USER_GET_FEATURES, VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_GET_QUEUE_NUM,
				VHOST_USER_GET_MAX_MEM_SLOTS, VHOST_USER_GET_VRING_BASE:
			default:
				d.reply(req, make([]byte, 8))
			}
		}
	}
}

func (d *fakeDevice) mapRegion(r []byte, fd int) error {
	gpa, size := binary.LittleEndian.Uint64(r), binary.LittleEndian.Uint64(r[8:])
	uva, off := binary.LittleEndian.Uint64(r[16:]), binary.LittleEndian.Uint64(r[24:])
	data, err := unix.Mmap(fd, int64(off), int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	unix.Close(fd)
	if err != nil {
		return err
	}
	d.regions = append(d.regions, fakeRegion{gpa, size, uva, data})
	return nil
}

func (d *fakeDevice) handle(req uint32, p []byte, fds []int) error {
	le := binary.LittleEndian
	switch req {
	case VHOST_USER_GET_FEATURES:
		d.reply(req, u64(VIRTIO_F_VERSION_1|VHOST_USER_F_PROTOCOL_FEATURES|VIRTIO_RING_F_EVENT_IDX|VIRTIO_RING_F_INDIRECT_DESC))
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		d.reply(req, u64(fakeProtocol))
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		d.acked = le.Uint64(p)
	case VHOST_USER_SET_FEATURES:
		d.features = le.Uint64(p)
	case VHOST_USER_GET_QUEUE_NUM:
		d.reply(req, u64(2))
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		d.reply(req, u64(8))
	case VHOST_USER_SET_OWNER, VHOST_USER_SET_VRING_ENABLE:
	case VHOST_USER_SET_MEM_TABLE:
		n := int(le.Uint32(p))
		if len(p) != 8+32*n || len(fds) != n {
			return fmt.Errorf("mem table: %d regions, %d bytes, %d fds", n, len(p), len(fds))
		}
		for i := 0; i < n; i++ {
			if err := d.mapRegion(p[8+32*i:], fds[i]); err != nil {
				return err
			}
		}
	case VHOST_USER_ADD_MEM_REG:
		if len(p) != 40 || len(fds) != 1 {
			return fmt.Errorf("add mem reg: %d bytes, %d fds", len(p), len(fds))
		}
		return d.mapRegion(p[8:], fds[0])
	case VHOST_USER_SET_VRING_NUM:
		d.rings[le.Uint32(p)].num = le.Uint32(p[4:])
	case VHOST_USER_SET_VRING_BASE:
		d.rings[le.Uint32(p)].nextAvail = uint16(le.Uint32(p[4:]))
	case VHOST_USER_SET_VRING_ADDR:
		r := &d.rings[le.Uint32(p)]
		var ok1, ok2, ok3 bool
		r.desc, ok1 = d.uvaToGPA(le.Uint64(p[8:]))
		r.used, ok2 = d.uvaToGPA(le.Uint64(p[16:]))
		r.avail, ok3 = d.uvaToGPA(le.Uint64(p[24:]))
		if !ok1 || !ok2 || !ok3 {
			return errors.New("vring addr: unknown user address")
		}
		r.nextUse = le.Uint16(d.translate(r.used+2, 2))
	case VHOST_USER_SET_VRING_KICK:
		i := le.Uint64(p) & 0xff
		d.rings[i].kick = fds[0]
		if i == QueueRequest && !d.rings[i].started {
			d.rings[i].started = true
			d.wg.Add(1)
			go d.process(&d.rings[i])
		}
	case VHOST_USER_SET_VRING_CALL:
		d.rings[le.Uint64(p)&0xff].call = fds[0]
	default:
		return fmt.Errorf("unexpected request")
	}
	return nil
}

// process serves ring r until the device stops.
func (d *fakeDevice) process(r *fakeRing) {
	defer d.wg.Done()
	le := binary.LittleEndian
	for {
		pfd := []unix.PollFd{{Fd: int32(r.kick), Events: unix.POLLIN}}
		linux.Poll(pfd, 50*time.Millisecond)
		select {
		case <-d.stop:
			return
		default:
		}
		linux.Drain(r.kick)
		if d.silent.Load() {
			continue
		}
		d.mu.Lock()
		availIdx := le.Uint16(d.translate(r.avail+2, 2))
		for r.nextAvail != availIdx {
			head := le.Uint16(d.translate(r.avail+4+2*uint64(r.nextAvail%uint16(r.num)), 2))
			r.nextAvail++
			used := d.serveChain(r, head)
			slot := uint64(r.nextUse % uint16(r.num))
			e := d.translate(r.used+4+8*slot, 8)
			le.PutUint32(e, uint32(head))
			le.PutUint32(e[4:], used)
			r.nextUse++
			le.PutUint16(d.translate(r.used+2, 2), r.nextUse)
			if d.features&VIRTIO_RING_F_EVENT_IDX != 0 {
				le.PutUint16(d.translate(r.used+4+8*uint64(r.num), 2), r.nextAvail)
			}
			linux.Signal(r.call)
		}
		d.mu.Unlock()
	}
}

// serveChain echoes the request: reply header {16+len(body), 0, unique}
// followed by the request bytes after the 40-byte in-header.
func (d *fakeDevice) serveChain(r *fakeRing, head uint16) uint32 {
	le := binary.LittleEndian
	var in []byte
	var out [][]byte
	table, n, i := r.desc, uint64(r.num), uint64(head)
	for hops := 0; hops < 64; hops++ {
		dsc := d.translate(table+16*i, 16)
		addr, ln, fl, next := le.Uint64(dsc), le.Uint32(dsc[8:]), le.Uint16(dsc[12:]), le.Uint16(dsc[14:])
		if fl&VRING_DESC_F_INDIRECT != 0 {
			table, n, i = addr, uint64(ln/16), 0
			continue
		}
		buf := d.translate(addr, uint64(ln))
		if fl&VRING_DESC_F_WRITE != 0 {
			out = append(out, buf)
		} else {
			in = append(in, buf...)
		}
		if fl&VRING_DESC_F_NEXT == 0 || uint64(next) >= n {
			break
		}
		i = uint64(next)
	}
	if len(in) < 40 {
		return 0
	}
	reply := binary.LittleEndian.AppendUint32(nil, uint32(16+len(in)-40))
	reply = binary.LittleEndian.AppendUint32(reply, 0)
	reply = binary.LittleEndian.AppendUint64(reply, le.Uint64(in[8:]))
	reply = append(reply, in[40:]...)
	written := 0
	for _, o := range out {
		k := copy(o, reply[written:])
		written += k
	}
	return uint32(written)
}

func newTestFrontend(t *testing.T, opts Options) (*fakeDevice, *Frontend) {
	dev, fd := newFakeDevice(t)
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second // only bounds a failing test
	}
	f, err := New(fd, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(f.Close)
	return dev, f
}
