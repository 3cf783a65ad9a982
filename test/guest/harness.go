package guest

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultDepsDir is where scripts/setup.sh puts the reference daemon and the
// guest kernel unless VIRTIOFSD_TEST_DEPS names another directory.
const DefaultDepsDir = "/opt/virtiofsd-test"

// Deps are the external pieces a guest run needs.
type Deps struct {
	Dir       string // VIRTIOFSD_TEST_DEPS or DefaultDepsDir
	Kernel    string // Dir/kernel/vmlinuz
	Reference string // Dir/ref/virtiofsd, wrapper around Debian's virtiofsd 1.13.2
	QEMU      string // qemu-system-x86_64 from PATH
	Busybox   string // a statically linked busybox
}

// FindDeps locates the dependencies and returns, in missing, a description of
// each one that is absent.
func FindDeps() (d Deps, missing []string) {
	d.Dir = os.Getenv("VIRTIOFSD_TEST_DEPS")
	if d.Dir == "" {
		d.Dir = DefaultDepsDir
	}
	d.Kernel = filepath.Join(d.Dir, "kernel", "vmlinuz")
	if _, err := os.Stat(d.Kernel); err != nil {
		missing = append(missing, fmt.Sprintf("guest kernel (%v)", err))
	}
	d.Reference = filepath.Join(d.Dir, "ref", "virtiofsd")
	if _, err := os.Stat(d.Reference); err != nil {
		missing = append(missing, fmt.Sprintf("reference virtiofsd (%v)", err))
	}
	var err error
	if d.QEMU, err = exec.LookPath("qemu-system-x86_64"); err != nil {
		missing = append(missing, "qemu-system-x86_64 (not in PATH)")
	}
	d.Busybox = "/bin/busybox"
	if p, err := exec.LookPath("busybox"); err == nil {
		d.Busybox = p
	}
	if err := checkStatic(d.Busybox); err != nil {
		missing = append(missing, fmt.Sprintf("static busybox (%v)", err))
	}
	return d, missing
}

