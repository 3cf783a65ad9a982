package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
)

// stageEnv is the environment variable through which the original process
// tells its copy in the namespaces that it is the copy, and what it needs
// to know. It is an internal interface between two copies of the same
// program, not an option.
const stageEnv = "VIRTIOFSD_SANDBOX_STAGE"

// Descriptor numbers of the files the copy inherits (exec.Cmd.ExtraFiles
// start at 3). The executable is executed as /proc/self/fd/N of the new
// process, so N must be a number that the runtime's descriptor shuffling
// between fork and exec gives a fixed meaning: one of the inherited ones.
const (
	childListenFD = 3
	childSyncFD   = 4
	childExeFD    = 5
)

// Stage is what the copy running in the namespaces learns from the original
// process.
type Stage struct {
	// Listen is the inherited listening socket, or -1.
	Listen int
	// ListenErrno, if not 0, is why the --fd descriptor given to the
	// original process is unusable; it is reported when the copy starts
	// to accept.
	ListenErrno syscall.Errno
	// Sync is the pipe the copy waits on until the original process has
	// set up its ID maps.
	Sync int
	// Exe is the inherited descriptor of the executable, closed by
	// TakeStage.
	Exe int
	// Budget is the guest's file descriptor budget computed from
	// RLIMIT_NOFILE by the original process.
	Budget int
	// Root is the canonical path of the shared directory.
	Root string
}

// TakeStage returns the Stage the original process left in the
// environment and removes it from there, or nil when this process is not a
// copy started by Spawn. A stage is only accepted by PID 1, which the copy
// is in its new PID namespace.
func TakeStage() (*Stage, error) {
	v, ok := os.LookupEnv(stageEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(stageEnv)
	if os.Getpid() != 1 {
		return nil, fmt.Errorf("%s is set but this process is not the first of a PID namespace", stageEnv)
	}
	s := Stage{Listen: -1, Sync: -1, Exe: -1}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return nil, fmt.Errorf("bad %s: %w", stageEnv, err)
	}
	closeFD(&s.Exe)
	// The inherited descriptors lose their place in any later exec.
	for _, fd := range []int{s.Listen, s.Sync} {
		if fd >= 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
				return nil, fmt.Errorf("inherited descriptor %d: %w", fd, err)
			}
		}
	}
	return &s, nil
}

// errParentDied is AwaitRelease's error when the original process is gone.
var errParentDied = errors.New("Parent process died unexpectedly")

// AwaitRelease blocks until the original process has set up the ID maps,
// then checks that it is still alive, and closes the pipe.
//
// The caller must have installed its SIGTERM handler: the parent-death
// signal is ignored by the first process of a PID namespace while it has
// no handler (pid_namespaces(7)), so a parent that died before that would
// go unnoticed. The original process holds the pipe's write end until it
// exits, so a hang-up seen after the go-ahead byte means that it died; if
// it dies later, the handler gets the signal.
func (s *Stage) AwaitRelease() error {
	defer closeFD(&s.Sync)
	var b [1]byte
	n, err := linux.Read(s.Sync, b[:])
	if err != nil {
		return fmt.Errorf("wait for the parent process: %w", err)
	}
	if n == 0 {
		return errParentDied
	}
	for {
		fds := []unix.PollFd{{Fd: int32(s.Sync), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("check the parent process: %w", err)
		}
		if n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			return errParentDied
		}
		return nil
	}
}

// BecomeRoot switches every thread to user and group ID 0 of the user
// namespace, which works when the ID maps map 0. As in the reference, a
// failure is only a warning: with the default map the daemon keeps its
// own IDs and the capabilities it holds in the namespace.
func BecomeRoot(warn func(string)) {
	// syscall.Setresuid and Setresgid act on all threads, as wanted.
	if err := syscall.Setresuid(0, 0, 0); err != nil {
		warn("Couldn't set the process uid as root: -1")
	}
	if err := syscall.Setresgid(0, 0, 0); err != nil {
		warn("Couldn't set the process gid as root: -1")
	}
}

// SpawnConfig describes the copy of the daemon that Spawn starts.
type SpawnConfig struct {
	// ExeFD is a descriptor on the daemon's executable, opened at
	// start-up (OpenExe).
	ExeFD int
	// Args is the command line, Args[0] included; Env the environment.
	Args, Env []string
	// Stdin, Stdout and Stderr are passed on.
	Stdin, Stdout, Stderr *os.File
	// Listener is the listening socket to pass on, or -1 together with
	// ListenErrno when the --fd descriptor is unusable.
	Listener    int
	ListenErrno syscall.Errno
	// Budget and Root are passed on in the Stage.
	Budget int
	Root   string
	// UIDMaps and GIDMaps are the --uid-map and --gid-map ranges; empty
	// means the process's own ID. They only apply when Unprivileged.
	UIDMaps, GIDMaps []IDMap
	// Unprivileged adds a user namespace (the process's euid is not 0).
	Unprivileged bool
}

// Child is the copy of the daemon started by Spawn.
type Child struct {
	cmd  *exec.Cmd
	sync *os.File // write end of the pipe the copy waits on
	// uidMaps and gidMaps are the maps newuidmap and newgidmap must
	// write; empty when the runtime wrote the map while starting the copy.
	uidMaps, gidMaps []IDMap
	done             chan struct{}
	state            *os.ProcessState
	waitErr          error
}

// OpenExe opens the running executable, so that the copy started later is
// the same program even if the file is replaced on disk meanwhile.
func OpenExe() (int, error) {
	fd, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /proc/self/exe: %w", err)
	}
	return fd, nil
}

// lastCap returns the highest capability number the kernel knows.
func lastCap() (uintptr, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/sys/kernel/cap_last_cap: %w", err)
	}
	return uintptr(n), nil
}

