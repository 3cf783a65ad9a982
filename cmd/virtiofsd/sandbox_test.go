package main

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/testutil/frontend"
)

// testUser is the unprivileged account that scripts/setup.sh creates for
// the sandbox tests, with subordinate ID ranges for newuidmap/newgidmap.
const testUser = "virtiofsd-test"

const fileContent = "hello from the shared directory\n"

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the sandbox tests create namespaces and mounts and switch users")
	}
}

// sandboxFixture is a shared directory holding "file" and a socket path
// in a directory of their own, both accessible to uid/gid.
type sandboxFixture struct {
	shared, sock string
}

func newFixture(t *testing.T, uid, gid int) sandboxFixture {
	t.Helper()
	top, err := os.MkdirTemp("", "vfsd-sbx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	f := sandboxFixture{shared: filepath.Join(top, "shared"), sock: filepath.Join(top, "sock", "vfs.sock")}
	for _, dir := range []string{f.shared, filepath.Dir(f.sock)} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.shared, "file"), []byte(fileContent), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.shared, filepath.Join(f.shared, "file"), filepath.Dir(f.sock)} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// unprivUser returns the test user's IDs and the start and length of its
// subordinate ID range, or skips the test.
func unprivUser(t *testing.T) (uid, gid, subStart, subCount int) {
	t.Helper()
	u, err := user.Lookup(testUser)
	if err != nil {
		t.Skipf("no user %s (scripts/setup.sh creates it): %v", testUser, err)
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (package uidmap, see scripts/setup.sh)", tool)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	subStart, subCount = -1, 0
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Skipf("no %s: %v", file, err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) == 3 && f[0] == testUser {
				s, _ := strconv.Atoi(f[1])
				c, _ := strconv.Atoi(f[2])
				if subStart >= 0 && (s != subStart || c != subCount) {
					t.Skipf("%s has different ranges in /etc/subuid and /etc/subgid", testUser)
				}
				subStart, subCount, found = s, c, true
				break
			}
		}
		if !found {
			t.Skipf("%s has no range in %s", testUser, file)
		}
	}
	// The daemon binary must be reachable for the user.
	if err := os.Chmod(filepath.Dir(binPath), 0o755); err != nil {
		t.Fatal(err)
	}
	return uid, gid, subStart, subCount
}

// daemonCmd prepares the daemon for f with extra arguments. With listenFD
// it passes a listening socket at f.sock as --fd=3 instead of
// --socket-path. A non-nil cred runs it as that user.
func daemonCmd(t *testing.T, f sandboxFixture, listenFD bool, cred *syscall.Credential, extra ...string) *exec.Cmd {
	t.Helper()
	args := []string{"--shared-dir", f.shared}
	cmd := exec.Command(binPath)
	if listenFD {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		lf := os.NewFile(uintptr(fd), "listener")
		t.Cleanup(func() { lf.Close() })
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: f.sock}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 1); err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{lf}
		args = append(args, "--fd=3")
	} else {
		args = append(args, "--socket-path", f.sock)
	}
	args = append(args, extra...)
	cmd.Args = append([]string{binPath}, args...)
	cmd.Env = cleanEnv()
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// checkServes connects to the daemon at sock as a front-end and reads
// "file" through INIT, LOOKUP, OPEN and READ.
func checkServes(t *testing.T, d *daemonProc, sock string) {
	t.Helper()
	checkServesPath(t, d, sock, "file")
}

