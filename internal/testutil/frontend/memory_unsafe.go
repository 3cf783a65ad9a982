package frontend

import "unsafe"

// sliceAddr returns the address of b's first byte, used as the front-end's
// "user address" of a region. b is an mmap mapping, which the garbage
// collector never moves, so the address stays valid until Munmap.
func sliceAddr(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
