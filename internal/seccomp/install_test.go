package seccomp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/testutil"
)

// The tests below run a victim process that installs a filter; the filter
// cannot be removed, so it must not land in the test process itself. The
// victim is this package's test binary rebuilt with CGO_ENABLED=0, like the
// daemon: a binary linked with cgo starts its threads through the C
// library (clone3, no arch_prctl) and would not show what the Go runtime
// itself needs. The victim reads its scenario from victimEnv, reports on
// stdout and exits.
const victimEnv = "VIRTIOFSD_SECCOMP_VICTIM"

func TestMain(m *testing.M) {
	if name, ok := os.LookupEnv(victimEnv); ok {
		victim(name)
	}
	code := m.Run()
	if victimDir != "" {
		os.RemoveAll(victimDir)
	}
	os.Exit(code)
}

var (
	victimOnce sync.Once
	victimDir  string
	victimBin  string
	victimErr  error
)

// buildVictim builds the cgo-free test binary once.
func buildVictim() (string, error) {
	victimOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		victimDir, victimErr = os.MkdirTemp("", "seccomp-victim")
		if victimErr != nil {
			return
		}
		victimBin = filepath.Join(victimDir, "victim.test")
		cmd := exec.Command(goTool, "test", "-c", "-o", victimBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			victimErr = fmt.Errorf("build the victim: %v\n%s", err, out)
		}
	})
	return victimBin, victimErr
}

// forbidden makes a call no filter allows: socket(AF_UNIX, SOCK_DGRAM).
// It returns the descriptor (the call is allowed under ActionLog).
func forbidden() (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	return int(r), e
}

// victims are the scenarios run in the re-executed process. Each returns
// an error to report failure; the victim then exits with status 1.
var victims = map[string]func() error{
	"kill": func() error {
		if err := Install(Options{Action: ActionKill}); err != nil {
			return err
		}
		fmt.Println("installed")
		forbidden()
		fmt.Println("survived")
		return nil
	},
	"trap": func() error {
		if err := Install(Options{Action: ActionTrap}); err != nil {
			return err
		}
		fmt.Println("installed")
		forbidden()
		fmt.Println("survived")
		return nil
	},
	"log": func() error {
		if err := Install(Options{Action: ActionLog}); err != nil {
			return err
		}
		fd, e := forbidden()
		if e != 0 {
			return fmt.Errorf("socket under ActionLog: %v", e)
		}
		unix.Close(fd)
		fmt.Printf("survived pid=%d\n", os.Getpid())
		return nil
	},
	"threads":     threadsVictim,
	"busy":        busyVictim,
	"syslog":      syslogVictim,
	"unavailable": unavailableVictim,
	"tsync":       tsyncVictim,
	"stopcont":    stopContVictim,
	"every":       everyVictim,
	"wait":        waitVictim,
}

func victim(name string) {
	f, ok := victims[name]
	if !ok {
		fmt.Printf("unknown victim %q\n", name)
		os.Exit(1)
	}
	if !cgoFree() {
		fmt.Println("error: the victim is linked with cgo")
		os.Exit(1)
	}
	if err := f(); err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// cgoFree reports whether this binary was built with CGO_ENABLED=0.
func cgoFree() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "0"
		}
	}
	return false
}

// runVictim runs the named victim and returns its output and exit state.
func runVictim(t *testing.T, name string, env ...string) (stdout, stderr string, state *os.ProcessState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := buildVictim()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), victimEnv+"="+name)
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run victim %s: %v", name, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("victim %s timed out; stdout:\n%s\nstderr:\n%s", name, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), cmd.ProcessState
}

// signalled returns the signal that ended the process, or -1.
func signalled(state *os.ProcessState) unix.Signal {
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return -1
	}
	return ws.Signal()
}

// requireVictimOK fails unless the victim exited with status 0.
func requireVictimOK(t *testing.T, name string, stdout, stderr string, state *os.ProcessState) {
	t.Helper()
	if !state.Success() {
		t.Fatalf("victim %s: %v (want exit 0)\nstdout:\n%s\nstderr:\n%s", name, state, stdout, stderr)
	}
}

