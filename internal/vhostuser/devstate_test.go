package vhostuser

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

const stateProto = testProto | VHOST_USER_PROTOCOL_F_DEVICE_STATE

// fakeStateBackend is a fakeBackend with device state support. save and
// load run on the transfer goroutine; started and returned receive one
// value when a SaveState or LoadState call starts and returns.
type fakeStateBackend struct {
	*fakeBackend
	save     func(w io.Writer) error
	load     func(r io.Reader) error
	started  chan struct{}
	returned chan struct{}
}

var _ StateBackend = (*fakeStateBackend)(nil)

func newStateBackend() *fakeStateBackend {
	return &fakeStateBackend{
		fakeBackend: &fakeBackend{proto: stateProto},
		started:     make(chan struct{}, 4),
		returned:    make(chan struct{}, 4),
	}
}

func (b *fakeStateBackend) LogAll(on bool) { b.record("logall %v", on) }

func (b *fakeStateBackend) SaveState(w io.Writer) error {
	b.started <- struct{}{}
	defer func() { b.returned <- struct{}{} }()
	return b.save(w)
}

func (b *fakeStateBackend) LoadState(r io.Reader) error {
	b.started <- struct{}{}
	defer func() { b.returned <- struct{}{} }()
	return b.load(r)
}

func startStateServer(t *testing.T, b *fakeStateBackend) *frontend {
	t.Helper()
	f := startServerWith(t, b.fakeBackend, b)
	f.negotiate(stateProto)
	return f
}

// pipe returns a close-on-exec pipe {read, write}.
func pipe(t *testing.T) [2]int {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p
}

// setState sends SET_DEVICE_STATE_FD with fd, closes the test's copy and
// returns the reply.
func (f *frontend) setState(dir, phase uint32, fd int) uint64 {
	f.t.Helper()
	f.send(VHOST_USER_SET_DEVICE_STATE_FD, 0, vstate(dir, phase), fd)
	unix.Close(fd)
	return f.recvU64(VHOST_USER_SET_DEVICE_STATE_FD)
}

// readAll reads fd to EOF.
func readAll(t *testing.T, fd int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := linux.Read(fd, buf)
		if err != nil {
			t.Fatalf("read state pipe: %v", err)
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

// waitSignal waits for a value on c.
func waitSignal(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(30 * time.Second): // bounds a failing test only
		t.Fatalf("%s did not happen", what)
	}
}

// signaled reports whether c holds a value, taking it.
func signaled(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestDeviceStateSave checks that the reply comes while the backend is
// still blocked, that other requests are answered meanwhile, that the
// saved bytes arrive followed by EOF and that CHECK reports success.
func TestDeviceStateSave(t *testing.T) {
	b := newStateBackend()
	state := bytes.Repeat([]byte("device state "), 20000) // larger than a pipe buffer
	release := make(chan struct{})
	b.save = func(w io.Writer) error {
		<-release
		_, err := w.Write(state)
		return err
	}
	f := startStateServer(t, b)
	p := pipe(t)
	defer unix.Close(p[0])
	if got := f.setState(0, 0, p[1]); got != 0x100 {
		t.Fatalf("SET_DEVICE_STATE_FD(SAVE) = %#x, want 0x100", got)
	}
	waitSignal(t, b.started, "SaveState call")
	if got := f.call(VHOST_USER_GET_FEATURES); got != testFeatures {
		t.Fatalf("GET_FEATURES during the transfer = %#x", got)
	}
	if signaled(b.returned) {
		t.Fatal("SaveState returned before it was released")
	}
	close(release)
	if got := readAll(t, p[0]); !bytes.Equal(got, state) {
		t.Fatalf("saved %d bytes, want the %d written", len(got), len(state))
	}
	if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 0 {
		t.Fatalf("CHECK_DEVICE_STATE = %d, want 0", got)
	}
	// The transfer was consumed by CHECK.
	if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
		t.Fatalf("second CHECK_DEVICE_STATE = %d, want 1", got)
	}
}

// TestDeviceStateLoad checks that LoadState gets exactly the bytes the
// front-end wrote, up to its EOF.
func TestDeviceStateLoad(t *testing.T) {
	b := newStateBackend()
	var got []byte
	b.load = func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	}
	f := startStateServer(t, b)
	p := pipe(t)
	if got := f.setState(1, 0, p[0]); got != 0x100 {
		t.Fatalf("SET_DEVICE_STATE_FD(LOAD) = %#x, want 0x100", got)
	}
	state := bytes.Repeat([]byte{1, 2, 3, 0, 255}, 50000)
	if err := linux.WriteAll(p[1], state); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[1])
	if v := f.call(VHOST_USER_CHECK_DEVICE_STATE); v != 0 {
		t.Fatalf("CHECK_DEVICE_STATE = %d, want 0", v)
	}
	if !bytes.Equal(got, state) {
		t.Fatalf("loaded %d bytes, want the %d written", len(got), len(state))
	}
}

