package guestmem

import (
	"sync/atomic"
	"unsafe"
)

// orBit atomically sets bit `bit` of b[i]. It ORs the naturally aligned
// 32-bit word containing the byte, because the front-end updates the same
// bitmap concurrently and sync/atomic has no byte OR.
//
// Safety: the bitmap is either a page-aligned mmap (whose length is rounded
// up to whole pages by the kernel) or a 4-aligned Go slice whose length is a
// multiple of 4 (NewLog), so the aligned word containing b[i] is always
// addressable. Little-endian hosts only: byte k of the word is bits 8k..8k+7.
func orBit(b []byte, i uint64, bit uint8) {
	p := unsafe.Pointer(&b[i])
	word := unsafe.Pointer(uintptr(p) &^ 3)
	shift := (uintptr(p)&3)*8 + uintptr(bit)
	atomic.OrUint32((*uint32)(word), 1<<shift)
}

// aligned4 reports whether b starts at a 4-byte aligned address.
func aligned4(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	return uintptr(unsafe.Pointer(&b[0]))%4 == 0
}
