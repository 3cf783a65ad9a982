package frontend

import (
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// RegionSpec describes one guest memory region to create.
type RegionSpec struct {
	// GPA is the guest physical address of the region's first byte.
	GPA uint64
	// Size is the region size in bytes; a multiple of the page size.
	Size uint64
	// FileOffset is where the region starts inside its memfd (the
	// vhost-user mmap_offset); a multiple of the page size.
	FileOffset uint64
}

// Region is one guest memory region: a memfd mapped into the test process.
type Region struct {
	GPA    uint64
	Size   uint64
	Offset uint64 // mmap_offset sent to the back-end
	UVA    uint64 // front-end "user address" sent to the back-end
	FD     int    // memfd, owned by the Memory
	data   []byte // the mapping of [Offset, Offset+Size) of FD

	next uint64 // allocator: first free byte offset within the region
}

// Bytes returns the mapping of the whole region.
func (r *Region) Bytes() []byte { return r.data }

// Memory is the guest RAM shared with the back-end.
type Memory struct {
	regions []*Region // sorted by GPA
}

var errNoMemory = errors.New("address range not inside one guest memory region")

// NewMemory creates, sizes and maps one memfd per region. Regions must not
// overlap.
func NewMemory(specs []RegionSpec) (*Memory, error) {
	if len(specs) == 0 {
		return nil, errors.New("create guest memory: no regions")
	}
	m := &Memory{}
	for i, s := range specs {
		r, err := mapRegion(i, s)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.regions = append(m.regions, r)
	}
	sort.Slice(m.regions, func(i, j int) bool { return m.regions[i].GPA < m.regions[j].GPA })
	for i := 1; i < len(m.regions); i++ {
		p, r := m.regions[i-1], m.regions[i]
		if p.GPA+p.Size > r.GPA {
			m.Close()
			return nil, fmt.Errorf("create guest memory: regions at %#x and %#x overlap", p.GPA, r.GPA)
		}
	}
	return m, nil
}

// mapRegion creates, sizes and maps the memfd of region i.
func mapRegion(i int, s RegionSpec) (*Region, error) {
	pg := uint64(unix.Getpagesize())
	if s.Size == 0 || s.Size%pg != 0 || s.FileOffset%pg != 0 {
		return nil, fmt.Errorf("create guest memory region %d: size %#x and offset %#x must be non-zero page multiples", i, s.Size, s.FileOffset)
	}
	if s.GPA+s.Size < s.GPA {
		return nil, fmt.Errorf("create guest memory region %d: GPA range overflows", i)
	}
	fd, err := unix.MemfdCreate(fmt.Sprintf("guest-ram-%d", i), unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create guest memory region %d: memfd_create: %w", i, err)
	}
	if err := unix.Ftruncate(fd, int64(s.FileOffset+s.Size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create guest memory region %d: ftruncate: %w", i, err)
	}
	data, err := unix.Mmap(fd, int64(s.FileOffset), int(s.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create guest memory region %d: mmap: %w", i, err)
	}
	return &Region{
		GPA: s.GPA, Size: s.Size, Offset: s.FileOffset, FD: fd, data: data,
		UVA: sliceAddr(data),
	}, nil
}

// Add creates one more region (memory hot-plug). It must not overlap the
// existing ones. It is only added to the Memory; announce it to the
// back-end with ADD_MEM_REG (Frontend.AddMemRegion).
func (m *Memory) Add(spec RegionSpec) (*Region, error) {
	r, err := mapRegion(len(m.regions), spec)
	if err != nil {
		return nil, err
	}
	for _, o := range m.regions {
		if r.GPA < o.GPA+o.Size && o.GPA < r.GPA+r.Size {
			unix.Munmap(r.data)
			unix.Close(r.FD)
			return nil, fmt.Errorf("add guest memory region at %#x: overlaps the region at %#x", r.GPA, o.GPA)
		}
	}
	m.regions = append(m.regions, r)
	sort.Slice(m.regions, func(i, j int) bool { return m.regions[i].GPA < m.regions[j].GPA })
	return r, nil
}

// Regions returns the regions sorted by GPA.
func (m *Memory) Regions() []*Region { return m.regions }

// Close unmaps all regions and closes their memfds.
func (m *Memory) Close() {
	for _, r := range m.regions {
		if r.data != nil {
			unix.Munmap(r.data)
			r.data = nil
		}
		if r.FD >= 0 {
			unix.Close(r.FD)
			r.FD = -1
		}
	}
}

// region returns the region holding [gpa, gpa+n).
func (m *Memory) region(gpa, n uint64) (*Region, error) {
	end := gpa + n
	if end < gpa {
		return nil, fmt.Errorf("translate GPA %#x+%#x: %w", gpa, n, errNoMemory)
	}
	for _, r := range m.regions {
		if gpa >= r.GPA && end <= r.GPA+r.Size {
			return r, nil
		}
	}
	return nil, fmt.Errorf("translate GPA %#x+%#x: %w", gpa, n, errNoMemory)
}

// Bytes returns the n bytes of guest memory at gpa. The range must lie in
// one region.
func (m *Memory) Bytes(gpa, n uint64) ([]byte, error) {
	r, err := m.region(gpa, n)
	if err != nil {
		return nil, err
	}
	off := gpa - r.GPA
	return r.data[off : off+n : off+n], nil
}

// Write copies b into guest memory at gpa.
func (m *Memory) Write(gpa uint64, b []byte) error {
	dst, err := m.Bytes(gpa, uint64(len(b)))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

// Allocator hands out guest memory from one region, bump style.
type Allocator struct {
	r *Region
}

// AllocatorFor returns an allocator over the region that contains gpa.
func (m *Memory) AllocatorFor(gpa uint64) (*Allocator, error) {
	r, err := m.region(gpa, 1)
	if err != nil {
		return nil, err
	}
	return &Allocator{r: r}, nil
}

// Alloc returns the GPA of n fresh bytes aligned to align (a power of two).
// The bytes are zeroed.
func (a *Allocator) Alloc(n, align uint64) (uint64, error) {
	gpa, err := a.AllocRaw(n, align)
	if err != nil {
		return 0, err
	}
	off := gpa - a.r.GPA
	clear(a.r.data[off : off+n])
	return gpa, nil
}

// Mark returns the allocator position, for Release.
func (a *Allocator) Mark() uint64 { return a.r.next }

// Release frees everything allocated after mark was taken.
func (a *Allocator) Release(mark uint64) { a.r.next = mark }

// Region returns the region the allocator works in.
func (a *Allocator) Region() *Region { return a.r }

// AllocRaw is Alloc without zeroing.
func (a *Allocator) AllocRaw(n, align uint64) (uint64, error) {
	if align == 0 {
		align = 1
	}
	start := (a.r.next + align - 1) &^ (align - 1)
	if start < a.r.next || start+n < start || start+n > a.r.Size {
		return 0, fmt.Errorf("allocate %d bytes of guest memory: region at %#x exhausted", n, a.r.GPA)
	}
	a.r.next = start + n
	return a.r.GPA + start, nil
}