func TestInstallKill(t *testing.T) {
	stdout, stderr, state := runVictim(t, "kill")
	if !strings.Contains(stdout, "installed") {
		t.Fatalf("victim did not install the filter: %v\nstdout:\n%s\nstderr:\n%s", state, stdout, stderr)
	}
	if sig := signalled(state); sig != unix.SIGSYS {
		t.Fatalf("victim ended with %v, want killed by SIGSYS\nstdout:\n%s\nstderr:\n%s", state, stdout, stderr)
	}
	if strings.Contains(stdout, "survived") {
		t.Errorf("victim ran past the forbidden call")
	}
}

// TestInstallTrap: SECCOMP_RET_TRAP delivers a synchronous SIGSYS (si_code
// SYS_SECCOMP) to the calling thread. The Go runtime does not pass such a
// signal to os/signal channels; it treats it as fatal ("SIGSYS: bad system
// call", runtime/sigtab_linux_generic.go) and exits with status 2 after a
// traceback, which is what the daemon would do.
func TestInstallTrap(t *testing.T) {
	stdout, stderr, state := runVictim(t, "trap")
	if !strings.Contains(stdout, "installed") {
		t.Fatalf("victim did not install the filter: %v\nstdout:\n%s\nstderr:\n%s", state, stdout, stderr)
	}
	if signalled(state) != -1 || state.ExitCode() != 2 {
		t.Fatalf("victim ended with %v, want exit status 2\nstdout:\n%s\nstderr:\n%s", state, stdout, stderr)
	}
	// sigcode=1 is SYS_SECCOMP (the kernel's, not a kill(2)); the
	// traceback shows the signal arrived on the thread making the call.
	for _, want := range []string{"SIGSYS: bad system call", "sigcode=1", "seccomp.forbidden"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("victim's crash report lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stdout, "survived") {
		t.Errorf("victim ran past the forbidden call")
	}
}

// TestInstallLog: the forbidden call succeeds, and the kernel writes an
// audit record of type 1326 (AUDIT_SECCOMP) naming the victim and the call.
func TestInstallLog(t *testing.T) {
	testutil.RequireRoot(t) // CAP_AUDIT_READ
	logged, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_logged")
	logs := err == nil && slices.Contains(strings.Fields(string(logged)), "log")
	// The audit records are read from the audit netlink socket's read-only
	// multicast group, which gets every record. The kernel log (printk) is
	// no good: with no audit daemon the kernel rate-limits the records it
	// prints there ("kauditd_printk_skb: N callbacks suppressed"), so a
	// record can be missing when other tests produced many at once.
	audit, aerr := openAuditReadLog()
	if aerr == nil {
		defer unix.Close(audit)
	}

	stdout, stderr, state := runVictim(t, "log")
	requireVictimOK(t, "log", stdout, stderr, state)
	var pid int
	if _, err := fmt.Sscanf(strings.TrimSpace(stdout), "survived pid=%d", &pid); err != nil {
		t.Fatalf("victim output %q: %v", stdout, err)
	}

	if !logs {
		t.Skipf("the kernel does not log SECCOMP_RET_LOG here (actions_logged %q, %v)", logged, err)
	}
	if aerr != nil {
		t.Skipf("cannot read audit records: %v", aerr)
	}
	want := []string{fmt.Sprintf(" pid=%d ", pid), fmt.Sprintf(" syscall=%d ", unix.SYS_SOCKET), " code=0x7ffc0000"}
	// The record is queued for kauditd and may be sent after the victim
	// has exited: wait for records until one matches.
	if err := waitAudit(audit, want, 30*time.Second); err != nil {
		t.Error(err)
	}
}

// auditSeccomp is the audit record type of a logged seccomp action
// (AUDIT_SECCOMP in linux/audit.h).
const auditSeccomp = 1326

// openAuditReadLog opens a NETLINK_AUDIT socket bound to the
// AUDIT_NLGRP_READLOG multicast group (linux/audit.h), which receives a
// copy of every audit record; it needs CAP_AUDIT_READ.
func openAuditReadLog() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_AUDIT)
	if err != nil {
		return -1, fmt.Errorf("audit netlink socket: %w", err)
	}
	const auditNlgrpReadlog = 1
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (auditNlgrpReadlog - 1)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind to the audit read-log group: %w", err)
	}
	return fd, nil
}

