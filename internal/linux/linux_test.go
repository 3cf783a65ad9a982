package linux

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func openFDCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sp[0]); unix.Close(sp[1]) })
	return sp[0], sp[1]
}

func TestRecvMsgFDs(t *testing.T) {
	a, b := socketpair(t)
	before := openFDCount(t)
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(a, []byte("hello"), unix.UnixRights(ev, ev), nil, 0); err != nil {
		t.Fatal(err)
	}
	Close(ev)
	oob := make([]byte, unix.CmsgSpace(MaxFDs*4))
	p := make([]byte, 5)
	n, fds, err := RecvMsg(b, p, oob)
	if err != nil || n != 5 || len(fds) != 2 {
		t.Fatalf("RecvMsg = %d, %v, %v, want 5, 2 fds, nil", n, fds, err)
	}
	flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd flags = %#x, %v, want FD_CLOEXEC", flags, err)
	}
	CloseAll(fds)
	if got := openFDCount(t); got != before {
		t.Errorf("open fds = %d, want %d", got, before)
	}
}

func TestRecvMsgTruncatedClosesAll(t *testing.T) {
	a, b := socketpair(t)
	before := openFDCount(t)
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	many := make([]int, 40)
	for i := range many {
		many[i] = ev
	}
	if err := unix.Sendmsg(a, []byte("x"), unix.UnixRights(many...), nil, 0); err != nil {
		t.Fatal(err)
	}
	Close(ev)
	oob := make([]byte, unix.CmsgSpace(MaxFDs*4))
	_, fds, err := RecvMsg(b, make([]byte, 1), oob)
	if err == nil || fds != nil {
		t.Fatalf("RecvMsg with 40 fds = %v, %v, want error", fds, err)
	}
	if got := openFDCount(t); got != before {
		t.Errorf("open fds = %d, want %d", got, before)
	}
}

func TestEventfd(t *testing.T) {
	fd, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	if err := Drain(fd); err != nil {
		t.Fatalf("Drain(empty) = %v", err)
	}
	if err := Signal(fd); err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	if n, err := Read(fd, buf[:]); n != 8 || err != nil || buf[0] != 1 {
		t.Fatalf("Read = %d, %v, %v, want 8 bytes of value 1", n, err, buf)
	}
}

func TestProbeUnshareFS(t *testing.T) {
	// Root in the test environment may or may not be allowed; the probe must
	// simply agree with itself.
	if err1, err2 := ProbeUnshareFS(), ProbeUnshareFS(); err1 != err2 {
		t.Errorf("ProbeUnshareFS not cached: %v vs %v", err1, err2)
	}
}

func TestPoll(t *testing.T) {
	fd, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := Poll(fds, 0); n != 0 || err != nil {
		t.Fatalf("Poll(empty eventfd) = %d, %v, want 0, nil", n, err)
	}
	if err := Signal(fd); err != nil {
		t.Fatal(err)
	}
	if n, err := Poll(fds, -1); n != 1 || err != nil || fds[0].Revents&unix.POLLIN == 0 {
		t.Fatalf("Poll(signalled eventfd) = %d, %v, revents %#x, want 1, nil, POLLIN", n, err, fds[0].Revents)
	}
}

// TestPollRetriesEINTR interrupts a waiting Poll with signals (SIGURG, the
// signal the Go runtime uses for preemption): it must keep waiting until
// the timeout instead of reporting EINTR.
func TestPollRetriesEINTR(t *testing.T) {
	fd, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	type result struct {
		n   int
		err error
	}
	tids := make(chan int, 1)
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := Poll(fds, 300*time.Millisecond)
		res <- result{n, err}
	}()
	tid := <-tids
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-res:
			if r.n != 0 || r.err != nil {
				t.Fatalf("Poll interrupted by signals = %d, %v, want 0, nil", r.n, r.err)
			}
			return
		case <-tick.C:
			unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
		}
	}
}
