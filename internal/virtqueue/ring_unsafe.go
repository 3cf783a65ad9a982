package virtqueue

import "unsafe"

// ptr16 returns a pointer to the 16-bit little-endian field at b[off].
//
// Safety: the index expression bounds-checks both bytes; callers only pass
// ring slices whose host address was checked to be 2-byte aligned when the
// ring view was built (ringView.aligned), and offsets that are even.
func ptr16(b []byte, off uint64) *uint16 {
	_ = b[off+1]
	return (*uint16)(unsafe.Pointer(&b[off]))
}

// hostAligned reports whether b's first byte is aligned to a bytes.
func hostAligned(b []byte, a uintptr) bool {
	if len(b) == 0 {
		return false
	}
	return uintptr(unsafe.Pointer(&b[0]))%a == 0
}
