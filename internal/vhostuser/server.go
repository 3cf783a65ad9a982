package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/linux"
	"virtiofsd/internal/virtqueue"
)

// vring is the control-plane state of one queue.
type vring struct {
	q       *virtqueue.Queue
	kick    int // -1: none
	errFD   int // -1: none; stored, never used
	started bool
}

// server is the state of one front-end connection. It is owned by the
// goroutine running Serve.
type server struct {
	fd  int
	b   Backend
	log *slog.Logger
	mem *guestmem.Memory

	rings []vring

	owned         bool
	ackedFeatures uint64
	ackedProto    uint64
	lastFeatures  uint64 // last value returned by GET_FEATURES
	lastProto     uint64 // last value returned by GET_PROTOCOL_FEATURES
	replyAckOn    bool   // REPLY_ACK in effect; see updateReplyAck
	backendReqFD  int
	xfer          *transfer // the last device state transfer, until checked
	logFD         int       // from SET_LOG_FD; kept, never used (see setLogFD)

	hdr  [headerSize]byte
	body [maxPayload]byte
	oob  []byte
	out  [headerSize + maxPayload]byte
	msg  message
}

// Serve runs the vhost-user protocol on the connected stream socket fd,
// which it takes ownership of. Requests are handled strictly in order. It
// returns nil when the front-end disconnects and an error on a protocol
// error. Before returning it stops every queue (draining in-flight
// requests), closes every received descriptor and the socket, and drops
// guest memory (unmapped once no request holds it).
func Serve(fd int, b Backend, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{
		fd:           fd,
		b:            b,
		log:          log,
		mem:          guestmem.NewMemory(),
		rings:        make([]vring, b.NumQueues()),
		backendReqFD: -1,
		logFD:        -1,
		oob:          make([]byte, unix.CmsgSpace(linux.MaxFDs*4)),
	}
	for i := range s.rings {
		s.rings[i] = vring{q: virtqueue.New(), kick: -1, errFD: -1}
	}
	defer s.shutdown()
	for {
		err := s.readMessage(&s.msg)
		if err == io.EOF {
			log.Debug("front-end disconnected")
			return nil
		}
		if err != nil {
			return err
		}
		err = s.dispatch(&s.msg)
		linux.CloseAll(s.msg.fds)
		s.msg.fds = nil
		if err != nil {
			return fmt.Errorf("handle %v: %w", s.msg.hdr.Request, err)
		}
	}
}

func (s *server) shutdown() {
	s.endTransfer()
	for i := range s.rings {
		s.stopRing(i)
		r := &s.rings[i]
		linux.Close(r.kick)
		linux.Close(r.errFD)
		linux.Close(r.q.Reset())
		r.kick, r.errFD = -1, -1
	}
	s.setAckedFeatures(0)
	linux.Close(s.backendReqFD)
	s.backendReqFD = -1
	linux.Close(s.logFD)
	s.logFD = -1
	s.mem.Close()
	linux.Close(s.fd)
}

// readMessage reads one request with its descriptors and validates it. It
// returns io.EOF when the front-end closed the connection between
// messages. On error no descriptor is left open.
func (s *server) readMessage(m *message) error {
	n, fds, err := linux.RecvMsg(s.fd, s.hdr[:], s.oob)
	if err != nil {
		if errors.Is(err, unix.ECONNRESET) {
			return io.EOF
		}
		return fmt.Errorf("read message header: %w", err)
	}
	if n == 0 {
		linux.CloseAll(fds)
		return io.EOF
	}
	if err := s.readFull(s.hdr[n:]); err != nil {
		linux.CloseAll(fds)
		return fmt.Errorf("read message header: %w", err)
	}
	h, err := parseHeader(s.hdr[:])
	if err != nil {
		linux.CloseAll(fds)
		return err
	}
	body := s.body[:h.Size]
	if err := s.readFull(body); err != nil {
		linux.CloseAll(fds)
		return fmt.Errorf("read %v payload: %w", h.Request, err)
	}
	if err := decode(h, body, len(fds), m); err != nil {
		linux.CloseAll(fds)
		return err
	}
	m.fds = fds
	return nil
}

// readFull reads exactly len(p) bytes; EOF is an error here.
func (s *server) readFull(p []byte) error {
	for len(p) > 0 {
		n, err := linux.Read(s.fd, p)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		p = p[n:]
	}
	return nil
}

