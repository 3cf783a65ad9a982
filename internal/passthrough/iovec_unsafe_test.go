package passthrough

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestIovecFill checks fill against a simple model on random buffer
// shapes: the vectors cover exactly bytes [skip, skip+limit) of the
// concatenation (or less where the buffers end), never more than iovMax
// vectors, and no empty vector.
func TestIovecFill(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var iov iovecs
	for round := 0; round < 2000; round++ {
		nb := r.IntN(1500)
		bufs := make([][]byte, nb)
		var all []*byte
		for i := range bufs {
			bufs[i] = make([]byte, r.IntN(4))
			for j := range bufs[i] {
				all = append(all, &bufs[i][j])
			}
		}
		skip := r.IntN(len(all) + 2)
		limit := r.IntN(len(all) + 2)
		n, total := iov.fill(bufs, skip, limit)
		want := min(limit, max(len(all)-skip, 0))
		if n > iovMax {
			t.Fatalf("fill used %d vectors", n)
		}
		var got []*byte
		for _, v := range iov[:n] {
			if v.Len == 0 {
				t.Fatalf("empty vector")
			}
			for k := uint64(0); k < v.Len; k++ {
				got = append(got, (*byte)(unsafe.Add(unsafe.Pointer(v.Base), k)))
			}
		}
		if total != len(got) {
			t.Fatalf("total %d, vectors cover %d", total, len(got))
		}
		if n < iovMax && total != want {
			t.Fatalf("round %d: covered %d bytes, want %d", round, total, want)
		}
		for i, p := range got {
			if p != all[skip+i] {
				t.Fatalf("round %d: byte %d is not byte %d of the buffers", round, i, skip+i)
			}
		}
	}
}
