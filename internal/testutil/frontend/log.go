package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dirty-page logging (QEMU docs/interop/vhost-user.rst, "Migration"): the
// front-end shares a bitmap with one bit per 4 KiB guest page, bit p%8 of
// byte p/8 for page p = GPA/4096, which the back-end sets for every page it
// writes.
//
// SetLogBase, DirtyPages, WaitDirtyPages and ClearLog use only the control
// connection and the log mapping, so one goroutine may call them while
// another runs requests on the queues (the rest of the Frontend is not
// safe for concurrent use).

// LogPageSize is the dirty-log granularity.
const LogPageSize = 4096

// LogSize returns the number of log bytes that cover every current region
// (the bit of the last page of the highest region included).
func (fe *Frontend) LogSize() uint64 {
	var end uint64
	for _, r := range fe.Mem.Regions() {
		end = max(end, r.GPA+r.Size)
	}
	return (end-1)/LogPageSize/8 + 1
}

// SetLogBase shares a new zeroed log of size bytes (a memfd, mmap offset 0)
// with SET_LOG_BASE, as QEMU does when migration starts or guest memory
// grows, and waits for the reply: the request header with the 16 bytes of
// the request body echoed (QEMU checks the request code). On success the
// new log replaces the previous one in DirtyPages; the previous mapping is
// dropped. LOG_SHMFD must have been negotiated.
func (fe *Frontend) SetLogBase(size uint64) error {
	if fe.AckedProtocol&VHOST_USER_PROTOCOL_F_LOG_SHMFD == 0 {
		return errors.New("set log base: LOG_SHMFD not negotiated")
	}
	if size == 0 {
		return errors.New("set log base: size 0")
	}
	fd, err := unix.MemfdCreate("vhost-log", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("set log base: memfd_create: %w", err)
	}
	defer unix.Close(fd)
	// The file covers whole words so that DirtyPages can read 32 bits at a
	// time; the back-end maps exactly size bytes.
	fileSize := (size + 7) &^ 7
	if err := unix.Ftruncate(fd, int64(fileSize)); err != nil {
		return fmt.Errorf("set log base: ftruncate: %w", err)
	}
	m, err := unix.Mmap(fd, 0, int(fileSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("set log base: mmap: %w", err)
	}
	body := binary.LittleEndian.AppendUint64(nil, size)
	body = binary.LittleEndian.AppendUint64(body, 0)
	if err := fe.Conn.Send(VHOST_USER_SET_LOG_BASE, 0, body, []int{fd}); err != nil {
		unix.Munmap(m)
		return err
	}
	p, err := fe.Conn.RecvReply(VHOST_USER_SET_LOG_BASE)
	if err != nil {
		unix.Munmap(m)
		return fmt.Errorf("set log base: %w", err)
	}
	if !slices.Equal(p, body) {
		unix.Munmap(m)
		return fmt.Errorf("set log base: reply payload %x, want the request body %x", p, body)
	}
	fe.unmapLog()
	fe.dirtyLog = m[:size]
	return nil
}

func (fe *Frontend) unmapLog() {
	if fe.dirtyLog != nil {
		unix.Munmap(fe.dirtyLog[:cap(fe.dirtyLog)])
		fe.dirtyLog = nil
	}
}

// logWords views the log as 32-bit words (the mapping is page aligned and
// at least a whole number of 8-byte words long).
func (fe *Frontend) logWords() []uint32 {
	b := fe.dirtyLog[:cap(fe.dirtyLog)]
	return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// DirtyPages returns the page numbers (GPA/4096) whose bit is set in the
// current log, in ascending order; nil without a log.
func (fe *Frontend) DirtyPages() []uint64 {
	if fe.dirtyLog == nil {
		return nil
	}
	var pages []uint64
	limit := uint64(len(fe.dirtyLog)) * 8
	words := fe.logWords()
	for i := range words {
		// The back-end sets bits with atomic ORs; read them atomically.
		v := atomic.LoadUint32(&words[i])
		for v != 0 {
			bit := uint64(bits.TrailingZeros32(v))
			v &= v - 1
			if p := uint64(i)*32 + bit; p < limit {
				pages = append(pages, p)
			}
		}
	}
	return pages
}

// ClearLog clears the current log, like QEMU after it has synced the
// bitmap. Bits set concurrently by the back-end may be lost; clear only
// while no request is in flight.
func (fe *Frontend) ClearLog() {
	if fe.dirtyLog == nil {
		return
	}
	words := fe.logWords()
	for i := range words {
		atomic.StoreUint32(&words[i], 0)
	}
}

// WaitDirtyPages waits until every page of want is marked in the current
// log and returns all dirty pages then. The back-end sets the bits after
// its writes to guest memory, so a completion seen on the used ring does
// not mean that its bits are set yet. It gives up after Options.Timeout
// and returns the pages seen last with an error.
func (fe *Frontend) WaitDirtyPages(want []uint64) ([]uint64, error) {
	if fe.dirtyLog == nil {
		return nil, errors.New("wait for dirty pages: no log")
	}
	deadline := time.Now().Add(fe.opts.Timeout)
	for {
		got := fe.DirtyPages()
		missing := false
		for _, p := range want {
			if _, ok := slices.BinarySearch(got, p); !ok {
				missing = true
				break
			}
		}
		if !missing {
			return got, nil
		}
		if fe.Conn.alive != nil {
			if err := fe.Conn.alive(); err != nil {
				return got, fmt.Errorf("wait for dirty pages %#x: %w", want, err)
			}
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("wait for dirty pages %#x: %w (dirty: %#x)", want, ErrTimeout, got)
		}
		// The bits are set by another process without any notification;
		// poll.
		time.Sleep(50 * time.Microsecond)
	}
}

// AddMemRegion creates one more guest memory region and announces it with
// ADD_MEM_REG (memory hot-plug). CONFIGURE_MEM_SLOTS must have been
// negotiated.
func (fe *Frontend) AddMemRegion(spec RegionSpec) (*Region, error) {
	if fe.AckedProtocol&VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS == 0 {
		return nil, errors.New("add memory region: CONFIGURE_MEM_SLOTS not negotiated")
	}
	r, err := fe.Mem.Add(spec)
	if err != nil {
		return nil, err
	}
	if err := fe.Request(VHOST_USER_ADD_MEM_REG, SingleRegionPayload(r), []int{r.FD}); err != nil {
		return r, fmt.Errorf("add memory region %#x: %w", r.GPA, err)
	}
	return r, nil
}
