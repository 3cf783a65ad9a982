package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSocketParent(t *testing.T) {
	for _, tt := range []struct {
		path, parent string
		ok           bool
	}{
		{"", "", false},
		{"/", "", false},
		{"//", "", false},
		{"vfs.sock", "", true},
		{"./vfs.sock", ".", true},
		{"/vfs.sock", "/", true},
		{"/run/vfs.sock", "/run", true},
		{"/run//vfs.sock", "/run", true},
		{"/run/dir/", "/run", true},
		{"a/b", "a", true},
	} {
		parent, ok := socketParent(tt.path)
		if parent != tt.parent || ok != tt.ok {
			t.Errorf("socketParent(%q) = %q, %v; want %q, %v", tt.path, parent, ok, tt.parent, tt.ok)
		}
	}
}

func TestOSErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{unix.EAGAIN, "Resource temporarily unavailable (os error 11)"},
		{&os.PathError{Op: "open", Path: "/x", Err: unix.ENOTDIR}, "Not a directory (os error 20)"},
		{os.NewSyscallError("bind", unix.EADDRINUSE), "Address already in use (os error 98)"},
		{errors.New("plain"), "plain"},
	} {
		if got := osErrorText(tt.err); got != tt.want {
			t.Errorf("osErrorText(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// fakeRlimit simulates RLIMIT_NOFILE with an unprivileged process: the
// hard limit can be lowered but not raised.
type fakeRlimit struct {
	nrOpen uint64
	cur    unix.Rlimit
	sets   []unix.Rlimit
}

func (f *fakeRlimit) ops() rlimitOps {
	return rlimitOps{
		nrOpen: func() (uint64, error) { return f.nrOpen, nil },
		get:    func() (unix.Rlimit, error) { return f.cur, nil },
		set: func(r unix.Rlimit) error {
			f.sets = append(f.sets, r)
			if r.Max > f.cur.Max || r.Cur > r.Max {
				return unix.EPERM
			}
			f.cur = r
			return nil
		},
	}
}

func TestSetNofile(t *testing.T) {
	for _, tt := range []struct {
		name      string
		nrOpen    uint64
		cur       unix.Rlimit
		requested uint64
		given     bool
		want      uint64
		wantErr   string
		wantWarn  string
	}{
		{"zero keeps", 1 << 20, unix.Rlimit{Cur: 1024, Max: 4096}, 0, true, 1024, "", ""},
		{"explicit", 1 << 20, unix.Rlimit{Cur: 1024, Max: 4096}, 2000, true, 2000, "", ""},
		{"explicit above nr_open", 1 << 20, unix.Rlimit{Cur: 1024, Max: 4096}, 1<<20 + 1, true, 0, "set open file limit: above the system maximum 1048576", ""},
		{"explicit not permitted", 1 << 20, unix.Rlimit{Cur: 1024, Max: 4096}, 8192, true, 0, "operation not permitted", ""},
		{"already high", 1 << 21, unix.Rlimit{Cur: 1_000_000, Max: 1_000_000}, 0, false, 1_000_000, "", ""},
		{"default raised", 1 << 21, unix.Rlimit{Cur: 1024, Max: 1 << 21}, 0, false, 1_000_000, "", ""},
		{"default capped by nr_open", 500_000, unix.Rlimit{Cur: 1024, Max: 500_000}, 0, false, 500_000, "", ""},
		{"default falls back to hard limit", 1 << 20, unix.Rlimit{Cur: 1024, Max: 20000}, 0, false, 20000, "",
			"Failure when trying to set the limit to 1000000, the hard limit (20000) of open file descriptors is used instead."},
	} {
		f := &fakeRlimit{nrOpen: tt.nrOpen, cur: tt.cur}
		var warned string
		got, err := setNofile(f.ops(), tt.requested, tt.given, func(s string) { warned = s })
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.wantErr || warned != tt.wantWarn {
			t.Errorf("%s: setNofile() = %d, %q, warning %q; want %d, %q, %q", tt.name, got, gotErr, warned, tt.want, tt.wantErr, tt.wantWarn)
		}
		if err == nil && f.cur.Cur != got {
			t.Errorf("%s: soft limit is %d after setNofile returned %d", tt.name, f.cur.Cur, got)
		}
	}
}

func TestFDBudget(t *testing.T) {
	for _, tt := range []struct {
		limit   uint64
		pool    int
		budget  int
		reserve uint64
		ok      bool
	}{
		{20000, 0, 19390, 610, true},
		{20000, 16, 19375, 625, true},
		{610, 0, 0, 610, true},
		{609, 0, 0, 610, false},
		{500, 0, 0, 610, false},
		{1 << 40, 0, 1<<31 - 1, 610, true},
	} {
		budget, reserve, ok := fdBudget(tt.limit, tt.pool)
		if budget != tt.budget || reserve != tt.reserve || ok != tt.ok {
			t.Errorf("fdBudget(%d, %d) = %d, %d, %v; want %d, %d, %v", tt.limit, tt.pool, budget, reserve, ok, tt.budget, tt.reserve, tt.ok)
		}
	}
}

func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vfs.sock.pid")
	// A longer stale PID must not leave digits behind.
	if err := os.WriteFile(path, []byte("99999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := createPIDFile(path)
	if err != nil {
		t.Fatalf("createPIDFile() = %v", err)
	}
	defer unix.Close(p.fd)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(os.Getpid()) + "\n"; string(b) != want {
		t.Errorf("pid file holds %q, want %q", b, want)
	}
	// flock conflicts between open file descriptions of one process too.
	if _, err := createPIDFile(path); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("second createPIDFile() = %v, want EWOULDBLOCK", err)
	}
	if _, err := createPIDFile(filepath.Join(path, "x.pid")); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("createPIDFile under a file = %v, want ENOTDIR", err)
	}
}

func TestPIDFileNewMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.pid")
	old := unix.Umask(0)
	defer unix.Umask(old)
	p, err := createPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p.fd)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new pid file mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		umask int
		mode  os.FileMode
	}{
		{umaskPrivate, 0o700},
		{umaskGroup, 0o770},
	} {
		path := filepath.Join(dir, fmt.Sprintf("s%o.sock", tt.umask))
		// A stale file at the path is replaced.
		if err := os.WriteFile(path, []byte("stale"), 0o666); err != nil {
			t.Fatal(err)
		}
		fd, err := listenUnix(path, tt.umask)
		if err != nil {
			t.Fatalf("listenUnix(%q) = %v", path, err)
		}
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != tt.mode {
			t.Errorf("socket mode = %v, want socket %v", st.Mode(), tt.mode)
		}
		// The listener accepts a connection.
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatalf("connect: %v", err)
		}
		conn, err := accept(fd)
		if err != nil {
			t.Fatalf("accept() = %v", err)
		}
		for _, f := range []int{c, conn, fd} {
			unix.Close(f)
		}
	}
	long := filepath.Join(dir, strings.Repeat("x", 120))
	if fd, err := listenUnix(long, umaskPrivate); err == nil {
		unix.Close(fd)
		t.Errorf("listenUnix with a %d-byte path succeeded", len(long))
	}
}
