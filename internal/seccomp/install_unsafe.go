package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// actionAvailable reports whether the kernel knows the filter return value
// ret; a variable so that tests can stand in for an older kernel.
var actionAvailable = func(ret uint32) bool {
	// SECCOMP_GET_ACTION_AVAIL (Linux 4.14, like SECCOMP_RET_LOG and
	// SECCOMP_RET_KILL_PROCESS) fails with EOPNOTSUPP for an unknown action
	// and with EINVAL on kernels that predate the operation.
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&ret)))
	return errno == 0
}

// load sets no_new_privs and installs prog on all threads.
func load(prog []unix.SockFilter) error {
	// no_new_privs is per thread until TSYNC copies it to the others from
	// the thread that installs the filter, so both calls must be made on
	// the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive result is the id of a thread that cannot
		// take the filter (seccomp(2)); none of them got it.
		return fmt.Errorf("install seccomp filter: thread %d cannot be synchronised", r)
	}
	return nil
}