// checkServesPath is checkServes for the file at path, relative to the
// shared directory, looked up one component at a time.
func checkServesPath(t *testing.T, d *daemonProc, sock, path string) {
	t.Helper()
	fd, err := frontend.Dial(sock)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, d.stderr())
	}
	alive := func() error {
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited: %v", d.cmd.ProcessState)
		default:
			return nil
		}
	}
	fe, err := frontend.New(fd, frontend.Options{Alive: alive})
	if err != nil {
		t.Fatalf("vhost-user handshake: %v\nlog:\n%s", err, d.stderr())
	}
	defer fe.Close()
	if _, err := fe.Init(frontend.DefaultInitFlags); err != nil {
		t.Fatalf("INIT: %v\nlog:\n%s", err, d.stderr())
	}
	var e frontend.EntryOut
	e.NodeID = frontend.FUSE_ROOT_ID
	for _, name := range strings.Split(path, "/") {
		var err error
		if e, err = fe.Lookup(e.NodeID, name); err != nil {
			t.Fatalf("LOOKUP %s of %s: %v\nlog:\n%s", name, path, err, d.stderr())
		}
	}
	o, err := fe.Open(e.NodeID, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("OPEN file: %v\nlog:\n%s", err, d.stderr())
	}
	data, err := fe.Read(e.NodeID, o.Fh, 0, 4096)
	if err != nil || string(data) != fileContent {
		t.Fatalf("READ file = %q, %v; want %q\nlog:\n%s", data, err, fileContent, d.stderr())
	}
	if err := fe.Release(e.NodeID, o.Fh); err != nil {
		t.Errorf("RELEASE: %v", err)
	}
}

// sandboxChild returns the PID of the daemon's only child process.
func sandboxChild(t *testing.T, parent int) int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		kids = append(kids, strings.Fields(string(b))...)
	}
	if len(kids) != 1 {
		t.Fatalf("daemon %d has children %q, want exactly one", parent, kids)
	}
	pid, err := strconv.Atoi(kids[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// nspid returns the NSpid line of /proc/pid/status.
func nspid(t *testing.T, pid int) []string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no NSpid in /proc/%d/status", pid)
	return nil
}

// waitExit waits until process pid has exited (it may not be a child of
// the test), through a pidfd.
func waitExit(t *testing.T, pid int) {
	t.Helper()
	pfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			t.Fatalf("process %d did not exit", pid)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
}

func TestSandboxServes(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		name     string
		listenFD bool
		args     []string
	}{
		{"namespace", false, nil},
		{"namespace-explicit", false, []string{"--sandbox=namespace"}},
		{"namespace-fd", true, nil},
		{"namespace-mandatory", false, []string{"--inode-file-handles=mandatory"}},
		{"chroot", false, []string{"--sandbox=chroot"}},
		{"chroot-fd", true, []string{"--sandbox=chroot"}},
		{"chroot-mandatory", false, []string{"--sandbox=chroot", "--inode-file-handles=mandatory"}},
		{"none", false, []string{"--sandbox=none"}},
		{"none-fd", true, []string{"--sandbox=none"}},
		{"none-mandatory", false, []string{"--sandbox=none", "--inode-file-handles=mandatory"}},
		{"namespace-threads", false, []string{"--thread-pool-size=2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0, 0)
			d := startDaemonCmd(t, daemonCmd(t, f, tt.listenFD, nil, tt.args...))
			checkServes(t, d, f.sock)
			if code := d.wait(t); code != 0 {
				t.Errorf("exit status %d after the front-end left, want 0; log:\n%s", code, d.stderr())
			}
			// Only without a sandbox is the socket path removed.
			_, err := os.Lstat(f.sock)
			removed := errors.Is(err, os.ErrNotExist)
			if want := slices.Contains(tt.args, "--sandbox=none") && !tt.listenFD; removed != want {
				t.Errorf("socket removed = %v, want %v", removed, want)
			}
		})
	}
}

// TestSandboxRootShare shares "/" in namespace mode, where the daemon does
// not pivot_root.
func TestSandboxRootShare(t *testing.T) {
	needRoot(t)
	f := newFixture(t, 0, 0)
	d := startDaemonCmd(t, daemonCmd(t, sandboxFixture{shared: "/", sock: f.sock}, false, nil))
	var root, st unix.Stat_t
	child := sandboxChild(t, d.cmd.Process.Pid)
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root/", child), &root); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	if root.Dev != st.Dev || root.Ino != st.Ino {
		t.Errorf("child's root is not the host's /")
	}
	checkServesPath(t, d, f.sock, strings.TrimPrefix(filepath.Join(f.shared, "file"), "/"))
}

