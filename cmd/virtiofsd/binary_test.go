package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/cli"
	"virtiofsd/internal/testutil/frontend"
)

// binPath is the daemon built by TestMain, as a user would build it.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "virtiofsd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "virtiofsd")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	build := exec.Command(goTool, "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build virtiofsd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// runBinary runs bin to completion with a timeout.
func runBinary(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
	default:
		t.Fatalf("%s %q: %v (stderr %q)", bin, args, err, stderr.String())
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

func runDaemon(t *testing.T, args ...string) result {
	t.Helper()
	return runBinary(t, binPath, nil, args...)
}

// cleanEnv is the environment without variables that change logging.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUST_LOG=") {
			env = append(env, kv)
		}
	}
	return env
}

func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: it is not statically linked", binPath)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, tt := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"--version"}, 0, cli.Version + "\n", ""},
		{[]string{"-V"}, 0, cli.Version + "\n", ""},
		{[]string{"-h"}, 0, cli.ShortHelp, ""},
		{[]string{"--help"}, 0, cli.LongHelp, ""},
		{nil, 2, "", cli.ShortHelp},
	} {
		r := runDaemon(t, tt.args...)
		if r.code != tt.code || r.stdout != tt.stdout || r.stderr != tt.stderr {
			t.Errorf("virtiofsd %q = exit %d, stdout %.60q, stderr %.60q; want exit %d, stdout %.60q, stderr %.60q",
				tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
	if !strings.HasPrefix(cli.Version, "virtiofsd 1.13.") {
		t.Errorf("version %q is not a 1.13 release", cli.Version)
	}
}

func TestPrintCapabilities(t *testing.T) {
	const want = "{\n  \"type\": \"fs\",\n  \"features\": [\n    \"migrate-precopy\",\n    \"separate-options\"\n  ]\n}\n"
	for _, args := range [][]string{
		{"--print-capabilities"},
		{"--print-capabilities", "--shared-dir", "/nonexistent", "--xattr", "--sandbox", "chroot"},
	} {
		r := runDaemon(t, args...)
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("virtiofsd %q = exit %d, stdout %q, stderr %q; want exit 0 and the capabilities", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "error: unexpected argument '--bogus' found\n"},
		{[]string{"--shared-dir", "/x", "--socket-path", "/y", "--cache", "fast"}, "error: invalid value 'fast' for '--cache <CACHE>': invalid cache policy\n"},
		{[]string{"--shared-dir", "/x", "--socket-path", "/y", "--sandbox", "jail"}, "error: invalid value 'jail' for '--sandbox <SANDBOX>': Unknown sandbox mode\n"},
		{[]string{"--shared-dir", "/x", "--socket-path", "/y", "--seccomp", "Kill"}, "error: invalid value 'Kill' for '--seccomp <SECCOMP>': Matching variant not found\n"},
		{[]string{"--shared-dir", "/x", "--socket-path", "/y", "--log-level", "loud"},
			"error: invalid value 'loud' for '--log-level <LOG_LEVEL>': attempted to convert a string that doesn't match an existing log level\n"},
		{[]string{"--shared-dir", "/x", "--socket-path", "/y", "--inode-file-handles", "never"}, "error: equal sign is needed"},
		{[]string{"--shared-dir", "/x"}, "error: the following required arguments were not provided:\n"},
		{[]string{"--shared-dir", "/x", "--fd", "3", "--socket-path", "/y"}, "error: the argument '--fd <FD>' cannot be used with '--socket-path <SOCKET_PATH>'\n"},
		{[]string{"--socket-path", "/y", "-o", "nonsense"}, "error: Invalid compat argument '-o nonsense'\n"},
	} {
		r := runDaemon(t, tt.args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, tt.want) ||
			!strings.HasSuffix(r.stderr, "\nFor more information, try '--help'.\n") {
			t.Errorf("virtiofsd %q = exit %d, stderr %q; want exit 2, stderr starting %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

var logLine = regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (ERROR|WARN |INFO |DEBUG|TRACE) virtiofsd(::[a-z_]+)?\] (.+)$`)

// logMessages checks that every line of stderr is a log line and returns
// "LEVEL message" for each.
func logMessages(t *testing.T, stderr string) []string {
	t.Helper()
	var msgs []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("stderr line %q is not in the log format", line)
			continue
		}
		msgs = append(msgs, strings.TrimSpace(m[1])+" "+m[3])
	}
	return msgs
}

// paths returns a fresh shared directory and socket path.
func paths(t *testing.T) (shared, sock string) {
	dir := t.TempDir()
	shared = filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	return shared, filepath.Join(dir, "vfs.sock")
}

func TestRefusedOptions(t *testing.T) {
	shared, sock := paths(t)
	base := []string{"--shared-dir", shared, "--socket-path", sock, "--sandbox", "none", "--seccomp", "none"}
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--xattr"}, "--xattr"},
		{[]string{"--posix-acl"}, "--posix-acl"},
		{[]string{"--xattrmap", ":ok:all:::"}, "--xattrmap"},
		{[]string{"--security-label"}, "--security-label"},
		{[]string{"--translate-uid", "map:0:1000:1"}, "--translate-uid"},
		{[]string{"--translate-gid", "map:0:1000:1"}, "--translate-gid"},
		{[]string{"-o", "xattr"}, "--xattr"},
		{[]string{"-o", "posix_acl"}, "--posix-acl"},
	} {
		r := runDaemon(t, append(append([]string{}, base...), tt.args...)...)
		msgs := logMessages(t, r.stderr)
		want := "ERROR " + tt.msg + " is not supported yet"
		if r.code != 1 || len(msgs) != 1 || msgs[0] != want {
			t.Errorf("virtiofsd ... %q = exit %d, log %q; want exit 1, log [%q]", tt.args, r.code, msgs, want)
		}
		if _, err := os.Lstat(sock); err == nil {
			t.Fatalf("virtiofsd ... %q created the socket before refusing", tt.args)
		}
	}
}

// TestMigrationOptionConflicts checks the file-handles rule: one error
// line per pointless option (confirm-paths first), after the deprecation
// warnings, status 1, and no socket.
func TestMigrationOptionConflicts(t *testing.T) {
	shared, sock := paths(t)
	base := []string{"--shared-dir", shared, "--socket-path", sock, "--sandbox", "none", "--seccomp", "none"}
	const (
		confirm = "ERROR Cannot use --migration-confirm-paths with --migration-mode=file-handles (because it is unnecessary)"
		verify  = "ERROR Cannot use --migration-verify-handles with --migration-mode=file-handles (because it is unnecessary)"
	)
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--migration-mode=file-handles", "--migration-confirm-paths"}, []string{confirm}},
		{[]string{"--migration-mode", "file-handles", "--migration-verify-handles"}, []string{verify}},
		{[]string{"--migration-verify-handles", "--migration-confirm-paths", "--migration-mode=file-handles"}, []string{confirm, verify}},
		{[]string{"-f", "--migration-mode=file-handles", "--migration-confirm-paths"},
			[]string{"WARN Use of deprecated flag '-f': This flag has no effect, please remove it", confirm}},
	} {
		r := runDaemon(t, append(append([]string{}, base...), tt.args...)...)
		msgs := logMessages(t, r.stderr)
		if r.code != 1 || !slices.Equal(msgs, tt.want) {
			t.Errorf("virtiofsd ... %q = exit %d, log %q; want exit 1, log %q", tt.args, r.code, msgs, tt.want)
		}
		if _, err := os.Lstat(sock); err == nil {
			t.Fatalf("virtiofsd ... %q created the socket before refusing", tt.args)
		}
	}
	// A missing shared directory is reported first, like the reference.
	r := runDaemon(t, "--shared-dir", shared+"/none", "--socket-path", sock, "--migration-mode=file-handles", "--migration-confirm-paths")
	if msgs := logMessages(t, r.stderr); r.code != 1 || len(msgs) != 1 || !strings.HasSuffix(msgs[0], "does not exist") {
		t.Errorf("missing shared dir and a conflict: exit %d, log %q", r.code, msgs)
	}
}

func TestStartupErrors(t *testing.T) {
	shared, sock := paths(t)
	file := filepath.Join(shared, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	none := []string{"--sandbox", "none", "--seccomp", "none"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--shared-dir", "/nonexistent/dir", "--socket-path", sock}, "ERROR /nonexistent/dir does not exist"},
		{[]string{"--shared-dir", file, "--socket-path", sock}, "ERROR " + file + " is not a directory"},
		{[]string{"--shared-dir", shared, "--socket-path", "/nonexistent/dir/vfs.sock"}, "ERROR /nonexistent/dir does not exist or is not a directory"},
		{[]string{"--shared-dir", shared, "--socket-path", "/"}, "ERROR Invalid socket file name"},
		{[]string{"--shared-dir", shared, "--socket-path", file + "/vfs.sock"},
			"ERROR Error creating pid file '" + file + "/vfs.sock.pid': Not a directory (os error 20)"},
		{[]string{"-o", "cache=auto", "--socket-path", sock}, `ERROR missing "--shared-dir" or "-o source" option`},
		{[]string{"--shared-dir", shared, "--socket-path", sock, "--socket-group", "no-such-group-here"},
			"ERROR Couldn't resolve the group name specified for the socket path"},
		{[]string{"--shared-dir", shared, "--socket-path", sock, "--rlimit-nofile", "500"},
			"ERROR Maximum number of file descriptors too small: Limit is 500, must be at least 610"},
		{[]string{"--shared-dir", shared, "--socket-path", sock, "--rlimit-nofile", "99999999999"},
			"ERROR Error increasing number of open files: It cannot be increased above "},
	} {
		r := runDaemon(t, append(tt.args, none...)...)
		msgs := logMessages(t, r.stderr)
		if r.code != 1 || len(msgs) != 1 || !strings.HasPrefix(msgs[0], tt.want) {
			t.Errorf("virtiofsd %q = exit %d, log %q; want exit 1, one line starting %q", tt.args, r.code, msgs, tt.want)
		}
	}
}

// daemonProc is a running daemon.
type daemonProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	errs bytes.Buffer
	done chan struct{}
}

func (d *daemonProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs.Write(p)
}

func (d *daemonProc) stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs.String()
}

// startDaemon starts the daemon and waits until it logs that it waits for
// the front-end. The daemon is killed when the test ends.
func startDaemon(t *testing.T, env []string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cleanEnv(), env...)
	return startDaemonCmd(t, cmd)
}

// startDaemonCmd is startDaemon for a prepared command.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	args := cmd.Args[1:]
	d := &daemonProc{cmd: cmd, done: make(chan struct{})}
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
	})
	deadline := time.After(10 * time.Second)
	for !strings.Contains(d.stderr(), "Waiting for vhost-user socket connection...") {
		select {
		case <-d.done:
			t.Fatalf("daemon %q exited with %v before listening: %s", args, d.cmd.ProcessState, d.stderr())
		case <-deadline:
			t.Fatalf("daemon %q did not start listening: %s", args, d.stderr())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return d
}

// wait waits for the daemon to exit and returns its exit status.
func (d *daemonProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon did not exit: %s", d.stderr())
	}
	return d.cmd.ProcessState.ExitCode()
}

func socketMode(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is %v, not a socket", path, st.Mode())
	}
	return st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid
}

func TestSecondDaemonAndSignals(t *testing.T) {
	shared, sock := paths(t)
	args := []string{"--shared-dir", shared, "--socket-path", sock, "--sandbox", "none", "--seccomp", "none"}
	// A stale socket file is replaced.
	if err := os.WriteFile(sock, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, nil, args...)
	if mode, _ := socketMode(t, sock); mode != 0o700 {
		t.Errorf("socket mode = %v, want 0700", mode)
	}
	pid, err := os.ReadFile(sock + ".pid")
	if err != nil || string(pid) != strconv.Itoa(d.cmd.Process.Pid)+"\n" {
		t.Errorf("pid file = %q, %v; want %d", pid, err, d.cmd.Process.Pid)
	}

	r := runDaemon(t, args...)
	msgs := logMessages(t, r.stderr)
	want := "ERROR Error creating pid file '" + sock + ".pid': Resource temporarily unavailable (os error 11)"
	if r.code != 1 || len(msgs) != 1 || msgs[0] != want {
		t.Errorf("second daemon = exit %d, log %q; want exit 1, [%q]", r.code, msgs, want)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the second daemon removed the first one's socket: %v", err)
	}

	// SIGTERM ends the daemon with status 1 and leaves its files behind.
	d.cmd.Process.Signal(unix.SIGTERM)
	if code := d.wait(t); code != 1 {
		t.Errorf("daemon exit status after SIGTERM = %d, want 1", code)
	}
	for _, p := range []string{sock, sock + ".pid"} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s is gone after SIGTERM: %v", p, err)
		}
	}

	// The leftovers do not prevent a new daemon; SIGHUP ends it too.
	d = startDaemon(t, nil, args...)
	pid, _ = os.ReadFile(sock + ".pid")
	if string(pid) != strconv.Itoa(d.cmd.Process.Pid)+"\n" {
		t.Errorf("pid file = %q, want %d", pid, d.cmd.Process.Pid)
	}
	d.cmd.Process.Signal(unix.SIGHUP)
	if code := d.wait(t); code != 1 {
		t.Errorf("daemon exit status after SIGHUP = %d, want 1", code)
	}
}

func TestSocketGroup(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for group %d: %v", os.Getgid(), err)
	}
	shared, sock := paths(t)
	d := startDaemon(t, nil, "--shared-dir", shared, "--socket-path", sock, "--socket-group", g.Name,
		"--sandbox", "none", "--seccomp", "none")
	mode, gid := socketMode(t, sock)
	if mode != 0o770 || strconv.Itoa(int(gid)) != g.Gid {
		t.Errorf("socket mode %v group %d; want 0770 group %s", mode, gid, g.Gid)
	}
	d.cmd.Process.Kill()
}

func TestLogOutput(t *testing.T) {
	shared, sock := paths(t)
	base := []string{"--shared-dir", shared, "--socket-path", sock}
	for _, tt := range []struct {
		env    []string
		args   []string
		want   []string
		absent []string
	}{
		// Neither the default sandbox nor --sandbox=none is worth a
		// warning; the copy run in the namespaces does not repeat the
		// deprecation warnings.
		{nil, []string{"-f"}, []string{
			"WARN Use of deprecated flag '-f': This flag has no effect, please remove it",
			"INFO Waiting for vhost-user socket connection...",
		}, []string{"Sandbox", "sandbox", "System call", "seccomp"}},
		{nil, []string{"--sandbox", "none"}, []string{
			"INFO Waiting for vhost-user socket connection...",
		}, []string{"Sandbox", "sandbox", "System call", "seccomp"}},
		{nil, []string{"--sandbox", "none", "--seccomp", "none", "-f", "-d", "-o", "cache=auto"}, []string{
			"WARN Use of deprecated flag '-f': This flag has no effect, please remove it",
			"WARN Use of deprecated flag '-d': Please use the '--log-level debug' option instead",
			"WARN Use of deprecated option format '-o': Please specify options without it (e.g., '--cache auto' instead of '-o cache=auto')",
			"INFO Waiting for vhost-user socket connection...",
		}, []string{"Sandboxing", "System call"}},
		{nil, []string{"--log-level", "ERROR"}, nil, []string{"WARN", "INFO"}},
		{[]string{"RUST_LOG=warn"}, []string{"--log-level", "debug", "-f"}, []string{"WARN Use of deprecated flag '-f'"}, []string{"INFO"}},
		{[]string{"RUST_LOG=other_crate=trace"}, nil, nil, []string{"WARN", "INFO"}},
	} {
		args := append(append([]string{}, base...), tt.args...)
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(cleanEnv(), tt.env...)
		d := &daemonProc{cmd: cmd, done: make(chan struct{})}
		cmd.Stderr = d
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			cmd.Wait()
			close(d.done)
		}()
		// A front-end that completes the vhost-user handshake proves
		// that start-up is over, whatever the log shows; once it hangs
		// up, the daemon exits.
		fd := dialDaemon(t, d, sock)
		fe, err := frontend.New(fd, frontend.Options{Alive: d.alive})
		if err != nil {
			cmd.Process.Kill()
			<-d.done
			t.Fatalf("env %q args %q: handshake: %v; log:\n%s", tt.env, tt.args, err, d.stderr())
		}
		fe.Close()
		if code := d.wait(t); code != 0 {
			t.Errorf("env %q args %q: exit status %d, want 0", tt.env, tt.args, code)
		}
		os.Remove(sock)
		lines := logMessages(t, d.stderr())
		msgs := strings.Join(lines, "\n")
		for _, w := range tt.want {
			n := 0
			for _, l := range lines {
				if strings.Contains(l, w) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("env %q args %q: log %q has %q %d times, want once", tt.env, tt.args, msgs, w, n)
			}
		}
		for _, a := range tt.absent {
			if strings.Contains(msgs, a) {
				t.Errorf("env %q args %q: log %q contains %q", tt.env, tt.args, msgs, a)
			}
		}
	}
}

// alive returns an error once the daemon has exited.
func (d *daemonProc) alive() error {
	select {
	case <-d.done:
		return fmt.Errorf("daemon exited: %v", d.cmd.ProcessState)
	default:
		return nil
	}
}

// dialDaemon connects to the daemon's socket once it exists.
func dialDaemon(t *testing.T, d *daemonProc, sock string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := frontend.Dial(sock)
		if err == nil {
			return fd
		}
		if err := d.alive(); err != nil {
			t.Fatalf("%v before accepting connections; log:\n%s", err, d.stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot connect: %v; log:\n%s", err, d.stderr())
		}
		// The socket does not exist yet: nothing to wait on but time.
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectAndDisconnect(t *testing.T) {
	for _, tt := range []struct {
		extra  []string
		unlink bool
	}{
		// With --sandbox=none the socket path is removed once connected,
		// as the reference does; in its default sandbox it stays.
		{[]string{"--sandbox", "none", "--seccomp", "none"}, true},
		{nil, false},
	} {
		shared, sock := paths(t)
		d := startDaemon(t, nil, append([]string{"--shared-dir", shared, "--socket-path", sock}, tt.extra...)...)
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(c, &unix.SockaddrUnix{Name: sock}); err != nil {
			t.Fatalf("connect: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(d.stderr(), "Client connected, servicing requests") {
			if time.Now().After(deadline) {
				t.Fatalf("daemon did not accept the connection: %s", d.stderr())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := os.Lstat(sock); errors.Is(err, os.ErrNotExist) != tt.unlink {
			t.Errorf("args %q: after the connection, Lstat(socket) = %v; want removed = %v", tt.extra, err, tt.unlink)
		}
		unix.Close(c)
		code := d.wait(t)
		msgs := logMessages(t, d.stderr())
		const disconnected = "INFO Client disconnected, shutting down"
		if code != 0 || len(msgs) == 0 || msgs[len(msgs)-1] != disconnected {
			t.Errorf("args %q: daemon = exit %d, log %q; want exit 0, last %q", tt.extra, code, msgs, disconnected)
		}
	}
}
