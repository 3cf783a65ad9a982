package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is the front-end end of a vhost-user connection.
type Conn struct {
	FD      int
	timeout time.Duration
	alive   func() error
	closed  bool
}

// Message is one received vhost-user message.
type Message struct {
	Request uint32
	Flags   uint32
	Payload []byte
}

// Dial connects to a back-end listening on the UNIX socket at path.
func Dial(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dial %s: socket: %w", path, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("dial %s: %w", path, err)
	}
	return fd, nil
}

func (c *Conn) aliveSuffix() string {
	if c.alive == nil {
		return ""
	}
	if err := c.alive(); err != nil {
		return " (" + err.Error() + ")"
	}
	return " (daemon still running)"
}

// SendRaw sends a header with arbitrary fields followed by payload, with
// fds attached to the first byte. size need not match len(payload).
func (c *Conn) SendRaw(request, flags, size uint32, payload []byte, fds []int) error {
	buf := make([]byte, HeaderSize+len(payload))
	binary.LittleEndian.PutUint32(buf[0:], request)
	binary.LittleEndian.PutUint32(buf[4:], flags)
	binary.LittleEndian.PutUint32(buf[8:], size)
	copy(buf[HeaderSize:], payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for len(buf) > 0 {
		n, err := unix.SendmsgN(c.FD, buf, oob, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err == unix.EPIPE || err == unix.ECONNRESET {
				return fmt.Errorf("send vhost-user request %d: %w", request, ErrClosed)
			}
			return fmt.Errorf("send vhost-user request %d: %w", request, err)
		}
		buf, oob = buf[n:], nil
	}
	return nil
}

// Send sends a well-formed request (version 1, size = len(payload)).
func (c *Conn) Send(request, flags uint32, payload []byte, fds []int) error {
	return c.SendRaw(request, VHOST_USER_VERSION|flags, uint32(len(payload)), payload, fds)
}

// waitReadable waits until fd is readable, the connection closes, the
// daemon dies or the deadline passes. fd may be c.FD itself.
func (c *Conn) waitReadable(fd int, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w%s", ErrTimeout, c.aliveSuffix())
		}
		slice := min(left, 100*time.Millisecond)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if fd != c.FD {
			pfd = append(pfd, unix.PollFd{Fd: int32(c.FD), Events: unix.POLLRDHUP})
		}
		n, err := unix.Poll(pfd, int(slice/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if n > 0 {
			// A notification that arrived together with the hang-up is
			// still delivered.
			if pfd[0].Revents != 0 {
				return nil
			}
			if len(pfd) > 1 && pfd[1].Revents != 0 {
				c.closed = true
				return ErrClosed
			}
		}
		if c.alive != nil {
			if err := c.alive(); err != nil {
				return fmt.Errorf("%w: %v", ErrClosed, err)
			}
		}
	}
}

func (c *Conn) readFull(b []byte, deadline time.Time) (int, error) {
	got := 0
	for got < len(b) {
		if err := c.waitReadable(c.FD, deadline); err != nil {
			return got, err
		}
		oob := make([]byte, unix.CmsgSpace(32*4))
		n, oobn, _, _, err := unix.Recvmsg(c.FD, b[got:], oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			if err == unix.ECONNRESET {
				c.closed = true
				return got, ErrClosed
			}
			return got, err
		}
		closeReceivedFDs(oob[:oobn])
		if n == 0 {
			c.closed = true
			return got, ErrClosed
		}
		got += n
	}
	return got, nil
}

func closeReceivedFDs(oob []byte) {
	if len(oob) == 0 {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// Recv reads one message from the back-end.
func (c *Conn) Recv() (Message, error) {
	deadline := time.Now().Add(c.timeout)
	var hdr [HeaderSize]byte
	if _, err := c.readFull(hdr[:], deadline); err != nil {
		return Message{}, fmt.Errorf("receive vhost-user header: %w", err)
	}
	m := Message{
		Request: binary.LittleEndian.Uint32(hdr[0:]),
		Flags:   binary.LittleEndian.Uint32(hdr[4:]),
	}
	size := binary.LittleEndian.Uint32(hdr[8:])
	if size > MaxPayload {
		return m, fmt.Errorf("receive vhost-user reply %d: payload size %d too large", m.Request, size)
	}
	m.Payload = make([]byte, size)
	if _, err := c.readFull(m.Payload, deadline); err != nil {
		return m, fmt.Errorf("receive vhost-user payload: %w", err)
	}
	return m, nil
}

// RecvReply reads a reply and checks it the way QEMU does: flags exactly
// version|REPLY, request code matching.
func (c *Conn) RecvReply(request uint32) ([]byte, error) {
	m, err := c.Recv()
	if err != nil {
		return nil, err
	}
	if m.Flags != VHOST_USER_VERSION|VHOST_USER_REPLY {
		return nil, fmt.Errorf("receive reply to request %d: flags %#x, want %#x", request, m.Flags, VHOST_USER_VERSION|VHOST_USER_REPLY)
	}
	if m.Request != request {
		return nil, fmt.Errorf("receive reply to request %d: got reply to request %d", request, m.Request)
	}
	return m.Payload, nil
}

// WaitClosed waits until the back-end closes the connection and returns
// the messages (for example a failure ack) it sent before closing.
func (c *Conn) WaitClosed(timeout time.Duration) ([]Message, error) {
	deadline := time.Now().Add(timeout)
	var msgs []Message
	for {
		var hdr [HeaderSize]byte
		n, err := c.readFull(hdr[:], deadline)
		if errors.Is(err, ErrClosed) && n == 0 {
			return msgs, nil
		}
		if err != nil {
			return msgs, fmt.Errorf("wait for close: %w", err)
		}
		m := Message{Request: binary.LittleEndian.Uint32(hdr[0:]), Flags: binary.LittleEndian.Uint32(hdr[4:])}
		size := binary.LittleEndian.Uint32(hdr[8:])
		if size > MaxPayload {
			return msgs, fmt.Errorf("wait for close: message with payload size %d", size)
		}
		m.Payload = make([]byte, size)
		if _, err := c.readFull(m.Payload, deadline); err != nil {
			return msgs, fmt.Errorf("wait for close: %w", err)
		}
		msgs = append(msgs, m)
	}
}

// SetTimeout changes the bound on every wait.
func (c *Conn) SetTimeout(d time.Duration) { c.timeout = d }

// Closed reports whether the back-end was seen closing the connection.
func (c *Conn) Closed() bool { return c.closed }

// Close closes the front-end's end of the socket.
func (c *Conn) Close() error {
	if c.FD < 0 {
		return nil
	}
	err := unix.Close(c.FD)
	c.FD = -1
	return err
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func vringState(index, num uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, index)
	return binary.LittleEndian.AppendUint32(b, num)
}
