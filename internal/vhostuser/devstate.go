package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

// StateBackend is implemented by a Backend that can take part in a live
// migration (vhost-user.rst, "Migrating back-end state"). A Backend that
// does not implement it refuses every device state transfer.
//
// LogAll is called from the connection goroutine; SaveState and LoadState
// run on a transfer goroutine of their own while the connection goroutine
// keeps handling requests.
type StateBackend interface {
	Backend
	// LogAll is called when VHOST_F_LOG_ALL becomes set (on == true) or
	// clear (on == false) in the acked virtio features: the front-end
	// starts or abandons a migration. It is called only on these
	// transitions, including the implicit clear of RESET_OWNER,
	// RESET_DEVICE and the end of the connection. It must return quickly;
	// long preparations run in the background.
	LogAll(on bool)
	// SaveState writes the whole device state to w (SET_DEVICE_STATE_FD,
	// direction SAVE). Every ring is stopped before it is called and none
	// is started while it runs. The writer is closed after it returns,
	// which tells the front-end that the state is complete.
	SaveState(w io.Writer) error
	// LoadState reads the device state from r up to EOF and applies it
	// (direction LOAD), under the same conditions as SaveState.
	LoadState(r io.Reader) error
}

// errTransferRunning refuses a second transfer while one is in progress.
var errTransferRunning = errors.New("a device state transfer is still running")

// transfer is one device state transfer started by SET_DEVICE_STATE_FD.
type transfer struct {
	f    *os.File      // the front-end's pipe end, non-blocking
	done chan struct{} // closed when the result is final, before f is closed
	err  error         // the transfer's result; read only after done
}

// run performs the transfer and closes the pipe end. The result is final
// (done closed) before the pipe end is closed: the front-end sees EOF only
// after that, so a CHECK_DEVICE_STATE or a new SET_DEVICE_STATE_FD sent
// once it has seen EOF always finds this transfer finished. A failure of
// close(2) itself is not reported: the data has all been handed to the
// pipe (or the transfer had failed already), and close on a pipe end only
// fails for a descriptor that is not open.
func (t *transfer) run(sb StateBackend, dir uint32) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in device state transfer: %v\n%s", r, debug.Stack())
			}
		}()
		if dir == deviceStateSave {
			err = sb.SaveState(t.f)
		} else {
			err = sb.LoadState(t.f)
		}
	}()
	t.err = err
	close(t.done)
	// endTransfer may have closed it already to interrupt the transfer.
	t.f.Close()
}

// running reports whether the transfer has not finished yet.
func (t *transfer) running() bool {
	select {
	case <-t.done:
		return false
	default:
		return true
	}
}

// setAckedFeatures stores the acked virtio features and tells a
// StateBackend when VHOST_F_LOG_ALL changes.
func (s *server) setAckedFeatures(v uint64) {
	was := s.ackedFeatures&VHOST_F_LOG_ALL != 0
	s.ackedFeatures = v
	on := v&VHOST_F_LOG_ALL != 0
	if on == was {
		return
	}
	if sb, ok := s.b.(StateBackend); ok {
		sb.LogAll(on)
	}
}

// setDeviceStateFD starts a transfer and replies at once, before any data
// moves (vhost-user.rst, VHOST_USER_SET_DEVICE_STATE_FD). The reply never
// carries a descriptor of our own: the front-end's pipe is used. A refused
// transfer is answered with an error, the pipe end is closed (the front-end
// sees EOF) and the connection stays.
func (s *server) setDeviceStateFD(m *message) error {
	if err := s.startTransfer(m); err != nil {
		s.log.Warn("device state transfer refused", "direction", m.xferDir, "phase", m.xferPhas, "err", err)
		return s.sendU64(m.hdr.Request, deviceStateNoFD|deviceStateError)
	}
	return s.sendU64(m.hdr.Request, deviceStateNoFD)
}

// startTransfer checks that a transfer can start and starts it on a new
// goroutine, which owns the pipe end from then on.
//
// QEMU sends SET_DEVICE_STATE_FD only while the device is stopped: it
// stops every ring with GET_VRING_BASE first (vhost_save_backend_state and
// vhost_load_backend_state in QEMU's hw/virtio/vhost.c assert that the
// device is not started; vhost-user.rst defines the only phase, STOPPED,
// as the device being suspended). A running ring is therefore refused, so
// that the state is never saved or replaced under requests in flight.
func (s *server) startTransfer(m *message) error {
	sb, ok := s.b.(StateBackend)
	if !ok {
		return errors.New("device state transfer not supported")
	}
	if m.xferDir != deviceStateSave && m.xferDir != deviceStateLoad {
		return fmt.Errorf("unknown transfer direction %d", m.xferDir)
	}
	if m.xferPhas != deviceStatePhaseStop {
		return fmt.Errorf("unknown migration phase %d", m.xferPhas)
	}
	if s.xfer != nil {
		if s.xfer.running() {
			return errTransferRunning
		}
		// Finished but never checked: like the reference, a new
		// transfer replaces it and its result is dropped.
		if s.xfer.err != nil {
			s.log.Warn("unchecked device state transfer had failed", "err", s.xfer.err)
		}
		s.xfer = nil
	}
	for i := range s.rings {
		if s.rings[i].started {
			return fmt.Errorf("vring %d is running", i)
		}
	}
	fd := m.takeFD(0)
	// Non-blocking, so that os.File waits in the runtime poller and
	// endTransfer can interrupt a transfer stuck on a front-end that
	// neither reads nor writes the pipe. The descriptor was received
	// close-on-exec (linux.RecvMsg).
	if err := unix.SetNonblock(fd, true); err != nil {
		linux.Close(fd)
		return fmt.Errorf("set device state pipe non-blocking: %w", err)
	}
	t := &transfer{f: os.NewFile(uintptr(fd), "device-state"), done: make(chan struct{})}
	s.xfer = t
	go t.run(sb, m.xferDir)
	return nil
}

// checkDeviceState waits for the transfer to end and reports its result:
// 0 on success, 1 on failure (the error is logged here, once). Without a
// transfer the reply is 1 and the connection stays.
func (s *server) checkDeviceState(m *message) error {
	t := s.xfer
	if t == nil {
		s.log.Warn("CHECK_DEVICE_STATE without a device state transfer")
		return s.sendU64(m.hdr.Request, 1)
	}
	<-t.done
	s.xfer = nil
	if t.err != nil {
		s.log.Error("device state transfer failed", "err", t.err)
		return s.sendU64(m.hdr.Request, 1)
	}
	return s.sendU64(m.hdr.Request, 0)
}

// endTransfer ends a transfer in progress, if any, by closing its pipe
// end, and waits for its goroutine. A backend blocked on the pipe returns
// at once; one busy elsewhere is waited for.
func (s *server) endTransfer() {
	t := s.xfer
	if t == nil {
		return
	}
	s.xfer = nil
	t.f.Close()
	<-t.done
	if t.err != nil {
		s.log.Debug("device state transfer ended", "err", t.err)
	}
}
