package seccomp

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadThread installs prog on the calling thread only (no TSYNC).
//
// Preconditions: the calling goroutine is locked to its thread.
func loadThread(prog []unix.SockFilter) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0)
	runtime.KeepAlive(prog)
	return err
}
