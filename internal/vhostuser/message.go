package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"virtiofsd/internal/guestmem"
)

// String returns the request name without the VHOST_USER_ prefix.
func (r Request) String() string {
	if r < Request(len(requestNames)) && requestNames[r] != "" {
		return requestNames[r]
	}
	return "request " + strconv.FormatUint(uint64(r), 10)
}

// Header is struct VhostUserMsg's header: request, flags, size.
type Header struct {
	Request Request
	Flags   uint32
	Size    uint32
}

// needReply reports whether the front-end asked for an ack.
func (h Header) needReply() bool { return h.Flags&VHOST_USER_NEED_REPLY != 0 }

var errProtocol = errors.New("vhost-user protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// parseHeader decodes and validates a request header (spec/vhost.md §1.2).
func parseHeader(b []byte) (Header, error) {
	h := Header{
		Request: Request(binary.LittleEndian.Uint32(b[0:])),
		Flags:   binary.LittleEndian.Uint32(b[4:]),
		Size:    binary.LittleEndian.Uint32(b[8:]),
	}
	switch {
	case h.Request == 0 || h.Request > maxRequest:
		return h, protoErr("unknown request code %d", uint32(h.Request))
	case h.Size > maxPayload:
		return h, protoErr("%v: payload size %d exceeds %d", h.Request, h.Size, maxPayload)
	case h.Flags&VHOST_USER_VERSION_MASK != VHOST_USER_VERSION:
		return h, protoErr("%v: unsupported version in flags %#x", h.Request, h.Flags)
	case h.Flags&VHOST_USER_RESERVED_FLAGS != 0:
		return h, protoErr("%v: reserved flags set in %#x", h.Request, h.Flags)
	case h.Flags&VHOST_USER_REPLY_MASK != 0:
		return h, protoErr("%v: request has the reply flag set", h.Request)
	}
	return h, nil
}

// fdRule says how many descriptors a request carries.
type fdRule uint8

const (
	fdNone     fdRule = iota // no descriptors
	fdOne                    // exactly one
	fdRegions                // one per memory region (SET_MEM_TABLE)
	fdVring                  // one unless VHOST_USER_VRING_NOFD_MASK is set
	fdOptional               // zero or one (REM_MEM_REG: the protocol allows one)
)

// reqInfo is the static description of a request.
type reqInfo struct {
	supported bool
	size      int    // exact payload size, or -1: checked by the decoder
	fds       fdRule // descriptor rule
	reply     bool   // always answered, independent of REPLY_ACK
	gate      uint64 // protocol feature that must have been acked
	gateVirt  uint64 // virtio feature that must have been acked
}

var requests = [...]reqInfo{
	VHOST_USER_GET_FEATURES:          {supported: true, size: 0, reply: true},
	VHOST_USER_SET_FEATURES:          {supported: true, size: sizeU64},
	VHOST_USER_SET_OWNER:             {supported: true, size: 0},
	VHOST_USER_RESET_OWNER:           {supported: true, size: 0},
	VHOST_USER_SET_MEM_TABLE:         {supported: true, size: -1, fds: fdRegions},
	VHOST_USER_SET_LOG_BASE:          {supported: true, size: sizeLog, fds: fdOne, reply: true, gate: VHOST_USER_PROTOCOL_F_LOG_SHMFD},
	VHOST_USER_SET_LOG_FD:            {supported: true, size: -1, fds: fdOne},
	VHOST_USER_SET_VRING_NUM:         {supported: true, size: sizeVringState},
	VHOST_USER_SET_VRING_ADDR:        {supported: true, size: sizeVringAddr},
	VHOST_USER_SET_VRING_BASE:        {supported: true, size: sizeVringState},
	VHOST_USER_GET_VRING_BASE:        {supported: true, size: sizeVringState, reply: true},
	VHOST_USER_SET_VRING_KICK:        {supported: true, size: sizeU64, fds: fdVring},
	VHOST_USER_SET_VRING_CALL:        {supported: true, size: sizeU64, fds: fdVring},
	VHOST_USER_SET_VRING_ERR:         {supported: true, size: sizeU64, fds: fdVring},
	VHOST_USER_GET_PROTOCOL_FEATURES: {supported: true, size: 0, reply: true},
	VHOST_USER_SET_PROTOCOL_FEATURES: {supported: true, size: sizeU64},
	VHOST_USER_GET_QUEUE_NUM:         {supported: true, size: 0, reply: true, gate: VHOST_USER_PROTOCOL_F_MQ},
	VHOST_USER_SET_VRING_ENABLE:      {supported: true, size: sizeVringState, gateVirt: VHOST_USER_F_PROTOCOL_FEATURES},
	VHOST_USER_SET_BACKEND_REQ_FD:    {supported: true, size: -1, fds: fdOne, gate: VHOST_USER_PROTOCOL_F_BACKEND_REQ},
	VHOST_USER_GET_CONFIG:            {supported: true, size: -1, reply: true, gate: VHOST_USER_PROTOCOL_F_CONFIG},
	VHOST_USER_SET_CONFIG:            {supported: true, size: -1, gate: VHOST_USER_PROTOCOL_F_CONFIG},
	VHOST_USER_GPU_SET_SOCKET:        {supported: true, size: -1, fds: fdOne},
	VHOST_USER_RESET_DEVICE:          {supported: true, size: 0, gate: VHOST_USER_PROTOCOL_F_RESET_DEVICE},
	VHOST_USER_GET_MAX_MEM_SLOTS:     {supported: true, size: 0, reply: true, gate: VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS},
	VHOST_USER_ADD_MEM_REG:           {supported: true, size: sizeSingleRegion, fds: fdOne, gate: VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS},
	VHOST_USER_REM_MEM_REG:           {supported: true, size: sizeSingleRegion, fds: fdOptional, gate: VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS},
	VHOST_USER_SET_DEVICE_STATE_FD:   {supported: true, size: sizeTransfer, fds: fdOne, reply: true},
	VHOST_USER_CHECK_DEVICE_STATE:    {supported: true, size: -1, reply: true},
}

// VringState is struct vhost_vring_state.
type VringState struct {
	Index uint32
	Num   uint32
}

// VringAddr is struct vhost_vring_addr.
type VringAddr struct {
	Index    uint32
	Flags    uint32
	Desc     uint64
	Used     uint64
	Avail    uint64
	LogGuest uint64
}

// ConfigHeader is the fixed part of struct VhostUserConfig.
type ConfigHeader struct {
	Offset uint32
	Size   uint32
	Flags  uint32
}

// message is one validated request with its decoded payload.
type message struct {
	hdr  Header
	body []byte
	fds  []int // owned; entries consumed by a handler are set to -1

	u64      uint64
	vring    VringState
	addr     VringAddr
	regions  [maxMemRegions]guestmem.RegionSpec
	nregions int
	region   guestmem.RegionSpec // ADD/REM_MEM_REG
	logSize  uint64
	logOff   uint64
	config   ConfigHeader
	xferDir  uint32
	xferPhas uint32
}

// takeFD removes the i-th descriptor from m and returns it.
func (m *message) takeFD(i int) int {
	fd := m.fds[i]
	m.fds[i] = -1
	return fd
}

func decodeRegion(b []byte) guestmem.RegionSpec {
	return guestmem.RegionSpec{
		GPA:        binary.LittleEndian.Uint64(b[0:]),
		Size:       binary.LittleEndian.Uint64(b[8:]),
		UVA:        binary.LittleEndian.Uint64(b[16:]),
		MmapOffset: binary.LittleEndian.Uint64(b[24:]),
	}
}

// decode validates the payload and descriptor count of a request whose
// header passed parseHeader, and decodes the payload into m
// (spec/vhost.md §1.2, §1.5). It does not look at connection state.
func decode(h Header, body []byte, nfds int, m *message) error {
	*m = message{hdr: h, body: body}
	info := requests[h.Request]
	if !info.supported {
		return protoErr("%v: request not supported", h.Request)
	}
	if info.size >= 0 && len(body) != info.size {
		return protoErr("%v: payload size %d, want %d", h.Request, len(body), info.size)
	}
	le := binary.LittleEndian
	wantFDs := 0
	switch info.fds {
	case fdOne:
		wantFDs = 1
	case fdOptional:
		if nfds <= 1 {
			wantFDs = nfds
		} else {
			wantFDs = 1
		}
	}

	switch h.Request {
	case VHOST_USER_SET_FEATURES, VHOST_USER_SET_PROTOCOL_FEATURES:
		m.u64 = le.Uint64(body)
	case VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL, VHOST_USER_SET_VRING_ERR:
		m.u64 = le.Uint64(body)
		if m.u64&VHOST_USER_VRING_NOFD_MASK == 0 {
			wantFDs = 1
		}
	case VHOST_USER_SET_VRING_NUM, VHOST_USER_SET_VRING_BASE, VHOST_USER_GET_VRING_BASE, VHOST_USER_SET_VRING_ENABLE:
		m.vring = VringState{Index: le.Uint32(body), Num: le.Uint32(body[4:])}
		if h.Request == VHOST_USER_SET_VRING_ENABLE && m.vring.Num > 1 {
			return protoErr("%v: enable value %d", h.Request, m.vring.Num)
		}
	case VHOST_USER_SET_VRING_ADDR:
		a := VringAddr{
			Index: le.Uint32(body), Flags: le.Uint32(body[4:]),
			Desc: le.Uint64(body[8:]), Used: le.Uint64(body[16:]), Avail: le.Uint64(body[24:]),
			LogGuest: le.Uint64(body[32:]),
		}
		if a.Flags&^VHOST_VRING_F_LOG != 0 {
			return protoErr("%v: flags %#x", h.Request, a.Flags)
		}
		if a.Desc%16 != 0 || a.Avail%2 != 0 || a.Used%4 != 0 {
			return protoErr("%v: misaligned ring address", h.Request)
		}
		m.addr = a
	case VHOST_USER_SET_MEM_TABLE:
		if len(body) < sizeMemoryHeader {
			return protoErr("%v: payload size %d", h.Request, len(body))
		}
		n, pad := le.Uint32(body), le.Uint32(body[4:])
		if pad != 0 || n == 0 || n > maxMemRegions {
			return protoErr("%v: %d regions, padding %#x", h.Request, n, pad)
		}
		if len(body) != sizeMemoryHeader+sizeMemRegion*int(n) {
			return protoErr("%v: payload size %d for %d regions", h.Request, len(body), n)
		}
		m.nregions = int(n)
		for i := range m.nregions {
			m.regions[i] = decodeRegion(body[sizeMemoryHeader+sizeMemRegion*i:])
			if err := m.regions[i].Validate(); err != nil {
				return protoErr("%v: region %d: %v", h.Request, i, err)
			}
		}
		wantFDs = m.nregions
	case VHOST_USER_ADD_MEM_REG, VHOST_USER_REM_MEM_REG:
		m.region = decodeRegion(body[8:])
	case VHOST_USER_SET_LOG_BASE:
		m.logSize, m.logOff = le.Uint64(body), le.Uint64(body[8:])
		if m.logSize == 0 || m.logOff+m.logSize < m.logOff {
			return protoErr("%v: size %#x offset %#x", h.Request, m.logSize, m.logOff)
		}
	case VHOST_USER_GET_CONFIG, VHOST_USER_SET_CONFIG:
		if len(body) < sizeConfigHeader {
			return protoErr("%v: payload size %d", h.Request, len(body))
		}
		c := ConfigHeader{Offset: le.Uint32(body), Size: le.Uint32(body[4:]), Flags: le.Uint32(body[8:])}
		end := uint64(c.Offset) + uint64(c.Size)
		if c.Size == 0 || end > configSpaceMax || c.Flags&^configFlagsMask != 0 ||
			uint64(len(body)) != sizeConfigHeader+uint64(c.Size) {
			return protoErr("%v: offset %d size %d flags %#x payload %d", h.Request, c.Offset, c.Size, c.Flags, len(body))
		}
		m.config = c
	case VHOST_USER_SET_DEVICE_STATE_FD:
		// Unknown directions and phases are refused by the handler
		// with an error reply; the connection stays.
		m.xferDir, m.xferPhas = le.Uint32(body), le.Uint32(body[4:])
	}
	if nfds != wantFDs {
		return protoErr("%v: %d descriptors attached, want %d", h.Request, nfds, wantFDs)
	}
	return nil
}
