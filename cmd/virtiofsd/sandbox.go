package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/caps"
	"virtiofsd/internal/cli"
	"virtiofsd/internal/logging"
	"virtiofsd/internal/sandbox"
	"virtiofsd/internal/seccomp"
)

var sandboxModes = map[cli.SandboxMode]sandbox.Mode{
	cli.SandboxNamespace: sandbox.ModeNamespace,
	cli.SandboxChroot:    sandbox.ModeChroot,
	cli.SandboxNone:      sandbox.ModeNone,
}

// sandboxError is the fatal error for a failure while entering the
// sandbox. An errno at the end of the message is spelled the reference's
// way.
func sandboxError(err error) error {
	msg := err.Error()
	var errno unix.Errno
	if errors.As(err, &errno) {
		msg = strings.TrimSuffix(msg, errno.Error()) + osErrorText(errno)
	}
	return fatalf("Error entering sandbox: %s", msg)
}

// enterSandbox applies the rules common to all modes, drops supplementary
// groups and enters the --sandbox mode. In namespace mode it does not
// return to the remaining start-up steps: the original process waits for
// its copy and ends with the copy's status (an *exitStatus).
func (d *daemon) enterSandbox() error {
	o := d.opts
	mode := sandboxModes[o.Sandbox]
	euid := os.Geteuid()
	if err := sandbox.Check(mode, euid, len(o.UIDMap) > 0, len(o.GIDMap) > 0); err != nil {
		return sandboxError(err)
	}
	if err := sandbox.DropGroups(func(msg string) { d.log.Warn(msg) }); err != nil {
		return sandboxError(err)
	}
	var err error
	switch mode {
	case sandbox.ModeNone:
		d.fds, err = sandbox.OpenNone(d.root)
	case sandbox.ModeChroot:
		d.fds, err = sandbox.EnterChroot(d.root)
	default:
		return d.runNamespace(euid != 0)
	}
	if err != nil {
		return sandboxError(err)
	}
	return nil
}

// runNamespace starts the copy of the daemon in the namespaces and waits
// for it. This process keeps the pid file, closes its listener without
// removing the socket, gives up its capabilities and exits with the copy's
// status, or 256 minus the signal that killed it.
func (d *daemon) runNamespace(unprivileged bool) error {
	o := d.opts
	uids, err := sandbox.ParseIDMaps(o.UIDMap)
	if err != nil {
		return sandboxError(err)
	}
	gids, err := sandbox.ParseIDMaps(o.GIDMap)
	if err != nil {
		return sandboxError(err)
	}
	cfg := sandbox.SpawnConfig{
		ExeFD:        d.exeFD,
		Args:         os.Args,
		Env:          os.Environ(),
		Stdin:        os.Stdin,
		Stdout:       os.Stdout,
		Stderr:       os.Stderr,
		Listener:     d.listenFD,
		Budget:       d.budget,
		Root:         d.root,
		UIDMaps:      uids,
		GIDMaps:      gids,
		Unprivileged: unprivileged,
	}
	if d.fdErr != nil {
		// The copy reports the unusable --fd when it starts to accept.
		cfg.Listener, cfg.ListenErrno = -1, unix.EBADF
		errors.As(d.fdErr, &cfg.ListenErrno)
	}
	child, err := sandbox.Spawn(cfg)
	if err != nil {
		return sandboxError(err)
	}
	return d.waitNamespace(child)
}

// waitNamespace is the original process's life after Spawn.
func (d *daemon) waitNamespace(child *sandbox.Child) error {
	unix.Close(d.exeFD)
	d.exeFD = -1
	if d.listenFD >= 0 && d.fdErr == nil {
		// Not unlinked: a front-end must not connect to a socket that
		// nobody accepts on.
		unix.Close(d.listenFD)
		d.listenFD = -1
	}
	// The capabilities go before the copy is released, so that the
	// parent holds none by the time anything is served. The bounding set,
	// which would limit the set-user-ID newuidmap and newgidmap that
	// Release may run, is only emptied as root, where no ID maps are
	// written.
	if err := caps.ClearAll(); err != nil {
		// The text is the reference's ("warning: can't apply the parent
		// capabilities: ..."), logged at error level as it does.
		logging.WithModule(d.log, "util").Error(err.Error())
	}
	sbLog := logging.WithModule(d.log, "sandbox")
	releaseErr := child.Release()
	if releaseErr != nil {
		sbLog.Error("sandbox: couldn't setup id mappings: " + releaseErr.Error())
	}
	ws, err := child.Wait()
	if err != nil {
		return fatalf("Failed to wait for the sandboxed process: %s", osErrorText(err))
	}
	if releaseErr != nil {
		return &exitStatus{1}
	}
	code, sig := sandbox.ExitStatus(ws)
	if sig != 0 {
		logging.WithModule(d.log, "util").Error(fmt.Sprintf("Child process terminated by signal %d", int(sig)))
	}
	return &exitStatus{code}
}

// enterNamespaceStage is the copy's part of the namespace sandbox: wait
// until the original process has set up the ID maps, become root of the
// user namespace where the maps allow it, then confine the process to
// the shared directory.
func (d *daemon) enterNamespaceStage() error {
	if err := d.stage.AwaitRelease(); err != nil {
		return sandboxError(err)
	}
	sandbox.BecomeRoot(func(msg string) { logging.WithModule(d.log, "sandbox").Warn(msg) })
	fds, err := sandbox.EnterNamespace(d.root)
	if err != nil {
		return sandboxError(err)
	}
	d.fds = fds
	return nil
}

var seccompActions = map[cli.SeccompAction]seccomp.Action{
	cli.SeccompKill: seccomp.ActionKill,
	cli.SeccompLog:  seccomp.ActionLog,
	cli.SeccompTrap: seccomp.ActionTrap,
}

// installSeccomp installs the system call filter unless --seccomp=none.
func (d *daemon) installSeccomp() error {
	if d.opts.Seccomp == cli.SeccompNone {
		return nil
	}
	if err := seccomp.Install(seccomp.Options{Action: seccompActions[d.opts.Seccomp], Syslog: d.opts.Syslog}); err != nil {
		return fatalf("Failed to install the seccomp filter: %s", osErrorText(err))
	}
	return nil
}

var capsFileHandles = map[cli.InodeFileHandles]caps.FileHandles{
	cli.FileHandlesNever:     caps.FileHandlesNever,
	cli.FileHandlesPrefer:    caps.FileHandlesPrefer,
	cli.FileHandlesFallback:  caps.FileHandlesPrefer,
	cli.FileHandlesMandatory: caps.FileHandlesMandatory,
}

// reduceCaps keeps only the capabilities the daemon needs, as root only:
// an unprivileged daemon neither changes its capabilities nor looks at
// --modcaps.
func (d *daemon) reduceCaps() error {
	if os.Geteuid() != 0 {
		return nil
	}
	c := caps.Config{
		Modcaps:      d.opts.Modcaps,
		ModcapsGiven: d.opts.ModcapsSet,
		FileHandles:  capsFileHandles[d.opts.InodeFileHandles],
	}
	if err := c.Reduce(); err != nil {
		return fatalf("%s", err.Error())
	}
	return nil
}
