package logging

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Syslog priorities: facility LOG_USER (1) times 8 plus the severity.
const (
	priUserErr     = 8 + 3
	priUserWarning = 8 + 4
	priUserInfo    = 8 + 6
	priUserDebug   = 8 + 7
)

// syslogPaths are the local system logger's sockets, tried in order.
var syslogPaths = []string{"/dev/log", "/var/run/syslog", "/var/run/log"}

// syslogConn is a connection to the system logger made once, at start-up.
// It is never re-established: inside the sandbox the logger's socket is
// out of reach and the seccomp filter forbids socket and connect, so a
// record that cannot be sent is dropped.
type syslogConn struct {
	mu  sync.Mutex
	fd  int
	pid string
	buf []byte // guarded by mu
}

// dialSyslogConn connects a datagram (or, failing that, stream) UNIX socket
// to addr, or to the first local logger socket that accepts when addr is
// empty.
func dialSyslogConn(network, addr string) (*syslogConn, error) {
	types := []int{unix.SOCK_DGRAM, unix.SOCK_STREAM}
	switch network {
	case "unixgram":
		types = types[:1]
	case "unix":
		types = types[1:]
	case "":
	default:
		return nil, errors.New("syslog: unsupported network " + network)
	}
	paths := syslogPaths
	if addr != "" {
		paths = []string{addr}
	}
	var last error = errors.New("syslog: no local logger socket")
	for _, p := range paths {
		for _, typ := range types {
			fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: p})
			for err == unix.EINTR {
				// A connect interrupted by a signal goes on in the
				// background; wait for its outcome as connect(2) says.
				err = waitConnected(fd)
			}
			if err == nil {
				return &syslogConn{fd: fd, pid: strconv.Itoa(os.Getpid())}, nil
			}
			unix.Close(fd)
			last = err
		}
	}
	return nil, errors.New("Unix syslog delivery error: " + last.Error())
}

// waitConnected waits for a connect that was interrupted and returns its
// result.
func waitConnected(fd int) error {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if _, err := unix.Poll(pfd, -1); err != nil {
		return err
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

// send writes one record in the local logger format
// "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG\n".
func (c *syslogConn) send(pri int, msg string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf[:0]
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, '>')
	b = time.Now().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = append(b, Target...)
	b = append(b, '[')
	b = append(b, c.pid...)
	b = append(b, "]: "...)
	b = append(b, msg...)
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		b = append(b, '\n')
	}
	c.buf = b
	for {
		_, err := unix.Write(c.fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// SyslogHandler is a slog.Handler that sends records to the system logger
// with facility LOG_USER and tag "virtiofsd". The syslog daemon adds the
// timestamp; the message text is the record message followed by its
// attributes as key=value pairs.
type SyslogHandler struct {
	w      *syslogConn
	level  slog.Level
	prefix string
	group  string
}

// NewSyslog connects to the local system logger. Records below level are
// dropped.
func NewSyslog(level slog.Level) (*SyslogHandler, error) {
	return dialSyslog("", "", level)
}

// dialSyslog connects to the system logger at addr over network, or to the
// local one when both are empty.
func dialSyslog(network, addr string, level slog.Level) (*SyslogHandler, error) {
	w, err := dialSyslogConn(network, addr)
	if err != nil {
		return nil, err
	}
	return &SyslogHandler{w: w, level: level}, nil
}

// Enabled implements slog.Handler.Enabled.
func (h *SyslogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.level < LevelOff && l >= h.level
}

// Handle implements slog.Handler.Handle.
func (h *SyslogHandler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 64+len(r.Message))
	buf = append(buf, r.Message...)
	buf = append(buf, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, h.group, a)
		return true
	})
	msg := string(buf)
	switch {
	case r.Level >= slog.LevelError:
		return h.w.send(priUserErr, msg)
	case r.Level >= slog.LevelWarn:
		return h.w.send(priUserWarning, msg)
	case r.Level >= slog.LevelInfo:
		return h.w.send(priUserInfo, msg)
	}
	return h.w.send(priUserDebug, msg)
}

// WithAttrs implements slog.Handler.WithAttrs.
func (h *SyslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	var buf []byte
	for _, a := range attrs {
		buf = appendAttr(buf, h.group, a)
	}
	h2.prefix = h.prefix + string(buf)
	return &h2
}

// WithGroup implements slog.Handler.WithGroup.
func (h *SyslogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}