// Spawn starts the copy of the daemon in new mount, PID and network
// namespaces (and a user namespace when unprivileged). The copy waits for
// Release before it enters the sandbox. Its parent-death signal is
// SIGTERM; since that signal follows the thread that started the copy
// (PR_SET_PDEATHSIG in prctl(2)), the start and the wait run on one
// goroutine locked to its thread.
func Spawn(c SpawnConfig) (_ *Child, err error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	defer syncR.Close()
	// On success the write end belongs to the Child, which closes it in
	// Wait.
	defer func() {
		if err != nil {
			syncW.Close()
		}
	}()
	stage := Stage{Listen: childListenFD, ListenErrno: c.ListenErrno, Sync: childSyncFD, Exe: childExeFD, Budget: c.Budget, Root: c.Root}
	exeFD, err := unix.FcntlInt(uintptr(c.ExeFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate the executable's descriptor: %w", err)
	}
	exe := os.NewFile(uintptr(exeFD), "exe")
	defer exe.Close()
	var listener *os.File
	if c.Listener >= 0 {
		// Duplicated so that the *os.File owns a descriptor of its own.
		fd, err := unix.FcntlInt(uintptr(c.Listener), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("duplicate the listener: %w", err)
		}
		listener = os.NewFile(uintptr(fd), "listener")
		defer listener.Close()
	} else {
		stage.Listen = -1
	}
	js, err := json.Marshal(stage)
	if err != nil {
		return nil, err
	}
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGTERM,
	}
	ch := &Child{sync: syncW, done: make(chan struct{})}
	if c.Unprivileged {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		uids := mapsOrDefault(c.UIDMaps, os.Geteuid())
		if m, ok := directMapping(uids, os.Geteuid()); ok {
			attr.UidMappings = []syscall.SysProcIDMap{m}
		} else {
			ch.uidMaps = uids
		}
		gids := mapsOrDefault(c.GIDMaps, os.Getegid())
		if m, ok := directMapping(gids, os.Getegid()); ok {
			attr.GidMappings = []syscall.SysProcIDMap{m}
			attr.GidMappingsEnableSetgroups = false
		} else {
			ch.gidMaps = gids
		}
		// After execve a process that is not root in its user
		// namespace keeps only its ambient capabilities
		// (capabilities(7)); the reference daemon, which does not
		// exec, keeps every capability of the namespace.
		last, err := lastCap()
		if err != nil {
			return nil, err
		}
		for cp := uintptr(0); cp <= last; cp++ {
			attr.AmbientCaps = append(attr.AmbientCaps, cp)
		}
	}
	ch.cmd = &exec.Cmd{
		Path:        "/proc/self/fd/" + strconv.Itoa(childExeFD),
		Args:        c.Args,
		Env:         append(append([]string{}, c.Env...), stageEnv+"="+string(js)),
		ExtraFiles:  []*os.File{listener, syncR, exe},
		SysProcAttr: attr,
	}
	// A standard descriptor that is not open is replaced by /dev/null
	// (exec.Cmd's default), since it cannot be passed on.
	if f := openFile(c.Stdin); f != nil {
		ch.cmd.Stdin = f
	}
	if f := openFile(c.Stdout); f != nil {
		ch.cmd.Stdout = f
	}
	if f := openFile(c.Stderr); f != nil {
		ch.cmd.Stderr = f
	}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked, and so alive, until the copy has
		// exited; the goroutine then ends and takes the thread with it.
		if err := ch.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		ch.waitErr = ch.cmd.Wait()
		ch.state = ch.cmd.ProcessState
		close(ch.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start the sandboxed process: %w", err)
	}
	return ch, nil
}

// openFile returns f if it is an open file, else nil.
func openFile(f *os.File) *os.File {
	if f == nil {
		return nil
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil {
		return nil
	}
	return f
}

// Pid returns the copy's process ID (in the original PID namespace).
func (ch *Child) Pid() int { return ch.cmd.Process.Pid }

// Release writes the ID maps that need newuidmap or newgidmap, then lets
// the copy go on. If a map cannot be written, the copy is killed and the
// error returned; the caller still calls Wait. The pipe stays open until
// Wait returns: its hang-up tells the copy that this process died.
func (ch *Child) Release() error {
	if len(ch.uidMaps) > 0 {
		if err := runNewIDMap("newuidmap", "uid", ch.Pid(), ch.uidMaps); err != nil {
			ch.cmd.Process.Kill()
			return err
		}
	}
	if len(ch.gidMaps) > 0 {
		if err := runNewIDMap("newgidmap", "gid", ch.Pid(), ch.gidMaps); err != nil {
			ch.cmd.Process.Kill()
			return err
		}
	}
	if _, err := ch.sync.Write([]byte{1}); err != nil {
		ch.cmd.Process.Kill()
		return fmt.Errorf("release the sandboxed process: %w", err)
	}
	return nil
}

// Wait waits for the copy to exit and returns its wait status.
func (ch *Child) Wait() (syscall.WaitStatus, error) {
	<-ch.done
	ch.sync.Close()
	if ch.state == nil {
		return 0, ch.waitErr
	}
	ws, ok := ch.state.Sys().(syscall.WaitStatus)
	if !ok {
		return 0, fmt.Errorf("unexpected wait status %v", ch.state)
	}
	return ws, nil
}

// ExitStatus is the status the original process exits with for the copy's
// wait status: the copy's own exit status, or 256 minus the signal that
// killed it. signal is that signal, or 0.
func ExitStatus(ws syscall.WaitStatus) (code int, signal syscall.Signal) {
	if ws.Signaled() {
		return 256 - int(ws.Signal()), ws.Signal()
	}
	return ws.ExitStatus(), 0
}