// TestDeviceStateFailure checks that a failing transfer is reported by
// CHECK, including a save whose reader went away (EPIPE).
func TestDeviceStateFailure(t *testing.T) {
	t.Run("backend error", func(t *testing.T) {
		b := newStateBackend()
		b.save = func(w io.Writer) error {
			w.Write([]byte("partial"))
			return errors.New("cannot save")
		}
		f := startStateServer(t, b)
		p := pipe(t)
		defer unix.Close(p[0])
		if got := f.setState(0, 0, p[1]); got != 0x100 {
			t.Fatalf("SET_DEVICE_STATE_FD = %#x, want 0x100", got)
		}
		if got := readAll(t, p[0]); string(got) != "partial" {
			t.Fatalf("saved %q, want the partial stream then EOF", got)
		}
		if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
			t.Fatalf("CHECK_DEVICE_STATE = %d, want 1", got)
		}
		f.noReply()
	})
	t.Run("reader gone", func(t *testing.T) {
		b := newStateBackend()
		b.save = func(w io.Writer) error {
			_, err := w.Write(make([]byte, 1<<20))
			if !errors.Is(err, unix.EPIPE) {
				t.Errorf("write to a pipe without reader: %v, want EPIPE", err)
			}
			return err
		}
		f := startStateServer(t, b)
		p := pipe(t)
		unix.Close(p[0])
		if got := f.setState(0, 0, p[1]); got != 0x100 {
			t.Fatalf("SET_DEVICE_STATE_FD = %#x, want 0x100", got)
		}
		if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
			t.Fatalf("CHECK_DEVICE_STATE = %d, want 1", got)
		}
	})
	t.Run("panic", func(t *testing.T) {
		b := newStateBackend()
		b.load = func(r io.Reader) error { panic("bad state") }
		f := startStateServer(t, b)
		p := pipe(t)
		defer unix.Close(p[1])
		if got := f.setState(1, 0, p[0]); got != 0x100 {
			t.Fatalf("SET_DEVICE_STATE_FD = %#x, want 0x100", got)
		}
		if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
			t.Fatalf("CHECK_DEVICE_STATE = %d, want 1", got)
		}
	})
}

// TestDeviceStateRefused checks every refusal: the reply is 0x101, the
// pipe end is closed (EOF for the front-end), the backend is not called
// and the connection stays.
func TestDeviceStateRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dir, phase uint32
		noState    bool
	}{
		{"bad direction", 2, 0, false},
		{"bad phase", 0, 1, false},
		{"huge phase", 1, 0xffffffff, false},
		{"no state support", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newStateBackend()
			var f *frontend
			if tc.noState {
				f = startServer(t, b.fakeBackend)
				f.negotiate(stateProto)
			} else {
				f = startStateServer(t, b)
			}
			p := pipe(t)
			defer unix.Close(p[0])
			if got := f.setState(tc.dir, tc.phase, p[1]); got != 0x101 {
				t.Fatalf("SET_DEVICE_STATE_FD(%d, %d) = %#x, want 0x101", tc.dir, tc.phase, got)
			}
			if got := readAll(t, p[0]); len(got) != 0 {
				t.Fatalf("refused transfer wrote %q", got)
			}
			if signaled(b.started) {
				t.Fatal("backend called for a refused transfer")
			}
			if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
				t.Fatalf("CHECK_DEVICE_STATE = %d, want 1", got)
			}
			f.noReply()
		})
	}
}

