package daemon

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// descSpec is one descriptor of a hand-built chain; next is the position
// of the following descriptor in the same spec list (-1: none), so that
// loops can be expressed.
type descSpec struct {
	addr  uint64
	len   uint32
	flags uint16
	next  int
}

// submitDescs writes specs into free descriptor slots of queue q,
// publishes the first one as a chain head and kicks.
func submitDescs(t *testing.T, d *daemon, q int, specs []descSpec) uint16 {
	t.Helper()
	queue := d.FE.Queues[q]
	idx, err := queue.AllocDescs(len(specs))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		desc := fe.Desc{Addr: s.addr, Len: s.len, Flags: s.flags}
		if s.next >= 0 {
			desc.Next = idx[s.next]
		} else if s.flags&fe.VRING_DESC_F_NEXT != 0 {
			desc.Next = uint16(queue.Size) + 3 // out of range on purpose
		}
		queue.WriteDesc(idx[i], desc)
	}
	queue.Track(idx[0], idx)
	if err := queue.PublishAndKick(idx[0]); err != nil {
		t.Fatal(err)
	}
	return idx[0]
}

// guestBytes places b in guest memory and returns its GPA.
func guestBytes(t *testing.T, d *daemon, b []byte, extra int) uint64 {
	t.Helper()
	gpa, err := d.FE.Alloc().Alloc(uint64(len(b)+extra), 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.FE.Mem.Write(gpa, b); err != nil {
		t.Fatal(err)
	}
	return gpa
}

func getattrReq(d *daemon) []byte {
	h := d.FE.Header(fe.FUSE_GETATTR, root, 16)
	return append(fe.EncodeInHeader(h), make([]byte, 16)...)
}

// outcome of one hostile request.
type outcome struct {
	completed bool
	used      uint32
	reply     []byte // first min(used, 16) bytes of the writable buffer
	waitErr   error
}

func (o outcome) errno() unix.Errno {
	if !o.completed || o.used != fe.OutHeaderSize || len(o.reply) < fe.OutHeaderSize {
		return 0
	}
	return unix.Errno(-int32(binary.LittleEndian.Uint32(o.reply[4:])))
}

func waitOutcome(d *daemon, q int, head uint16, replyGPA uint64, timeout time.Duration) outcome {
	d.FE.SetTimeout(timeout)
	defer d.FE.SetTimeout(10 * time.Second)
	u, err := d.FE.Queues[q].WaitUsed(head)
	if err != nil {
		return outcome{waitErr: err}
	}
	o := outcome{completed: true, used: u.Len}
	if replyGPA != 0 && u.Len > 0 {
		if b, err := d.FE.Mem.Bytes(replyGPA, uint64(min(u.Len, fe.OutHeaderSize))); err == nil {
			o.reply = append([]byte(nil), b...)
		}
	}
	return o
}

// probe reports whether the daemon still answers GETATTR within timeout.
func probe(d *daemon, timeout time.Duration) error {
	d.FE.SetTimeout(timeout)
	defer d.FE.SetTimeout(10 * time.Second)
	_, err := d.FE.Getattr(root)
	return err
}

// refMalformed is what the reference does with a malformed request: its
// worker thread panics (or the vring thread stops), so no reply comes and
// the queue is dead. The process stays up and exits 0 on disconnect.
func expectReferenceStall(t *testing.T, d *daemon, o outcome) {
	t.Helper()
	d.expectPanic = true
	if o.completed {
		t.Logf("reference completed the malformed chain: used %d reply %x", o.used, o.reply)
	}
	if err := probe(d, time.Second); err == nil {
		t.Logf("reference still serves after the malformed chain")
	} else if !errors.Is(err, fe.ErrTimeout) {
		t.Errorf("reference probe after malformed chain: %v", err)
	}
	if err := d.alive(); err != nil {
		t.Errorf("reference died: %v\n%s", err, d.Log())
	}
}

// expectHardened checks our decision for malformed requests: the chain is
// completed with used length 0 or with an EINVAL-style error header (or,
// when it cannot be completed at all, skipped), and the daemon keeps
// serving.
func expectHardened(t *testing.T, d *daemon, o outcome, mayVanish bool, okErrnos ...unix.Errno) {
	t.Helper()
	switch {
	case !o.completed && mayVanish && errors.Is(o.waitErr, fe.ErrTimeout):
		// The chain cannot be returned (e.g. a head index out of range).
	case !o.completed:
		t.Errorf("malformed chain not completed: %v", o.waitErr)
	case o.used == 0:
	case o.errno() != 0:
		ok := o.errno() == unix.EINVAL
		for _, e := range okErrnos {
			ok = ok || o.errno() == e
		}
		if !ok {
			t.Errorf("malformed chain answered with %v", o.errno())
		}
	default:
		t.Errorf("malformed chain completed with used %d reply %x, want 0 or an error header", o.used, o.reply)
	}
	d.serves()
	if strings.Contains(d.Log(), "panic") {
		t.Errorf("daemon log shows a panic:\n%s", d.Log())
	}
}

type ringCase struct {
	name string
	// build submits the malformed chain; replyGPA is where an error
	// header would land (0 if none).
	build func(t *testing.T, d *daemon) (q int, head uint16, replyGPA uint64)
	// mayVanish: the chain cannot be completed (bad head).
	mayVanish bool
	// refServes: the reference handles this one gracefully too; refErrno
	// is its reply.
	refServes bool
	refErrno  unix.Errno
	okErrnos  []unix.Errno
	opts      fe.Options
}

func TestHostileChains(t *testing.T) {
	const bogus = 0x7fff_0000_0000
	cases := []ringCase{
		{name: "self-loop", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			return 1, submitDescs(t, d, 1, []descSpec{{in, 56, fe.VRING_DESC_F_NEXT, 0}}), 0
		}},
		// The reference bounds the walk by the queue size and then serves
		// the (repeated) buffers as a normal GETATTR.
		{name: "two-descriptor-loop", refServes: true, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, 56, fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_NEXT | fe.VRING_DESC_F_WRITE, 0},
			}), out
		}},
		{name: "next-out-of-range", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			return 1, submitDescs(t, d, 1, []descSpec{{in, 56, fe.VRING_DESC_F_NEXT, -1}}), 0
		}},
		{name: "address-outside-guest-memory", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{bogus, 56, fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "writable-address-outside-guest-memory", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, 56, fe.VRING_DESC_F_NEXT, 1},
				{bogus, 256, fe.VRING_DESC_F_WRITE, -1},
			}), 0
		}},
		{name: "buffer-straddles-region-end", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			r := d.FE.Alloc().Region()
			end := r.GPA + r.Size
			copy(r.Bytes()[r.Size-40:], getattrReq(d)[:40])
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{end - 40, 56, fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "address-wraps-u64", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{^uint64(0) - 15, 56, fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "lengths-overflow-u32", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, 56, fe.VRING_DESC_F_NEXT, 1},
				{in, 0xffff_fff0, fe.VRING_DESC_F_NEXT, 2},
				{in, 0xffff_fff0, fe.VRING_DESC_F_NEXT, 3},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "truncated-fuse-header", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d)[:20], 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, 20, fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "no-readable-descriptor", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{{out, 256, fe.VRING_DESC_F_WRITE, -1}}), out
		}},
		{name: "header-len-beyond-data", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			req := fe.EncodeInHeader(d.FE.Header(fe.FUSE_LOOKUP, root, 4000))
			req = append(req, "file\x00"...)
			in := guestBytes(t, d, req, 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, uint32(len(req)), fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "header-len-smaller-than-header", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			h := d.FE.Header(fe.FUSE_LOOKUP, root, 0)
			h.Len = 8
			req := append(fe.EncodeInHeader(h), "file\x00"...)
			in := guestBytes(t, d, req, 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, uint32(len(req)), fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "name-without-nul", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			req := append(fe.EncodeInHeader(d.FE.Header(fe.FUSE_LOOKUP, root, 4)), "file"...)
			in := guestBytes(t, d, req, 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, uint32(len(req)), fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "name-with-interior-nul", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			req := append(fe.EncodeInHeader(d.FE.Header(fe.FUSE_LOOKUP, root, 7)), "fi\x00le\x00"...)
			in := guestBytes(t, d, req, 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, uint32(len(req)), fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "reply-buffer-too-small", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			out := guestBytes(t, d, nil, 16)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, 56, fe.VRING_DESC_F_NEXT, 1},
				{out, 16, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "reply-buffer-smaller-than-header", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			out := guestBytes(t, d, nil, 8)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, 56, fe.VRING_DESC_F_NEXT, 1},
				{out, 8, fe.VRING_DESC_F_WRITE, -1},
			}), 0
		}},
		{name: "head-index-out-of-range", mayVanish: true, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			q := d.FE.Queues[1]
			head := uint16(q.Size + 7)
			if err := q.PublishAndKick(head); err != nil {
				t.Fatal(err)
			}
			return 1, head, 0
		}},
		{name: "oversize-request", refServes: true, refErrno: unix.ENOMEM, okErrnos: []unix.Errno{unix.ENOMEM}, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			h := d.FE.Header(fe.FUSE_WRITE, root, 0)
			h.Len = fe.FUSE_MAX_REQUEST_LEN + 1
			req := append(fe.EncodeInHeader(h), make([]byte, 40)...)
			in := guestBytes(t, d, req, 0)
			out := guestBytes(t, d, nil, 256)
			return 1, submitDescs(t, d, 1, []descSpec{
				{in, uint32(len(req)), fe.VRING_DESC_F_NEXT, 1},
				{out, 256, fe.VRING_DESC_F_WRITE, -1},
			}), out
		}},
		{name: "nested-indirect", opts: fe.Options{Indirect: true}, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			out := guestBytes(t, d, nil, 256)
			inner := guestBytes(t, d, nil, 32)
			q := d.FE.Queues[1]
			q.WriteDescAt(inner, fe.Desc{Addr: in, Len: 56, Flags: fe.VRING_DESC_F_NEXT, Next: 1})
			q.WriteDescAt(inner+16, fe.Desc{Addr: out, Len: 256, Flags: fe.VRING_DESC_F_WRITE})
			outer := guestBytes(t, d, nil, 16)
			q.WriteDescAt(outer, fe.Desc{Addr: inner, Len: 32, Flags: fe.VRING_DESC_F_INDIRECT})
			return 1, submitDescs(t, d, 1, []descSpec{{outer, 16, fe.VRING_DESC_F_INDIRECT, -1}}), out
		}},
		{name: "indirect-length-not-multiple-of-16", opts: fe.Options{Indirect: true}, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			out := guestBytes(t, d, nil, 256)
			tbl := guestBytes(t, d, nil, 32)
			q := d.FE.Queues[1]
			q.WriteDescAt(tbl, fe.Desc{Addr: in, Len: 56, Flags: fe.VRING_DESC_F_NEXT, Next: 1})
			q.WriteDescAt(tbl+16, fe.Desc{Addr: out, Len: 256, Flags: fe.VRING_DESC_F_WRITE})
			return 1, submitDescs(t, d, 1, []descSpec{{tbl, 24, fe.VRING_DESC_F_INDIRECT, -1}}), out
		}},
		{name: "indirect-table-outside-memory", opts: fe.Options{Indirect: true}, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			return 1, submitDescs(t, d, 1, []descSpec{{bogus, 32, fe.VRING_DESC_F_INDIRECT, -1}}), 0
		}},
		{name: "indirect-loop", opts: fe.Options{Indirect: true}, build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			in := guestBytes(t, d, getattrReq(d), 0)
			tbl := guestBytes(t, d, nil, 32)
			q := d.FE.Queues[1]
			q.WriteDescAt(tbl, fe.Desc{Addr: in, Len: 56, Flags: fe.VRING_DESC_F_NEXT, Next: 1})
			q.WriteDescAt(tbl+16, fe.Desc{Addr: in, Len: 56, Flags: fe.VRING_DESC_F_NEXT, Next: 0})
			return 1, submitDescs(t, d, 1, []descSpec{{tbl, 32, fe.VRING_DESC_F_INDIRECT, -1}}), 0
		}},
		// The reference tries to reply ENOMEM into a chain without a
		// writable buffer and panics.
		{name: "batch-forget-count-overflow", build: func(t *testing.T, d *daemon) (int, uint16, uint64) {
			body := binary.LittleEndian.AppendUint32(nil, 0xffff_ffff)
			body = append(body, make([]byte, 4+16)...)
			req := append(fe.EncodeInHeader(d.FE.Header(fe.FUSE_BATCH_FORGET, 0, len(body))), body...)
			in := guestBytes(t, d, req, 0)
			return 0, submitDescs(t, d, 0, []descSpec{{in, uint32(len(req)), 0, -1}}), 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d := startDaemon(t, spec, startOpts{fe: c.opts, refUnsandboxed: true})
				writeHost(t, filepath.Join(d.Shared, "file"), []byte("x"), 0o644)
				fdsBefore := d.fdCount()
				q, head, reply := c.build(t, d)
				// The reference never answers most of these; do not wait long
				// for it. Ours gets the usual bound, except where the chain
				// cannot be completed at all.
				wait := 10 * time.Second
				if !spec.hardened || c.mayVanish {
					wait = 2 * time.Second
				}
				o := waitOutcome(d, q, head, reply, wait)
				t.Logf("%s: completed %v used %d errno %v wait %v", spec.name, o.completed, o.used, o.errno(), o.waitErr)
				switch {
				case spec.hardened:
					expectHardened(t, d, o, c.mayVanish, c.okErrnos...)
					if n := d.fdCount(); n != fdsBefore {
						t.Errorf("daemon fds %d before the malformed chain, %d after\n%s", fdsBefore, n, d.fdList())
					}
				case c.refServes:
					if c.refErrno != 0 && o.errno() != c.refErrno {
						t.Errorf("reference answered %v (used %d), want %v", o.errno(), o.used, c.refErrno)
					}
					d.serves()
				default:
					expectReferenceStall(t, d, o)
				}
			})
		})
	}
}

