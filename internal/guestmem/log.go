package guestmem

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Log is a dirty-page bitmap shared with the front-end: bit page%8 of byte
// page/8 (LSB first) is set when the device wrote to GPA page*4096.
//
// A Log is reference counted. The owner reference belongs to whoever
// created it until Memory.SetLog installs it, then to the Memory; every
// marking operation takes a short-lived reference of its own (see
// logSlot). The memory is unmapped, and done closed, when the last
// reference goes.
type Log struct {
	bitmap  []byte
	mapping []byte // what to munmap; nil if the memory is not ours
	refs    atomic.Int32
	done    chan struct{} // closed once the last reference is gone
}

func newLog(bitmap, mapping []byte) *Log {
	l := &Log{bitmap: bitmap, mapping: mapping, done: make(chan struct{})}
	l.refs.Store(1)
	return l
}

// MapLog maps size bytes of the log fd at offset. The fd is closed in all
// cases (the mapping keeps the memory alive).
func MapLog(fd int, size, offset uint64) (*Log, error) {
	defer unix.Close(fd)
	if size == 0 {
		return nil, errors.New("map dirty log: size is zero")
	}
	if offset+size < offset || size > uint64(maxInt) || offset > uint64(maxInt64) {
		return nil, fmt.Errorf("map dirty log: offset %#x + size %#x overflows", offset, size)
	}
	m, err := unix.Mmap(fd, int64(offset), int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map dirty log: %w", os.NewSyscallError("mmap", err))
	}
	return newLog(m, m), nil
}

// NewLog returns a log over a bitmap the caller owns. The bitmap must start
// 4-byte aligned and its length must be a multiple of 4 (atomic word OR).
func NewLog(bitmap []byte) *Log {
	if len(bitmap)%4 != 0 || !aligned4(bitmap) {
		panic("guestmem: NewLog bitmap not 4-byte aligned")
	}
	return newLog(bitmap, nil)
}

// Size returns the bitmap length in bytes.
func (l *Log) Size() int { return len(l.bitmap) }

// tryRef takes a reference unless the log is already being freed.
func (l *Log) tryRef() bool {
	for {
		n := l.refs.Load()
		if n <= 0 {
			return false
		}
		if l.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (l *Log) unref() {
	n := l.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("guestmem: Log released too often")
	}
	if l.mapping != nil {
		unix.Munmap(l.mapping)
	}
	l.mapping, l.bitmap = nil, nil
	close(l.done)
}

// Free releases a log that was never installed (or whose installation
// failed).
func (l *Log) Free() { l.unref() }

// covers reports whether the bit of gpa's page lies inside the bitmap.
func (l *Log) covers(gpa uint64) bool {
	return gpa/PageSize/8 < uint64(len(l.bitmap))
}

// mark sets the bits of every page touched by [gpa, gpa+n). Pages beyond
// the bitmap are skipped: the front-end sized the log for the RAM it knows.
//
// Preconditions: n > 0; the caller holds a reference on l.
func (l *Log) mark(gpa, n uint64) {
	last := gpa + n - 1
	if last < gpa {
		last = ^uint64(0)
	}
	for p := gpa / PageSize; p <= last/PageSize; p++ {
		byteIdx := p / 8
		if byteIdx >= uint64(len(l.bitmap)) {
			return
		}
		orBit(l.bitmap, byteIdx, uint8(p%8))
		if p == ^uint64(0) {
			return
		}
	}
}

// logSlot holds the log currently installed in a Memory. Every Table of
// that Memory marks through the slot, not through the log that was current
// when the table was built: a request that acquired its table before a
// SET_LOG_BASE and completes after it must record its writes in the new
// log, because the front-end reads the old one for the last time right
// after the switch (QEMU hw/virtio/vhost.c, vhost_dev_log_resize: the old
// log is synced and freed once the back-end has the new one).
type logSlot struct {
	cur atomic.Pointer[Log]
}

// acquire returns the installed log with a reference held, or nil.
func (s *logSlot) acquire() *Log {
	for {
		l := s.cur.Load()
		if l == nil || l.tryRef() {
			return l
		}
		// l lost its owner reference after the load: a newer log (or none)
		// has been installed already.
	}
}

// swap installs l (which may be nil) and retires the previous log: its
// owner reference is dropped and swap waits until every marking operation
// that still uses it has finished, so that once swap returns the device
// writes only to l. Marking never blocks, so the wait is short.
func (s *logSlot) swap(l *Log) {
	old := s.cur.Swap(l)
	if old == nil {
		return
	}
	old.unref()
	<-old.done
}