// TestDeviceStateCheckWithoutTransfer checks that CHECK without a
// transfer fails and keeps the connection.
func TestDeviceStateCheckWithoutTransfer(t *testing.T) {
	f := startStateServer(t, newStateBackend())
	if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
		t.Fatalf("CHECK_DEVICE_STATE = %d, want 1", got)
	}
	f.noReply()
	if err := f.wait(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

// TestDeviceStateSecondTransfer checks that a transfer still running
// refuses another one, and that a finished, unchecked one is replaced.
func TestDeviceStateSecondTransfer(t *testing.T) {
	b := newStateBackend()
	release := make(chan struct{})
	b.save = func(w io.Writer) error {
		<-release
		return nil
	}
	f := startStateServer(t, b)
	p := pipe(t)
	defer unix.Close(p[0])
	if got := f.setState(0, 0, p[1]); got != 0x100 {
		t.Fatalf("first SET_DEVICE_STATE_FD = %#x, want 0x100", got)
	}
	q := pipe(t)
	defer unix.Close(q[0])
	if got := f.setState(0, 0, q[1]); got != 0x101 {
		t.Fatalf("SET_DEVICE_STATE_FD during a transfer = %#x, want 0x101", got)
	}
	close(release)
	readAll(t, p[0])
	waitSignal(t, b.returned, "end of the first transfer")
	r := pipe(t)
	defer unix.Close(r[0])
	if got := f.setState(0, 0, r[1]); got != 0x100 {
		t.Fatalf("SET_DEVICE_STATE_FD after an unchecked transfer = %#x, want 0x100", got)
	}
	if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 0 {
		t.Fatalf("CHECK_DEVICE_STATE = %d, want 0", got)
	}
}

// TestDeviceStateRings checks that a transfer is refused while a ring
// runs, accepted after QEMU's GET_VRING_BASE, and that a ring cannot be
// started while the transfer runs.
func TestDeviceStateRings(t *testing.T) {
	b := newStateBackend()
	release := make(chan struct{})
	b.save = func(w io.Writer) error {
		<-release
		return nil
	}
	f := startStateServer(t, b)
	kick := eventfd(t)
	defer unix.Close(kick)
	f.ack(VHOST_USER_SET_VRING_KICK, u64(1), kick)
	p := pipe(t)
	defer unix.Close(p[0])
	if got := f.setState(0, 0, p[1]); got != 0x101 {
		t.Fatalf("SET_DEVICE_STATE_FD with a running ring = %#x, want 0x101", got)
	}
	f.send(VHOST_USER_GET_VRING_BASE, 0, vstate(1, 0))
	f.recv()
	q := pipe(t)
	defer unix.Close(q[0])
	if got := f.setState(0, 0, q[1]); got != 0x100 {
		t.Fatalf("SET_DEVICE_STATE_FD after GET_VRING_BASE = %#x, want 0x100", got)
	}
	b.takeEvents()
	if got := f.ack(VHOST_USER_SET_VRING_KICK, u64(1), kick); got != 1 {
		t.Fatalf("SET_VRING_KICK during a transfer: ack %d, want 1", got)
	}
	if ev := b.takeEvents(); slices.Contains(ev, "start 1 enabled=false") {
		t.Fatalf("ring started during a transfer: %v", ev)
	}
	// The end of the connection waits for the transfer, which blocks on
	// release rather than on its pipe.
	close(release)
	f.expectClosed()
}

// TestDeviceStateShutdown checks that the end of the connection and
// RESET_DEVICE end a transfer blocked on its pipe and wait for it.
func TestDeviceStateShutdown(t *testing.T) {
	blockedSave := func(w io.Writer) error {
		// The front-end never reads: this blocks once the pipe is full.
		for {
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				return err
			}
		}
	}
	blockedLoad := func(r io.Reader) error {
		// The front-end never writes nor closes.
		_, err := io.ReadAll(r)
		return err
	}
	for _, tc := range []struct {
		name  string
		dir   uint32
		reset bool
	}{
		{"save disconnect", 0, false},
		{"load disconnect", 1, false},
		{"save reset", 0, true},
		{"load reset", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newStateBackend()
			b.save, b.load = blockedSave, blockedLoad
			f := startStateServer(t, b)
			// The test keeps the other end open and idle.
			p := pipe(t)
			fd, keep := p[1], p[0]
			if tc.dir == 1 {
				fd, keep = p[0], p[1]
			}
			defer unix.Close(keep)
			if got := f.setState(tc.dir, 0, fd); got != 0x100 {
				t.Fatalf("SET_DEVICE_STATE_FD = %#x, want 0x100", got)
			}
			waitSignal(t, b.started, "transfer start")
			if tc.reset {
				if got := f.ack(VHOST_USER_RESET_DEVICE, nil); got != 0 {
					t.Fatalf("RESET_DEVICE ack = %d", got)
				}
				// RESET_DEVICE replied only after the transfer ended.
				if !signaled(b.returned) {
					t.Fatal("RESET_DEVICE replied before the transfer ended")
				}
				if got := f.call(VHOST_USER_CHECK_DEVICE_STATE); got != 1 {
					t.Fatalf("CHECK_DEVICE_STATE after RESET_DEVICE = %d, want 1", got)
				}
			}
			if err := f.wait(); err != nil {
				t.Fatalf("Serve = %v", err)
			}
			// Serve returned only after the transfer goroutine.
			if !tc.reset && !signaled(b.returned) {
				t.Fatal("Serve returned while the transfer still ran")
			}
		})
	}
}