// TestHostileAvailIndex publishes an avail index that claims more new
// entries than the ring holds.
func TestHostileAvailIndex(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{refUnsandboxed: true})
		q := d.FE.Queues[1]
		good := q.AvailIdx()
		q.SetAvailIdx(good + uint16(q.Size) + 5)
		q.Kick()
		time.Sleep(200 * time.Millisecond)
		if err := d.alive(); err != nil {
			t.Fatalf("daemon died: %v\n%s", err, d.Log())
		}
		q.SetAvailIdx(good)
		err := probe(d, 3*time.Second)
		if spec.hardened {
			if err != nil {
				t.Fatalf("no service after a bogus avail index was withdrawn: %v\n%s", err, d.Log())
			}
			return
		}
		// The reference's vring thread gives up on the queue (no EVENT_IDX).
		t.Logf("reference after bogus avail index: %v", err)
		d.expectPanic = true
	})
}

// TestHostileNames checks that names with "/" or ".." never reach outside
// the shared directory.
func TestHostileNames(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		top := t.TempDir()
		shared := filepath.Join(top, "shared")
		os.Mkdir(shared, 0o755)
		writeHost(t, filepath.Join(top, "secret"), []byte("secret"), 0o600)
		os.Mkdir(filepath.Join(shared, "sub"), 0o755)
		writeHost(t, filepath.Join(shared, "sub", "inside"), []byte("inside"), 0o644)
		os.Symlink("..", filepath.Join(shared, "up"))
		os.Symlink(top, filepath.Join(shared, "abs"))
		d := startDaemonIn(t, spec, shared, startOpts{refUnsandboxed: true})
		secret := hostStat(t, filepath.Join(top, "secret")).Ino
		topIno := hostStat(t, top).Ino
		before := listDir(t, top)

		for _, name := range []string{"../secret", "..", "../shared/../secret", "up/secret", "abs/secret",
			"sub/../../secret", "/secret", top + "/secret", "sub/inside", ".", "x/"} {
			e, err := d.FE.Lookup(root, name)
			if err == nil {
				if e.Attr.Ino == secret || e.Attr.Ino == topIno {
					t.Errorf("LOOKUP %q escaped the shared directory (ino %d)", name, e.Attr.Ino)
				}
				t.Logf("%s: LOOKUP %q -> ino %d", spec.name, name, e.Attr.Ino)
				continue
			}
			var errno unix.Errno
			if !errors.As(err, &errno) {
				t.Fatalf("LOOKUP %q: %v", name, err)
			}
		}
		sub := must[fe.EntryOut](t, "LOOKUP sub")(d.FE.Lookup(root, "sub"))
		absName := filepath.Join(os.TempDir(), "vfsd-escape-"+strconv.Itoa(os.Getpid())+"-"+spec.name)
		defer func() {
			for _, sfx := range []string{"c", "d", "l", "n", "r", "h"} {
				os.Remove(absName + sfx)
			}
		}()
		// Every name-creating opcode, with names that climb out of sub and
		// out of the shared directory, or are absolute.
		ops := []struct {
			sfx string
			do  func(name string) error
		}{
			{"c", func(n string) error {
				e, o, err := d.FE.Create(sub.NodeID, n, unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
				if err == nil {
					d.FE.Release(e.NodeID, o.Fh)
				}
				return err
			}},
			{"d", func(n string) error { _, err := d.FE.Mkdir(sub.NodeID, n, unix.S_IFDIR|0o755, 0); return err }},
			{"l", func(n string) error { _, err := d.FE.Symlink(sub.NodeID, n, "/etc/passwd"); return err }},
			{"n", func(n string) error { _, err := d.FE.Mknod(sub.NodeID, n, unix.S_IFIFO|0o644, 0, 0); return err }},
			{"r", func(n string) error {
				writeHost(t, filepath.Join(shared, "sub", "victim"), nil, 0o644)
				return d.FE.Rename(sub.NodeID, "victim", sub.NodeID, n)
			}},
			{"h", func(n string) error {
				writeHost(t, filepath.Join(shared, "sub", "victim"), nil, 0o644)
				v := must[fe.EntryOut](t, "LOOKUP victim")(d.FE.Lookup(sub.NodeID, "victim"))
				_, err := d.FE.Link(v.NodeID, sub.NodeID, n)
				return err
			}},
		}
		var escaped []string
		for _, op := range ops {
			for _, base := range []string{"../../escape", absName} {
				name := base + op.sfx
				err := op.do(name)
				t.Logf("%s: %q: %v", spec.name, name, err)
				outside := filepath.Join(top, "escape"+op.sfx)
				if base == absName {
					outside = name
				}
				if _, err := os.Lstat(outside); err == nil {
					escaped = append(escaped, name)
				}
			}
		}
		// The reference resolves names of MKDIR, SYMLINK, MKNOD, RENAME and
		// LINK with plain *at() calls that follow ".." and absolute paths:
		// a hostile guest can create entries anywhere on the host. Ours
		// must not.
		if spec.hardened && len(escaped) > 0 {
			t.Errorf("names escaped the shared directory: %q", escaped)
		}
		if !spec.hardened {
			t.Logf("reference: names that escaped the shared directory (known reference defect): %q", escaped)
		}
		if !spec.hardened {
			for _, sfx := range []string{"c", "d", "l", "n", "r", "h"} {
				os.Remove(filepath.Join(top, "escape"+sfx))
			}
		}
		if after := listDir(t, top); after != before {
			t.Errorf("directory outside the shared dir changed: before %q after %q", before, after)
		}
		if b, _ := os.ReadFile(filepath.Join(top, "secret")); string(b) != "secret" {
			t.Errorf("secret changed: %q", b)
		}
		// A symlink that points outside is opened as the link itself.
		l := must[fe.EntryOut](t, "LOOKUP abs")(d.FE.Lookup(root, "abs"))
		if l.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("LOOKUP of a symlink followed it: mode %#o", l.Attr.Mode)
		}
		if _, err := d.FE.Open(l.NodeID, unix.O_RDONLY); err == nil {
			t.Errorf("OPEN of a symlink succeeded")
		}
		d.serves()
	})
}

func listDir(t *testing.T, dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}
