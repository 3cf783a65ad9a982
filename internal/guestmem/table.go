package guestmem

import (
	"sort"
	"sync/atomic"
)

// Table is an immutable snapshot of the guest memory layout. Obtain one
// with Memory.Acquire and give it back with Release.
type Table struct {
	regions []*Region // sorted by GPA, non-overlapping
	log     *logSlot  // the owning Memory's dirty log
	refs    atomic.Int64
}

// newTable returns a table holding one (owner) reference and one reference
// on each region. The table marks dirty pages through log.
func newTable(regions []*Region, log *logSlot) *Table {
	t := &Table{regions: regions, log: log}
	t.refs.Store(1)
	for _, r := range regions {
		r.ref()
	}
	return t
}

// tryAcquire takes a reference unless the table is already being freed.
func (t *Table) tryAcquire() bool {
	for {
		n := t.refs.Load()
		if n <= 0 {
			return false
		}
		if t.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Acquire takes another reference on a table the caller already holds.
func (t *Table) Acquire() { t.refs.Add(1) }

// Release drops a reference. The last one unmaps the regions that no other
// table holds.
func (t *Table) Release() {
	n := t.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("guestmem: Table released too often")
	}
	for _, r := range t.regions {
		r.unref()
	}
}

// Regions returns the number of regions.
func (t *Table) Regions() int { return len(t.regions) }

// find returns the region containing gpa, or nil.
func (t *Table) find(gpa uint64) *Region {
	rs := t.regions
	// First region whose end is past gpa.
	i := sort.Search(len(rs), func(i int) bool { return rs[i].end() > gpa })
	if i < len(rs) && rs[i].GPA <= gpa {
		return rs[i]
	}
	return nil
}

// Slice returns the host bytes of [gpa, gpa+n). The range must lie inside a
// single region; a zero-length range must start inside a region. The
// result has capacity n, so appending to it never writes guest memory.
func (t *Table) Slice(gpa, n uint64) ([]byte, bool) {
	end, ok := Addr(gpa).AddLength(n)
	if !ok {
		return nil, false
	}
	r := t.find(gpa)
	if r == nil || uint64(end) > r.end() {
		return nil, false
	}
	off := gpa - r.GPA
	return r.data[off : off+n : off+n], true
}

// UVAToGPA translates a front-end virtual address to a guest physical
// address. The first region containing uva wins.
func (t *Table) UVAToGPA(uva uint64) (uint64, bool) {
	for _, r := range t.regions {
		if uva >= r.UVA && uva-r.UVA < r.Size {
			return uva - r.UVA + r.GPA, true
		}
	}
	return 0, false
}

// Logging reports whether a dirty log is installed.
func (t *Table) Logging() bool { return t.log.cur.Load() != nil }

// MarkDirty records a device write to [gpa, gpa+n) in the dirty log
// installed now, if any (which may be newer than the table). It is, with
// MarkDirtyIovec, the only place that marks pages dirty. Pages are
// computed from the absolute GPA; pages beyond the log are skipped.
func (t *Table) MarkDirty(gpa, n uint64) {
	if n == 0 {
		return
	}
	l := t.log.acquire()
	if l == nil {
		return
	}
	defer l.unref()
	l.mark(gpa, n)
}

// MarkDirtyIovec records that the first n bytes of the buffers bufs, whose
// guest addresses are gpas, were written: the buffers are filled in order,
// so only the pages those n bytes reach are marked.
func (t *Table) MarkDirtyIovec(gpas []uint64, bufs [][]byte, n uint64) {
	if n == 0 {
		return
	}
	l := t.log.acquire()
	if l == nil {
		return
	}
	defer l.unref()
	for i, b := range bufs {
		if n == 0 || i >= len(gpas) {
			return
		}
		k := min(uint64(len(b)), n)
		if k > 0 {
			l.mark(gpas[i], k)
		}
		n -= k
	}
}
