package linux

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Signal adds 1 to the eventfd fd. A full counter (EAGAIN) already means
// "signalled" and is not an error. It does not allocate.
func Signal(fd int) error {
	v := uint64(1)
	for {
		// Safety: v lives on this goroutine's stack, which is not moved
		// while the goroutine is inside the system call.
		_, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&v)), 8)
		switch e {
		case 0, unix.EAGAIN:
			return nil
		case unix.EINTR:
			continue
		}
		return os.NewSyscallError("write eventfd", e)
	}
}

// Drain resets the eventfd fd. An empty counter (EAGAIN) is not an error.
// It does not allocate.
func Drain(fd int) error {
	var v uint64
	for {
		// Safety: as in Signal.
		_, _, e := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&v)), 8)
		switch e {
		case 0, unix.EAGAIN:
			return nil
		case unix.EINTR:
			continue
		}
		return os.NewSyscallError("read eventfd", e)
	}
}
