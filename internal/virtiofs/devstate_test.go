package virtiofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
	"virtiofsd/internal/migration"
	"virtiofsd/internal/vhostuser"
)

// fakeState records the calls of the device and saves a fixed state.
type fakeState struct {
	mu     sync.Mutex
	calls  []string
	loaded []byte
}

var _ migration.Handler = (*fakeState)(nil)

func (s *fakeState) record(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *fakeState) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *fakeState) Prepare() { s.record("prepare") }
func (s *fakeState) Cancel()  { s.record("cancel") }

func (s *fakeState) Save(w io.Writer) error {
	s.record("save")
	_, err := w.Write([]byte("saved state"))
	return err
}

func (s *fakeState) Load(r io.Reader) error {
	s.record("load")
	b, err := io.ReadAll(r)
	s.mu.Lock()
	s.loaded = b
	s.mu.Unlock()
	return err
}

func TestDeviceStateOffered(t *testing.T) {
	b := &backend{d: newDevice(newFakeHandler(), Config{})}
	if b.ProtocolFeatures()&vhostuser.VHOST_USER_PROTOCOL_F_DEVICE_STATE != 0 {
		t.Errorf("DEVICE_STATE offered without a migration handler: %#x", b.ProtocolFeatures())
	}
	b = &backend{d: newDevice(newFakeHandler(), Config{State: &fakeState{}})}
	if got := b.ProtocolFeatures(); got != protocolFeatures|vhostuser.VHOST_USER_PROTOCOL_F_DEVICE_STATE {
		t.Errorf("with a migration handler: protocol features = %#x, want %#x", got,
			uint64(protocolFeatures|vhostuser.VHOST_USER_PROTOCOL_F_DEVICE_STATE))
	}
	b = &backend{d: newDevice(newFakeHandler(), Config{Tag: "fs", State: &fakeState{}})}
	if got := b.ProtocolFeatures(); got != protocolFeatures|vhostuser.VHOST_USER_PROTOCOL_F_DEVICE_STATE|vhostuser.VHOST_USER_PROTOCOL_F_CONFIG {
		t.Errorf("with a tag and a migration handler: protocol features = %#x", got)
	}
}

// transferState sends SET_DEVICE_STATE_FD with fd and returns the reply.
func (d *testDev) transferState(dir uint32, fd int) uint64 {
	d.t.Helper()
	d.send(vhostuser.VHOST_USER_SET_DEVICE_STATE_FD, 0, vstate(dir, 0), fd)
	unix.Close(fd)
	return binary.LittleEndian.Uint64(d.recv(vhostuser.VHOST_USER_SET_DEVICE_STATE_FD))
}

// TestDeviceStateMigration drives a source and a destination the way QEMU
// does: dirty logging on (Prepare), rings stopped, SAVE, CHECK; dirty
// logging off (Cancel); LOAD, CHECK.
func TestDeviceStateMigration(t *testing.T) {
	for _, pool := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			st := &fakeState{}
			d := startDevConfig(t, pool, true, nil, st)
			d.post(1, []byte("before"), []byte("before"))
			d.kick(1)
			d.waitDone(1, 1)

			d.ack(vhostuser.VHOST_USER_SET_FEATURES, u64(features))
			if c := st.take(); !slices.Equal(c, []string{"prepare"}) {
				t.Fatalf("calls after LOG_ALL on = %v, want [prepare]", c)
			}
			// Refused while the rings run.
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			if got := d.transferState(0, p[1]); got != 0x101 {
				t.Fatalf("SAVE with running rings = %#x, want 0x101", got)
			}
			unix.Close(p[0])
			for i := range d.q {
				d.recvCall(vhostuser.VHOST_USER_GET_VRING_BASE, vstate(uint32(i), 0))
			}
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			if got := d.transferState(0, p[1]); got != 0x100 {
				t.Fatalf("SAVE = %#x, want 0x100", got)
			}
			var out bytes.Buffer
			buf := make([]byte, 4096)
			for {
				n, err := linux.Read(p[0], buf)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				out.Write(buf[:n])
			}
			unix.Close(p[0])
			if out.String() != "saved state" {
				t.Fatalf("saved %q", out.String())
			}
			if v := d.call(vhostuser.VHOST_USER_CHECK_DEVICE_STATE, nil); v != 0 {
				t.Fatalf("CHECK after SAVE = %d, want 0", v)
			}
			d.ack(vhostuser.VHOST_USER_SET_FEATURES, u64(features&^vhostuser.VHOST_F_LOG_ALL))
			if c := st.take(); !slices.Equal(c, []string{"save", "cancel"}) {
				t.Fatalf("calls = %v, want [save cancel]", c)
			}

			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			if got := d.transferState(1, p[0]); got != 0x100 {
				t.Fatalf("LOAD = %#x, want 0x100", got)
			}
			linux.WriteAll(p[1], []byte("incoming state"))
			unix.Close(p[1])
			if v := d.call(vhostuser.VHOST_USER_CHECK_DEVICE_STATE, nil); v != 0 {
				t.Fatalf("CHECK after LOAD = %d, want 0", v)
			}
			if c := st.take(); !slices.Equal(c, []string{"load"}) || string(st.loaded) != "incoming state" {
				t.Fatalf("calls = %v, loaded %q", c, st.loaded)
			}
			// The rings restart after the transfer.
			for i := range d.q {
				d.setupRing(i)
			}
			d.post(1, []byte("after"), []byte("after"))
			d.kick(1)
			d.waitDone(1, 2)
		})
	}
}

// TestDeviceStateNotOffered checks that a device without a migration
// handler refuses transfers and keeps serving.
func TestDeviceStateNotOffered(t *testing.T) {
	d := startDev(t, 0, true)
	for i := range d.q {
		d.recvCall(vhostuser.VHOST_USER_GET_VRING_BASE, vstate(uint32(i), 0))
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if got := d.transferState(0, p[1]); got != 0x101 {
		t.Fatalf("SAVE without a handler = %#x, want 0x101", got)
	}
	if n, err := linux.Read(p[0], make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("read refused state pipe = %d, %v, want EOF", n, err)
	}
	unix.Close(p[0])
	if v := d.call(vhostuser.VHOST_USER_CHECK_DEVICE_STATE, nil); v != 1 {
		t.Fatalf("CHECK = %d, want 1", v)
	}
	d.call(vhostuser.VHOST_USER_GET_FEATURES, nil)
}

// TestStateBackendRefusesRunningQueues checks the device's own guard:
// Save and Load are not called while a queue worker runs.
func TestStateBackendRefusesRunningQueues(t *testing.T) {
	st := &fakeState{}
	b := stateBackend{&backend{d: newDevice(newFakeHandler(), Config{State: st})}}
	b.running.Add(1)
	if err := b.SaveState(io.Discard); err == nil {
		t.Error("SaveState with a running queue succeeded")
	}
	if err := b.LoadState(bytes.NewReader(nil)); err == nil {
		t.Error("LoadState with a running queue succeeded")
	}
	b.running.Add(-1)
	if err := b.SaveState(io.Discard); err != nil {
		t.Errorf("SaveState = %v", err)
	}
	if c := st.take(); !slices.Equal(c, []string{"save"}) {
		t.Errorf("calls = %v, want [save]", c)
	}
}