// waitAudit reads audit records from the non-blocking socket fd, waiting
// for new ones with poll(2), until a seccomp record contains all of want or
// timeout passes.
func waitAudit(fd int, want []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return fmt.Errorf("no audit record of type %d with %q within %v", auditSeccomp, want, timeout)
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
				return fmt.Errorf("poll the audit socket: %w", err)
			}
			continue
		case err == unix.ENOBUFS:
			// The socket overflowed and records were lost; the one
			// wanted may still come.
			continue
		case err != nil:
			return fmt.Errorf("read the audit socket: %w", err)
		}
		// One record per datagram. The kernel's nlmsg_len of audit
		// records does not always cover the text, so the header is not
		// trusted beyond its type.
		if n <= unix.SizeofNlMsghdr || binary.NativeEndian.Uint16(buf[4:6]) != auditSeccomp {
			continue
		}
		rec := " " + string(buf[unix.SizeofNlMsghdr:n]) + " "
		all := true
		for _, w := range want {
			all = all && strings.Contains(rec, w)
		}
		if all {
			return nil
		}
	}
}

// threadStatus returns the Seccomp and NoNewPrivs lines of a task's status.
func threadStatus(path string) (seccomp, nnp string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "Seccomp":
			seccomp = strings.TrimSpace(v)
		case "NoNewPrivs":
			nnp = strings.TrimSpace(v)
		}
	}
	return seccomp, nnp, nil
}

func taskIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// parkThreads locks n goroutines to their threads until release is closed,
// and returns their thread ids once all are running.
func parkThreads(n int, release <-chan struct{}) []int {
	ids := make(chan int)
	for range n {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ids <- unix.Gettid()
			<-release
		}()
	}
	var out []int
	for range n {
		out = append(out, <-ids)
	}
	return out
}

// threadsVictim checks that TSYNC reached every thread that existed, and
// that threads created afterwards inherit the filter.
func threadsVictim() error {
	before := make(chan struct{})
	defer close(before)
	parkThreads(4, before)
	old, err := taskIDs()
	if err != nil {
		return err
	}
	if err := Install(Options{Action: ActionKill}); err != nil {
		return err
	}
	// More locked threads than existed before: some must be new.
	after := make(chan struct{})
	defer close(after)
	fresh := 0
	for _, id := range parkThreads(len(old)+2, after) {
		if !slices.Contains(old, id) {
			fresh++
		}
	}
	if fresh == 0 {
		return errors.New("no thread was created after Install")
	}
	all, err := taskIDs()
	if err != nil {
		return err
	}
	for _, id := range all {
		sc, nnp, err := threadStatus(fmt.Sprintf("/proc/self/task/%d/status", id))
		if err != nil {
			return err
		}
		if sc != "2" || nnp != "1" {
			return fmt.Errorf("thread %d: Seccomp %q NoNewPrivs %q, want 2 and 1", id, sc, nnp)
		}
	}
	fmt.Printf("threads=%d created-after=%d\n", len(all), fresh)
	return nil
}

func TestInstallAllThreads(t *testing.T) {
	stdout, stderr, state := runVictim(t, "threads")
	requireVictimOK(t, "threads", stdout, stderr, state)
	t.Log(strings.TrimSpace(stdout))
}

