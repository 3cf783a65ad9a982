package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/testutil"
	"virtiofsd/internal/testutil/frontend"
)

// daemonSpec is one daemon binary under test.
type daemonSpec struct {
	name string
	bin  string
	// unavailable, if set, says why the binary cannot be run.
	unavailable string
	// mustRun: an unavailable daemon fails its subtests instead of
	// skipping them.
	mustRun bool
	// hardened: malformed guest requests get an error reply and the
	// daemon keeps serving (spec README decisions). The reference panics a
	// worker thread instead.
	hardened bool
}

var (
	ours      = &daemonSpec{name: "ours", mustRun: true, hardened: true}
	reference = &daemonSpec{name: "reference"}
	daemons   = []*daemonSpec{ours, reference}
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "virtiofsd-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	ours.bin = filepath.Join(tmp, "virtiofsd")
	if p := os.Getenv("VIRTIOFSD_TEST_OURS"); p != "" {
		ours.bin = p
	} else {
		cmd := exec.Command("go", "build", "-o", ours.bin, "./cmd/virtiofsd")
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			ours.unavailable = fmt.Sprintf("build ./cmd/virtiofsd: %v\n%s", err, out)
		}
	}
	deps := os.Getenv("VIRTIOFSD_TEST_DEPS")
	if deps == "" {
		deps = "/opt/virtiofsd-test"
	}
	reference.bin = filepath.Join(deps, "ref", "virtiofsd")
	if _, err := os.Stat(reference.bin); err != nil {
		reference.unavailable = fmt.Sprintf("reference virtiofsd not installed (%v); run scripts/setup.sh", err)
	}
	reference.mustRun = os.Getenv("CI") == "true"
	code := m.Run()
	printBenchReport()
	return code
}

func moduleRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// forEachDaemon runs fn as a subtest per daemon.
func forEachDaemon(t *testing.T, fn func(t *testing.T, spec *daemonSpec)) {
	t.Helper()
	for _, spec := range daemons {
		t.Run(spec.name, func(t *testing.T) {
			requireDaemon(t, spec)
			fn(t, spec)
		})
	}
}

func requireDaemon(t testing.TB, spec *daemonSpec) {
	t.Helper()
	testutil.RequireRoot(t)
	if spec.unavailable != "" {
		if spec.mustRun {
			t.Fatalf("%s daemon unavailable: %s", spec.name, spec.unavailable)
		}
		t.Skipf("%s daemon unavailable: %s", spec.name, spec.unavailable)
	}
}

// lockedBuffer collects a daemon's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startOpts configures a daemon run.
type startOpts struct {
	args []string // extra command-line arguments
	// unsandboxed adds --sandbox=none --seccomp=none; by default a daemon
	// runs with its default sandbox (namespace) and seccomp filter (kill),
	// as users run it.
	unsandboxed bool
	// refUnsandboxed runs the reference (only) with --sandbox=none
	// --seccomp=none: for tests that make its worker panic. Its own seccomp
	// filter kills the whole process with SIGSYS while the panicking thread
	// unwinds (observed with 1.13.2), so under its defaults the stall these
	// tests document becomes a crash that hides the rest of the run.
	refUnsandboxed bool
	fe             frontend.Options
	noInit         bool // skip FUSE_INIT
	noFE           bool // do not connect
	// listenFD: pass a listening socket as fd 3 with --fd=3 instead of
	// --socket-path.
	listenFD bool
}

// daemon is one running daemon process with a connected front-end.
type daemon struct {
	t      testing.TB
	spec   *daemonSpec
	Shared string // host directory served
	Sock   string
	FE     *frontend.Frontend
	Init   frontend.InitOut

	cmd     *exec.Cmd
	stderr  *lockedBuffer
	done    chan struct{}
	waitErr error
	// expectPanic: a panic message in stderr is expected (reference after
	// a malformed request).
	expectPanic bool
	// skipExitCheck: the test checks exit status itself.
	skipExitCheck bool
	// connected: a test dialed a daemon started with noFE (migration
	// destinations).
	connected bool
}

func startDaemon(t testing.TB, spec *daemonSpec, o startOpts) *daemon {
	t.Helper()
	top := t.TempDir()
	shared := filepath.Join(top, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	return startDaemonIn(t, spec, shared, o)
}

func startDaemonIn(t testing.TB, spec *daemonSpec, shared string, o startOpts) *daemon {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "vfsd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &daemon{t: t, spec: spec, Shared: shared, Sock: filepath.Join(sockDir, "s"), stderr: &lockedBuffer{}, done: make(chan struct{})}
	args := []string{"--shared-dir", shared, "--socket-path", d.Sock}
	var lf *os.File
	if o.listenFD {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: d.Sock}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 1); err != nil {
			t.Fatal(err)
		}
		lf = os.NewFile(uintptr(fd), "listener")
		args = []string{"--shared-dir", shared, "--fd=3"}
	}
	if o.unsandboxed || (o.refUnsandboxed && !spec.hardened) {
		args = append(args, "--sandbox=none", "--seccomp=none")
	}
	args = append(args, o.args...)
	d.cmd = exec.Command(spec.bin, args...)
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if lf != nil {
		d.cmd.ExtraFiles = []*os.File{lf}
	}
	err = d.cmd.Start()
	if lf != nil {
		lf.Close()
	}
	if err != nil {
		t.Fatalf("start %s: %v", spec.bin, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.cleanup)
	if o.noFE {
		return d
	}
	fd, err := d.dial()
	if err != nil {
		t.Fatalf("%v\ndaemon log:\n%s", err, d.stderr.String())
	}
	fopts := o.fe
	fopts.Alive = d.alive
	fe, err := frontend.New(fd, fopts)
	if err != nil {
		t.Fatalf("connect front-end: %v\ndaemon log:\n%s", err, d.stderr.String())
	}
	d.FE = fe
	if !o.noInit {
		init, err := fe.Init(frontend.DefaultInitFlags)
		if err != nil {
			t.Fatalf("FUSE_INIT: %v\ndaemon log:\n%s", err, d.stderr.String())
		}
		d.Init = init
	}
	return d
}

