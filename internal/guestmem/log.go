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
type Log struct {
	bitmap  []byte
	mapping []byte // what to munmap; nil if the memory is not ours
	refs    atomic.Int32
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
	return &Log{bitmap: m, mapping: m}, nil
}

// NewLog returns a log over a bitmap the caller owns. The bitmap must start
// 4-byte aligned and its length must be a multiple of 4 (atomic word OR).
func NewLog(bitmap []byte) *Log {
	if len(bitmap)%4 != 0 || !aligned4(bitmap) {
		panic("guestmem: NewLog bitmap not 4-byte aligned")
	}
	return &Log{bitmap: bitmap}
}

func (l *Log) ref() { l.refs.Add(1) }

func (l *Log) unref() {
	if l.refs.Add(-1) == 0 && l.mapping != nil {
		unix.Munmap(l.mapping)
		l.mapping = nil
	}
}

// Free releases a log that was never installed.
func (l *Log) Free() {
	if l.refs.Load() == 0 && l.mapping != nil {
		unix.Munmap(l.mapping)
		l.mapping = nil
	}
}

// covers reports whether the bit of gpa's page lies inside the bitmap.
func (l *Log) covers(gpa uint64) bool {
	return gpa/PageSize/8 < uint64(len(l.bitmap))
}

// mark sets the bits of every page touched by [gpa, gpa+n). Pages beyond
// the bitmap are skipped: the front-end sized the log for the RAM it knows.
//
// Preconditions: n > 0.
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