// busyVictim runs the kinds of work the daemon's process does under the
// kill filter: goroutines and channels, mutex contention, garbage
// collection and returning memory to the kernel, timers and sleeps,
// preemption of tight loops, a thread with its own fs context, signals,
// the network poller started after the filter, files, and os.Exit.
func busyVictim() error {
	// A socket pair is made before the filter (socketpair is not allowed);
	// it is handed to the network poller only afterwards.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "seccomp-busy")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sigs := make(chan os.Signal, 1)
	// A signal handler installed before the filter, like the daemon's.
	signal.Notify(sigs, unix.SIGUSR1)

	if err := Install(Options{Action: ActionKill}); err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	// Goroutines, channels and allocation; GC and scavenging.
	run(func() error {
		c := make(chan []byte)
		go func() {
			for i := range 2000 {
				c <- make([]byte, 1024+i)
			}
			close(c)
		}()
		var keep [][]byte
		for b := range c {
			keep = append(keep, b)
			if len(keep) > 100 {
				keep = nil
			}
		}
		runtime.GC()
		debug.FreeOSMemory()
		return nil
	})
	// Contended mutex, Gosched, more goroutines than threads.
	run(func() error {
		var mu sync.Mutex
		var inner sync.WaitGroup
		n := 0
		for range 64 {
			inner.Add(1)
			go func() {
				defer inner.Done()
				for range 200 {
					mu.Lock()
					n++
					mu.Unlock()
					runtime.Gosched()
				}
			}()
		}
		inner.Wait()
		if n != 64*200 {
			return fmt.Errorf("counter %d", n)
		}
		return nil
	})
	// Timers, tickers and sleeps.
	run(func() error {
		fired := make(chan struct{})
		time.AfterFunc(time.Millisecond, func() { close(fired) })
		<-fired
		tk := time.NewTicker(time.Millisecond)
		for range 5 {
			<-tk.C
		}
		tk.Stop()
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	// Tight loops only asynchronous preemption (SIGURG via tgkill) can
	// interrupt, on more goroutines than there are Ps.
	run(func() error {
		stop := make(chan struct{})
		var spin sync.WaitGroup
		for range runtime.GOMAXPROCS(0) + 1 {
			spin.Add(1)
			go func() {
				defer spin.Done()
				x := 0
				for {
					select {
					case <-stop:
						return
					default:
					}
					for i := range 1 << 20 {
						x += i
					}
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		spin.Wait()
		return nil
	})
	// A worker thread with its own fs context and umask, discarded
	// afterwards (its goroutine exits still locked).
	run(func() error {
		errc := make(chan error)
		go func() {
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				errc <- err
				return
			}
			unix.Umask(0o077)
			errc <- nil
		}()
		return <-errc
	})
	// A signal through the handler installed before the filter.
	run(func() error {
		if err := unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGUSR1); err != nil {
			return err
		}
		<-sigs
		return nil
	})
	// The network poller, first used after the filter: reads with a
	// deadline and a timeout.
	run(func() error {
		a, b := os.NewFile(uintptr(sp[0]), "a"), os.NewFile(uintptr(sp[1]), "b")
		defer a.Close()
		defer b.Close()
		a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 16)
		if _, err := a.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("read before any write: %v, want a timeout", err)
		}
		a.SetReadDeadline(time.Time{})
		go b.Write([]byte("ping"))
		if n, err := io.ReadFull(a, buf[:4]); err != nil || string(buf[:n]) != "ping" {
			return fmt.Errorf("read %q, %v", buf[:n], err)
		}
		return nil
	})
	// The credential switch of a request with supplementary groups saves
	// the thread's list first.
	run(func() error {
		_, err := unix.Getgroups()
		return err
	})
	// Files: create, write, sync, read, stat, list, rename, remove.
	run(func() error {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return err
		}
		if _, err := f.Stat(); err != nil {
			return err
		}
		if _, err := os.ReadDir(dir); err != nil {
			return err
		}
		if err := os.Rename(p, p+"2"); err != nil {
			return err
		}
		return os.Remove(p + "2")
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Println("survived")
	return nil
}

func TestInstallBusyRuntime(t *testing.T) {
	stdout, stderr, state := runVictim(t, "busy")
	requireVictimOK(t, "busy", stdout, stderr, state)
	if !strings.Contains(stdout, "survived") {
		t.Errorf("victim output %q", stdout)
	}
}

// syslogVictim connects to the test's datagram socket the way the log
// handler connects to /dev/log, installs the filter with Syslog and
// writes records.
func syslogVictim() error {
	w, err := syslog.Dial("unixgram", os.Getenv("SYSLOG_SOCKET"), syslog.LOG_USER|syslog.LOG_INFO, "virtiofsd")
	if err != nil {
		return err
	}
	if err := Install(Options{Action: ActionKill, Syslog: true}); err != nil {
		return err
	}
	for i := range 3 {
		if err := w.Info(fmt.Sprintf("record %d", i)); err != nil {
			return err
		}
	}
	fmt.Println("survived")
	return nil
}

func TestInstallSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stdout, stderr, state := runVictim(t, "syslog", "SYSLOG_SOCKET="+path)
	requireVictimOK(t, "syslog", stdout, stderr, state)
	buf := make([]byte, 4096)
	for i := range 3 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if want := fmt.Sprintf("record %d", i); !strings.Contains(string(buf[:n]), want) {
			t.Errorf("record %d = %q, want it to contain %q", i, buf[:n], want)
		}
	}
}

