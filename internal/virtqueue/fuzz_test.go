package virtqueue

import (
	"encoding/binary"
	"testing"
)

// FuzzChain feeds arbitrary descriptor tables and indirect tables to the
// chain walker. Pop must never panic, must complete every entry it can
// (used idx advances unless the head is out of range) and must only return
// buffers inside guest memory whose total fits in 32 bits.
func FuzzChain(f *testing.F) {
	desc := func(addr uint64, l uint32, flags, next uint16) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, addr)
		binary.LittleEndian.PutUint32(b[8:], l)
		binary.LittleEndian.PutUint16(b[12:], flags)
		binary.LittleEndian.PutUint16(b[14:], next)
		return b
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	f.Add(uint16(0), cat(desc(bufferGPA, 40, 1, 1), desc(bufferGPA+64, 16, 2, 0)), []byte{})
	f.Add(uint16(0), cat(desc(bufferGPA+0x8000, 32, 4, 0)), cat(desc(bufferGPA, 8, 1, 1), desc(bufferGPA, 8, 2, 0)))
	f.Add(uint16(1), cat(desc(0, 1, 1, 1), desc(0, 1, 1, 0)), []byte{})
	f.Add(uint16(9), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, head uint16, table, indirect []byte) {
		d := newDriver(t, 8)
		copy(d.mem[descGPA:descGPA+8*16], table)
		copy(d.mem[bufferGPA+0x8000:bufferGPA+0x9000], indirect)
		d.publish(head)
		c := NewChain()
		ok, err := d.pop(c)
		if !ok {
			t.Fatalf("Pop = false, %v for a published entry", err)
		}
		if err != nil {
			wantUsed := uint16(1)
			if head >= 8 {
				wantUsed = 0
			}
			if d.usedIdx() != wantUsed {
				t.Fatalf("used idx = %d, want %d (err %v)", d.usedIdx(), wantUsed, err)
			}
			if len(c.Readable())+len(c.Writable()) != 0 {
				t.Fatal("malformed chain left buffers in the Chain")
			}
			return
		}
		var total uint64
		for _, bufs := range [][][]byte{c.Readable(), c.Writable()} {
			for _, b := range bufs {
				total += uint64(len(b))
				if len(b) > 0 && !inside(d.mem, b) {
					t.Fatal("buffer outside guest memory")
				}
			}
		}
		if total > 1<<32-1 {
			t.Fatalf("chain total %d exceeds 32 bits", total)
		}
		if err := d.push(c, uint32(total)); err != nil || d.usedIdx() != 1 {
			t.Fatalf("Push = %v, used idx %d", err, d.usedIdx())
		}
	})
}
