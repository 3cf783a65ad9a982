package fuse

import (
	"bytes"
	"testing"
)

func TestSgbuf(t *testing.T) {
	backing := []byte("0123456789")
	bufs := [][]byte{backing[0:0], backing[0:3], backing[3:3], backing[3:4], backing[4:10]}
	var c sgbuf
	c.reset(bufs)
	if c.left != 10 {
		t.Fatalf("left = %d, want 10", c.left)
	}
	got := make([]byte, 2)
	if n := c.read(got); n != 2 || string(got) != "01" {
		t.Fatalf("read = %d %q", n, got)
	}
	v := c.view(nil, 3)
	if len(v) != 3 || string(v[0]) != "2" || string(v[1]) != "3" || string(v[2]) != "4" {
		t.Fatalf("view(3) = %q, want [2 3 4] without empty slices", v)
	}
	if n := c.skip(1); n != 1 || c.left != 4 {
		t.Fatalf("skip(1) = %d, left %d", n, c.left)
	}
	if n := c.write([]byte("abcdefgh")); n != 4 {
		t.Fatalf("write past the end = %d, want 4", n)
	}
	if string(backing) != "012345abcd" {
		t.Fatalf("backing = %q", backing)
	}
	if n := c.read(got); n != 0 || c.next(1) != nil || c.skip(3) != 0 || len(c.view(nil, 4)) != 0 {
		t.Fatalf("cursor at the end still yields data")
	}
	c.reset(nil)
	if c.left != 0 || c.read(got) != 0 {
		t.Fatalf("empty stream yields data")
	}
}

func TestDecode(t *testing.T) {
	b := enc(ReadIn{Fh: 1, Offset: 2, Size: 3, ReadFlags: 4, LockOwner: 5, Flags: 6})
	// Unaligned source.
	u := append([]byte{0xff}, b...)[1:]
	got, ok := decode[ReadIn](u)
	if !ok || got != (ReadIn{Fh: 1, Offset: 2, Size: 3, ReadFlags: 4, LockOwner: 5, Flags: 6}) {
		t.Fatalf("decode = %+v, %v", got, ok)
	}
	if _, ok := decode[ReadIn](b[:39]); ok {
		t.Fatalf("decode of 39 bytes succeeded")
	}
	if !bytes.Equal(bytesOf(&got), b) {
		t.Fatalf("bytesOf = %x, want %x", bytesOf(&got), b)
	}
}

// TestOpTable checks the dispatch table's metadata once, like an init-time
// self-check.
func TestOpTable(t *testing.T) {
	for i := range ops {
		o := &ops[i]
		opc := Opcode(i)
		if o.handle == nil {
			if o.fixed != 0 || o.outSize != 0 || o.noReply || o.wholeBody {
				t.Errorf("%v: metadata without a handler", opc)
			}
			continue
		}
		if opNames[i] == "" {
			t.Errorf("opcode %d has a handler but no name", i)
		}
		if o.noReply && o.outSize != 0 {
			t.Errorf("%v: no-reply opcode with a reply size", opc)
		}
		if o.fixed > MaxRequestLen-inHeaderSize || outHeaderSize+o.outSize > 4096 {
			t.Errorf("%v: sizes out of range", opc)
		}
	}
	for _, opc := range []Opcode{FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT, FUSE_DESTROY} {
		if !ops[opc].noReply {
			t.Errorf("%v takes a reply", opc)
		}
	}
}
