// The runtime's container-aware GOMAXPROCS keeps cgroup files open from
// before main for the life of the process. Their descriptor numbers (3 and
// up) would alias a bogus --fd argument, so that the daemon accepted on a
// runtime file instead of failing with EBADF like the reference; the request
// threads are sized by the command line anyway.

//go:debug containermaxprocs=0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/cli"
	"virtiofsd/internal/fuse"
	"virtiofsd/internal/logging"
	"virtiofsd/internal/passthrough"
	"virtiofsd/internal/sandbox"
	"virtiofsd/internal/virtiofs"
)

// capabilities is the --print-capabilities output (vhost-user.json back-end
// capabilities), byte for byte the reference's.
const capabilities = `{
  "type": "fs",
  "features": [
    "migrate-precopy",
    "separate-options"
  ]
}
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// fatal is a start-up failure: its message is logged at error level and the
// process exits with status 1.
type fatal struct{ msg string }

func (f *fatal) Error() string { return f.msg }

func fatalf(format string, args ...any) error {
	return &fatal{fmt.Sprintf(format, args...)}
}

// exitStatus ends start-up with a status but no further log line: the
// namespace sandbox's original process exits with its copy's status.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// daemon carries the state built up by the start-up steps.
type daemon struct {
	opts *cli.Options
	log  *slog.Logger
	// debug reports whether debug records are written.
	debug bool

	// pid is the locked pid file; it is never closed.
	pid *pidFile
	// listenFD is the listening socket.
	listenFD int
	// unlinkPath is removed after the connection is accepted ("" for none).
	unlinkPath string
	// fdErr is why the --fd descriptor is unusable; like the reference,
	// the daemon reports it only when it starts to accept.
	fdErr error

	budget int
	root   string
	dev    *virtiofs.Device

	// stage is set in the copy of the daemon that runs in the namespace
	// sandbox: what the original process handed over.
	stage *sandbox.Stage
	// exeFD is the daemon's executable, opened at start-up when the
	// namespace sandbox will run a copy of it; -1 otherwise.
	exeFD int
	// fds are the sandbox's descriptors for the file system.
	fds *sandbox.FDs
}

// run is the whole program; it returns the exit status. The steps keep the
// reference's externally visible order. In the namespace sandbox the
// original process stops after entering the sandbox, which starts a copy
// of the daemon and waits for it; the copy parses the same command line,
// skips the steps whose results it inherits (pid file, listener, socket
// group, open file limit) and goes on from the sandbox.
func run(argv []string, stdout, stderr io.Writer) int {
	stage, err := sandbox.TakeStage()
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	opts, err := cli.Parse(argv)
	if err != nil {
		var e *cli.Exit
		if !errors.As(err, &e) {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		io.WriteString(stdout, e.Stdout)
		io.WriteString(stderr, e.Stderr)
		return e.Code
	}
	if opts.PrintCapabilities {
		io.WriteString(stdout, capabilities)
		return 0
	}
	d := &daemon{opts: opts, listenFD: -1, exeFD: -1, stage: stage}
	switch {
	case stage != nil:
		d.listenFD, d.budget, d.root = stage.Listen, stage.Budget, stage.Root
		if stage.ListenErrno != 0 {
			d.fdErr = stage.ListenErrno
		}
	case opts.FDSet:
		// Check the descriptor before the daemon opens files of its own:
		// a number that was not inherited could later name one of them.
		_, d.fdErr = unix.FcntlInt(uintptr(opts.FD), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	if stage == nil && opts.Sandbox == cli.SandboxNamespace {
		// The copy run in the namespaces is this very executable.
		if d.exeFD, err = sandbox.OpenExe(); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
	}
	// The syslog connection, if any, is made here, before the sandbox
	// hides /dev/log.
	d.setupLogging(stderr)
	installSignalHandlers()

	var steps []func() error
	if stage == nil {
		steps = []func() error{
			d.refuseUnsupported,
			d.checkSharedDir,
			d.warnDeprecated,
			d.checkMigration,
			d.listen,
			d.setSocketGroup,
			d.setLimits,
			d.canonicalizeRoot,
			d.enterSandbox,
		}
	} else {
		steps = []func() error{d.refuseUnsupported, d.enterNamespaceStage}
	}
	steps = append(steps, d.installSeccomp, d.reduceCaps, d.buildDevice)
	for _, step := range steps {
		if err := step(); err != nil {
			var f *fatal
			var e *exitStatus
			switch {
			case errors.As(err, &e):
				return e.code
			case errors.As(err, &f):
				d.log.Error(f.msg)
			default:
				d.log.Error(err.Error())
			}
			return 1
		}
	}
	return d.serve()
}

// setupLogging installs the logger chosen by --log-level, -d, RUST_LOG and
// --syslog (fs.md §1.11).
func (d *daemon) setupLogging(stderr io.Writer) {
	level := d.opts.LogLevel
	if d.opts.Debug {
		level = slog.LevelDebug
	}
	var h slog.Handler
	var syslogErr error
	if d.opts.Syslog {
		sh, err := logging.NewSyslog(level)
		if err == nil {
			h = sh
		}
		syslogErr = err
	}
	if h == nil {
		f := logging.Filter{Level: level}
		if spec, ok := os.LookupEnv("RUST_LOG"); ok {
			f = logging.FilterFromEnv(spec, stderr)
		}
		h = logging.NewHandler(stderr, f)
	}
	d.log = slog.New(h)
	d.debug = h.Enabled(context.Background(), slog.LevelDebug)
	slog.SetDefault(d.log)
	if syslogErr != nil {
		d.log.Warn("can't enable syslog: " + syslogErr.Error())
	}
}

// installSignalHandlers makes SIGHUP and SIGTERM end the process at once
// with status 1, without any clean-up, and ignores SIGPIPE so that writes to
// a vanished peer fail with EPIPE instead of killing the daemon.
func installSignalHandlers() {
	signal.Ignore(unix.SIGPIPE)
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGHUP, unix.SIGTERM)
	go func() {
		<-c
		os.Exit(1)
	}()
}

// refuseUnsupported fails on options this daemon does not implement yet.
func (d *daemon) refuseUnsupported() error {
	msgs := d.opts.Unsupported()
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs[:len(msgs)-1] {
		d.log.Error(m)
	}
	return fatalf("%s", msgs[len(msgs)-1])
}

// checkSharedDir requires a shared directory that exists.
func (d *daemon) checkSharedDir() error {
	if !d.opts.SharedDirSet {
		return fatalf(`missing "--shared-dir" or "-o source" option`)
	}
	st, err := os.Stat(d.opts.SharedDir)
	if err != nil || !(st.IsDir() || st.Mode().IsRegular()) {
		return fatalf("%s does not exist", d.opts.SharedDir)
	}
	if !st.IsDir() {
		// The reference goes on with a regular file and fails later (or,
		// without a sandbox, serves a root that is not a directory).
		return fatalf("%s is not a directory", d.opts.SharedDir)
	}
	return nil
}

// warnDeprecated logs the reference's warnings for deprecated syntax.
func (d *daemon) warnDeprecated() error {
	if d.opts.Foreground {
		d.log.Warn("Use of deprecated flag '-f': This flag has no effect, please remove it")
	}
	if d.opts.Debug {
		d.log.Warn("Use of deprecated flag '-d': Please use the '--log-level debug' option instead")
	}
	if len(d.opts.Compat) > 0 {
		d.log.Warn("Use of deprecated option format '-o': Please specify options without it (e.g., '--cache auto' instead of '-o cache=auto')")
	}
	if d.opts.InodeFileHandles == cli.FileHandlesFallback {
		d.log.Warn("Use of deprecated value 'fallback' for '--inode-file-handles': Please use 'prefer' instead")
	}
	return nil
}

// checkMigration refuses the migration options that
// --migration-mode=file-handles makes pointless, with one error line each.
func (d *daemon) checkMigration() error {
	msgs := d.opts.MigrationConflicts()
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs[:len(msgs)-1] {
		d.log.Error(m)
	}
	return fatalf("%s", msgs[len(msgs)-1])
}

// listen obtains the listening socket: the inherited --fd, or a new socket
// at the socket path guarded by a locked pid file.
func (d *daemon) listen() error {
	if d.opts.FDSet {
		d.listenFD = d.opts.FD
		return nil
	}
	path, deprecated := d.opts.ListenPath()
	if deprecated {
		d.log.Warn("use of deprecated parameter '--socket': Please use the '--socket-path' option instead")
	}
	parent, ok := socketParent(path)
	if !ok {
		return fatalf("Invalid socket file name")
	}
	if parent != "" {
		// Like the reference, only existence is checked here; a parent
		// that is not a directory makes the pid file fail.
		if _, err := os.Stat(parent); err != nil {
			return fatalf("%s does not exist or is not a directory", parent)
		}
	}
	pidPath := path + ".pid"
	pid, err := createPIDFile(pidPath)
	if err != nil {
		return fatalf("Error creating pid file '%s': %s", pidPath, osErrorText(err))
	}
	d.pid = pid
	umask := umaskPrivate
	if d.opts.SocketGroup != "" {
		umask = umaskGroup
	}
	fd, err := listenUnix(path, umask)
	if err != nil {
		return fatalf("Error creating listener: %s", osErrorText(err))
	}
	d.listenFD = fd
	// Without a sandbox the reference removes the socket path once the
	// front-end is connected; inside its sandboxes it cannot reach it.
	if d.opts.Sandbox == cli.SandboxNone {
		d.unlinkPath = path
	}
	return nil
}

// setSocketGroup gives the socket to the --socket-group group.
func (d *daemon) setSocketGroup() error {
	if d.opts.SocketGroup == "" {
		return nil
	}
	gid, err := lookupGroup(d.opts.SocketGroup)
	if err != nil {
		return fatalf("Couldn't resolve the group name specified for the socket path")
	}
	path, _ := d.opts.ListenPath()
	if err := unix.Chown(path, -1, gid); err != nil {
		return fatalf("Couldn't set up the group for the socket path: %s", osErrorText(err))
	}
	return nil
}

// setLimits establishes RLIMIT_NOFILE and the guest's share of it.
func (d *daemon) setLimits() error {
	limitsLog := logging.WithModule(d.log, "limits")
	limit, err := setNofile(sysRlimit, d.opts.RlimitNofile, d.opts.RlimitNofileSet, func(msg string) { limitsLog.Warn(msg) })
	if err != nil {
		var above *aboveMaxError
		if errors.As(err, &above) {
			return fatalf("Error increasing number of open files: It cannot be increased above %d", above.max)
		}
		return fatalf("Error increasing number of open files: %s", osErrorText(err))
	}
	budget, reserve, ok := fdBudget(limit, d.opts.ThreadPoolSize)
	if !ok {
		return fatalf("Maximum number of file descriptors too small: Limit is %d, must be at least %d", limit, reserve)
	}
	if budget < smallBudget {
		d.log.Warn(fmt.Sprintf("File descriptor count limit is very small, leaving only %d file descriptors for the guest", budget))
	}
	d.budget = budget
	return nil
}

// canonicalizeRoot resolves the shared directory to an absolute path free
// of symbolic links.
func (d *daemon) canonicalizeRoot() error {
	abs, err := filepath.Abs(d.opts.SharedDir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return fatalf("Error creating sandbox: %s", osErrorText(err))
	}
	d.root = abs
	return nil
}

var fileHandleModes = map[cli.InodeFileHandles]passthrough.FileHandleMode{
	cli.FileHandlesNever:     passthrough.FileHandlesNever,
	cli.FileHandlesPrefer:    passthrough.FileHandlesPrefer,
	cli.FileHandlesFallback:  passthrough.FileHandlesPrefer,
	cli.FileHandlesMandatory: passthrough.FileHandlesMandatory,
}

var cachePolicies = map[cli.CachePolicy]passthrough.CachePolicy{
	cli.CacheAuto:     passthrough.CacheAuto,
	cli.CacheAlways:   passthrough.CacheAlways,
	cli.CacheNever:    passthrough.CacheNever,
	cli.CacheMetadata: passthrough.CacheMetadata,
}

// buildDevice creates the file system, the FUSE server and the device.
func (d *daemon) buildDevice() error {
	o := d.opts
	fs, err := passthrough.New(passthrough.Config{
		Root:              d.fds.Root,
		RootFD:            d.fds.RootFD,
		ProcSelfFD:        d.fds.ProcSelfFD,
		MountinfoFD:       d.fds.MountinfoFD,
		MountinfoPrefix:   d.fds.MountinfoPrefix,
		Cache:             cachePolicies[o.Cache],
		Readdirplus:       o.Readdirplus(),
		AnnounceSubmounts: o.AnnounceSubmounts,
		Writeback:         o.Writeback,
		AllowDirectIO:     o.AllowDirectIO,
		AllowMmap:         o.AllowMmap,
		PreserveNoatime:   o.PreserveNoatime,
		InodeFileHandles:  fileHandleModes[o.InodeFileHandles],
		KillprivV2:        o.KillprivV2,
		ThreadPoolSize:    o.ThreadPoolSize,
		FDBudget:          d.budget,
		// In file-handles migration mode the FS reads mountinfo whatever
		// --inode-file-handles says; every sandbox mode but none hands
		// it MountinfoFD above (in none mode the FS opens it itself).
		MigrationMode:          o.MigrationMode,
		MigrationOnError:       o.MigrationOnError,
		MigrationVerifyHandles: o.MigrationVerifyHandles,
		MigrationConfirmPaths:  o.MigrationConfirmPaths,
		Log:                    d.log,
	})
	if err != nil {
		return fatalf("Failed to create internal filesystem representation: %s", osErrorText(err))
	}
	if o.ThreadPoolSize > 0 {
		if err := checkUnshareFS(); err != nil {
			return fatalf("Failed to create the thread pool: unshare(CLONE_FS) failed (a seccomp policy of the container may forbid it): %s", osErrorText(err))
		}
	}
	var served fuse.FileSystem = fs
	if o.Readonly {
		served = passthrough.NewReadOnly(fs)
	}
	srv := fuse.NewServerWithOptions(served, fuse.Options{Log: d.log, Debug: d.debug})
	d.dev = virtiofs.New(srv, virtiofs.Config{
		Tag:            o.Tag,
		ThreadPoolSize: o.ThreadPoolSize,
		Log:            d.log,
		State:          passthrough.NewDeviceState(fs, srv),
	})
	return nil
}

// checkUnshareFS tests that a thread can get its own fs context, which every
// pool worker needs for its umask. The test thread is discarded afterwards
// (its goroutine exits still locked), since its fs context is now private.
func checkUnshareFS() error {
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		errc <- unix.Unshare(unix.CLONE_FS)
	}()
	return <-errc
}

// serve accepts the front-end's connection and serves it; it returns the
// exit status: 0 whenever the connection ends, 1 if none could be accepted.
func (d *daemon) serve() int {
	d.log.Info("Waiting for vhost-user socket connection...")
	conn, err := -1, d.fdErr
	if err == nil {
		conn, err = accept(d.listenFD)
		unix.Close(d.listenFD)
	}
	if err != nil {
		d.log.Error("Failed to start daemon: " + osErrorText(err))
		return 1
	}
	if d.unlinkPath != "" {
		_ = unix.Unlink(d.unlinkPath)
	}
	d.log.Info("Client connected, servicing requests")
	if err := d.dev.Serve(conn); err != nil {
		d.log.Error("Waiting for daemon failed: " + err.Error())
		return 0
	}
	d.log.Info("Client disconnected, shutting down")
	return 0
}