func TestSandboxUnprivileged(t *testing.T) {
	needRoot(t)
	uid, gid, subStart, subCount := unprivUser(t)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	idmap := fmt.Sprintf(":0:%d:%d:", subStart, subCount)
	for _, tt := range []struct {
		name     string
		listenFD bool
		args     []string
		// nsUID is the daemon's UID as the host sees it.
		nsUID int
		// notRoot: the maps do not map ID 0, so the daemon warns that
		// it cannot become root of its namespace.
		notRoot bool
	}{
		{"default-map", false, nil, uid, true},
		{"default-map-fd", true, nil, uid, true},
		{"own-id-as-root", false, []string{fmt.Sprintf("--uid-map=:0:%d:1:", uid), fmt.Sprintf("--gid-map=:0:%d:1:", gid)}, uid, false},
		{"newuidmap", false, []string{"--uid-map=" + idmap, "--gid-map=" + idmap}, subStart, false},
		{"newuidmap-two-ranges", false, []string{fmt.Sprintf("--uid-map=:0:%d:1:", uid), fmt.Sprintf("--uid-map=:1:%d:%d:", subStart, subCount),
			fmt.Sprintf("--gid-map=:0:%d:1:", gid), fmt.Sprintf("--gid-map=:1:%d:%d:", subStart, subCount)}, uid, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, uid, gid)
			d := startDaemonCmd(t, daemonCmd(t, f, tt.listenFD, cred, tt.args...))
			child := sandboxChild(t, d.cmd.Process.Pid)
			if ns := nspid(t, child); len(ns) != 2 || ns[1] != "1" {
				t.Errorf("child NSpid %q, want host PID and 1", ns)
			}
			var st unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d", child), &st); err != nil {
				t.Fatal(err)
			}
			if int(st.Uid) != tt.nsUID {
				t.Errorf("child runs as host UID %d, want %d", st.Uid, tt.nsUID)
			}
			for _, ns := range []string{"user", "mnt", "pid", "net"} {
				if nsID(t, "self", ns) == nsID(t, strconv.Itoa(child), ns) {
					t.Errorf("child shares the %s namespace of the test", ns)
				}
			}
			checkServes(t, d, f.sock)
			if code := d.wait(t); code != 0 {
				t.Errorf("exit status %d, want 0; log:\n%s", code, d.stderr())
			}
			msgs := strings.Join(logMessages(t, withoutRawWarnings(d.stderr())), "\n")
			for _, w := range []string{"WARN Couldn't set the process uid as root: -1", "WARN Couldn't set the process gid as root: -1"} {
				if strings.Contains(msgs, w) != tt.notRoot {
					t.Errorf("log %q: %q present = %v, want %v", msgs, w, !tt.notRoot, tt.notRoot)
				}
			}
		})
	}

	// Ranges that are not the user's: newuidmap refuses, and so does the
	// daemon.
	f := newFixture(t, uid, gid)
	bad := fmt.Sprintf(":0:%d:%d:", subStart+subCount, 10)
	r := runCmd(t, daemonCmd(t, f, false, cred, "--uid-map="+bad))
	msgs := logMessages(t, r.stderr)
	const want = "ERROR sandbox: couldn't setup id mappings: write to uid map failed: newuidmap: uid range"
	if r.code != 1 || len(msgs) == 0 || !strings.HasPrefix(msgs[len(msgs)-1], want) {
		t.Errorf("--uid-map=%s: exit %d, log %q; want exit 1, last line starting %q", bad, r.code, msgs, want)
	}

	// chroot is for root only.
	r = runCmd(t, daemonCmd(t, f, false, cred, "--sandbox=chroot"))
	msgs = logMessages(t, r.stderr)
	const wantChroot = "ERROR Error entering sandbox: sandbox mode 'chroot' can only be used by root (Use '--sandbox namespace' instead)"
	if r.code != 1 || len(msgs) == 0 || msgs[len(msgs)-1] != wantChroot {
		t.Errorf("--sandbox=chroot unprivileged: exit %d, log %q; want exit 1, %q", r.code, msgs, wantChroot)
	}
}

