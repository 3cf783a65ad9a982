package caps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The reduction tests run a copy of the test binary (the victim), since
// they take the capabilities of a whole process away for good. The
// environment variable victimEnv selects what the victim does; victimArg
// carries --modcaps for it.
const (
	victimEnv = "VIRTIOFSD_CAPS_TEST_VICTIM"
	victimArg = "VIRTIOFSD_CAPS_TEST_MODCAPS"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(victimEnv); mode != "" {
		os.Exit(victim(mode, os.Getenv(victimArg)))
	}
	code := m.Run()
	if victimDir != "" {
		os.RemoveAll(victimDir)
	}
	os.Exit(code)
}

// victimReport is what the victim prints on its standard output as JSON.
type victimReport struct {
	Err      string
	Errno    int // the system error wrapped in Err, or 0
	Before   []int
	Threads  map[int]Status
	Inherit  Set // the inheritable set and the ambient set given to every thread before the call
	Ambient  Set
	Problems []string
}

// victim runs in the copy of the test binary. It gives every thread an
// inheritable and an ambient capability, starts threads in several states
// (locked to goroutines, blocked in a system call), calls Reduce or
// ClearAll, then has new threads created, and reports the state of every
// thread.
func victim(mode, modcaps string) int {
	runtime.LockOSThread() // also starts the runtime's template thread
	var rep victimReport
	problem := func(format string, args ...any) {
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
	}
	defer func() {
		if err := json.NewEncoder(os.Stdout).Encode(&rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()

	// Threads that exist before the call: goroutines locked to their
	// threads, and one blocked in read(2).
	release := make(chan struct{})
	var wg sync.WaitGroup
	startLocked := func(n int) {
		ready := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				ready <- struct{}{}
				<-release
			}()
		}
		for i := 0; i < n; i++ {
			<-ready
		}
	}
	startLocked(3)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		problem("pipe: %v", err)
		return 0
	}
	reading := make(chan struct{})
	go func() {
		close(reading)
		var b [1]byte
		for {
			// Go's signals interrupt the read; only the pipe's
			// closing ends it.
			if _, err := unix.Read(p[0], b[:]); err != unix.EINTR {
				return
			}
		}
	}()
	<-reading
	defer unix.Close(p[1])

	// A starting state for the sets that Reduce must empty.
	if mode != "clear-plain" {
		rep.Inherit, rep.Ambient = 1<<capChown|1<<capFowner, 1<<capChown
		if err := setAll(0, rep.Inherit); err != nil {
			problem("give inheritable capabilities: %v", err)
			return 0
		}
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, capChown); e != 0 {
			problem("raise an ambient capability: %v", e)
			return 0
		}
	}
	if mode == "reduce-without-sys_admin" {
		// Take CAP_SYS_ADMIN from every thread, so that Reduce cannot
		// keep it.
		if err := setAll(1<<21, rep.Inherit); err != nil {
			problem("drop CAP_SYS_ADMIN: %v", err)
			return 0
		}
	}

	threads, err := ReadThreads(0)
	if err != nil {
		problem("read threads: %v", err)
		return 0
	}
	for tid, st := range threads {
		rep.Before = append(rep.Before, tid)
		if st.CapInh != rep.Inherit || st.CapAmb != rep.Ambient {
			problem("thread %d before the call: CapInh %#x, CapAmb %#x", tid, uint64(st.CapInh), uint64(st.CapAmb))
		}
	}

	switch mode {
	case "clear", "clear-plain":
		err = ClearAll()
	default:
		err = Reduce(modcaps, false)
	}
	if err != nil {
		rep.Err = err.Error()
		var e syscall.Errno
		if errors.As(err, &e) {
			rep.Errno = int(e)
		}
	}

	// New threads: this goroutine is locked, so the runtime clones them
	// from its template thread. Each new locked goroutine keeps its
	// thread, so more of them than there can be idle threads forces new
	// ones.
	startLocked(2*runtime.GOMAXPROCS(0) + 4)
	rep.Threads, err = ReadThreads(0)
	if err != nil {
		problem("read threads: %v", err)
	}
	close(release)
	wg.Wait()
	return 0
}

// setAll gives every thread the calling thread's permitted and effective
// sets without drop, and inh as its inheritable set.
func setAll(drop, inh Set) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	join := func(lo, hi uint32) Set { return Set(uint64(hi)<<32 | uint64(lo)) }
	prm := join(data[0].Permitted, data[1].Permitted) &^ drop
	eff := join(data[0].Effective, data[1].Effective) &^ drop
	if e := allThreadsCapset(prm, eff, inh); e != 0 {
		return e
	}
	return nil
}

// victimBinary returns a test binary that can change the capabilities of
// all its threads: this one, unless it links cgo (the race detector does
// when cgo is enabled), in which case a copy built with CGO_ENABLED=0.
func victimBinary(t *testing.T) string {
	t.Helper()
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, 0, 0); e == 0 {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return exe
	} else if e != syscall.ENOTSUP {
		t.Fatalf("AllThreadsSyscall: %v", e)
	}
	victimOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caps-victim")
		if err != nil {
			victimErr = err
			return
		}
		victimDir = dir
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goTool, "test", "-c", "-o", filepath.Join(dir, "caps.test"), ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			victimErr = fmt.Errorf("build a victim without cgo: %v\n%s", err, out)
			return
		}
		victimPath = filepath.Join(dir, "caps.test")
	})
	if victimErr != nil {
		t.Fatal(victimErr)
	}
	return victimPath
}

