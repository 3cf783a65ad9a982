package frontend

import (
	"sync/atomic"
	"unsafe"
)

// atomicLoad32 loads the little-endian 32-bit word at b[off:off+4] with a
// sequentially consistent atomic load.
//
// Preconditions: b[off:off+4] is in bounds and its address is 4-aligned;
// the ring layout in newQueue guarantees both (rings start 64-aligned in an
// mmap mapping and every word accessed sits at a multiple of 4 from the
// ring start). The host is little-endian (amd64, arm64), so the native
// word equals the little-endian guest value.
func atomicLoad32(b []byte, off int) uint32 {
	_ = b[off+3]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[off])))
}

// atomicStore32 stores v to the 32-bit word at b[off:off+4] with a
// sequentially consistent atomic store (a full barrier on amd64).
//
// Preconditions: as for atomicLoad32.
func atomicStore32(b []byte, off int, v uint32) {
	_ = b[off+3]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[off])), v)
}

// aligned4 reports whether b[off]'s address is a multiple of 4.
func aligned4(b []byte, off int) bool {
	return uintptr(unsafe.Pointer(&b[off]))%4 == 0
}
