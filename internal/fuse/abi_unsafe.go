package fuse

import "unsafe"

// wire is the set of types that decode and bytesOf accept: the fuse.h
// mirrors of abi.go. Each consists only of fixed-size integer fields and
// explicit padding (structs.HostLayout, no pointers, no implicit padding),
// so every byte pattern of the right length is a valid value and the
// in-memory representation is exactly the wire representation on the
// little-endian hosts this daemon supports (virtio-fs is little-endian).
type wire interface {
	InHeader | OutHeader | EntryOut | AttrOut | OpenOut | InitIn | InitInExt |
		InitOut | StatfsOut | WriteOut | Dirent | GetattrIn | SetattrIn |
		MknodIn | MkdirIn | RenameIn | Rename2In | LinkIn | OpenIn | CreateIn |
		ReleaseIn | FlushIn | ReadIn | WriteIn | FsyncIn | AccessIn | ForgetIn |
		BatchForgetIn | ForgetOne | FallocateIn | LseekIn | LseekOut |
		CopyFileRangeIn | ExtHeader | Secctx | SuppGroups | SetxattrIn |
		GetxattrIn | GetxattrOut
}

// Sizes of the fixed wire headers.
const (
	inHeaderSize  = int(unsafe.Sizeof(InHeader{}))
	outHeaderSize = int(unsafe.Sizeof(OutHeader{}))
)

// sizeof returns the wire size of a T.
func sizeof[T wire]() int {
	var v T
	return int(unsafe.Sizeof(v))
}

// decode copies the first sizeof(T) bytes of b into a T. It reports false
// (and returns the zero T) if b is shorter. The copy is made byte-wise, so b
// needs no particular alignment; it is safe because T is a wire type (see
// the constraint): any bit pattern is a valid T.
func decode[T wire](b []byte) (T, bool) {
	var v T
	n := int(unsafe.Sizeof(v))
	if len(b) < n {
		return v, false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), n), b[:n])
	return v, true
}

// bytesOf returns the wire bytes of *p, aliasing *p (no copy). It is safe
// because T is a wire type without implicit padding: all sizeof(T) bytes
// are initialized fields. The slice must not outlive *p.
func bytesOf[T wire](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}