// updateReplyAck re-evaluates whether REPLY_ACK is in effect. Like the
// reference it runs only after GET_FEATURES, SET_FEATURES,
// GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES (spec/vhost.md §1.3), so
// for example RESET_OWNER does not turn acks off by itself.
func (s *server) updateReplyAck() {
	s.replyAckOn = s.lastFeatures&VHOST_USER_F_PROTOCOL_FEATURES != 0 &&
		s.lastProto&VHOST_USER_PROTOCOL_F_REPLY_ACK != 0 &&
		s.ackedProto&VHOST_USER_PROTOCOL_F_REPLY_ACK != 0
}

// send writes a reply with the payload already placed in s.out[12:12+n].
func (s *server) send(req Request, n int) error {
	binary.LittleEndian.PutUint32(s.out[0:], uint32(req))
	binary.LittleEndian.PutUint32(s.out[4:], VHOST_USER_VERSION|VHOST_USER_REPLY_MASK)
	binary.LittleEndian.PutUint32(s.out[8:], uint32(n))
	if err := linux.WriteAll(s.fd, s.out[:headerSize+n]); err != nil {
		return fmt.Errorf("send %v reply: %w", req, err)
	}
	return nil
}

func (s *server) sendU64(req Request, v uint64) error {
	binary.LittleEndian.PutUint64(s.out[headerSize:], v)
	return s.send(req, sizeU64)
}

// handler handles one validated request. Handlers of requests with an
// explicit reply send it themselves; for the others dispatch sends the
// REPLY_ACK. Descriptors a handler keeps must be taken with takeFD; the
// rest are closed after it returns.
type handler func(s *server, m *message) error

var handlers = [...]handler{
	VHOST_USER_GET_FEATURES:          (*server).getFeatures,
	VHOST_USER_SET_FEATURES:          (*server).setFeatures,
	VHOST_USER_SET_OWNER:             (*server).setOwner,
	VHOST_USER_RESET_OWNER:           (*server).resetOwner,
	VHOST_USER_SET_MEM_TABLE:         (*server).setMemTable,
	VHOST_USER_SET_LOG_BASE:          (*server).setLogBase,
	VHOST_USER_SET_LOG_FD:            (*server).setLogFD,
	VHOST_USER_SET_VRING_NUM:         (*server).setVringNum,
	VHOST_USER_SET_VRING_ADDR:        (*server).setVringAddr,
	VHOST_USER_SET_VRING_BASE:        (*server).setVringBase,
	VHOST_USER_GET_VRING_BASE:        (*server).getVringBase,
	VHOST_USER_SET_VRING_KICK:        (*server).setVringKick,
	VHOST_USER_SET_VRING_CALL:        (*server).setVringCall,
	VHOST_USER_SET_VRING_ERR:         (*server).setVringErr,
	VHOST_USER_GET_PROTOCOL_FEATURES: (*server).getProtocolFeatures,
	VHOST_USER_SET_PROTOCOL_FEATURES: (*server).setProtocolFeatures,
	VHOST_USER_GET_QUEUE_NUM:         (*server).getQueueNum,
	VHOST_USER_SET_VRING_ENABLE:      (*server).setVringEnable,
	VHOST_USER_SET_BACKEND_REQ_FD:    (*server).setBackendReqFD,
	VHOST_USER_GET_CONFIG:            (*server).getConfig,
	VHOST_USER_SET_CONFIG:            (*server).setConfig,
	VHOST_USER_GPU_SET_SOCKET:        (*server).gpuSetSocket,
	VHOST_USER_RESET_DEVICE:          (*server).resetDevice,
	VHOST_USER_GET_MAX_MEM_SLOTS:     (*server).getMaxMemSlots,
	VHOST_USER_ADD_MEM_REG:           (*server).addMemReg,
	VHOST_USER_REM_MEM_REG:           (*server).remMemReg,
	VHOST_USER_SET_DEVICE_STATE_FD:   (*server).setDeviceStateFD,
	VHOST_USER_CHECK_DEVICE_STATE:    (*server).checkDeviceState,
}

