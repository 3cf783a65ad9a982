package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// The pieces of the live-migration test: processes (daemons, QEMU instances)
// that outlive a single Boot, a console log one can wait on, and QEMU
// instances driven over QMP.

// OutputLog collects a process's output; WaitFor waits for a string to
// appear in it.
type OutputLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is closed and replaced on every write.
	changed chan struct{}
}

func newOutputLog() *OutputLog { return &OutputLog{changed: make(chan struct{})} }

func (l *OutputLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *OutputLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len returns how many bytes were written so far.
func (l *OutputLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// WaitFor waits until s appears in the log at or after offset from and
// returns the offset just past it. It gives up when ctx ends or when gone is
// closed (the writer exited) without s having appeared.
func (l *OutputLog) WaitFor(ctx context.Context, from int, s string, gone <-chan struct{}) (int, error) {
	for {
		l.mu.Lock()
		b := l.buf.Bytes()
		if from < len(b) {
			if i := bytes.Index(b[from:], []byte(s)); i >= 0 {
				l.mu.Unlock()
				return from + i + len(s), nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-gone:
			// Writes may have raced with the exit: look once more.
			l.mu.Lock()
			b := l.buf.Bytes()
			found := from < len(b) && bytes.Contains(b[from:], []byte(s))
			l.mu.Unlock()
			if found {
				continue
			}
			return 0, fmt.Errorf("%q did not appear before the process exited", s)
		case <-ctx.Done():
			return 0, fmt.Errorf("%q did not appear: %w", s, ctx.Err())
		}
	}
}

// Proc is a child process in its own process group, killed with the group
// (and with the test process, by Pdeathsig).
type Proc struct {
	Name string
	Out  *OutputLog
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc starts path with args; extra become its descriptors 3, 4...
// (the caller closes its copies).
func StartProc(name, path string, args []string, extra []*os.File) (*Proc, error) {
	p := &Proc{Name: name, Out: newOutputLog(), done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout = p.Out
	p.cmd.Stderr = p.Out
	p.cmd.ExtraFiles = extra
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited (and its output is complete).
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; call it once Done is closed.
func (p *Proc) Err() error { return p.err }

// Exited tells whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill kills the process group and waits for the process. It reports
// whether the process had already exited by itself.
func (p *Proc) Kill() (exited bool) {
	exited = p.Exited()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return exited
}

// WaitExit waits up to grace for the process to exit by itself.
func (p *Proc) WaitExit(grace time.Duration) (exited bool) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// StartDaemon starts the daemon bin serving shared on the socket sock, and
// waits for it to listen.
func StartDaemon(ctx context.Context, name, bin string, args []string, shared, sock string) (*Proc, error) {
	args = append([]string{"--shared-dir", shared, "--socket-path", sock}, args...)
	p, err := StartProc(name, bin, args, nil)
	if err != nil {
		return nil, err
	}
	for {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
		select {
		case <-p.done:
			return p, fmt.Errorf("%s exited before creating %s: %v", name, sock, p.err)
		case <-ctx.Done():
			return p, fmt.Errorf("%s did not create %s: %w", name, sock, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// VM is a QEMU instance with its QMP connection. Its Out is the serial
// console.
type VM struct {
	*Proc
	QMP *QMP
	// next numbers the first QMP event WaitMigration has not looked at.
	next int
}

// StartVM starts QEMU with machine (see machineArgs) and a QMP monitor on a
// socket it creates at qmpSock; with incoming, QEMU waits for an incoming
// migration (-incoming defer) instead of booting. Migration events and the
// return path (over which a destination that fails to load the stream tells
// the source) are switched on.
func StartVM(ctx context.Context, name, qemu string, machine []string, qmpSock string, incoming bool) (*VM, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: qmpSock, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// QEMU keeps listening on the socket; ours only hands it over.
	l.SetUnlinkOnClose(false)
	lf, err := l.File()
	l.Close()
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), machine...),
		"-chardev", "socket,id=qmp,fd=3,server=on,wait=off", "-mon", "chardev=qmp,mode=control")
	if incoming {
		args = append(args, "-incoming", "defer")
	}
	p, err := StartProc(name, qemu, args, []*os.File{lf})
	lf.Close()
	if err != nil {
		return nil, err
	}
	vm := &VM{Proc: p}
	// The connection waits in the socket's backlog until QEMU accepts it.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-qctx.Done():
		}
	}()
	if vm.QMP, err = DialQMP(qctx, qmpSock); err != nil {
		return vm, fmt.Errorf("%s: %w", name, err)
	}
	caps := []map[string]any{{"capability": "events", "state": true}, {"capability": "return-path", "state": true}}
	if _, err := vm.QMP.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": caps}); err != nil {
		return vm, fmt.Errorf("%s: %w", name, err)
	}
	return vm, nil
}

// SetReturnPath switches the return-path migration capability.
func (vm *VM) SetReturnPath(ctx context.Context, on bool) error {
	caps := []map[string]any{{"capability": "return-path", "state": on}}
	_, err := vm.QMP.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": caps})
	return err
}

// WaitMigration waits for the end of the current migration (see
// QMP.WaitMigration), or for QEMU to exit first.
func (vm *VM) WaitMigration(ctx context.Context) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-vm.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	st, err := vm.QMP.WaitMigration(ctx, &vm.next)
	if err != nil && vm.Exited() {
		return "", fmt.Errorf("%s exited (%v) before the migration ended", vm.Name, vm.Err())
	}
	return st, err
}

// RunState returns QEMU's run state (query-status).
func (vm *VM) RunState(ctx context.Context) (string, error) {
	raw, err := vm.QMP.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || st.Status == "" {
		return "", fmt.Errorf("query-status: no status in %s (%v)", raw, err)
	}
	return st.Status, nil
}

// WaitRunning waits for the guest to run: a source whose migration failed
// resumes it (emitting a RESUME event) shortly after reporting the failure.
func (vm *VM) WaitRunning(ctx context.Context) error {
	mark := vm.QMP.eventCount()
	st, err := vm.RunState(ctx)
	if err != nil || st == "running" {
		return err
	}
	// Not yet running: a resume from now on emits RESUME.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-vm.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, err := vm.QMP.WaitEvent(ctx, &mark, func(ev QMPEvent) bool { return ev.Event == "RESUME" }); err != nil {
		return fmt.Errorf("%s is %s and did not resume: %w", vm.Name, st, err)
	}
	if st, err = vm.RunState(ctx); err == nil && st != "running" {
		err = fmt.Errorf("%s is %s after resuming, want running", vm.Name, st)
	}
	return err
}

// Quit asks QEMU to quit and waits up to grace for it to exit, killing it
// otherwise; it reports whether QEMU quit by itself.
func (vm *VM) Quit(ctx context.Context, grace time.Duration) bool {
	if vm.Exited() {
		return true
	}
	// QEMU may close the connection before it answers.
	_, _ = vm.QMP.Execute(ctx, "quit", nil)
	if vm.WaitExit(grace) {
		return true
	}
	vm.Kill()
	return false
}

// Close kills QEMU if it still runs and closes the QMP connection.
func (vm *VM) Close() {
	vm.Kill()
	if vm.QMP != nil {
		vm.QMP.Close()
	}
}
