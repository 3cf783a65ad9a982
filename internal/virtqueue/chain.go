package virtqueue

import (
	"encoding/binary"
	"errors"

	"virtiofsd/internal/guestmem"
)

// Chain errors. All are per-request: the chain is completed with used
// length 0 (or skipped when its head is out of range) and the queue goes on.
var (
	ErrHeadRange       = errors.New("descriptor chain head out of range")
	ErrIndexRange      = errors.New("descriptor index out of range")
	ErrLoop            = errors.New("descriptor chain too long or looping")
	ErrNestedIndirect  = errors.New("nested indirect descriptor table")
	ErrIndirectLength  = errors.New("invalid indirect descriptor table length")
	ErrAddress         = errors.New("descriptor buffer outside guest memory")
	ErrChainLength     = errors.New("descriptor chain length overflows 32 bits")
	ErrEmptyChain      = errors.New("descriptor chain has no buffers")
	errIndirectAddress = errors.New("indirect descriptor table outside guest memory")
)

// initialChainCap is the preallocated number of buffers per direction.
// Longer chains grow the slices once; the capacity is kept for reuse.
const initialChainCap = 64

// Chain is one descriptor chain popped from a queue: the host views of its
// device-readable and device-writable buffers in chain order. A Chain is
// reusable: Pop overwrites it. Its slices point into guest memory and are
// only valid while the guestmem.Table passed to Pop is held.
type Chain struct {
	head   uint16
	in     [][]byte
	out    [][]byte
	outGPA []uint64 // guest address of each out buffer, for dirty logging
	outLen uint64   // total length of out
}

// NewChain returns a Chain with preallocated scratch space.
func NewChain() *Chain {
	return &Chain{
		in:     make([][]byte, 0, initialChainCap),
		out:    make([][]byte, 0, initialChainCap),
		outGPA: make([]uint64, 0, initialChainCap),
	}
}

// Head returns the chain's head descriptor index.
func (c *Chain) Head() uint16 { return c.head }

// Readable returns the device-readable buffers in chain order.
func (c *Chain) Readable() [][]byte { return c.in }

// Writable returns the device-writable buffers in chain order.
func (c *Chain) Writable() [][]byte { return c.out }

// WritableLen returns the total size of the writable buffers.
func (c *Chain) WritableLen() uint64 { return c.outLen }

func (c *Chain) reset(head uint16) {
	c.head = head
	clear(c.in)
	clear(c.out)
	c.in, c.out, c.outGPA, c.outLen = c.in[:0], c.out[:0], c.outGPA[:0], 0
}

// walk builds c from the chain starting at head (spec/vhost.md §2.3, §2.7).
// desc is the host view of the descriptor table of size entries.
func walk(t *guestmem.Table, desc []byte, size uint32, head uint16, c *Chain) error {
	c.reset(head)
	if uint32(head) >= size {
		return ErrHeadRange
	}
	table, tableLen := desc, size
	idx, ttl := uint32(head), size
	indirect := false
	var total uint32
	for {
		if idx >= tableLen {
			return ErrIndexRange
		}
		d := table[descSize*idx : descSize*idx+descSize]
		addr := binary.LittleEndian.Uint64(d[0:])
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])

		if flags&VRING_DESC_F_INDIRECT != 0 {
			if indirect {
				return ErrNestedIndirect
			}
			if length == 0 || length%descSize != 0 || length/descSize > maxIndirect {
				return ErrIndirectLength
			}
			tb, ok := t.Slice(addr, uint64(length))
			if !ok {
				return errIndirectAddress
			}
			table, tableLen = tb, length/descSize
			idx, ttl = 0, tableLen
			indirect = true
			continue
		}

		sum := total + length
		if sum < total {
			return ErrChainLength
		}
		total = sum
		b, ok := t.Slice(addr, uint64(length))
		if !ok {
			return ErrAddress
		}
		if flags&VRING_DESC_F_WRITE != 0 {
			c.out = append(c.out, b)
			c.outGPA = append(c.outGPA, addr)
			c.outLen += uint64(length)
		} else {
			c.in = append(c.in, b)
		}
		if flags&VRING_DESC_F_NEXT == 0 {
			return nil
		}
		ttl--
		if ttl == 0 {
			return ErrLoop
		}
		idx = uint32(next)
	}
}
