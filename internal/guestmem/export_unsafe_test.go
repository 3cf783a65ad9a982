package guestmem

import "unsafe"

// bytesOfWords views words as bytes; the result is 4-byte aligned.
func bytesOfWords(w []uint32) []byte {
	if len(w) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*4)
}
