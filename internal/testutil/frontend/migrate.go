package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Device-state transfer parameters of VHOST_USER_SET_DEVICE_STATE_FD (QEMU
// docs/interop/vhost-user.rst, "Migrating back-end state").
const (
	DeviceStateSave    = 0 // direction: back-end → front-end (source)
	DeviceStateLoad    = 1 // direction: front-end → back-end (destination)
	DeviceStateStopped = 0 // phase: all rings stopped

	// deviceStateNoFD in the SET_DEVICE_STATE_FD reply: the back-end did
	// not return a channel of its own.
	deviceStateNoFD = 0x100
)

// ErrStateCheck is returned (wrapped) when CHECK_DEVICE_STATE reports that
// the back-end's transfer failed.
var ErrStateCheck = errors.New("back-end reports the device-state transfer failed")

// ErrStateRefused is returned (wrapped) when the back-end's reply to
// SET_DEVICE_STATE_FD reports an error.
var ErrStateRefused = errors.New("back-end refused the device-state transfer")

// Backend is the per-connection half of a Frontend: the vhost-user
// connection and what was negotiated on it. Guest memory, the queues (ring
// contents, indexes, eventfds) and the FUSE request counter belong to the
// Frontend and survive a change of back-end, which is what a migration
// looks like from the guest: the same rings continue on another daemon.
type Backend struct {
	Conn *Conn
	// The Frontend fields of the same names.
	Features, AckedFeatures         uint64
	ProtocolFeatures, AckedProtocol uint64
	QueueNum, MaxMemSlots           uint64
	BackendFD                       int
	replyAck                        bool
}

// Close closes a detached back-end's connection and request channel.
func (b *Backend) Close() {
	b.Conn.Close()
	if b.BackendFD >= 0 {
		unix.Close(b.BackendFD)
		b.BackendFD = -1
	}
}

func (fe *Frontend) backend() *Backend {
	return &Backend{
		Conn: fe.Conn, Features: fe.Features, AckedFeatures: fe.AckedFeatures,
		ProtocolFeatures: fe.ProtocolFeatures, AckedProtocol: fe.AckedProtocol,
		QueueNum: fe.QueueNum, MaxMemSlots: fe.MaxMemSlots, BackendFD: fe.BackendFD,
		replyAck: fe.replyAck,
	}
}

// Attach makes b the back-end every later request and wait goes to and
// returns the previous one, which the caller now owns (Close it, or
// Attach it again later).
func (fe *Frontend) Attach(b *Backend) *Backend {
	old := fe.backend()
	fe.Conn, fe.Features, fe.AckedFeatures = b.Conn, b.Features, b.AckedFeatures
	fe.ProtocolFeatures, fe.AckedProtocol = b.ProtocolFeatures, b.AckedProtocol
	fe.QueueNum, fe.MaxMemSlots, fe.BackendFD, fe.replyAck = b.QueueNum, b.MaxMemSlots, b.BackendFD, b.replyAck
	return old
}

// Connect attaches a fresh, not yet negotiated back-end connected on fd
// (alive as in Options.Alive, may be nil) and returns the previous one.
// The Frontend owns fd. Negotiate and SendMemory must follow; then
// LoadState and StartQueues for a migration destination.
func (fe *Frontend) Connect(fd int, alive func() error) *Backend {
	return fe.Attach(&Backend{
		Conn:      &Conn{FD: fd, timeout: fe.opts.Timeout, alive: alive},
		BackendFD: -1,
	})
}

// SetLogAll turns VHOST_F_LOG_ALL on or off with SET_FEATURES, keeping the
// other acked features, as QEMU does when a migration starts (on) or is
// cancelled or fails (off). The source prepares its state from then on.
func (fe *Frontend) SetLogAll(on bool) error {
	if fe.Features&VHOST_F_LOG_ALL == 0 {
		return fmt.Errorf("set log all: back-end features %#x lack VHOST_F_LOG_ALL", fe.Features)
	}
	f := fe.AckedFeatures &^ VHOST_F_LOG_ALL
	if on {
		f |= VHOST_F_LOG_ALL
	}
	if err := fe.Request(VHOST_USER_SET_FEATURES, u64(f), nil); err != nil {
		return fmt.Errorf("set log all %v: %w", on, err)
	}
	fe.AckedFeatures = f
	return fe.barrier()
}

// StopQueues stops every queue with GET_VRING_BASE, keeping each queue's
// index in Queue.Base for StartQueues (on this or another back-end).
func (fe *Frontend) StopQueues() error {
	for _, q := range fe.Queues {
		if _, err := fe.GetVringBase(q); err != nil {
			return fmt.Errorf("stop queue %d: %w", q.Index, err)
		}
		if q.Base != q.availIdx {
			return fmt.Errorf("stop queue %d: back-end's next avail index %d, front-end published %d", q.Index, q.Base, q.availIdx)
		}
	}
	return nil
}

// StartQueues starts every queue from its Queue.Base (StartQueue).
func (fe *Frontend) StartQueues() error {
	for _, q := range fe.Queues {
		if err := fe.StartQueue(q); err != nil {
			return err
		}
	}
	return nil
}

// StateTiming measures one device-state transfer.
type StateTiming struct {
	// Transfer runs from sending SET_DEVICE_STATE_FD to the end of the
	// data: EOF on the pipe (save) or the last byte written and the pipe
	// closed (load).
	Transfer time.Duration
	// Total runs from sending SET_DEVICE_STATE_FD to the reply to
	// CHECK_DEVICE_STATE.
	Total time.Duration
}

// SaveState reads the back-end's device state (the rings must be
// stopped): SET_DEVICE_STATE_FD (save, stopped phase) with the write end
// of a pipe, the pipe read to EOF, then CHECK_DEVICE_STATE. A failed check
// is reported as an error wrapping ErrStateCheck, with the bytes received.
func (fe *Frontend) SaveState() ([]byte, error) {
	b, _, err := fe.SaveStateTimed()
	return b, err
}

// SaveStateTimed is SaveState that also reports how long the phases took.
func (fe *Frontend) SaveStateTimed() ([]byte, StateTiming, error) {
	var tm StateTiming
	rd, wr, err := statePipe()
	if err != nil {
		return nil, tm, err
	}
	start := time.Now()
	type result struct {
		b   []byte
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	stop := make(chan struct{})
	go func() {
		defer unix.Close(rd)
		b, err := readPipe(rd, time.Now().Add(fe.opts.Timeout), stop)
		done <- result{b, err, time.Now()}
	}()
	err = fe.setDeviceStateFD(DeviceStateSave, wr)
	unix.Close(wr)
	if err != nil {
		close(stop)
		<-done
		return nil, tm, fmt.Errorf("save device state: %w", err)
	}
	res := <-done
	tm.Transfer = res.at.Sub(start)
	if res.err != nil {
		return res.b, tm, fmt.Errorf("save device state: %w", res.err)
	}
	err = fe.CheckDeviceState()
	tm.Total = time.Since(start)
	if err != nil {
		return res.b, tm, fmt.Errorf("save device state (%d bytes read): %w", len(res.b), err)
	}
	return res.b, tm, nil
}

// LoadState hands state to the back-end (a migration destination, rings
// not started): SET_DEVICE_STATE_FD (load, stopped phase) with the read
// end of a pipe, all of state written and the pipe closed, then
// CHECK_DEVICE_STATE. A failed check is reported as an error wrapping
// ErrStateCheck.
func (fe *Frontend) LoadState(state []byte) error {
	_, err := fe.LoadStateTimed(state)
	return err
}

// LoadStateTimed is LoadState that also reports how long the phases took.
func (fe *Frontend) LoadStateTimed(state []byte) (StateTiming, error) {
	var tm StateTiming
	rd, wr, err := statePipe()
	if err != nil {
		return tm, err
	}
	start := time.Now()
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	stop := make(chan struct{})
	go func() {
		defer unix.Close(wr)
		err := writePipe(wr, state, time.Now().Add(fe.opts.Timeout), stop)
		done <- result{err, time.Now()}
	}()
	err = fe.setDeviceStateFD(DeviceStateLoad, rd)
	unix.Close(rd)
	if err != nil {
		close(stop)
		<-done
		return tm, fmt.Errorf("load device state: %w", err)
	}
	res := <-done
	tm.Transfer = res.at.Sub(start)
	// A back-end that rejects the stream early may close its end before
	// everything was written (EPIPE); CHECK tells what it made of it.
	err = fe.CheckDeviceState()
	tm.Total = time.Since(start)
	if err != nil {
		if res.err != nil {
			err = fmt.Errorf("%w (writing the stream: %v)", err, res.err)
		}
		return tm, fmt.Errorf("load device state: %w", err)
	}
	if res.err != nil {
		return tm, fmt.Errorf("load device state: back-end checked the transfer but writing the stream failed: %w", res.err)
	}
	return tm, nil
}

// setDeviceStateFD sends SET_DEVICE_STATE_FD with fd and checks the reply:
// success, and no back-end channel (this front-end does not use one).
func (fe *Frontend) setDeviceStateFD(direction uint32, fd int) error {
	if err := fe.Conn.Send(VHOST_USER_SET_DEVICE_STATE_FD, 0, vringState(direction, DeviceStateStopped), []int{fd}); err != nil {
		return err
	}
	p, err := fe.Conn.RecvReply(VHOST_USER_SET_DEVICE_STATE_FD)
	if err != nil {
		return fmt.Errorf("set device state fd: %w", err)
	}
	if len(p) != 8 {
		return fmt.Errorf("set device state fd: reply size %d, want 8", len(p))
	}
	v := binary.LittleEndian.Uint64(p)
	if v&0xff != 0 {
		return fmt.Errorf("set device state fd: reply %#x: %w", v, ErrStateRefused)
	}
	if v&deviceStateNoFD == 0 {
		return fmt.Errorf("set device state fd: reply %#x offers a back-end channel, which this front-end does not use", v)
	}
	return nil
}

// CheckDeviceState sends CHECK_DEVICE_STATE; a non-zero reply is an error
// wrapping ErrStateCheck.
func (fe *Frontend) CheckDeviceState() error {
	v, err := fe.GetU64(VHOST_USER_CHECK_DEVICE_STATE)
	if err != nil {
		return fmt.Errorf("check device state: %w", err)
	}
	if v != 0 {
		return fmt.Errorf("check device state: reply %d: %w", v, ErrStateCheck)
	}
	return nil
}

// statePipe returns a pipe whose ends are close-on-exec; the end the
// front-end keeps is made non-blocking by the reader or writer.
func statePipe() (rd, wr int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, -1, fmt.Errorf("device-state pipe: %w", err)
	}
	return p[0], p[1], nil
}

// errStopped ends a pipe transfer whose request failed.
var errStopped = errors.New("transfer abandoned")

// pollPipe waits up to the deadline for events on fd, in short slices so
// that stop is noticed.
func pollPipe(fd int, events int16, deadline time.Time, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return errStopped
		default:
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrTimeout
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		_, err := unix.Poll(pfd, int(min(left, 50*time.Millisecond)/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll device-state pipe: %w", err)
		}
		if pfd[0].Revents != 0 {
			return nil
		}
	}
}

// readPipe reads fd to EOF. The owner of the write end must have closed
// its copy.
func readPipe(fd int, deadline time.Time, stop <-chan struct{}) ([]byte, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := pollPipe(fd, unix.POLLIN, deadline, stop); err != nil {
				return out, fmt.Errorf("read device state after %d bytes: %w", len(out), err)
			}
			continue
		case err != nil:
			return out, fmt.Errorf("read device state: %w", err)
		case n == 0:
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// writePipe writes all of b to fd.
func writePipe(fd int, b []byte, deadline time.Time, stop <-chan struct{}) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return err
	}
	total := len(b)
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := pollPipe(fd, unix.POLLOUT, deadline, stop); err != nil {
				return fmt.Errorf("write device state after %d of %d bytes: %w", total-len(b), total, err)
			}
			continue
		case err != nil:
			return fmt.Errorf("write device state after %d of %d bytes: %w", total-len(b), total, err)
		}
		b = b[n:]
	}
	return nil
}
