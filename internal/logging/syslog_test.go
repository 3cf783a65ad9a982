package logging

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	h, err := dialSyslog("unixgram", path, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	l := slog.New(h)
	l.Debug("dropped")
	l.With("q", 1).Error("broken", "err", "no such file")
	l.Warn("careful")
	l.Info("hello")
	pid := strconv.Itoa(os.Getpid())
	for _, want := range []struct{ pri, msg string }{
		{"11", "broken q=1 err=\"no such file\""}, // LOG_USER|LOG_ERR
		{"12", "careful"},                         // LOG_USER|LOG_WARNING
		{"14", "hello"},                           // LOG_USER|LOG_INFO
	} {
		buf := make([]byte, 1024)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("receive syslog message: %v", err)
		}
		re := regexp.MustCompile(`^<` + want.pri + `>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d virtiofsd\[` + pid + `\]: ` + regexp.QuoteMeta(want.msg) + "\n?$")
		if got := string(buf[:n]); !re.MatchString(got) {
			t.Errorf("syslog message %q does not match %s", got, re)
		}
	}
}

// TestSyslogNoReconnect: once the logger's socket is gone, records are
// dropped; the handler never makes a new connection, which the seccomp
// filter would forbid (socket and connect) and the sandbox would make
// pointless.
func TestSyslogNoReconnect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	listen := func() int {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	first := listen()
	h, err := dialSyslog("unixgram", path, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	l := slog.New(h)
	l.Info("one")
	buf := make([]byte, 1024)
	if _, _, err := unix.Recvfrom(first, buf, 0); err != nil {
		t.Fatalf("first record: %v", err)
	}
	unix.Close(first)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	second := listen()
	defer unix.Close(second)
	l.Info("two")
	l.Info("three")
	if n, _, err := unix.Recvfrom(second, buf, 0); err != unix.EAGAIN {
		t.Errorf("a new logger socket got %q (%v); records must be dropped, not sent over a new connection", buf[:max(n, 0)], err)
	}
}
