package vhostuser

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

// FuzzVhostMessage checks the message decoder and validator on arbitrary
// bytes, then feeds the same bytes as a request stream to Serve with a fake
// device: it must neither panic nor hang, and must end the connection with
// nil (clean EOF between messages) or an error.
func FuzzVhostMessage(f *testing.F) {
	msg := func(req Request, flags uint32, payload []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(req))
		b = binary.LittleEndian.AppendUint32(b, VHOST_USER_VERSION|flags)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
		return append(b, payload...)
	}
	f.Add(msg(VHOST_USER_GET_FEATURES, 0, nil), uint8(0))
	f.Add(append(msg(VHOST_USER_GET_PROTOCOL_FEATURES, 0, nil), msg(VHOST_USER_SET_PROTOCOL_FEATURES, 0, u64(testProto))...), uint8(0))
	f.Add(msg(VHOST_USER_SET_MEM_TABLE, 0, memTable(regionBytes(0, 4096, 0, 0))), uint8(1))
	f.Add(msg(VHOST_USER_SET_VRING_ADDR, 8, vringAddr(1, 0, 0, 0, 0)), uint8(0))
	f.Add(msg(VHOST_USER_GET_CONFIG, 0, append(vstate(0, 4), make([]byte, 8)...)), uint8(0))
	f.Add(msg(VHOST_USER_SET_VRING_KICK, 0, u64(0x100)), uint8(0))
	f.Add(msg(VHOST_USER_SET_DEVICE_STATE_FD, 0, vstate(1, 0)), uint8(1))
	f.Add(msg(VHOST_USER_CHECK_DEVICE_STATE, 0, []byte{1, 2, 3}), uint8(0))
	f.Add(msg(VHOST_USER_SET_VRING_BASE, 0, vstate(0, 7)), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, nfds uint8) {
		// Decoder alone.
		if len(data) >= headerSize {
			if h, err := parseHeader(data[:headerSize]); err == nil {
				body := data[headerSize:]
				if len(body) > int(h.Size) {
					body = body[:h.Size]
				}
				var m message
				n := int(nfds % 40)
				if err := decode(h, body, n, &m); err == nil {
					info := requests[h.Request]
					if info.size >= 0 && len(body) != info.size {
						t.Fatalf("%v accepted with payload %d", h.Request, len(body))
					}
					if h.Request == VHOST_USER_SET_MEM_TABLE && (m.nregions != n || m.nregions == 0) {
						t.Fatalf("SET_MEM_TABLE accepted with %d regions and %d fds", m.nregions, n)
					}
					if info.fds == fdNone && n != 0 {
						t.Fatalf("%v accepted with %d fds", h.Request, n)
					}
				}
			}
		}

		// The whole stream through Serve, without descriptors.
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- Serve(sp[1], &fakeBackend{proto: testProto}, nil) }()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			var buf [4096]byte
			for {
				n, err := linux.Read(sp[0], buf[:])
				if n <= 0 || err != nil {
					return
				}
			}
		}()
		linux.WriteAll(sp[0], data) // an error means Serve closed early
		unix.Shutdown(sp[0], unix.SHUT_WR)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve hung")
		}
		<-drained
		unix.Close(sp[0])
	})
}
