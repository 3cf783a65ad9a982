package guestmem

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// RegionSpec describes one memory region as the front-end sends it
// (struct VhostUserMemoryRegion).
type RegionSpec struct {
	GPA        uint64 // guest physical address of the first byte
	Size       uint64 // length in bytes
	UVA        uint64 // front-end virtual address of the first byte
	MmapOffset uint64 // offset of the first byte in the file
}

// Validate checks the size and that no end address overflows.
func (s RegionSpec) Validate() error {
	if s.Size == 0 {
		return errors.New("validate region: size is zero")
	}
	if _, ok := Addr(s.GPA).AddLength(s.Size); !ok {
		return fmt.Errorf("validate region: guest address %#x + size %#x overflows", s.GPA, s.Size)
	}
	if s.UVA+s.Size < s.UVA {
		return fmt.Errorf("validate region: user address %#x + size %#x overflows", s.UVA, s.Size)
	}
	if s.MmapOffset+s.Size < s.MmapOffset {
		return fmt.Errorf("validate region: mmap offset %#x + size %#x overflows", s.MmapOffset, s.Size)
	}
	return nil
}

// Region is one piece of guest RAM mapped into the process.
type Region struct {
	RegionSpec
	data    []byte // exactly Size bytes: the guest RAM of this region
	mapping []byte // what to munmap; nil if the memory is not ours
	fd      int    // kept open while the region lives; -1 if none
	refs    atomic.Int32
}

// MapRegion maps spec.Size bytes of fd starting at spec.MmapOffset, read
// and write, shared. It takes ownership of fd: the fd is closed on error and
// otherwise when the region is freed. An unaligned offset is handled by
// mapping from the page below it.
func MapRegion(spec RegionSpec, fd int) (*Region, error) {
	r, err := mapRegion(spec, fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return r, nil
}

func mapRegion(spec RegionSpec, fd int) (*Region, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("map region: %w", os.NewSyscallError("fstat", err))
	}
	// A regular file (memfd, hugetlbfs) must be large enough; mapping beyond
	// its end would SIGBUS on access instead of failing now.
	if st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) < spec.MmapOffset+spec.Size {
		return nil, fmt.Errorf("map region: file size %d smaller than offset %#x + size %#x",
			st.Size, spec.MmapOffset, spec.Size)
	}
	page := uint64(os.Getpagesize())
	skip := spec.MmapOffset % page
	length := spec.Size + skip
	if length < spec.Size || length > uint64(maxInt) || spec.MmapOffset-skip > uint64(maxInt64) {
		return nil, fmt.Errorf("map region: size %#x too large", spec.Size)
	}
	m, err := unix.Mmap(fd, int64(spec.MmapOffset-skip), int(length),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("map region: %w", os.NewSyscallError("mmap", err))
	}
	r := &Region{RegionSpec: spec, data: m[skip:length:length], mapping: m, fd: fd}
	return r, nil
}

const (
	maxInt   = int(^uint(0) >> 1)
	maxInt64 = 1<<63 - 1
)

// NewRegion returns a region backed by memory the caller owns (for example
// a Go slice in tests). spec.Size is taken from len(data). Nothing is
// unmapped or closed when the region is freed.
func NewRegion(gpa, uva uint64, data []byte) *Region {
	return &Region{
		RegionSpec: RegionSpec{GPA: gpa, Size: uint64(len(data)), UVA: uva},
		data:       data,
		fd:         -1,
	}
}

// Bytes returns the host view of the whole region.
func (r *Region) Bytes() []byte { return r.data }

// end returns the first GPA past the region. Validated at creation.
func (r *Region) end() uint64 { return r.GPA + r.Size }

func (r *Region) ref() { r.refs.Add(1) }

// unref drops one table reference and frees the region with the last one.
func (r *Region) unref() {
	if r.refs.Add(-1) == 0 {
		r.free()
	}
}

// Free releases a region that was never added to a Memory.
func (r *Region) Free() {
	if r.refs.Load() != 0 {
		panic("guestmem: Free of a region in use")
	}
	r.free()
}

func (r *Region) free() {
	if r.mapping != nil {
		unix.Munmap(r.mapping)
		r.mapping = nil
	}
	r.data = nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