// TestLogAllTransitions checks that LogAll is called exactly when
// VHOST_F_LOG_ALL changes in the acked features.
func TestLogAllTransitions(t *testing.T) {
	b := newStateBackend()
	f := startStateServer(t, b)
	const base = testFeatures &^ VHOST_F_LOG_ALL
	steps := []struct {
		req  Request
		feat uint64
		want []string
	}{
		{VHOST_USER_SET_FEATURES, base, nil},
		{VHOST_USER_SET_FEATURES, base | VHOST_F_LOG_ALL, []string{"logall true"}},
		{VHOST_USER_SET_FEATURES, base | VHOST_F_LOG_ALL, nil},
		{VHOST_USER_SET_FEATURES, base, []string{"logall false"}},
		{VHOST_USER_SET_FEATURES, base, nil},
		{VHOST_USER_SET_FEATURES, base | VHOST_F_LOG_ALL, []string{"logall true"}},
		{VHOST_USER_RESET_DEVICE, 0, []string{"logall false", "reset"}},
		{VHOST_USER_SET_FEATURES, base | VHOST_F_LOG_ALL, []string{"logall true"}},
		{VHOST_USER_RESET_OWNER, 0, []string{"logall false"}},
	}
	for i, st := range steps {
		var payload []byte
		if st.req == VHOST_USER_SET_FEATURES {
			payload = u64(st.feat)
		}
		if st.req == VHOST_USER_RESET_OWNER {
			f.send(st.req, 0, nil)
			f.noReply()
		} else if got := f.ack(st.req, payload); got != 0 {
			t.Fatalf("step %d: %v ack = %d", i, st.req, got)
		}
		if ev := b.takeEvents(); !slices.Equal(ev, st.want) {
			t.Fatalf("step %d: %v(%#x): events %v, want %v", i, st.req, st.feat, ev, st.want)
		}
	}
	// RESET_OWNER also dropped the acked protocol features, so REPLY_ACK
	// is off from the next SET_FEATURES on.
	f.send(VHOST_USER_SET_FEATURES, 0, u64(base|VHOST_F_LOG_ALL))
	f.noReply()
	if ev := b.takeEvents(); !slices.Equal(ev, []string{"logall true"}) {
		t.Fatalf("events = %v, want [logall true]", ev)
	}
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	if ev := b.takeEvents(); !slices.Equal(ev, []string{"logall false"}) {
		t.Fatalf("events at disconnect = %v, want [logall false]", ev)
	}
}