// runCmd runs a prepared daemon command to completion.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%q did not exit: %s", cmd.Args, stderr.String())
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

func nsID(t *testing.T, pid, ns string) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + pid + "/ns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSandboxProcesses(t *testing.T) {
	needRoot(t)
	f := newFixture(t, 0, 0)
	d := startDaemonCmd(t, daemonCmd(t, f, false, nil, "--rlimit-nofile=4321"))
	parent := d.cmd.Process.Pid
	if pid, err := os.ReadFile(f.sock + ".pid"); err != nil || string(pid) != strconv.Itoa(parent)+"\n" {
		t.Errorf("pid file = %q, %v; want the parent's PID %d", pid, err, parent)
	}
	child := sandboxChild(t, parent)
	if ns := nspid(t, child); len(ns) != 2 || ns[1] != "1" {
		t.Errorf("child NSpid %q, want host PID and 1", ns)
	}
	if ns := nspid(t, parent); len(ns) != 1 {
		t.Errorf("parent NSpid %q, want one entry", ns)
	}
	for _, ns := range []string{"mnt", "pid", "net"} {
		if nsID(t, "self", ns) == nsID(t, strconv.Itoa(child), ns) {
			t.Errorf("child shares the %s namespace of the test", ns)
		}
		if nsID(t, "self", ns) != nsID(t, strconv.Itoa(parent), ns) {
			t.Errorf("parent left the %s namespace of the test", ns)
		}
	}
	if nsID(t, "self", "user") != nsID(t, strconv.Itoa(child), "user") {
		t.Errorf("child runs as root in a user namespace of its own")
	}
	// The parent set the open file limit, and the child inherited it.
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", child))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Max open files +4321 +4321 `).Match(limits) {
		t.Errorf("child's limits:\n%s\nwant 4321 open files", limits)
	}
	// The child's root is the shared directory, and nothing else is
	// mounted there: not even /proc, which it only holds as a descriptor.
	var root, shared unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root/", child), &root); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(f.shared, &shared); err != nil {
		t.Fatal(err)
	}
	if root.Dev != shared.Dev || root.Ino != shared.Ino {
		t.Errorf("child's root is not the shared directory")
	}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", child))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mi)), "\n")
	if len(lines) != 1 || strings.Fields(lines[0])[4] != "/" || strings.Fields(lines[0])[3] != f.shared {
		t.Errorf("child's mountinfo:\n%s\nwant one mount of %s on /", mi, f.shared)
	}
	// Of the child's descriptors, one is its own fd directory of a fresh
	// procfs, which is all of /proc it has.
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", child))
	if err != nil {
		t.Fatal(err)
	}
	procFD := false
	for _, e := range fds {
		var st unix.Statfs_t
		if unix.Statfs(fmt.Sprintf("/proc/%d/fd/%s", child, e.Name()), &st) == nil && st.Type == unix.PROC_SUPER_MAGIC {
			var fst unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", child, e.Name()), &fst) == nil && fst.Mode&unix.S_IFMT == unix.S_IFDIR {
				procFD = true
			}
		}
	}
	if !procFD {
		t.Errorf("child holds no procfs directory")
	}

	// SIGKILL to the child: the parent exits with 256-9.
	if err := unix.Kill(child, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 247 {
		t.Errorf("parent exit status %d after the child's SIGKILL, want 247", code)
	}
	msgs := logMessages(t, d.stderr())
	if want := "ERROR Child process terminated by signal 9"; len(msgs) == 0 || msgs[len(msgs)-1] != want {
		t.Errorf("log %q, want last %q", msgs, want)
	}
	for _, p := range []string{f.sock, f.sock + ".pid"} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestSandboxSignals(t *testing.T) {
	needRoot(t)
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGHUP} {
		f := newFixture(t, 0, 0)
		d := startDaemonCmd(t, daemonCmd(t, f, false, nil))
		child := sandboxChild(t, d.cmd.Process.Pid)
		d.cmd.Process.Signal(sig)
		if code := d.wait(t); code != 1 {
			t.Errorf("%v: parent exit status %d, want 1", sig, code)
		}
		// The child gets SIGTERM as its parent-death signal.
		waitExit(t, child)
	}
}

