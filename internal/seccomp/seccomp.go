// Package seccomp builds and installs the daemon's system-call filter.
//
// The filter is a classic BPF program assembled here in Go (no libseccomp,
// no cgo). It has the shape of the one the reference daemon loads through
// libseccomp: a call made with a foreign calling convention (another
// AUDIT_ARCH, or on amd64 the x32 ABI) kills the process; a call on the
// allow-list passes with any arguments; any other call gets the default
// action chosen with --seccomp (Action).
//
// The allow-list is data, one table per GOARCH (syscalls_amd64.go,
// syscalls_arm64.go). It is the reference daemon's list plus what the Go
// runtime and this daemon call once the filter is in place; the tables say
// how their entries were found. Program and Allowed expose the compiled
// filter and the list for tests; only Install touches the process.
//
// Install sets no_new_privs and installs the filter with
// SECCOMP_FILTER_FLAG_TSYNC, so that every thread of the process, including
// the Go runtime's, is covered, and threads created later inherit it
// (seccomp(2)).
//
// Scope: Linux, amd64 and arm64.
package seccomp

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Action is what the filter does with a system call that is not allowed
// (--seccomp).
type Action int

const (
	// ActionKill kills the whole process (SECCOMP_RET_KILL_PROCESS).
	ActionKill Action = iota + 1
	// ActionLog allows the call and has the kernel log it (SECCOMP_RET_LOG).
	ActionLog
	// ActionTrap sends SIGSYS to the calling thread (SECCOMP_RET_TRAP).
	ActionTrap
)

// String returns the --seccomp spelling of a.
func (a Action) String() string {
	switch a {
	case ActionKill:
		return "kill"
	case ActionLog:
		return "log"
	case ActionTrap:
		return "trap"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// ret is the filter's return value for a call the list does not allow.
func (a Action) ret() (uint32, error) {
	switch a {
	case ActionKill:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case ActionLog:
		return unix.SECCOMP_RET_LOG, nil
	case ActionTrap:
		return unix.SECCOMP_RET_TRAP, nil
	}
	return 0, fmt.Errorf("invalid seccomp action %d", int(a))
}

// Options selects the filter.
type Options struct {
	Action Action
	// Syslog allows what the syslog log handler needs.
	Syslog bool
}

// ErrUnsupported reports that this architecture has no allow-list.
var ErrUnsupported = errors.New("seccomp filter not available on " + runtime.GOARCH)

// entry is one system call of an allow-list.
type entry struct {
	nr   uint32
	name string
	// syslog: allowed only with Options.Syslog.
	syslog bool
}

// selected returns the entries of the table that o allows.
func selected(o Options) []entry {
	var out []entry
	for _, s := range table {
		if !s.syslog || o.Syslog {
			out = append(out, s)
		}
	}
	return out
}

// Allowed returns the names of the system calls the filter for o allows, in
// table order.
func Allowed(o Options) []string {
	var names []string
	for _, s := range selected(o) {
		names = append(names, s.name)
	}
	return names
}

// Program returns the compiled filter for o.
func Program(o Options) ([]unix.SockFilter, error) {
	if len(table) == 0 {
		return nil, ErrUnsupported
	}
	fallback, err := o.Action.ret()
	if err != nil {
		return nil, err
	}
	f := filter{arch: auditArch, x32: checkX32, fallback: fallback}
	for _, s := range selected(o) {
		f.allowed = append(f.allowed, s.nr)
	}
	return compile(f)
}

// Install sets no_new_privs and installs the filter on every thread of the
// process.
//
// A default action the kernel does not offer (SECCOMP_RET_LOG or
// SECCOMP_RET_KILL_PROCESS before Linux 4.14) is an error, before anything
// is changed: the reference daemon's libseccomp refuses to build a filter
// with an unsupported action, so it does not start either; there is no
// silent downgrade to a weaker action.
func Install(o Options) error {
	prog, err := Program(o)
	if err != nil {
		return err
	}
	fallback, _ := o.Action.ret()
	// SECCOMP_RET_TRAP is as old as filters themselves (Linux 3.5).
	if o.Action != ActionTrap && !actionAvailable(fallback) {
		return fmt.Errorf("seccomp action %s is not supported by this kernel", o.Action)
	}
	return load(prog)
}