// dial waits for the socket to appear and connects to it.
func (d *daemon) dial() (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := frontend.Dial(d.Sock)
		if err == nil {
			return fd, nil
		}
		if err := d.alive(); err != nil {
			return -1, fmt.Errorf("connect to %s daemon: %w", d.spec.name, err)
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("connect to %s daemon: %w", d.spec.name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive returns an error once the daemon has exited.
func (d *daemon) alive() error {
	select {
	case <-d.done:
		return fmt.Errorf("daemon exited: %v", d.waitErr)
	default:
		return nil
	}
}

// Pid returns the process ID of the daemon the test started. In the
// namespace sandbox that is the waiting parent; ServingPid is the process
// that serves.
func (d *daemon) Pid() int { return d.cmd.Process.Pid }

// ServingPid returns the process that serves the socket: the started
// process itself, or in the namespace sandbox its child (PID 1 of the new
// PID namespace). The reference's short-lived ID-mapping helper is never
// running once the front-end has been answered.
func (d *daemon) ServingPid() int {
	d.t.Helper()
	pid := d.Pid()
	deadline := time.Now().Add(10 * time.Second)
	for {
		kids := childrenOf(pid)
		if len(kids) == 0 {
			return pid
		}
		if len(kids) == 1 {
			return kids[0]
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s daemon %d has several children: %v", d.spec.name, pid, kids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childrenOf lists the children of every thread of process pid.
func childrenOf(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var kids []int
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			var k int
			if _, err := fmt.Sscan(f, &k); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// Log returns the daemon's output so far.
func (d *daemon) Log() string { return d.stderr.String() }

// wait waits up to timeout for the daemon to exit and returns its exit
// code, or an error if it did not exit or died of a signal.
func (d *daemon) wait(timeout time.Duration) (int, error) {
	select {
	case <-d.done:
	case <-time.After(timeout):
		return -1, errors.New("daemon did not exit")
	}
	if d.waitErr == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(d.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, fmt.Errorf("daemon killed by %v", ws.Signal())
		}
		return ee.ExitCode(), nil
	}
	return -1, d.waitErr
}

// disconnect closes the front-end and checks that the daemon exits with
// status 0 without a panic.
func (d *daemon) disconnect() {
	d.t.Helper()
	if d.FE != nil {
		d.FE.Close()
		d.FE = nil
	}
	code, err := d.wait(10 * time.Second)
	if err != nil || code != 0 {
		d.t.Errorf("%s daemon after disconnect: code %d, %v\nlog:\n%s", d.spec.name, code, err, d.Log())
	}
	d.checkNoPanic()
	d.skipExitCheck = true
}

func (d *daemon) checkNoPanic() {
	d.t.Helper()
	log := d.Log()
	if !d.expectPanic && (strings.Contains(log, "panic") || strings.Contains(log, "goroutine ")) {
		d.t.Errorf("%s daemon log shows a panic:\n%s", d.spec.name, log)
	}
}

func (d *daemon) cleanup() {
	if d.FE != nil {
		d.FE.Close()
		d.FE = nil
	}
	code, err := d.wait(10 * time.Second)
	if err != nil && strings.Contains(err.Error(), "did not exit") {
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("%s daemon did not exit after disconnect; killed\nlog:\n%s", d.spec.name, d.Log())
		return
	}
	if d.skipExitCheck {
		return
	}
	if err != nil || code != 0 {
		d.t.Errorf("%s daemon exit: code %d, %v\nlog:\n%s", d.spec.name, code, err, d.Log())
	}
	d.checkNoPanic()
	if d.t.Failed() {
		d.t.Logf("%s daemon log:\n%s", d.spec.name, d.Log())
	}
}

// fdCount returns the number of open fds of the daemon.
func (d *daemon) fdCount() int {
	d.t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.ServingPid()))
	if err != nil {
		d.t.Fatalf("count daemon fds: %v", err)
	}
	return len(ents)
}

// fdList describes the daemon's open fds, for leak reports.
func (d *daemon) fdList() string {
	dir := fmt.Sprintf("/proc/%d/fd", d.ServingPid())
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}

// serves checks that the daemon still answers GETATTR on the root.
func (d *daemon) serves() {
	d.t.Helper()
	if err := d.alive(); err != nil {
		d.t.Fatalf("%s daemon not alive: %v\nlog:\n%s", d.spec.name, err, d.Log())
	}
	a, err := d.FE.Getattr(frontend.FUSE_ROOT_ID)
	if err != nil {
		d.t.Fatalf("%s daemon does not serve GETATTR: %v\nlog:\n%s", d.spec.name, err, d.Log())
	}
	if a.Attr.Mode&unix.S_IFMT != unix.S_IFDIR {
		d.t.Fatalf("root mode %#o is not a directory", a.Attr.Mode)
	}
}
