package guestmem

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Memory holds the current Table. The zero value is not usable; use
// NewMemory.
type Memory struct {
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[Table]
	log logSlot // shared by every table of this Memory
}

// NewMemory returns a Memory with an empty table.
func NewMemory() *Memory {
	m := &Memory{}
	m.cur.Store(newTable(nil, &m.log))
	return m
}

// Acquire returns the current table with a reference held. Callers must
// Release it. It never blocks and does not allocate.
func (m *Memory) Acquire() *Table {
	for {
		t := m.cur.Load()
		if t.tryAcquire() {
			return t
		}
		// t lost its owner reference between the load and the CAS; a newer
		// table has been published already.
	}
}

// publishLocked installs a new table built from regions and drops the
// owner reference of the previous one.
//
// Preconditions: m.mu is held.
func (m *Memory) publishLocked(regions []*Region) {
	old := m.cur.Swap(newTable(regions, &m.log))
	old.Release()
}

// checkSorted verifies that regions (sorted by GPA) do not overlap.
func checkSorted(regions []*Region) error {
	for i := 1; i < len(regions); i++ {
		if regions[i].GPA < regions[i-1].end() {
			return fmt.Errorf("regions [%#x, %#x) and [%#x, %#x) overlap",
				regions[i-1].GPA, regions[i-1].end(), regions[i].GPA, regions[i].end())
		}
	}
	return nil
}

// Set replaces the whole table with regions (SET_MEM_TABLE). Regions may
// come in any order but must not overlap. On success Memory owns the
// regions; on error the caller still does.
func (m *Memory) Set(regions []*Region) error {
	rs := slices.Clone(regions)
	slices.SortFunc(rs, func(a, b *Region) int {
		switch {
		case a.GPA < b.GPA:
			return -1
		case a.GPA > b.GPA:
			return 1
		}
		return 0
	})
	if err := checkSorted(rs); err != nil {
		return fmt.Errorf("set memory table: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publishLocked(rs)
	return nil
}

// Add inserts one region (ADD_MEM_REG). On success Memory owns r; on error
// the caller still does.
func (m *Memory) Add(r *Region) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.cur.Load()
	i, _ := slices.BinarySearchFunc(cur.regions, r.GPA, func(e *Region, gpa uint64) int {
		switch {
		case e.GPA < gpa:
			return -1
		case e.GPA > gpa:
			return 1
		}
		return 0
	})
	rs := slices.Insert(slices.Clone(cur.regions), i, r)
	if err := checkSorted(rs); err != nil {
		return fmt.Errorf("add memory region: %w", err)
	}
	m.publishLocked(rs)
	return nil
}

// Regions returns the number of regions of the current table.
func (m *Memory) Regions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Tables are immutable; the length can be read without a reference.
	return m.cur.Load().Regions()
}

// ErrNoRegion is returned by Remove when no region matches.
var ErrNoRegion = errors.New("no such memory region")

// Remove removes the region with exactly this GPA and size (REM_MEM_REG).
// It is unmapped once no reader holds a table containing it.
func (m *Memory) Remove(gpa, size uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.cur.Load()
	i := slices.IndexFunc(cur.regions, func(r *Region) bool { return r.GPA == gpa && r.Size == size })
	if i < 0 {
		return fmt.Errorf("remove memory region [%#x, +%#x): %w", gpa, size, ErrNoRegion)
	}
	m.publishLocked(slices.Delete(slices.Clone(cur.regions), i, i+1))
	return nil
}

// SetLog installs (or, with nil, removes) the dirty log (SET_LOG_BASE). The
// log must cover the last page of every current region (spec/vhost.md
// §1.10 step 3); regions added later are logged too, as far as the log
// reaches. On success Memory owns l; on error the caller still does.
//
// The previous log stops being written before SetLog returns: tables
// acquired earlier mark through the new log from then on, and the old
// mapping is unmapped once the marking operations still using it (which
// never block) have finished.
func (m *Memory) SetLog(l *Log) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.cur.Load()
	if l != nil {
		for _, r := range cur.regions {
			if !l.covers(r.end() - 1) {
				return fmt.Errorf("set dirty log: %d-byte log does not cover region [%#x, %#x): the bit of its last page is in byte %d",
					len(l.bitmap), r.GPA, r.end(), (r.end()-1)/PageSize/8)
			}
		}
	}
	m.log.swap(l)
	return nil
}

// Close drops every region and the log. Regions still referenced by a
// reader are freed when that reader releases its table.
func (m *Memory) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publishLocked(nil)
	m.log.swap(nil)
}
