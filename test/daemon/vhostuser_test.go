package daemon

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/linux"
	fe "virtiofsd/internal/testutil/frontend"
)

// connectRaw starts a daemon and connects a front-end without any
// vhost-user exchange.
func connectRaw(t *testing.T, spec *daemonSpec, opts fe.Options) (*daemon, *fe.Frontend) {
	t.Helper()
	d := startDaemon(t, spec, startOpts{noFE: true})
	fd, err := d.dial()
	if err != nil {
		t.Fatal(err)
	}
	opts.Alive = d.alive
	f, err := fe.NewUnconnected(fd, opts)
	if err != nil {
		t.Fatal(err)
	}
	d.FE = f
	return d, f
}

func region(gpa, size, uva, off uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, gpa)
	b = binary.LittleEndian.AppendUint64(b, size)
	b = binary.LittleEndian.AppendUint64(b, uva)
	return binary.LittleEndian.AppendUint64(b, off)
}

func memTable(n uint32, regs ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, n)
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, r := range regs {
		b = append(b, r...)
	}
	return b
}

func u64b(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func vstate(i, n uint32) []byte { return append(le32(i), le32(n)...) }

type vuCase struct {
	name string
	// negotiated: run Negotiate (features, protocol features with
	// REPLY_ACK, owner) first.
	negotiated bool
	send       func(t *testing.T, f *fe.Frontend) error
	// refCheck, if set, checks the reference's (different) reaction
	// instead of the close; ours must close.
	refCheck func(t *testing.T, d *daemon, f *fe.Frontend)
}

// refAcks: the reference acks the request with 0 and keeps serving.
func refAcks(req uint32) func(t *testing.T, d *daemon, f *fe.Frontend) {
	return func(t *testing.T, d *daemon, f *fe.Frontend) {
		p, err := f.Conn.RecvReply(req)
		if err != nil || len(p) != 8 || binary.LittleEndian.Uint64(p) != 0 {
			t.Fatalf("reference reply %x, %v; want ack 0", p, err)
		}
		if _, err := f.GetU64(fe.VHOST_USER_GET_FEATURES); err != nil {
			t.Fatalf("reference GET_FEATURES afterwards: %v", err)
		}
	}
}

// refIgnores: the reference drops the message without an ack (although
// NEED_REPLY was set) and keeps serving.
func refIgnores(t *testing.T, d *daemon, f *fe.Frontend) {
	f.Conn.SetTimeout(time.Second)
	if m, err := f.Conn.Recv(); err == nil {
		t.Fatalf("reference replied %+v", m)
	}
	f.Conn.SetTimeout(10 * time.Second)
	if _, err := f.GetU64(fe.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatalf("reference GET_FEATURES afterwards: %v", err)
	}
}

// TestHostileVhostUser sends malformed or unsupported vhost-user messages;
// the answer must be a closed connection (optionally after a failure ack)
// and a clean exit with status 0.
func TestHostileVhostUser(t *testing.T) {
	raw := func(req, flags, size uint32, payload []byte, fds ...int) func(t *testing.T, f *fe.Frontend) error {
		return func(t *testing.T, f *fe.Frontend) error {
			return f.Conn.SendRaw(req, flags, size, payload, fds)
		}
	}
	send := func(req uint32, payload []byte, fdsOf func(f *fe.Frontend) []int) func(t *testing.T, f *fe.Frontend) error {
		return func(t *testing.T, f *fe.Frontend) error {
			var fds []int
			if fdsOf != nil {
				fds = fdsOf(f)
			}
			return f.Conn.Send(req, fe.VHOST_USER_NEED_REPLY, payload, fds)
		}
	}
	memfd := func(f *fe.Frontend) []int { return []int{f.Mem.Regions()[0].FD} }
	firstRegion := func(f *fe.Frontend) *fe.Region { return f.Mem.Regions()[0] }
	const v = fe.VHOST_USER_VERSION
	cases := []vuCase{
		{name: "request-code-0", send: raw(0, v, 0, nil)},
		{name: "request-code-44", send: raw(44, v, 0, nil)},
		{name: "request-code-99", send: raw(99, v, 0, nil)},
		{name: "request-code-max", send: raw(0xffff_ffff, v, 0, nil)},
		{name: "set-log-fd-without-fd", send: raw(fe.VHOST_USER_SET_LOG_FD, v, 0, nil)},
		{name: "unsupported-send-rarp", send: raw(19, v, 8, make([]byte, 8))},
		{name: "unsupported-iotlb", send: raw(22, v, 0, nil)},
		{name: "unsupported-set-status", send: raw(39, v, 8, make([]byte, 8))},
		{name: "oversize-payload", send: raw(fe.VHOST_USER_GET_FEATURES, v, 5000, make([]byte, 5000))},
		{name: "huge-size-field", send: raw(fe.VHOST_USER_SET_FEATURES, v, 0xffff_ffff, make([]byte, 64))},
		{name: "bad-version", send: raw(fe.VHOST_USER_GET_FEATURES, 2, 0, nil)},
		{name: "reserved-flag-bits", send: raw(fe.VHOST_USER_GET_FEATURES, v|0x100, 0, nil)},
		{name: "reply-flag-on-request", send: raw(fe.VHOST_USER_SET_OWNER, v|fe.VHOST_USER_REPLY, 0, nil)},
		{name: "payload-size-mismatch", send: raw(fe.VHOST_USER_SET_FEATURES, v, 4, make([]byte, 4))},
		{name: "fd-on-request-without-fds", send: func(t *testing.T, f *fe.Frontend) error {
			return f.Conn.Send(fe.VHOST_USER_GET_FEATURES, 0, nil, []int{f.Queues[0].KickFD})
		}},
		{name: "truncated-header", send: func(t *testing.T, f *fe.Frontend) error {
			if err := f.Conn.SendRaw(fe.VHOST_USER_GET_FEATURES, v, 0, nil, nil); err != nil {
				return err
			}
			// A second header cut short, then our side shuts down.
			b := []byte{1, 0, 0, 0, 1, 0}
			if err := linux.WriteAll(f.Conn.FD, b); err != nil {
				return err
			}
			return unix.Shutdown(f.Conn.FD, unix.SHUT_WR)
		}},
		{name: "truncated-payload", send: func(t *testing.T, f *fe.Frontend) error {
			if err := f.Conn.SendRaw(fe.VHOST_USER_SET_FEATURES, v, 8, make([]byte, 3), nil); err != nil {
				return err
			}
			return unix.Shutdown(f.Conn.FD, unix.SHUT_WR)
		}},
		{name: "unsupported-features", negotiated: true, send: send(fe.VHOST_USER_SET_FEATURES, u64b(fe.VIRTIO_F_VERSION_1|1<<34), nil)},
		{name: "second-set-owner", negotiated: true, send: send(fe.VHOST_USER_SET_OWNER, nil, nil)},
		{name: "mem-table-zero-regions", negotiated: true, send: send(fe.VHOST_USER_SET_MEM_TABLE, memTable(0), nil)},
		{name: "mem-table-33-regions", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			var regs [][]byte
			for i := uint64(0); i < 33; i++ {
				regs = append(regs, region(i<<30, 4096, i<<30, 0))
			}
			return f.Conn.Send(fe.VHOST_USER_SET_MEM_TABLE, fe.VHOST_USER_NEED_REPLY, memTable(33, regs...), memfd(f))
		}},
		{name: "mem-table-fd-count-mismatch", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			r := firstRegion(f)
			p := memTable(2, region(r.GPA, r.Size, r.UVA, 0), region(r.GPA+r.Size, r.Size, r.UVA+r.Size, 0))
			return f.Conn.Send(fe.VHOST_USER_SET_MEM_TABLE, fe.VHOST_USER_NEED_REPLY, p, memfd(f))
		}},
		{name: "mem-table-count-says-more-than-sent", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			r := firstRegion(f)
			return f.Conn.Send(fe.VHOST_USER_SET_MEM_TABLE, fe.VHOST_USER_NEED_REPLY, memTable(3, region(r.GPA, r.Size, r.UVA, 0)), memfd(f))
		}},
		{name: "mem-region-size-zero", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			r := firstRegion(f)
			return f.Conn.Send(fe.VHOST_USER_SET_MEM_TABLE, fe.VHOST_USER_NEED_REPLY, memTable(1, region(r.GPA, 0, r.UVA, 0)), memfd(f))
		}},
		{name: "mem-region-gpa-overflow", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			r := firstRegion(f)
			return f.Conn.Send(fe.VHOST_USER_SET_MEM_TABLE, fe.VHOST_USER_NEED_REPLY, memTable(1, region(^uint64(0)-4095, r.Size, r.UVA, 0)), memfd(f))
		}},
		{name: "mem-region-beyond-file", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			r := firstRegion(f)
			return f.Conn.Send(fe.VHOST_USER_SET_MEM_TABLE, fe.VHOST_USER_NEED_REPLY, memTable(1, region(r.GPA, r.Size, r.UVA, r.Size)), memfd(f))
		}},
		{name: "add-mem-reg-without-fd", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			return f.Conn.Send(fe.VHOST_USER_ADD_MEM_REG, fe.VHOST_USER_NEED_REPLY, fe.SingleRegionPayload(firstRegion(f)), nil)
		}},
		{name: "vring-num-bad-index", negotiated: true, send: send(fe.VHOST_USER_SET_VRING_NUM, vstate(5, 128), nil)},
		{name: "vring-num-zero", negotiated: true, send: send(fe.VHOST_USER_SET_VRING_NUM, vstate(1, 0), nil)},
		{name: "vring-num-too-big", negotiated: true, send: send(fe.VHOST_USER_SET_VRING_NUM, vstate(1, 65536), nil)},
		// The reference logs and ignores a size that is not a power of two;
		// ours rejects it (vhost.md §1.6 GO tolerances).
		{name: "vring-num-not-power-of-two", negotiated: true, refCheck: refAcks(fe.VHOST_USER_SET_VRING_NUM), send: send(fe.VHOST_USER_SET_VRING_NUM, vstate(1, 100), nil)},
		{name: "vring-addr-without-memory", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			p, err := f.VringAddrPayload(f.Queues[1])
			if err != nil {
				return err
			}
			return f.Conn.Send(fe.VHOST_USER_SET_VRING_ADDR, fe.VHOST_USER_NEED_REPLY, p, nil)
		}},
		{name: "vring-addr-misaligned", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			if err := f.SendMemory(fe.MemTable); err != nil {
				return err
			}
			p, err := f.VringAddrPayload(f.Queues[1])
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(p[8:], binary.LittleEndian.Uint64(p[8:])+2)
			return f.Conn.Send(fe.VHOST_USER_SET_VRING_ADDR, fe.VHOST_USER_NEED_REPLY, p, nil)
		}},
		{name: "vring-addr-unknown-uva", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			if err := f.SendMemory(fe.MemTable); err != nil {
				return err
			}
			p, err := f.VringAddrPayload(f.Queues[1])
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(p[8:], 0x10)
			return f.Conn.Send(fe.VHOST_USER_SET_VRING_ADDR, fe.VHOST_USER_NEED_REPLY, p, nil)
		}},
		{name: "vring-addr-bad-flags", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			if err := f.SendMemory(fe.MemTable); err != nil {
				return err
			}
			p, err := f.VringAddrPayload(f.Queues[1])
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint32(p[4:], 0x80)
			return f.Conn.Send(fe.VHOST_USER_SET_VRING_ADDR, fe.VHOST_USER_NEED_REPLY, p, nil)
		}},
		{name: "vring-kick-bad-index", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			return f.Conn.Send(fe.VHOST_USER_SET_VRING_KICK, fe.VHOST_USER_NEED_REPLY, u64b(7), []int{f.Queues[0].KickFD})
		}},
		{name: "vring-kick-missing-fd", negotiated: true, send: send(fe.VHOST_USER_SET_VRING_KICK, u64b(1), nil)},
		{name: "vring-call-fd-with-nofd-flag", negotiated: true, send: func(t *testing.T, f *fe.Frontend) error {
			return f.Conn.Send(fe.VHOST_USER_SET_VRING_CALL, fe.VHOST_USER_NEED_REPLY, u64b(1|fe.VHOST_USER_VRING_NOFD_MASK), []int{f.Queues[1].CallFD})
		}},
		{name: "vring-enable-bad-value", negotiated: true, send: send(fe.VHOST_USER_SET_VRING_ENABLE, vstate(1, 2), nil)},
		// More than 32 fds: the reference silently drops the message
		// (no ack although one was requested); ours closes (vhost.md §5.4).
		{name: "too-many-fds", negotiated: true, refCheck: refIgnores, send: func(t *testing.T, f *fe.Frontend) error {
			fds := make([]int, 40)
			for i := range fds {
				fds[i] = f.Queues[i%2].KickFD
			}
			return f.Conn.Send(fe.VHOST_USER_SET_OWNER, fe.VHOST_USER_NEED_REPLY, nil, fds)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d, f := connectRaw(t, spec, fe.Options{})
				if c.negotiated {
					if err := f.Negotiate(); err != nil {
						t.Fatalf("negotiate: %v\n%s", err, d.Log())
					}
				}
				if err := c.send(t, f); err != nil {
					t.Fatalf("send: %v", err)
				}
				if c.refCheck != nil && !spec.hardened {
					c.refCheck(t, d, f)
					d.disconnect()
					return
				}
				msgs, err := f.Conn.WaitClosed(5 * time.Second)
				if err != nil {
					t.Fatalf("%v\nlog:\n%s", err, d.Log())
				}
				for _, m := range msgs {
					// Only a failure ack may precede the close.
					if m.Flags != fe.VHOST_USER_VERSION|fe.VHOST_USER_REPLY || len(m.Payload) != 8 || binary.LittleEndian.Uint64(m.Payload) == 0 {
						t.Errorf("message before close: %+v", m)
					}
				}
				code, err := d.wait(5 * time.Second)
				if err != nil || code != 0 {
					t.Errorf("exit: code %d, %v\nlog:\n%s", code, err, d.Log())
				}
				d.checkNoPanic()
				d.skipExitCheck = true
			})
		})
	}
}
