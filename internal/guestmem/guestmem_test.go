package guestmem

import (
	"errors"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAddLength(t *testing.T) {
	for _, tc := range []struct {
		a    Addr
		n    uint64
		want Addr
		ok   bool
	}{
		{0, 0, 0, true},
		{0x1000, 0x10, 0x1010, true},
		{^Addr(0), 0, ^Addr(0), true},
		{^Addr(0), 1, 0, false},
		{1 << 63, 1 << 63, 0, false},
	} {
		got, ok := tc.a.AddLength(tc.n)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("Addr(%#x).AddLength(%#x) = %#x, %v, want %#x, %v", tc.a, tc.n, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRegionSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		s  RegionSpec
		ok bool
	}{
		{RegionSpec{GPA: 0, Size: 4096}, true},
		{RegionSpec{GPA: 0, Size: 0}, false},
		{RegionSpec{GPA: ^uint64(0), Size: 2}, false},
		{RegionSpec{UVA: ^uint64(0) - 1, Size: 4}, false},
		{RegionSpec{MmapOffset: ^uint64(0), Size: 1}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

// twoRegions returns a Memory with two adjacent regions [0x1000,0x2000) and
// [0x2000,0x3000) plus a distant one at 0x10000.
func twoRegions(t *testing.T) (*Memory, [][]byte) {
	t.Helper()
	bufs := [][]byte{make([]byte, 0x1000), make([]byte, 0x1000), make([]byte, 0x800)}
	m := NewMemory()
	// Unsorted on purpose: Set sorts.
	if err := m.Set([]*Region{
		NewRegion(0x2000, 0x7000_2000, bufs[1]),
		NewRegion(0x10000, 0x9000_0000, bufs[2]),
		NewRegion(0x1000, 0x7000_1000, bufs[0]),
	}); err != nil {
		t.Fatal(err)
	}
	return m, bufs
}

func TestSlice(t *testing.T) {
	m, bufs := twoRegions(t)
	tb := m.Acquire()
	defer tb.Release()
	for _, tc := range []struct {
		gpa, n uint64
		ok     bool
		base   []byte
		off    int
	}{
		{0x1000, 0x1000, true, bufs[0], 0},
		{0x1ff0, 0x10, true, bufs[0], 0xff0},
		{0x1ff0, 0x20, false, nil, 0}, // spans two adjacent regions
		{0x2000, 0, true, bufs[1], 0},
		{0x3000, 0, false, nil, 0}, // zero length at the end of a region
		{0x0fff, 1, false, nil, 0},
		{0x10000, 0x800, true, bufs[2], 0},
		{0x10000, 0x801, false, nil, 0},
		{0x10400, ^uint64(0), false, nil, 0}, // overflow
		{^uint64(0), 1, false, nil, 0},
		{0x5000, 1, false, nil, 0},
	} {
		b, ok := tb.Slice(tc.gpa, tc.n)
		if ok != tc.ok {
			t.Errorf("Slice(%#x, %#x) ok = %v, want %v", tc.gpa, tc.n, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if uint64(len(b)) != tc.n || cap(b) != len(b) {
			t.Errorf("Slice(%#x, %#x) len/cap = %d/%d", tc.gpa, tc.n, len(b), cap(b))
		}
		if tc.n > 0 && &b[0] != &tc.base[tc.off] {
			t.Errorf("Slice(%#x, %#x) points to the wrong host address", tc.gpa, tc.n)
		}
	}
}

func TestUVAToGPA(t *testing.T) {
	m, _ := twoRegions(t)
	tb := m.Acquire()
	defer tb.Release()
	for _, tc := range []struct {
		uva, gpa uint64
		ok       bool
	}{
		{0x7000_1000, 0x1000, true},
		{0x7000_2fff, 0x2fff, true},
		{0x7000_3000, 0, false},
		{0x9000_07ff, 0x107ff, true},
		{0x9000_0800, 0, false},
		{0, 0, false},
	} {
		gpa, ok := tb.UVAToGPA(tc.uva)
		if ok != tc.ok || gpa != tc.gpa {
			t.Errorf("UVAToGPA(%#x) = %#x, %v, want %#x, %v", tc.uva, gpa, ok, tc.gpa, tc.ok)
		}
	}
}

func TestSetRejectsOverlap(t *testing.T) {
	m := NewMemory()
	a, b := NewRegion(0x1000, 0, make([]byte, 0x1000)), NewRegion(0x1800, 0, make([]byte, 0x1000))
	if err := m.Set([]*Region{a, b}); err == nil {
		t.Fatal("Set(overlapping) succeeded")
	}
	if err := m.Set([]*Region{a}); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(b); err == nil {
		t.Fatal("Add(overlapping) succeeded")
	}
}

func TestAddRemove(t *testing.T) {
	m := NewMemory()
	regs := []*Region{
		NewRegion(0x3000, 0, make([]byte, 0x1000)),
		NewRegion(0x1000, 0, make([]byte, 0x1000)),
		NewRegion(0x2000, 0, make([]byte, 0x1000)),
	}
	for _, r := range regs {
		if err := m.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	tb := m.Acquire()
	if tb.Regions() != 3 {
		t.Fatalf("Regions() = %d, want 3", tb.Regions())
	}
	for i := 1; i < 3; i++ {
		if tb.regions[i-1].GPA >= tb.regions[i].GPA {
			t.Fatal("regions not sorted after Add")
		}
	}
	tb.Release()
	if err := m.Remove(0x2000, 0x800); !errors.Is(err, ErrNoRegion) {
		t.Fatalf("Remove(wrong size) = %v, want ErrNoRegion", err)
	}
	if err := m.Remove(0x2000, 0x1000); err != nil {
		t.Fatal(err)
	}
	if n := m.Regions(); n != 2 {
		t.Fatalf("Memory.Regions() after Remove = %d, want 2", n)
	}
	tb = m.Acquire()
	defer tb.Release()
	if _, ok := tb.Slice(0x2000, 1); ok {
		t.Error("removed region still translates")
	}
	if _, ok := tb.Slice(0x3000, 1); !ok {
		t.Error("remaining region does not translate")
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func memfd(t *testing.T, size int64) int {
	t.Helper()
	fd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestMapAndDeferredUnmap maps a memfd, removes the region while a reader
// holds a table and checks that the mapping and fd survive until Release.
func TestMapAndDeferredUnmap(t *testing.T) {
	before := openFDs(t)
	m := NewMemory()
	r, err := MapRegion(RegionSpec{GPA: 0x100000, Size: 0x2000, UVA: 0x5000_0000, MmapOffset: 0x1000}, memfd(t, 0x3000))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add(r); err != nil {
		t.Fatal(err)
	}
	tb := m.Acquire()
	b, ok := tb.Slice(0x100000, 0x2000)
	if !ok {
		t.Fatal("Slice of mapped region failed")
	}
	b[0x1fff] = 0xaa
	if err := m.Remove(0x100000, 0x2000); err != nil {
		t.Fatal(err)
	}
	if r.mapping == nil || r.fd < 0 {
		t.Fatal("region freed while a reader holds it")
	}
	b[0] = 1 // still mapped
	tb.Release()
	if r.mapping != nil || r.fd >= 0 {
		t.Fatal("region not freed after last Release")
	}
	m.Close()
	if got := openFDs(t); got != before {
		t.Errorf("open fds = %d, want %d", got, before)
	}
}

func TestMapRegionErrorsCloseFD(t *testing.T) {
	before := openFDs(t)
	// File too small for offset + size.
	if _, err := MapRegion(RegionSpec{GPA: 0, Size: 0x2000, MmapOffset: 0x1000}, memfd(t, 0x2000)); err == nil {
		t.Error("MapRegion beyond the file end succeeded")
	}
	if _, err := MapRegion(RegionSpec{GPA: 0, Size: 0}, memfd(t, 0x1000)); err == nil {
		t.Error("MapRegion of size 0 succeeded")
	}
	// Unaligned offsets are mapped from the page below.
	fd := memfd(t, 0x3000)
	unix.Pwrite(fd, []byte{0x5a}, 0x1010)
	r, err := MapRegion(RegionSpec{GPA: 0, Size: 0x1000, MmapOffset: 0x1010}, fd)
	if err != nil {
		t.Fatalf("MapRegion(unaligned offset) = %v", err)
	}
	if r.Bytes()[0] != 0x5a || len(r.Bytes()) != 0x1000 {
		t.Errorf("unaligned mapping starts at the wrong byte")
	}
	r.Free()
	if got := openFDs(t); got != before {
		t.Errorf("open fds = %d, want %d", got, before)
	}
}

func newTestLog(nbytes int) (*Log, []byte) {
	words := make([]uint32, (nbytes+3)/4)
	b := bytesOfWords(words)
	return NewLog(b), b
}

func TestDirtyLog(t *testing.T) {
	m := NewMemory()
	if err := m.Add(NewRegion(0, 0, make([]byte, 0x10000))); err != nil {
		t.Fatal(err)
	}
	small, _ := newTestLog(0) // covers nothing
	if err := m.SetLog(small); err == nil {
		t.Fatal("SetLog with a too-small log succeeded")
	}
	log, bits := newTestLog(8) // 64 pages = 256 KiB
	if err := m.SetLog(log); err != nil {
		t.Fatal(err)
	}
	// A region added after the log is logged too.
	if err := m.Add(NewRegion(0x20000, 0, make([]byte, 0x10000))); err != nil {
		t.Fatal(err)
	}
	tb := m.Acquire()
	defer tb.Release()
	if !tb.Logging() {
		t.Fatal("Logging() = false after SetLog")
	}
	tb.MarkDirty(0x0fff, 2)  // pages 0 and 1
	tb.MarkDirty(0x9000, 0)  // nothing
	tb.MarkDirty(0x21000, 1) // page 0x21 = 33: byte 4 bit 1
	tb.MarkDirtyIovec([]uint64{0x5000, 0x7ffe}, [][]byte{make([]byte, 0x10), make([]byte, 0x10)}, 0x12)
	// pages 5 and 7 (0x7ffe..0x7fff only)
	tb.MarkDirty(1<<40, 1) // beyond the log: ignored
	want := []byte{0b1010_0011, 0, 0, 0, 0b10, 0, 0, 0}
	for i := range want {
		if bits[i] != want[i] {
			t.Fatalf("bitmap = %08b, want %08b", bits, want)
		}
	}
	tb.MarkDirty(^uint64(0)-1, 10) // must not loop forever or overflow
}

func TestAcquireConcurrentWithUpdates(t *testing.T) {
	m := NewMemory()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			r := NewRegion(0x1000, 0, make([]byte, 0x1000))
			if err := m.Add(r); err != nil {
				t.Error(err)
				return
			}
			if err := m.Remove(0x1000, 0x1000); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			m.Close()
			return
		default:
		}
		tb := m.Acquire()
		if b, ok := tb.Slice(0x1000, 0x1000); ok {
			b[0]++ // must still be valid memory
		}
		tb.Release()
	}
}

// TestMarkDirtyIovecEmptyBuffer checks that a zero-length buffer among the
// written ones marks nothing: only the pages the bytes reached are dirty.
func TestMarkDirtyIovecEmptyBuffer(t *testing.T) {
	m := NewMemory()
	if err := m.Add(NewRegion(0, 0, make([]byte, 0x40000))); err != nil {
		t.Fatal(err)
	}
	log, bits := newTestLog(8)
	if err := m.SetLog(log); err != nil {
		t.Fatal(err)
	}
	tb := m.Acquire()
	defer tb.Release()
	// 0x10 bytes at page 1, an empty buffer at page 3, 0x10 bytes at page 9.
	tb.MarkDirtyIovec([]uint64{0x1000, 0x3000, 0x9000},
		[][]byte{make([]byte, 0x10), {}, make([]byte, 0x10)}, 0x20)
	want := []byte{0b10, 0b10, 0, 0, 0, 0, 0, 0}
	if string(bits) != string(want) {
		t.Fatalf("bitmap = %08b, want %08b", bits, want)
	}
}

// TestSetLogReachesHeldTables checks that a table acquired before a log
// switch marks into the new log: the front-end reads the old log for the
// last time right after the switch.
func TestSetLogReachesHeldTables(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	if err := m.Add(NewRegion(0, 0, make([]byte, 0x10000))); err != nil {
		t.Fatal(err)
	}
	oldLog, oldBits := newTestLog(4)
	if err := m.SetLog(oldLog); err != nil {
		t.Fatal(err)
	}
	tb := m.Acquire() // a request in flight across the switch
	defer tb.Release()
	newLog, newBits := newTestLog(4)
	if err := m.SetLog(newLog); err != nil {
		t.Fatal(err)
	}
	tb.MarkDirty(0x2000, 1)
	tb.MarkDirtyIovec([]uint64{0x5000}, [][]byte{make([]byte, 8)}, 8)
	if oldBits[0] != 0 {
		t.Errorf("old log written after the switch: %08b", oldBits)
	}
	if newBits[0] != 0b10_0100 {
		t.Errorf("new log = %08b, want pages 2 and 5", newBits)
	}
	if err := m.SetLog(nil); err != nil {
		t.Fatal(err)
	}
	if tb.Logging() {
		t.Error("Logging() = true after the log was removed")
	}
	tb.MarkDirty(0x3000, 1)
	if newBits[0] != 0b10_0100 {
		t.Errorf("removed log written: %08b", newBits)
	}
}

// mapTestLog returns a log mapped from a fresh memfd of size bytes and a
// second mapping of the same memory to read it.
func mapTestLog(t *testing.T, size int) (*Log, []byte) {
	t.Helper()
	fd := memfd(t, int64(size))
	view, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(view) })
	l, err := MapLog(fd, uint64(size), 0)
	if err != nil {
		t.Fatal(err)
	}
	return l, view
}

// TestSetLogConcurrentMarks replaces mapped logs while other goroutines
// mark pages: a retired log is unmapped while nobody writes it (a write
// after munmap faults), and every mark made after the last switch lands in
// the last log.
func TestSetLogConcurrentMarks(t *testing.T) {
	before := openFDs(t)
	m := NewMemory()
	if err := m.Add(NewRegion(0, 0, make([]byte, 0x100000))); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb := m.Acquire() // held across every switch
			defer tb.Release()
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tb.MarkDirty(uint64(g)*0x40000+(i%64)*PageSize, 1)
			}
		}()
	}
	for range 200 {
		l, _ := mapTestLog(t, 4096)
		if err := m.SetLog(l); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	last, view := mapTestLog(t, 4096)
	if err := m.SetLog(last); err != nil {
		t.Fatal(err)
	}
	tb := m.Acquire()
	tb.MarkDirty(0xff000, 1) // page 255: byte 31, bit 7
	tb.Release()
	if view[31] != 0x80 {
		t.Errorf("last log byte 31 = %08b, want bit 7", view[31])
	}
	m.Close()
	select {
	case <-last.done:
	default:
		t.Error("log not released by Close")
	}
	if got := openFDs(t); got != before {
		t.Errorf("open fds = %d, want %d", got, before)
	}
}