// unavailableVictim stands in for a kernel without SECCOMP_RET_LOG:
// Install must fail and leave the process unfiltered.
func unavailableVictim() error {
	actionAvailable = func(uint32) bool { return false }
	err := Install(Options{Action: ActionLog})
	if err == nil {
		return errors.New("Install(ActionLog) succeeded without SECCOMP_RET_LOG")
	}
	sc, nnp, serr := threadStatus("/proc/thread-self/status")
	if serr != nil {
		return serr
	}
	if sc != "0" || nnp != "0" {
		return fmt.Errorf("after a failed Install: Seccomp %q NoNewPrivs %q, want 0 and 0", sc, nnp)
	}
	fmt.Printf("refused: %v\n", err)
	return nil
}

func TestInstallActionUnavailable(t *testing.T) {
	stdout, stderr, state := runVictim(t, "unavailable")
	requireVictimOK(t, "unavailable", stdout, stderr, state)
	if !strings.Contains(stdout, "log") {
		t.Errorf("error does not name the action: %q", stdout)
	}
}

// tsyncVictim gives one thread a filter of its own, which the process
// filter cannot be synchronised with: Install must report that thread.
func tsyncVictim() error {
	allowAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	tid := make(chan int)
	release := make(chan struct{})
	defer close(release)
	go func() {
		// Never unlocked: the thread ends with the goroutine, so no other
		// goroutine runs under its filter.
		runtime.LockOSThread()
		if err := loadThread(allowAll); err != nil {
			fmt.Printf("error: %v\n", err)
			tid <- -1
			return
		}
		tid <- unix.Gettid()
		<-release
	}()
	other := <-tid
	if other < 0 {
		return errors.New("cannot give a thread its own filter")
	}
	err := Install(Options{Action: ActionKill})
	if err == nil {
		return errors.New("Install succeeded although a thread has another filter")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("thread %d ", other)) {
		return fmt.Errorf("Install error %q does not name thread %d", err, other)
	}
	fmt.Printf("refused: %v\n", err)
	return nil
}

func TestInstallTSYNCFailure(t *testing.T) {
	stdout, stderr, state := runVictim(t, "tsync")
	requireVictimOK(t, "tsync", stdout, stderr, state)
	t.Log(strings.TrimSpace(stdout))
}

// stopContVictim sleeps in nanosleep on a known thread, for much longer
// than the test lasts, while the test stops and continues the process.
func stopContVictim() error {
	if err := Install(Options{Action: ActionKill}); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fmt.Printf("sleeping tid=%d\n", unix.Gettid())
	ts := unix.Timespec{Sec: 3600}
	for {
		if err := unix.Nanosleep(&ts, &ts); err != unix.EINTR {
			return err
		}
	}
}

