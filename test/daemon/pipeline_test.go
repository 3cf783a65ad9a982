package daemon

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// TestPipelined keeps many requests in flight on the request queue at
// once (reads of different blocks plus GETATTRs), in serial and pool mode,
// with and without EVENT_IDX, and checks every reply.
func TestPipelined(t *testing.T) {
	variants := []struct {
		name string
		args []string
		opts fe.Options
	}{
		{"serial", nil, fe.Options{}},
		{"serial-event-idx", nil, fe.Options{EventIdx: true}},
		{"pool", []string{"--thread-pool-size=4"}, fe.Options{EventIdx: true}},
		{"pool-indirect", []string{"--thread-pool-size=4"}, fe.Options{Indirect: true}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d := startDaemon(t, spec, startOpts{args: v.args, fe: v.opts})
				const block, blocks = 8192, 64
				data := make([]byte, block*blocks)
				for i := range data {
					data[i] = byte(i>>13) ^ byte(i)
				}
				if err := os.WriteFile(filepath.Join(d.Shared, "f"), data, 0o644); err != nil {
					t.Fatal(err)
				}
				e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"))
				o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDONLY))
				q := d.FE.Queues[fe.QueueRequest]
				alloc := d.FE.Alloc()
				for round := 0; round < 3; round++ {
					mark := alloc.Mark()
					type req struct {
						head   uint16
						unique uint64
						out    uint64
						off    int // -1: GETATTR
					}
					var reqs []req
					inflight := min(blocks, q.Size/4)
					for i := 0; i < inflight; i++ {
						off := ((i*7 + round) % blocks) * block
						var body []byte
						op := uint32(fe.FUSE_READ)
						if i%5 == 4 {
							op, off = fe.FUSE_GETATTR, -1
							body = make([]byte, 16)
						} else {
							body = binary.LittleEndian.AppendUint64(nil, o.Fh)
							body = binary.LittleEndian.AppendUint64(body, uint64(off))
							body = binary.LittleEndian.AppendUint32(body, block)
							body = append(body, make([]byte, 20)...)
						}
						h := d.FE.Header(op, e.NodeID, len(body))
						in := append(fe.EncodeInHeader(h), body...)
						inGPA := must[uint64](t, "alloc")(alloc.Alloc(uint64(len(in)), 8))
						d.FE.Mem.Write(inGPA, in)
						outGPA := must[uint64](t, "alloc")(alloc.Alloc(16+block, 64))
						head, err := q.SubmitChain([]fe.Buf{
							{GPA: inGPA, Len: uint32(len(in))},
							{GPA: outGPA, Len: 16, Write: true},
							{GPA: outGPA + 16, Len: block, Write: true},
						}, v.opts.Indirect)
						mustOK(t, "submit", err)
						reqs = append(reqs, req{head, h.Unique, outGPA, off})
					}
					// Wait in reverse order: completions may come in any order.
					for i := len(reqs) - 1; i >= 0; i-- {
						r := reqs[i]
						u, err := q.WaitUsed(r.head)
						if err != nil {
							t.Fatalf("request %d: %v\n%s", i, err, d.Log())
						}
						out, _ := d.FE.Mem.Bytes(r.out, 16+block)
						oh := fe.DecodeOutHeader(out)
						if oh.Unique != r.unique || oh.Error != 0 || oh.Len != u.Len {
							t.Fatalf("request %d: header %+v used %d", i, oh, u.Len)
						}
						if r.off < 0 {
							if u.Len != 16+fe.AttrOutSize || fe.DecodeAttr(out[32:]).Size != uint64(len(data)) {
								t.Fatalf("GETATTR %d: used %d", i, u.Len)
							}
							continue
						}
						if u.Len != 16+block || !bytes.Equal(out[16:], data[r.off:r.off+block]) {
							t.Fatalf("READ %d at %d: used %d or wrong data", i, r.off, u.Len)
						}
					}
					if len(q.Stray) != 0 {
						t.Fatalf("unclaimed completions: %v", q.Stray)
					}
					alloc.Release(mark)
				}
				mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))
				d.serves()
			})
		})
	}
}