// dispatch checks the feature gate, runs the handler and sends the
// REPLY_ACK if one is due. A returned error ends the connection.
func (s *server) dispatch(m *message) error {
	req := m.hdr.Request
	info := requests[req]
	s.log.Debug("vhost-user request", "request", req, "size", m.hdr.Size, "fds", len(m.fds))
	if info.gate != 0 && s.ackedProto&info.gate == 0 {
		return protoErr("%v: protocol feature %#x not acked", req, info.gate)
	}
	if info.gateVirt != 0 && s.ackedFeatures&info.gateVirt == 0 {
		return protoErr("%v: feature %#x not acked", req, info.gateVirt)
	}
	h := handlers[req]
	if h == nil {
		return protoErr("%v: request not supported", req)
	}
	err := h(s, m)
	switch req {
	case VHOST_USER_GET_FEATURES, VHOST_USER_SET_FEATURES,
		VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_SET_PROTOCOL_FEATURES:
		s.updateReplyAck()
	}
	if !info.reply && m.hdr.needReply() && s.replyAckOn {
		var v uint64
		if err != nil {
			v = 1
		}
		if serr := s.sendU64(req, v); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

func (s *server) ring(idx uint32) (*vring, error) {
	if idx >= uint32(len(s.rings)) {
		return nil, fmt.Errorf("vring index %d out of range (%d queues)", idx, len(s.rings))
	}
	return &s.rings[idx], nil
}

// stopRing stops the worker of ring i, draining in-flight requests.
func (s *server) stopRing(i int) {
	r := &s.rings[i]
	if r.started {
		s.b.StopQueue(i)
		r.started = false
	}
}

// maybeStartRing starts ring i if it has a kick fd and is not running.
func (s *server) maybeStartRing(i int) error {
	r := &s.rings[i]
	if r.started || r.kick < 0 {
		return nil
	}
	// The device stays suspended while its state is transferred.
	if s.xfer != nil && s.xfer.running() {
		return fmt.Errorf("start queue %d: %w", i, errTransferRunning)
	}
	if err := s.b.StartQueue(i, r.q, s.mem, r.kick); err != nil {
		return fmt.Errorf("start queue %d: %w", i, err)
	}
	r.started = true
	return nil
}

func (s *server) getFeatures(m *message) error {
	s.lastFeatures = s.b.Features()
	return s.sendU64(m.hdr.Request, s.lastFeatures)
}

func (s *server) setFeatures(m *message) error {
	offered := s.b.Features()
	if m.u64&^offered != 0 {
		return fmt.Errorf("features %#x not a subset of %#x", m.u64, offered)
	}
	s.setAckedFeatures(m.u64)
	for i := range s.rings {
		r := &s.rings[i]
		r.q.SetEventIdx(m.u64&VIRTIO_RING_F_EVENT_IDX != 0)
		// Without protocol features rings are enabled from the start.
		if m.u64&VHOST_USER_F_PROTOCOL_FEATURES == 0 && !r.q.Enabled() {
			r.q.SetEnabled(true)
			if r.started {
				s.b.WakeQueue(i)
			}
		}
	}
	return nil
}

func (s *server) setOwner(m *message) error {
	if s.owned {
		return errors.New("session already has an owner")
	}
	s.owned = true
	return nil
}

func (s *server) resetOwner(m *message) error {
	s.owned = false
	s.setAckedFeatures(0)
	s.ackedProto = 0
	return nil
}

func (s *server) setMemTable(m *message) error {
	regions := make([]*guestmem.Region, 0, m.nregions)
	free := func() {
		for _, r := range regions {
			r.Free()
		}
	}
	for i := range m.nregions {
		r, err := guestmem.MapRegion(m.regions[i], m.takeFD(i))
		if err != nil {
			free()
			return fmt.Errorf("region %d: %w", i, err)
		}
		regions = append(regions, r)
	}
	if err := s.mem.Set(regions); err != nil {
		free()
		return err
	}
	return nil
}

// setLogBase installs the dirty log (spec/vhost.md §1.10; QEMU
// docs/interop/vhost-user.rst, "Migration"). The log memfd is mapped and
// closed; it must cover the last page of every current region, otherwise
// the request fails and the connection ends, as in the Rust virtiofsd. The
// new log replaces the previous one for every region, including regions
// added later, while the queues keep running: requests in flight log into
// the new log from now on and the old mapping goes once nobody writes it.
// The reply echoes the request body (QEMU only checks the request code).
//
// Logging starts as soon as a log is installed, whatever the state of
// VHOST_F_LOG_ALL: QEMU installs the log before it sets the feature, and
// marking pages that the front-end does not read costs nothing but the
// bit.
func (s *server) setLogBase(m *message) error {
	if s.b.ProtocolFeatures()&VHOST_USER_PROTOCOL_F_LOG_SHMFD == 0 {
		return errors.New("dirty logging (LOG_SHMFD) not offered")
	}
	l, err := guestmem.MapLog(m.takeFD(0), m.logSize, m.logOff)
	if err != nil {
		return err
	}
	if err := s.mem.SetLog(l); err != nil {
		l.Free()
		return err
	}
	copy(s.out[headerSize:], m.body[:sizeLog])
	return s.send(m.hdr.Request, sizeLog)
}

// setLogFD keeps the descriptor of SET_LOG_FD. vhost-user.rst defines it
// only as "the logging file descriptor" (the kernel vhost counterpart,
// VHOST_SET_LOG_FD, is an eventfd the device signals after writing the
// log). With LOG_SHMFD the log itself arrives with SET_LOG_BASE and the
// front-end reads the bitmap when it syncs, so there is nothing to signal;
// QEMU never sends this request. The fd is held (replacing and closing any
// previous one) until RESET_DEVICE or the end of the connection.
func (s *server) setLogFD(m *message) error {
	linux.Close(s.logFD)
	s.logFD = m.takeFD(0)
	return nil
}

func (s *server) setVringNum(m *message) error {
	r, err := s.ring(m.vring.Index)
	if err != nil {
		return err
	}
	return r.q.SetSize(m.vring.Num)
}

func (s *server) setVringAddr(m *message) error {
	r, err := s.ring(m.addr.Index)
	if err != nil {
		return err
	}
	t := s.mem.Acquire()
	defer t.Release()
	desc, ok1 := t.UVAToGPA(m.addr.Desc)
	avail, ok2 := t.UVAToGPA(m.addr.Avail)
	used, ok3 := t.UVAToGPA(m.addr.Used)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("vring %d: ring address not in any memory region", m.addr.Index)
	}
	// With VHOST_VRING_F_LOG the front-end names the guest address at
	// which used-ring writes are logged (vhost-user.rst, "Migration");
	// without it they are logged at the used ring's GPA.
	usedLog := used
	if m.addr.Flags&VHOST_VRING_F_LOG != 0 {
		usedLog = m.addr.LogGuest
	}
	// Re-read next_used from the guest only while the ring is stopped, so
	// that completions in flight are not forgotten.
	return r.q.SetAddrLog(t, desc, avail, used, usedLog, !r.started)
}

func (s *server) setVringBase(m *message) error {
	r, err := s.ring(m.vring.Index)
	if err != nil {
		return err
	}
	r.q.SetBase(uint16(m.vring.Num))
	return nil
}

func (s *server) getVringBase(m *message) error {
	r, err := s.ring(m.vring.Index)
	if err != nil {
		return err
	}
	i := int(m.vring.Index)
	s.stopRing(i)
	linux.Close(r.kick)
	r.kick = -1
	linux.Close(r.q.SetCallFD(-1))
	binary.LittleEndian.PutUint32(s.out[headerSize:], m.vring.Index)
	binary.LittleEndian.PutUint32(s.out[headerSize+4:], uint32(r.q.Base()))
	return s.send(m.hdr.Request, sizeVringState)
}

// vringFD decodes the u64 of SET_VRING_KICK/CALL/ERR and takes the fd.
func (s *server) vringFD(m *message) (*vring, int, error) {
	r, err := s.ring(uint32(m.u64 & VHOST_USER_VRING_IDX_MASK))
	if err != nil {
		return nil, -1, err
	}
	fd := -1
	if m.u64&VHOST_USER_VRING_NOFD_MASK == 0 {
		fd = m.takeFD(0)
	}
	return r, fd, nil
}

func (s *server) setVringKick(m *message) error {
	r, fd, err := s.vringFD(m)
	if err != nil {
		return err
	}
	i := int(m.u64 & VHOST_USER_VRING_IDX_MASK)
	// Replacing the kick fd of a running ring: stop (drain), swap, restart.
	s.stopRing(i)
	linux.Close(r.kick)
	r.kick = fd
	return s.maybeStartRing(i)
}

func (s *server) setVringCall(m *message) error {
	r, fd, err := s.vringFD(m)
	if err != nil {
		return err
	}
	linux.Close(r.q.SetCallFD(fd))
	return s.maybeStartRing(int(m.u64 & VHOST_USER_VRING_IDX_MASK))
}

func (s *server) setVringErr(m *message) error {
	r, fd, err := s.vringFD(m)
	if err != nil {
		return err
	}
	linux.Close(r.errFD)
	r.errFD = fd
	return nil
}

func (s *server) getProtocolFeatures(m *message) error {
	s.lastProto = s.b.ProtocolFeatures()
	return s.sendU64(m.hdr.Request, s.lastProto)
}

// setProtocolFeatures stores the acked protocol features. Like
// SET_FEATURES (virtio v1.2 §3.1.1: the driver accepts a subset of what the
// device offers), a value with bits that GET_PROTOCOL_FEATURES does not
// offer is refused; vhost-user.rst defines protocol features as negotiated
// from the back-end's offer. The Rust virtiofsd stores any value; QEMU
// only ever acks a subset of the offer, so the check costs no
// compatibility. The previous value is kept on failure.
func (s *server) setProtocolFeatures(m *message) error {
	offered := s.b.ProtocolFeatures()
	if m.u64&^offered != 0 {
		return fmt.Errorf("protocol features %#x not a subset of %#x", m.u64, offered)
	}
	s.ackedProto = m.u64
	return nil
}

func (s *server) getQueueNum(m *message) error {
	return s.sendU64(m.hdr.Request, uint64(len(s.rings)))
}

func (s *server) setVringEnable(m *message) error {
	r, err := s.ring(m.vring.Index)
	if err != nil {
		return err
	}
	on := m.vring.Num == 1
	was := r.q.Enabled()
	r.q.SetEnabled(on)
	if on && !was && r.started {
		s.b.WakeQueue(int(m.vring.Index))
	}
	return nil
}

func (s *server) setBackendReqFD(m *message) error {
	// Kept open (closing it makes QEMU treat the channel as broken) but
	// never used: this device sends no back-end requests.
	linux.Close(s.backendReqFD)
	s.backendReqFD = m.takeFD(0)
	return nil
}

func (s *server) getConfig(m *message) error {
	c := m.config
	out := s.out[headerSize:]
	binary.LittleEndian.PutUint32(out[0:], c.Offset)
	binary.LittleEndian.PutUint32(out[8:], c.Flags)
	data := out[sizeConfigHeader : sizeConfigHeader+c.Size]
	clear(data)
	if !s.b.ReadConfig(data, c.Offset) {
		binary.LittleEndian.PutUint32(out[4:], 0)
		return s.send(m.hdr.Request, sizeConfigHeader)
	}
	binary.LittleEndian.PutUint32(out[4:], c.Size)
	return s.send(m.hdr.Request, sizeConfigHeader+int(c.Size))
}

func (s *server) setConfig(m *message) error {
	// The virtio-fs configuration space is read-only; writes are ignored
	// like in the reference implementation.
	s.log.Debug("ignoring SET_CONFIG", "offset", m.config.Offset, "size", m.config.Size)
	return nil
}

func (s *server) gpuSetSocket(m *message) error {
	return errors.New("not a GPU device")
}

func (s *server) resetDevice(m *message) error {
	s.endTransfer()
	for i := range s.rings {
		s.stopRing(i)
		r := &s.rings[i]
		linux.Close(r.kick)
		linux.Close(r.errFD)
		r.kick, r.errFD = -1, -1
		linux.Close(r.q.Reset())
	}
	s.setAckedFeatures(0)
	linux.Close(s.logFD)
	s.logFD = -1
	s.b.Reset()
	return nil
}

func (s *server) getMaxMemSlots(m *message) error {
	return s.sendU64(m.hdr.Request, maxMemSlots)
}

// addMemReg maps one more region. The region count is limited to the
// slot count advertised by GET_MAX_MEM_SLOTS (vhost-user.rst: the
// front-end must not add more regions than the back-end supports); the
// region is refused before it is mapped. The Rust virtiofsd advertises the
// same 509 slots but enforces no limit; refusing bounds what a front-end
// can make us map and keep open.
func (s *server) addMemReg(m *message) error {
	if s.mem.Regions() >= maxMemSlots {
		return fmt.Errorf("add memory region: all %d slots in use", maxMemSlots)
	}
	r, err := guestmem.MapRegion(m.region, m.takeFD(0))
	if err != nil {
		return err
	}
	if err := s.mem.Add(r); err != nil {
		r.Free()
		return err
	}
	return nil
}

func (s *server) remMemReg(m *message) error {
	return s.mem.Remove(m.region.GPA, m.region.Size)
}
