package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// defaultNofile is the open file limit the daemon raises itself to when
// --rlimit-nofile is not given (capped by /proc/sys/fs/nr_open).
const defaultNofile = 1_000_000

// Reserved descriptors that the guest cannot use (fs.md §3.18): memory
// slots the front-end may send, plus slack for everything else.
const (
	reservedMemSlots = 509
	reservedSlack    = 100
	smallBudget      = 128
)

// rlimitOps are the system interfaces setNofile uses, replaceable in tests.
type rlimitOps struct {
	nrOpen func() (uint64, error)
	get    func() (unix.Rlimit, error)
	set    func(unix.Rlimit) error
}

var sysRlimit = rlimitOps{
	nrOpen: func() (uint64, error) {
		b, err := os.ReadFile("/proc/sys/fs/nr_open")
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	},
	get: func() (unix.Rlimit, error) {
		var r unix.Rlimit
		err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r)
		return r, err
	},
	set: func(r unix.Rlimit) error { return unix.Setrlimit(unix.RLIMIT_NOFILE, &r) },
}

// setNofile establishes RLIMIT_NOFILE as fs.md §4.6 describes and returns
// the resulting limit. requested is --rlimit-nofile (0 keeps the current
// limit); given reports whether the option was present. warn receives the
// warning logged when the default target cannot be reached.
//
// The Go runtime has already raised the soft limit to the hard limit before
// main runs, so "keep the current limit" keeps that raised value.
func setNofile(ops rlimitOps, requested uint64, given bool, warn func(string)) (uint64, error) {
	max, err := ops.nrOpen()
	if err != nil {
		return 0, err
	}
	cur, err := ops.get()
	if err != nil {
		return 0, err
	}
	switch {
	case given && requested == 0:
		return cur.Cur, nil
	case given:
		if requested > max {
			return 0, &aboveMaxError{max}
		}
		if err := ops.set(unix.Rlimit{Cur: requested, Max: requested}); err != nil {
			return 0, err
		}
		return requested, nil
	case cur.Cur >= defaultNofile:
		return cur.Cur, nil
	}
	target := min(uint64(defaultNofile), max)
	if err := ops.set(unix.Rlimit{Cur: target, Max: target}); err == nil {
		return target, nil
	}
	warn(fmt.Sprintf("Failure when trying to set the limit to %d, the hard limit (%d) of open file descriptors is used instead.", target, cur.Max))
	if err := ops.set(unix.Rlimit{Cur: cur.Max, Max: cur.Max}); err != nil {
		return 0, err
	}
	return cur.Max, nil
}

// aboveMaxError is returned by setNofile for a --rlimit-nofile value above
// /proc/sys/fs/nr_open.
type aboveMaxError struct{ max uint64 }

func (e *aboveMaxError) Error() string {
	return fmt.Sprintf("set open file limit: above the system maximum %d", e.max)
}

// fdBudget returns the number of descriptors the guest may hold open given
// the process limit (fs.md §3.18) and the number of descriptors the daemon
// reserves for itself; ok is false when the limit does not cover the
// reserve.
func fdBudget(limit uint64, threadPoolSize int) (budget int, reserve uint64, ok bool) {
	reserve = uint64(reservedMemSlots + reservedSlack + max(threadPoolSize, 1))
	if limit < reserve {
		return 0, reserve, false
	}
	return int(min(limit-reserve, 1<<31-1)), reserve, true
}
