package daemon

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	fe "virtiofsd/internal/testutil/frontend"
)

// TestRandomChains submits seeded random descriptor chains: random
// flags, lengths, next links and addresses (inside the data region, at its
// edges, outside guest memory), with random FUSE headers. Our daemon must
// complete every chain (never writing more than the writable length) and
// keep serving. The reference stops serving at the first malformed chain,
// so it is not run.
func TestRandomChains(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		if !spec.hardened {
			t.Skip("the reference stops serving after the first malformed chain (known, see TestHostileChains)")
		}
		ringGPA, dataGPA := uint64(0x1000_0000), uint64(0x8000_0000)
		d := startDaemon(t, spec, startOpts{fe: fe.Options{
			Regions:   []fe.RegionSpec{{GPA: ringGPA, Size: 1 << 20}, {GPA: dataGPA, Size: 4 << 20}},
			RingGPA:   &ringGPA,
			DataGPA:   &dataGPA,
			QueueSize: 256,
			Indirect:  true,
		}})
		rng := rand.New(rand.NewPCG(1, 2))
		q := d.FE.Queues[fe.QueueRequest]
		data := d.FE.Alloc().Region()
		randAddr := func(n uint32) uint64 {
			switch rng.IntN(8) {
			case 0:
				return rng.Uint64()
			case 1:
				return dataGPA + data.Size - uint64(rng.IntN(64))
			case 2:
				return ringGPA + uint64(rng.IntN(64))*4096 // read-only use below
			default:
				span := data.Size - uint64(n)
				if uint64(n) > data.Size {
					span = 1
				}
				return dataGPA + rng.Uint64N(span)
			}
		}
		randLen := func() uint32 {
			switch rng.IntN(6) {
			case 0:
				return rng.Uint32()
			case 1:
				return 0
			default:
				return uint32(rng.IntN(300))
			}
		}
		// Random but plausible FUSE headers in the data region.
		for i := 0; i < 64; i++ {
			h := fe.InHeader{Len: uint32(rng.IntN(200)), Opcode: uint32(rng.IntN(60)), Unique: rng.Uint64(), NodeID: uint64(rng.IntN(4))}
			if rng.IntN(4) == 0 {
				h.Len = rng.Uint32()
			}
			b := fe.EncodeInHeader(h)
			binary.LittleEndian.PutUint64(b[16:], h.NodeID)
			copy(data.Bytes()[i*256:], b)
		}
		completed := 0
		for round := 0; round < 40; round++ {
			var heads []uint16
			for c := 0; c < 8; c++ {
				n := 1 + rng.IntN(6)
				idx, err := q.AllocDescs(n)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					l := randLen()
					desc := fe.Desc{Addr: randAddr(l), Len: l}
					if i == 0 && rng.IntN(3) > 0 {
						desc.Addr, desc.Len = dataGPA+uint64(rng.IntN(64))*256, 40+uint32(rng.IntN(64))
					}
					if rng.IntN(2) == 0 {
						desc.Flags |= fe.VRING_DESC_F_WRITE
						if desc.Addr >= ringGPA && desc.Addr < ringGPA+(1<<20) {
							desc.Addr = dataGPA + 3<<20 // never let the daemon write over our rings
						}
					}
					if i+1 < n || rng.IntN(8) == 0 {
						desc.Flags |= fe.VRING_DESC_F_NEXT
						desc.Next = idx[rng.IntN(n)]
						if i+1 < n && rng.IntN(3) > 0 {
							desc.Next = idx[i+1]
						}
					}
					if rng.IntN(16) == 0 {
						desc.Flags |= fe.VRING_DESC_F_INDIRECT
					}
					q.WriteDesc(idx[i], desc)
				}
				q.Track(idx[0], idx)
				if err := q.PublishAndKick(idx[0]); err != nil {
					t.Fatal(err)
				}
				heads = append(heads, idx[0])
			}
			for _, h := range heads {
				d.FE.SetTimeout(5 * time.Second)
				u, err := q.WaitUsed(h)
				if err != nil {
					t.Fatalf("round %d: random chain %d not completed: %v\n%s", round, h, err, d.Log())
				}
				// The used length can never exceed what the chain could
				// hold: 6 descriptors of at most 4 GiB each is not a useful
				// bound, so check against the guest memory it could touch.
				if u.Len > 4<<20 {
					t.Fatalf("round %d: used length %d larger than guest data memory", round, u.Len)
				}
				completed++
			}
			d.serves()
		}
		t.Logf("%d random chains completed", completed)
	})
}