func TestSandboxOptionErrors(t *testing.T) {
	needRoot(t)
	shared, sock := paths(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--uid-map=:0:1000:1:"}, "ERROR Error entering sandbox: uid_map can only be used by unprivileged user where sandbox mod is namespace (Use '--sandbox namespace' instead)"},
		{[]string{"--gid-map=:0:1000:1:"}, "ERROR Error entering sandbox: gid_map can only be used by unprivileged user where sandbox mod is namespace (Use '--sandbox namespace' instead)"},
		{[]string{"--gid-map=:0:1000:1:", "--sandbox=none"}, "ERROR Error entering sandbox: gid_map can only be used by unprivileged user where sandbox mod is namespace (Use '--sandbox namespace' instead)"},
	} {
		r := runDaemon(t, append([]string{"--shared-dir", shared, "--socket-path", sock}, tt.args...)...)
		msgs := logMessages(t, r.stderr)
		if r.code != 1 || len(msgs) == 0 || msgs[len(msgs)-1] != tt.want {
			t.Errorf("%q: exit %d, log %q; want exit 1, last %q", tt.args, r.code, msgs, tt.want)
		}
	}
}

// TestSandboxBadFD gives the namespace sandbox an --fd that is not open:
// like without a sandbox, the daemon fails when it starts to accept.
func TestSandboxBadFD(t *testing.T) {
	needRoot(t)
	shared, _ := paths(t)
	r := runDaemon(t, "--shared-dir", shared, "--fd=99")
	msgs := logMessages(t, r.stderr)
	const want = "ERROR Failed to start daemon: Bad file descriptor (os error 9)"
	if r.code != 1 || len(msgs) == 0 || msgs[len(msgs)-1] != want {
		t.Errorf("exit %d, log %q; want exit 1, last %q", r.code, msgs, want)
	}
}

func TestPIDFileSymlink(t *testing.T) {
	shared, sock := paths(t)
	target := filepath.Join(filepath.Dir(sock), "target")
	if err := os.Symlink(target, sock+".pid"); err != nil {
		t.Fatal(err)
	}
	r := runDaemon(t, "--shared-dir", shared, "--socket-path", sock, "--sandbox=none", "--seccomp=none")
	msgs := logMessages(t, r.stderr)
	want := "ERROR Error creating pid file '" + sock + ".pid': Too many levels of symbolic links (os error 40)"
	if r.code != 1 || len(msgs) != 1 || msgs[0] != want {
		t.Errorf("exit %d, log %q; want exit 1, [%q]", r.code, msgs, want)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the symbolic link was followed: Lstat(target) = %v", err)
	}
}

// TestSandboxSyslog checks that the sandboxed daemon logs to syslog: it
// must connect to /dev/log before the sandbox hides it. The daemon runs in
// a mount namespace of its own whose /dev/log leads to the test's socket.
func TestSandboxSyslog(t *testing.T) {
	needRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	f := newFixture(t, 0, 0)
	top := filepath.Dir(f.shared)
	logSock := filepath.Join(top, "log")
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: logSock}); err != nil {
		t.Fatal(err)
	}
	oldDev := filepath.Join(top, "olddev")
	if err := os.Mkdir(oldDev, 0o755); err != nil {
		t.Fatal(err)
	}
	// A private /dev with /dev/null and a /dev/log link to the socket.
	script := `set -e
mount --bind /dev "$1"
mount -t tmpfs -o mode=0755 none /dev
touch /dev/null
mount --bind "$1/null" /dev/null
ln -s "$2" /dev/log
shift 2
exec "$@"`
	args := []string{"--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", oldDev, logSock,
		binPath, "--shared-dir", f.shared, "--socket-path", f.sock, "--syslog"}
	cmd := exec.Command(unshare, args...)
	cmd.Env = cleanEnv()
	d := &daemonProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = d
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
	})
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 4096)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			t.Fatalf("no \"Waiting for vhost-user socket connection...\" record on the syslog socket; stderr:\n%s", d.stderr())
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := unix.Recvfrom(lfd, buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(buf[:m]), "Waiting for vhost-user socket connection...") {
			break
		}
	}
	if s := d.stderr(); strings.Contains(s, "can't enable syslog") || strings.Contains(s, "Waiting") {
		t.Errorf("stderr:\n%s\nwant the records on syslog", s)
	}
	// The record came from the child, which is inside the sandbox.
	checkServes(t, d, f.sock)
}

