package linux

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MaxFDs is the largest number of descriptors accepted with one message.
const MaxFDs = 32

// retry calls f until it fails with something other than EINTR.
func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// Read wraps unix.Read, retrying on EINTR.
func Read(fd int, p []byte) (int, error) {
	n, err := retry(func() (int, error) { return unix.Read(fd, p) })
	if err != nil {
		return n, os.NewSyscallError("read", err)
	}
	return n, nil
}

// Write wraps unix.Write, retrying on EINTR.
func Write(fd int, p []byte) (int, error) {
	n, err := retry(func() (int, error) { return unix.Write(fd, p) })
	if err != nil {
		return n, os.NewSyscallError("write", err)
	}
	return n, nil
}

// WriteAll writes all of p to the stream socket or pipe fd.
func WriteAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := Write(fd, p)
		if err != nil {
			return err
		}
		if n == 0 {
			return os.NewSyscallError("write", unix.EIO)
		}
		p = p[n:]
	}
	return nil
}

// EpollWait wraps unix.EpollWait, retrying on EINTR.
func EpollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	n, err := retry(func() (int, error) { return unix.EpollWait(epfd, events, msec) })
	if err != nil {
		return n, os.NewSyscallError("epoll_wait", err)
	}
	return n, nil
}

// Poll wraps unix.Poll, retrying on EINTR with the time that is left. A
// negative timeout waits without limit. It returns the number of entries of
// fds with events, 0 when the timeout expired.
func Poll(fds []unix.PollFd, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		msec := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			// Round up: poll(2) would otherwise return early and
			// spin on the last sub-millisecond.
			msec = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := unix.Poll(fds, msec)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, os.NewSyscallError("poll", err)
		}
		return n, nil
	}
}

// Close closes fd if it is not negative. Errors are ignored: after close(2)
// returns the descriptor is released whatever the result.
func Close(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// CloseAll closes every descriptor in fds.
func CloseAll(fds []int) {
	for _, fd := range fds {
		Close(fd)
	}
}

// RecvMsg receives into p from the stream socket fd together with at most
// MaxFDs descriptors, which are received close-on-exec. oob must hold at
// least unix.CmsgSpace(MaxFDs*4) bytes. n == 0 with a nil error means the
// peer closed the connection. The caller owns the returned descriptors;
// on error none are left open.
func RecvMsg(fd int, p, oob []byte) (n int, fds []int, err error) {
	var oobn, flags int
	for {
		n, oobn, flags, _, err = unix.Recvmsg(fd, p, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, nil, os.NewSyscallError("recvmsg", err)
	}
	if oobn > 0 {
		fds, err = parseRights(oob[:oobn])
	}
	if err == nil && flags&unix.MSG_CTRUNC != 0 {
		err = fmt.Errorf("receive descriptors: more than %d or truncated control data", MaxFDs)
	}
	if err != nil {
		CloseAll(fds)
		return 0, nil, err
	}
	return n, fds, nil
}

// parseRights extracts every SCM_RIGHTS descriptor from control data. Even
// on error it returns all descriptors it found, so that they can be closed.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	var bad error
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			bad = fmt.Errorf("parse control message: unexpected level %d type %d", m.Header.Level, m.Header.Type)
			continue
		}
		got, err := unix.ParseUnixRights(m)
		if err != nil {
			bad = fmt.Errorf("parse control message: %w", err)
			continue
		}
		fds = append(fds, got...)
	}
	return fds, bad
}

// NewEventfd returns a close-on-exec, non-blocking eventfd.
func NewEventfd() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, os.NewSyscallError("eventfd", err)
	}
	return fd, nil
}

// UnshareFS gives the calling OS thread its own fs context (cwd, root,
// umask) with unshare(CLONE_FS).
//
// Preconditions: the calling goroutine is locked to its OS thread and stays
// locked for as long as it relies on the private context.
func UnshareFS() error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare(CLONE_FS)", err)
	}
	return nil
}

// ProbeUnshareFS reports whether unshare(CLONE_FS) is permitted, by trying
// it once on a throw-away thread. The thread exits still locked, so the
// runtime terminates it instead of reusing its altered state. The result is
// computed once per process.
var ProbeUnshareFS = sync.OnceValue(func() error {
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread dies with the goroutine.
		res <- UnshareFS()
	}()
	return <-res
})