// waitSyscall waits until the thread's current system call (proc(5),
// /proc/pid/task/tid/syscall) is nr. /proc gives no notification, so it
// polls, with a deadline.
func waitSyscall(t *testing.T, pid, tid, nr int) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid)
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("waiting for system call %d: %v", nr, err)
		}
		if strings.HasPrefix(string(b), strconv.Itoa(nr)+" ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d never entered system call %d: %q", tid, nr, b)
		}
		runtime.Gosched()
	}
}

// TestInstallStopCont stops and continues a filtered process while a
// thread sleeps: the kernel resumes the sleep, and the timed futex waits of
// the runtime's idle threads, through restart_syscall, which the filter
// must allow.
func TestInstallStopCont(t *testing.T) {
	bin, err := buildVictim()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), victimEnv+"=stopcont")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	var tid int
	if _, serr := fmt.Sscanf(line, "sleeping tid=%d", &tid); err != nil || serr != nil {
		t.Fatalf("victim said %q (%v); stderr:\n%s", line, err, errOut.String())
	}
	waitSyscall(t, pid, tid, unix.SYS_NANOSLEEP)

	// wait4 reports the stop (WUNTRACED) or the death of the victim
	// without reaping a stopped one.
	wait := func(opts int) unix.WaitStatus {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, opts, nil)
			if err != unix.EINTR {
				if err != nil {
					t.Fatal(err)
				}
				return ws
			}
		}
	}
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if ws := wait(unix.WUNTRACED); !ws.Stopped() {
		t.Fatalf("victim did not stop: %#x; stderr:\n%s", ws, errOut.String())
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Resumed: the sleeping thread is now in restart_syscall. Had the
	// filter refused it, the process would be gone (waitSyscall fails
	// reading /proc), killed by SIGSYS.
	path := fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid)
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_RESTART_SYSCALL)+" ") {
			break
		}
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid {
			t.Fatalf("victim died after SIGCONT: %#x (signal %v); stderr:\n%s", ws, ws.Signal(), errOut.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d not back asleep after SIGCONT: %q, %v", tid, b, err)
		}
		runtime.Gosched()
	}
}

// notProbed are the entries everyVictim does not call with bad arguments:
// they would end the thread or the process, or corrupt it. The other
// victims make them anyway (threads start and end, signals return, the
// process exits).
var notProbed = []string{"exit", "exit_group", "rt_sigreturn", "clone", "clone3"}

// everyVictim makes every other allowed call under the kill filter, with
// arguments the kernel rejects (descriptor -1, address -1, invalid flags),
// so that only the filter's verdict matters: surviving proves the kernel
// allows each number.
func everyVictim() error {
	o := Options{Action: ActionKill, Syslog: true}
	if err := Install(o); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const bad = ^uintptr(0)
	n := 0
	for _, s := range selected(o) {
		if slices.Contains(notProbed, s.name) {
			continue
		}
		unix.RawSyscall6(uintptr(s.nr), bad, bad, bad, bad, bad, bad)
		n++
	}
	fmt.Printf("survived %d calls\n", n)
	return nil
}

func TestInstallEveryAllowedCall(t *testing.T) {
	stdout, stderr, state := runVictim(t, "every")
	requireVictimOK(t, "every", stdout, stderr, state)
	t.Log(strings.TrimSpace(stdout))
}

// waitVictim installs the filter and waits to be killed.
func waitVictim() error {
	if err := Install(Options{Action: ActionKill}); err != nil {
		return err
	}
	fmt.Println("ready")
	select {}
}

// TestInstallFatalSignal: a signal whose default action ends the process
// (SIGINT, which the daemon does not handle) still does so under the
// filter. The runtime catches it first and re-raises it with tgkill.
func TestInstallFatalSignal(t *testing.T) {
	bin, err := buildVictim()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), victimEnv+"=wait")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("victim said %q (%v); stderr:\n%s", line, err, errOut.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if sig := signalled(cmd.ProcessState); sig != unix.SIGINT {
		t.Errorf("victim ended with %v, want killed by SIGINT; stderr:\n%s", cmd.ProcessState, errOut.String())
	}
}