// TestSandboxParentKilledEarly kills the original process at various points
// of the start-up: its copy must never outlive it. The copy holds the
// standard error pipe, so its end shows as end of file there.
func TestSandboxParentKilledEarly(t *testing.T) {
	needRoot(t)
	for i := 0; i < 40; i++ {
		f := newFixture(t, 0, 0)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := daemonCmd(t, f, false, nil, "-f")
		cmd.Stderr = w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		var first [1]byte
		switch i % 3 {
		case 1:
			// After the first log line (the warning about -f), shortly
			// before the copy is started.
			r.Read(first[:])
		case 2:
			// As soon as the copy exists, while it starts up.
			waitForChild(t, cmd.Process.Pid)
		}
		cmd.Process.Kill()
		cmd.Wait()
		rfd := int(r.Fd())
		deadline := time.Now().Add(10 * time.Second)
		buf := make([]byte, 4096)
		var out []byte
		for {
			ms := int(time.Until(deadline) / time.Millisecond)
			if ms <= 0 {
				r.Close()
				t.Fatalf("round %d: the sandboxed copy survived its parent; output %q", i, out)
			}
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(rfd), Events: unix.POLLIN}}, ms)
			if err == unix.EINTR || n == 0 {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := unix.Read(rfd, buf)
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if m == 0 {
				break
			}
			out = append(out, buf[:m]...)
		}
		r.Close()
	}
}

// waitForChild returns once process pid has a child, or has exited.
func waitForChild(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		if err != nil || len(tasks) == 0 {
			return
		}
		for _, task := range tasks {
			if b, err := os.ReadFile(task); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("process %d started no child", pid)
}

// statusField returns the value of a field of /proc/pid/status.
func statusField(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return ""
}

// TestSandboxDropsGroups starts the daemon as root with supplementary
// groups: the process that serves has none left.
func TestSandboxDropsGroups(t *testing.T) {
	needRoot(t)
	for _, mode := range []string{"namespace", "chroot", "none"} {
		f := newFixture(t, 0, 0)
		cred := &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{4, 27}}
		d := startDaemonCmd(t, daemonCmd(t, f, false, cred, "--sandbox="+mode))
		pid := d.cmd.Process.Pid
		if mode == "namespace" {
			pid = sandboxChild(t, pid)
		}
		if g := statusField(t, pid, "Groups"); g != "" {
			t.Errorf("--sandbox=%s: the daemon has supplementary groups %q", mode, g)
		}
		checkServes(t, d, f.sock)
	}
}

// TestSandboxSubmountFileHandles serves a file on a submount of the shared
// directory with --inode-file-handles=mandatory: the daemon opens the
// submount's root through the mount point that mountinfo shows, which
// after pivot_root is a path in the new root.
func TestSandboxSubmountFileHandles(t *testing.T) {
	needRoot(t)
	for _, mode := range []string{"namespace", "none"} {
		f := newFixture(t, 0, 0)
		sub := filepath.Join(f.shared, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
			t.Skipf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(sub, "file"), []byte(fileContent), 0o644); err != nil {
			t.Fatal(err)
		}
		d := startDaemonCmd(t, daemonCmd(t, f, false, nil, "--sandbox="+mode, "--inode-file-handles=mandatory"))
		checkServesPath(t, d, f.sock, "sub/file")
	}
}

// withoutRawWarnings drops the lines that the daemon, like the reference,
// writes to standard error outside the log ("Warning: ..." on FUSE_INIT).
func withoutRawWarnings(stderr string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(stderr, "\n") {
		if !strings.HasPrefix(line, "Warning: ") {
			b.WriteString(line)
		}
	}
	return b.String()
}