// checkStatic reports an error unless path is an ELF executable without a
// program interpreter, i.e. one that runs in an initramfs with no libraries.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// ModuleRoot returns the directory holding the virtiofsd module's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module virtiofsd\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod for module virtiofsd above the working directory")
		}
		dir = parent
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// GoBuild builds the static binary of package pkg (relative to the module
// root, e.g. "./cmd/virtiofsd") into out.
func GoBuild(ctx context.Context, pkg, out string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Boot describes one guest run: a daemon serving SharedDir, and QEMU booting
// Kernel and Initrd with a vhost-user-fs-pci device connected to it.
type Boot struct {
	QEMU   string
	Kernel string
	Initrd string
	// Append is added to the kernel command line after the console settings.
	Append string
	// Daemon and DaemonArgs start the back-end; --shared-dir and
	// --socket-path are added.
	Daemon     string
	DaemonArgs []string
	SharedDir  string
	Tag        string
	// WorkDir holds the socket; it must be short enough for a UNIX socket
	// path.
	WorkDir string
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Console, if set, also receives the serial console as it arrives.
	Console io.Writer
}

// Outcome is what a guest run left behind.
type Outcome struct {
	Console   string
	DaemonLog string
	// QEMUErr is QEMU's exit error, if any; TimedOut is set when the run was
	// cut short by Boot.Timeout.
	QEMUErr  error
	TimedOut bool
	// DaemonErr is the daemon's exit status. DaemonExited tells whether it
	// left by itself once QEMU had gone (rather than being killed).
	DaemonErr    error
	DaemonExited bool
	// DaemonDiedEarly is set when the daemon exited while QEMU still ran
	// and QEMU did not stop by itself soon after.
	DaemonDiedEarly bool
	Elapsed         time.Duration
}

// syncBuffer is a bytes.Buffer safe for the concurrent writers of exec.Cmd.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemonExitGrace is how long the daemon gets to exit by itself after QEMU
// closed the vhost-user connection.
const daemonExitGrace = 10 * time.Second

// Run starts the daemon, waits for its socket, boots QEMU and waits for the
// guest to power off, the timeout or ctx. Both processes are always gone
// when Run returns. The error reports only failures to start; how the guest
// and the daemon ended is in the Outcome.
func (b Boot) Run(ctx context.Context) (out Outcome, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()

	sock := filepath.Join(b.WorkDir, "vfsd.sock")
	var dlog syncBuffer
	dargs := append([]string{"--shared-dir", b.SharedDir, "--socket-path", sock}, b.DaemonArgs...)
	daemon := exec.Command(b.Daemon, dargs...)
	daemon.Stdout = &dlog
	daemon.Stderr = &dlog
	daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := daemon.Start(); err != nil {
		return out, fmt.Errorf("start daemon %s: %w", b.Daemon, err)
	}
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- daemon.Wait() }()
	var daemonErr error
	daemonGone := false
	stopDaemon := func() {
		if daemonGone {
			return
		}
		_ = syscall.Kill(-daemon.Process.Pid, syscall.SIGKILL)
		daemonErr = <-daemonDone
		daemonGone = true
	}
	defer func() {
		stopDaemon()
		// Children the daemon left in its process group go too.
		_ = syscall.Kill(-daemon.Process.Pid, syscall.SIGKILL)
		out.DaemonLog = dlog.String()
		out.Elapsed = time.Since(start)
	}()

	// Wait for the daemon to listen.
	for {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case err := <-daemonDone:
			daemonGone, daemonErr = true, err
			out.DaemonErr = err
			return out, fmt.Errorf("daemon exited before creating %s: %v", sock, err)
		case <-ctx.Done():
			out.TimedOut = true
			return out, fmt.Errorf("daemon did not create %s: %w", sock, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}

	var console syncBuffer
	var cw io.Writer = &console
	if b.Console != nil {
		cw = io.MultiWriter(&console, b.Console)
	}
	qemu := exec.Command(b.QEMU, machineArgs(sock, b.Tag, b.Kernel, b.Initrd, b.Append)...)
	qemu.Stdout = cw
	qemu.Stderr = cw
	qemu.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := qemu.Start(); err != nil {
		return out, fmt.Errorf("start qemu: %w", err)
	}
	qemuDone := make(chan error, 1)
	go func() { qemuDone <- qemu.Wait() }()
	defer syscall.Kill(-qemu.Process.Pid, syscall.SIGKILL)
	killQEMU := func() {
		_ = syscall.Kill(-qemu.Process.Pid, syscall.SIGKILL)
		out.QEMUErr = <-qemuDone
	}
	select {
	case out.QEMUErr = <-qemuDone:
	case <-ctx.Done():
		out.TimedOut = true
		killQEMU()
	case err := <-daemonDone:
		// Either QEMU is closing the connection as it exits, or the daemon
		// died under a running guest, which cannot finish without its file
		// system: give QEMU a moment to stop by itself, then stop it.
		daemonGone, daemonErr = true, err
		select {
		case out.QEMUErr = <-qemuDone:
			out.DaemonExited = true
		case <-time.After(daemonExitGrace):
			out.DaemonDiedEarly = true
			killQEMU()
		}
	}
	out.Console = console.String()
	if daemonGone {
		out.DaemonErr = daemonErr
		return out, nil
	}

	// With QEMU gone, the daemon should notice the closed connection and exit.
	select {
	case err := <-daemonDone:
		daemonGone, daemonErr = true, err
		out.DaemonExited = true
	case <-time.After(daemonExitGrace):
	}
	stopDaemon()
	out.DaemonErr = daemonErr
	return out, nil
}

// machineArgs returns QEMU's options for the test machine: TCG, 512 MiB of
// shared memfd memory (which vhost-user needs), a vhost-user-fs-pci device
// connected to the daemon's socket sock with mount tag tag, the kernel and
// initramfs, and the serial console on stdio. Every QEMU instance of the
// tests is configured by it, so that a guest can migrate between any two.
func machineArgs(sock, tag, kernel, initrd, appendLine string) []string {
	return []string{
		"-nodefaults", "-no-user-config",
		"-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "512",
		"-object", "memory-backend-memfd,id=mem,size=512M,share=on", "-numa", "node,memdev=mem",
		"-chardev", "socket,id=char0,path=" + sock,
		"-device", "vhost-user-fs-pci,chardev=char0,tag=" + tag,
		"-kernel", kernel, "-initrd", initrd,
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 " + appendLine),
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
	}
}

// StressNGDir returns the directory scripts/setup.sh lays stress-ng out in
// for the guest (usr/bin/stress-ng, its libraries and loader), or an error
// if it is not there.
func (d Deps) StressNGDir() (string, error) {
	dir := filepath.Join(d.Dir, "stress-ng", "guest")
	for _, f := range []string{"usr/bin/stress-ng", "lib64/ld-linux-x86-64.so.2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// TreeEntries returns archive members for everything below the host
// directory dir (directories, regular files, symlinks), named by their path
// relative to dir, parents first.
func TreeEntries(dir string) ([]CPIOEntry, error) {
	var es []CPIOEntry
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		perm := uint32(fi.Mode().Perm())
		switch {
		case de.IsDir():
			es = append(es, CPIOEntry{Name: rel, Mode: syscall.S_IFDIR | perm})
		case de.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			es = append(es, CPIOEntry{Name: rel, Mode: syscall.S_IFLNK | 0o777, Data: []byte(target)})
		case de.Type().IsRegular():
			e, err := FileEntry(rel, p, perm)
			if err != nil {
				return err
			}
			es = append(es, e)
		default:
			return fmt.Errorf("archive %s: unsupported file type %v", p, de.Type())
		}
		return nil
	})
	return es, err
}
