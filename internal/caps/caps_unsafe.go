package caps

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allThreadsCapset sets the permitted, effective and inheritable sets of
// every thread (capset(2), version 3: two data words, the low 32
// capabilities first). pid 0 in the header means the
// calling thread, which syscall.AllThreadsSyscall makes every thread in
// turn. The kernel only reads the data; the header would be written only
// for a version it does not know.
func allThreadsCapset(prm, eff, inh Set) syscall.Errno {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		shift := 32 * uint(i)
		data[i].Permitted = uint32(uint64(prm) >> shift)
		data[i].Effective = uint32(uint64(eff) >> shift)
		data[i].Inheritable = uint32(uint64(inh) >> shift)
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	return e
}
