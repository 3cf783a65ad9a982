package virtqueue

import "unsafe"

// inside reports whether b lies within mem.
func inside(mem, b []byte) bool {
	lo := uintptr(unsafe.Pointer(&mem[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(mem))
}
