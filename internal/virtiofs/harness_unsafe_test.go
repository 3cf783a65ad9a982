package virtiofs

import (
	"sync/atomic"
	"unsafe"
)

// storeFlagsIdx publishes avail->flags (0) and avail->idx with one
// release store of the aligned 32-bit word holding both.
func storeFlagsIdx(mem []byte, gpa uint64, idx uint16) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[gpa])), uint32(idx)<<16)
}
