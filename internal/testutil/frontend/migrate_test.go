package frontend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

// stateDevice is a scripted back-end that answers only
// SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE (QEMU
// docs/interop/vhost-user.rst), for testing the front-end's side of the
// transfer.
type stateDevice struct {
	t  *testing.T
	fd int

	// setErr is the error byte of the SET_DEVICE_STATE_FD reply.
	setErr uint64
	// offerChannel clears the reply's "no fd" bit (a back-end offering
	// its own channel, without sending it).
	offerChannel bool
	// checkReply is the CHECK_DEVICE_STATE reply value.
	checkReply uint64
	// save is what a save writes into the pipe.
	save []byte
	// transferFirst: move the data before replying to
	// SET_DEVICE_STATE_FD (a back-end that does not reply at once).
	transferFirst bool
	// keepFD: never close the pipe end (the transfer never ends).
	keepFD bool

	mu       sync.Mutex
	loaded   []byte
	dirs     []uint32
	transfer sync.WaitGroup
	wg       sync.WaitGroup
	held     []int
}

func newStateDevice(t *testing.T, d *stateDevice) *Frontend {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.t, d.fd = t, fds[0]
	f, err := NewUnconnected(fds[1], Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d.wg.Add(1)
	go d.serve()
	t.Cleanup(func() {
		f.Close()
		d.wg.Wait()
		d.transfer.Wait()
		unix.Close(d.fd)
		for _, fd := range d.held {
			unix.Close(fd)
		}
	})
	return f
}

func (d *stateDevice) recv(p, oob []byte) (int, error) {
	oobn := 0
	for got := 0; got < len(p); {
		n, on, _, _, err := unix.Recvmsg(d.fd, p[got:], oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return oobn, err
		}
		if n == 0 {
			return oobn, errors.New("closed")
		}
		if got == 0 {
			oobn, oob = on, nil
		}
		got += n
	}
	return oobn, nil
}

func (d *stateDevice) reply(req uint32, v uint64) {
	b := binary.LittleEndian.AppendUint32(nil, req)
	b = binary.LittleEndian.AppendUint32(b, VHOST_USER_VERSION|VHOST_USER_REPLY)
	b = binary.LittleEndian.AppendUint32(b, 8)
	linux.WriteAll(d.fd, binary.LittleEndian.AppendUint64(b, v))
}

func (d *stateDevice) serve() {
	defer d.wg.Done()
	for {
		hdr := make([]byte, HeaderSize)
		oob := make([]byte, unix.CmsgSpace(4*4))
		oobn, err := d.recv(hdr, oob)
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
		p := make([]byte, binary.LittleEndian.Uint32(hdr[8:]))
		if _, err := d.recv(p, nil); err != nil {
			return
		}
		switch req {
		case VHOST_USER_SET_DEVICE_STATE_FD:
			if len(fds) != 1 || len(p) != 8 {
				d.t.Errorf("SET_DEVICE_STATE_FD with %d fds and %d bytes", len(fds), len(p))
				return
			}
			dir := binary.LittleEndian.Uint32(p)
			d.mu.Lock()
			d.dirs = append(d.dirs, dir)
			d.mu.Unlock()
			setReply := d.setErr
			if !d.offerChannel {
				setReply |= deviceStateNoFD
			}
			if d.setErr != 0 || d.keepFD {
				d.mu.Lock()
				d.held = append(d.held, fds[0])
				d.mu.Unlock()
				d.reply(req, setReply)
				continue
			}
			move := func() {
				defer unix.Close(fds[0])
				if dir == DeviceStateSave {
					linux.WriteAll(fds[0], d.save)
					return
				}
				var got []byte
				buf := make([]byte, 4096)
				for {
					n, err := linux.Read(fds[0], buf)
					if n <= 0 || err != nil {
						break
					}
					got = append(got, buf[:n]...)
				}
				d.mu.Lock()
				d.loaded = got
				d.mu.Unlock()
			}
			if d.transferFirst {
				move()
			} else {
				d.transfer.Add(1)
				go func() {
					defer d.transfer.Done()
					move()
				}()
			}
			d.reply(req, setReply)
		case VHOST_USER_CHECK_DEVICE_STATE:
			d.transfer.Wait()
			d.reply(req, d.checkReply)
		default:
			d.t.Errorf("unexpected request %d", req)
			return
		}
	}
}

// stateBlob is larger than a pipe's default capacity, so the transfer
// only completes if both sides move data concurrently.
func stateBlob() []byte {
	b := make([]byte, 300<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestSaveState(t *testing.T) {
	for _, first := range []bool{false, true} {
		d := &stateDevice{save: stateBlob(), transferFirst: first}
		f := newStateDevice(t, d)
		got, tm, err := f.SaveStateTimed()
		if err != nil {
			t.Fatalf("transfer before reply %v: %v", first, err)
		}
		if !bytes.Equal(got, d.save) {
			t.Fatalf("transfer before reply %v: got %d bytes, want the %d written", first, len(got), len(d.save))
		}
		if tm.Transfer <= 0 || tm.Total < tm.Transfer {
			t.Fatalf("timing %+v", tm)
		}
		d.mu.Lock()
		dirs := d.dirs
		d.mu.Unlock()
		if len(dirs) != 1 || dirs[0] != DeviceStateSave {
			t.Fatalf("directions %v", dirs)
		}
	}
}

func TestLoadState(t *testing.T) {
	d := &stateDevice{}
	f := newStateDevice(t, d)
	want := stateBlob()
	if err := f.LoadState(want); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !bytes.Equal(d.loaded, want) {
		t.Fatalf("back-end read %d bytes, want the %d sent", len(d.loaded), len(want))
	}
	if len(d.dirs) != 1 || d.dirs[0] != DeviceStateLoad {
		t.Fatalf("directions %v", d.dirs)
	}
}

func TestStateFailures(t *testing.T) {
	// A failed check is ErrStateCheck, in both directions.
	d := &stateDevice{save: []byte("partial"), checkReply: 1}
	f := newStateDevice(t, d)
	if b, err := f.SaveState(); !errors.Is(err, ErrStateCheck) || string(b) != "partial" {
		t.Errorf("save with a failed check = %q, %v", b, err)
	}
	if err := f.LoadState(stateBlob()); !errors.Is(err, ErrStateCheck) {
		t.Errorf("load with a failed check = %v", err)
	}
	// A refused request ends the transfer at once, even though the
	// back-end keeps its end of the pipe open.
	d = &stateDevice{setErr: 1}
	f = newStateDevice(t, d)
	if _, err := f.SaveState(); !errors.Is(err, ErrStateRefused) {
		t.Errorf("refused save = %v", err)
	}
	if err := f.LoadState(stateBlob()); !errors.Is(err, ErrStateRefused) {
		t.Errorf("refused load = %v", err)
	}
	// A back-end channel is not used.
	d = &stateDevice{offerChannel: true}
	f = newStateDevice(t, d)
	if _, err := f.SaveState(); err == nil || errors.Is(err, ErrStateRefused) {
		t.Errorf("save with a back-end channel offered = %v", err)
	}
	// A transfer that never ends is bounded by the timeout.
	d = &stateDevice{keepFD: true}
	f = newStateDevice(t, d)
	f.SetTimeout(200 * time.Millisecond)
	if _, err := f.SaveState(); !errors.Is(err, ErrTimeout) {
		t.Errorf("save that never ends = %v", err)
	}
}