var (
	victimOnce sync.Once
	victimPath string
	victimDir  string
	victimErr  error
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing capabilities needs root")
	}
	if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, unix.CAP_SETPCAP, 0, 0, 0); err != nil || in != 1 {
		t.Skip("emptying the bounding set needs CAP_SETPCAP in the bounding set")
	}
}

func runVictim(t *testing.T, mode, modcaps string) victimReport {
	t.Helper()
	cmd := exec.Command(victimBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), victimEnv+"="+mode, victimArg+"="+modcaps)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("victim %s: %v\n%s", mode, err, stderr.Bytes())
	}
	var rep victimReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("victim %s: %v\nstdout: %s\nstderr: %s", mode, err, stdout.Bytes(), stderr.Bytes())
	}
	for _, p := range rep.Problems {
		t.Errorf("victim %s: %s", mode, p)
	}
	if len(rep.Problems) > 0 {
		t.FailNow()
	}
	return rep
}

// checkThreads checks that every thread of the victim, old and new, holds
// exactly want in its permitted and effective sets and nothing else.
func checkThreads(t *testing.T, rep victimReport, want Set) {
	t.Helper()
	before := map[int]bool{}
	for _, tid := range rep.Before {
		before[tid] = true
	}
	if len(rep.Before) < 5 {
		t.Errorf("only %d threads before the call, want at least 5", len(rep.Before))
	}
	var old, added int
	for tid, st := range rep.Threads {
		if before[tid] {
			old++
		} else {
			added++
		}
		if st.CapEff != want || st.CapPrm != want || st.CapInh != 0 || st.CapBnd != 0 || st.CapAmb != 0 {
			t.Errorf("thread %d (created before the call: %v): CapEff %#x CapPrm %#x CapInh %#x CapBnd %#x CapAmb %#x; want CapEff = CapPrm = %#x, others 0",
				tid, before[tid], uint64(st.CapEff), uint64(st.CapPrm), uint64(st.CapInh), uint64(st.CapBnd), uint64(st.CapAmb), uint64(want))
		}
	}
	if old != len(rep.Before) {
		t.Errorf("%d of the %d threads that existed before the call are left", old, len(rep.Before))
	}
	if added == 0 {
		t.Errorf("no thread was created after the call")
	}
}

func TestReduceAllThreads(t *testing.T) {
	requireRoot(t)
	for _, modcaps := range []string{"", "-mknod:+sys_admin"} {
		want, err := Compute(modcaps, false)
		if err != nil {
			t.Fatal(err)
		}
		rep := runVictim(t, "reduce", modcaps)
		if rep.Err != "" {
			t.Fatalf("Reduce(%q, false) = %s", modcaps, rep.Err)
		}
		checkThreads(t, rep, want)
	}
}

func TestReduceBadModcaps(t *testing.T) {
	// A --modcaps error changes nothing; no victim needed.
	if err := Reduce("+bogus", false); err == nil || err.Error() != "invalid capability 'BOGUS': failed to get the ID for the capability with name BOGUS" {
		t.Errorf("Reduce(\"+bogus\", false) = %v", err)
	}
	c := Config{FileHandles: FileHandlesMandatory, Modcaps: "-dac_read_search", ModcapsGiven: true}
	if err := c.Reduce(); err == nil || err.Error() != "can't disable DAC_READ_SEARCH when using --inode-file-handles=Mandatory" {
		t.Errorf("%+v.Reduce() = %v", c, err)
	}
}

// TestReduceFailure keeps a capability the process no longer has: capset(2)
// refuses with EPERM and Reduce reports the reference daemon's message.
func TestReduceFailure(t *testing.T) {
	requireRoot(t)
	rep := runVictim(t, "reduce-without-sys_admin", "+sys_admin")
	const want = "can't apply the child capabilities: failed to sync capabilities with the kernel"
	if rep.Err != want || rep.Errno != int(unix.EPERM) {
		t.Errorf("Reduce(\"+sys_admin\", false) without CAP_SYS_ADMIN = %q (errno %d), want %q (EPERM)", rep.Err, rep.Errno, want)
	}
}

func TestClearAll(t *testing.T) {
	requireRoot(t)
	for _, mode := range []string{"clear", "clear-plain"} {
		rep := runVictim(t, mode, "")
		if rep.Err != "" {
			t.Fatalf("ClearAll() = %s", rep.Err)
		}
		checkThreads(t, rep, 0)
	}
}

// TestCgo checks the message when the test binary links cgo, which happens
// with the race detector when cgo is enabled.
func TestCgo(t *testing.T) {
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, 0, 0); e != syscall.ENOTSUP {
		t.Skip("this test binary does not link cgo")
	}
	err := ClearAll()
	const want = "warning: can't apply the parent capabilities: changing the capabilities of all threads needs a binary built with CGO_ENABLED=0"
	if err == nil || err.Error() != want || !errors.Is(err, unix.ENOTSUP) {
		t.Errorf("ClearAll() = %v, want %q", err, want)
	}
}
