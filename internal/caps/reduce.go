package caps

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reduce applies Compute's set to every thread of the process: permitted
// and effective become the set, inheritable, ambient and the bounding set
// empty. See Config.Reduce.
func Reduce(modcaps string, fileHandles bool) error {
	return configFor(modcaps, fileHandles).Reduce()
}

// Reduce computes the kept set (Config.Compute) and applies it to every
// thread of the process, the runtime's template thread included, so that
// threads created later inherit it too: permitted = effective = the set,
// inheritable, ambient and bounding sets empty. The process must run as
// root (euid 0) with CAP_SETPCAP in its effective set, and the binary must
// be built with CGO_ENABLED=0.
//
// Precondition: every thread holds the same capability sets (no thread has
// changed its own yet); syscall.AllThreadsSyscall ends the program if the
// threads' results differ.
func (c Config) Reduce() error {
	set, err := c.Compute()
	if err != nil {
		return err
	}
	if err := apply(set, true); err != nil {
		return applyError("can't apply the child capabilities", err)
	}
	return nil
}

// ClearAll empties every capability set of every thread, bounding set
// included: what the waiting parent of the namespace sandbox keeps. The
// caller is expected to log a failure and carry on. The preconditions of
// Config.Reduce apply.
//
// The error text is what the reference daemon logs (at error level, from
// its module virtiofsd::util), "warning: " included.
//
// The bounding set can only be emptied with CAP_SETPCAP in the effective
// set. A process without it (the parent of an unprivileged daemon, which
// holds no capabilities in the initial user namespace) keeps its bounding
// set and clears the rest; the reference's parent logs no warning there
// either.
func ClearAll() error {
	bounding := true
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil {
		bounding = data[unix.CAP_SETPCAP/32].Effective&(1<<(unix.CAP_SETPCAP%32)) != 0
	}
	if err := apply(0, bounding); err != nil {
		return applyError("warning: can't apply the parent capabilities", err)
	}
	return nil
}

// errCgo reports that syscall.AllThreadsSyscall is unavailable: the Go
// runtime does not know the threads of cgo code, so it refuses.
var errCgo = errors.New("changing the capabilities of all threads needs a binary built with CGO_ENABLED=0")

// applyError returns the error for a failure of apply: prefix, then the
// text the reference daemon's capability library gives for a failed
// update, or the explanation of errCgo.
func applyError(prefix string, err error) error {
	if errors.Is(err, errCgo) {
		return &Error{msg: prefix + ": " + err.Error(), Err: unix.ENOTSUP}
	}
	return &Error{msg: prefix + ": failed to sync capabilities with the kernel", Err: err}
}

// apply makes set the permitted and effective set of every thread and
// empties the others. The order matters: dropping from the bounding set
// (prctl(2) PR_CAPBSET_DROP) needs CAP_SETPCAP in the effective set, which
// set usually lacks, so the bounding set is emptied before capset(2).
//
// bounding false leaves the bounding set as it is.
func apply(set Set, bounding bool) error {
	// A harmless call first, to tell a cgo binary apart from a failure.
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, 0, 0); e != 0 {
		if e == syscall.ENOTSUP {
			return errCgo
		}
		return fmt.Errorf("prctl(PR_CAPBSET_READ): %w", e)
	}
	last, err := LastCap()
	if err != nil {
		return err
	}
	// EINVAL: a kernel without ambient capabilities (before Linux 4.3),
	// where there is nothing to clear.
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 && e != syscall.EINVAL {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", e)
	}
	for c := 0; c <= last && bounding; c++ {
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
			return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, e)
		}
	}
	if e := allThreadsCapset(set, set, 0); e != 0 {
		return fmt.Errorf("capset(%#x): %w", uint64(set), e)
	}
	return nil
}

// LastCap returns the highest capability number the running kernel knows.
// It asks prctl(2) PR_CAPBSET_READ, which fails with EINVAL beyond that
// number, rather than /proc/sys/kernel/cap_last_cap: inside the namespace
// sandbox /proc shows nothing but the daemon's fd directory.
func LastCap() (int, error) {
	for c := 0; c < 64; c++ {
		_, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL && c > 0 {
			return c - 1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("prctl(PR_CAPBSET_READ, %d): %w", c, err)
		}
	}
	return 63, nil
}
