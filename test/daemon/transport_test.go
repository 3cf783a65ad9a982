package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

func u64p(v uint64) *uint64 { return &v }

// roundTrip writes and reads back a file through the daemon, with data
// crossing several descriptors.
func roundTrip(t *testing.T, d *daemon, name string, size int) {
	t.Helper()
	e, o, err := d.FE.Create(root, name, unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
	mustOK(t, "CREATE", err)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + len(name))
	}
	n := must[uint32](t, "WRITE")(d.FE.Write(e.NodeID, o.Fh, 0, data, unix.O_RDWR))
	if n != uint32(size) {
		t.Fatalf("WRITE = %d, want %d", n, size)
	}
	got := must[[]byte](t, "READ")(d.FE.Read(e.NodeID, o.Fh, 0, uint32(size)))
	if !bytes.Equal(got, data) {
		t.Fatalf("READ back differs (%d bytes)", len(got))
	}
	if host, _ := os.ReadFile(filepath.Join(d.Shared, name)); !bytes.Equal(host, data) {
		t.Fatalf("host file differs")
	}
	mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))
	mustOK(t, "FORGET", d.FE.Forget(e.NodeID, 1))
}

// TestTransportVariants runs the same I/O over every front-end
// configuration: both ways of announcing memory, several regions with
// non-zero mmap offsets and high GPAs, EVENT_IDX, indirect descriptors,
// no REPLY_ACK, small and large queues.
func TestTransportVariants(t *testing.T) {
	twoRegions := []fe.RegionSpec{
		{GPA: 0, Size: 1 << 20},
		{GPA: 1 << 32, Size: 8 << 20, FileOffset: 64 << 10},
	}
	threeRegions := []fe.RegionSpec{
		{GPA: 0x4000_0000, Size: 4 << 20, FileOffset: 4096},
		{GPA: 0x1000, Size: 1 << 20},
		{GPA: 0x7_0000_0000, Size: 8 << 20},
	}
	variants := []struct {
		name string
		opts fe.Options
	}{
		{"set-mem-table", fe.Options{MemMode: fe.MemTable}},
		{"add-mem-reg", fe.Options{MemMode: fe.AddMemReg}},
		{"two-regions-set-mem-table", fe.Options{Regions: twoRegions}},
		{"two-regions-add-mem-reg", fe.Options{Regions: twoRegions, MemMode: fe.AddMemReg}},
		{"three-regions-rings-high", fe.Options{Regions: threeRegions, RingGPA: u64p(0x7_0000_0000), DataGPA: u64p(0x4000_0000), MemMode: fe.AddMemReg}},
		{"event-idx", fe.Options{EventIdx: true}},
		{"indirect", fe.Options{Indirect: true}},
		{"event-idx-indirect", fe.Options{EventIdx: true, Indirect: true, MemMode: fe.AddMemReg}},
		{"no-reply-ack", fe.Options{NoReplyAck: true}},
		{"backend-req", fe.Options{BackendReq: true}},
		{"backend-req-no-reply-ack", fe.Options{BackendReq: true, NoReplyAck: true, MemMode: fe.AddMemReg}},
		{"queue-size-2-indirect", fe.Options{QueueSize: 2, Indirect: true}},
		{"queue-size-8", fe.Options{QueueSize: 8}},
		{"queue-size-1024", fe.Options{QueueSize: 1024, EventIdx: true}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d := startDaemon(t, spec, startOpts{fe: v.opts})
				// More requests than the queue size, so indices wrap.
				for i := 0; i < 3*d.FE.Queues[1].Size/2+3 && i < 200; i++ {
					d.serves()
				}
				roundTrip(t, d, "small", 100)
				roundTrip(t, d, "big", 1<<20)
				d.disconnect()
			})
		})
	}
}

// TestListenFD hands the daemon an already listening socket with --fd.
func TestListenFD(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{listenFD: true})
		roundTrip(t, d, "via-fd", 8192)
		d.disconnect()
	})
}

// TestQueueRestart stops the request queue with GET_VRING_BASE and starts
// it again from the returned index, as QEMU does around a VM stop.
func TestQueueRestart(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		for i := 0; i < 5; i++ {
			d.serves()
		}
		q := d.FE.Queues[1]
		base, err := d.FE.GetVringBase(q)
		mustOK(t, "GET_VRING_BASE", err)
		if base != q.AvailIdx() {
			t.Fatalf("GET_VRING_BASE = %d, want %d", base, q.AvailIdx())
		}
		// The old kick and call fds were dropped by the daemon; new ones
		// are sent by StartQueue.
		mustOK(t, "restart queue", d.FE.StartQueue(q))
		d.serves()
		roundTrip(t, d, "after-restart", 4096)
	})
}

// TestHiprioQueue checks that the hiprio queue serves ordinary requests
// too (both queues feed the same FUSE server).
func TestHiprioQueue(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		oh, p, err := d.FE.RawCall(fe.QueueHiprio, fe.FUSE_GETATTR, root, [][]byte{make([]byte, 16)}, fe.AttrOutSize)
		mustOK(t, "GETATTR on hiprio", err)
		if oh.Error != 0 || len(p) != fe.AttrOutSize {
			t.Fatalf("GETATTR on hiprio: error %d, %d bytes", oh.Error, len(p))
		}
	})
}

// TestFDLeaks counts the daemon's open fds before and after sequences that
// must release everything they acquire.
func TestFDLeaks(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		for i := 0; i < 20; i++ {
			writeHost(t, filepath.Join(d.Shared, fmt.Sprintf("f%d", i)), []byte("data"), 0o644)
		}
		os.Mkdir(filepath.Join(d.Shared, "dir"), 0o755)
		// Warm up (lazily opened fds such as /proc/self/fd) and settle.
		d.serves()
		before := d.fdCount()
		beforeList := d.fdList()
		for round := 0; round < 3; round++ {
			for i := 0; i < 20; i++ {
				name := fmt.Sprintf("f%d", i)
				e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, name))
				must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, name))
				o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDWR))
				must[[]byte](t, "READ")(d.FE.Read(e.NodeID, o.Fh, 0, 4))
				mustOK(t, "FLUSH", d.FE.Flush(e.NodeID, o.Fh))
				mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))
				mustOK(t, "FORGET", d.FE.Forget(e.NodeID, 2))
			}
			de := must[fe.EntryOut](t, "LOOKUP dir")(d.FE.Lookup(root, "dir"))
			do := must[fe.OpenOut](t, "OPENDIR")(d.FE.Opendir(de.NodeID, unix.O_RDONLY))
			ents := must[[]fe.Dirent](t, "READDIRPLUS")(d.FE.Readdirplus(root, must[fe.OpenOut](t, "OPENDIR root")(d.FE.Opendir(root, unix.O_RDONLY)).Fh, 0, 64<<10))
			_ = ents
			mustOK(t, "RELEASEDIR", d.FE.Releasedir(de.NodeID, do.Fh))
			ce, co, err := d.FE.Create(de.NodeID, "c", unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
			mustOK(t, "CREATE", err)
			mustOK(t, "RELEASE", d.FE.Release(ce.NodeID, co.Fh))
			me := must[fe.EntryOut](t, "MKDIR")(d.FE.Mkdir(de.NodeID, "m", unix.S_IFDIR|0o755, 0))
			se := must[fe.EntryOut](t, "SYMLINK")(d.FE.Symlink(de.NodeID, "s", "t"))
			mustOK(t, "UNLINK", d.FE.Unlink(de.NodeID, "c"))
			mustOK(t, "UNLINK", d.FE.Unlink(de.NodeID, "s"))
			mustOK(t, "RMDIR", d.FE.Rmdir(de.NodeID, "m"))
			// Failed operations must not leak either.
			d.FE.Lookup(root, "missing")
			d.FE.Open(1<<40, unix.O_RDONLY)
			d.FE.Create(de.NodeID, "c2", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, unix.S_IFREG|0o644, 0)
			d.FE.Create(de.NodeID, "c2", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, unix.S_IFREG|0o644, 0)
			e2 := must[fe.EntryOut](t, "LOOKUP c2")(d.FE.Lookup(de.NodeID, "c2"))
			mustOK(t, "UNLINK c2", d.FE.Unlink(de.NodeID, "c2"))
			// Forget everything this round looked up: the READDIRPLUS entries
			// (one lookup each, except . and ..) and the created nodes.
			var forgets []fe.Forget1
			for _, en := range ents {
				if en.Entry.NodeID != 0 {
					forgets = append(forgets, fe.Forget1{NodeID: en.Entry.NodeID, Nlookup: 1})
				}
			}
			forgets = append(forgets,
				fe.Forget1{NodeID: de.NodeID, Nlookup: 1}, fe.Forget1{NodeID: ce.NodeID, Nlookup: 1},
				fe.Forget1{NodeID: me.NodeID, Nlookup: 1}, fe.Forget1{NodeID: se.NodeID, Nlookup: 1},
				fe.Forget1{NodeID: e2.NodeID, Nlookup: 2})
			mustOK(t, "BATCH_FORGET", d.FE.BatchForget(forgets))
		}
		// The root directory handle opened for READDIRPLUS is released via
		// DESTROY + INIT, which must drop every handle and inode.
		if _, err := d.FE.Destroy(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.FE.Init(fe.DefaultInitFlags); err != nil {
			t.Fatal(err)
		}
		d.serves()
		after := d.fdCount()
		if after != before {
			t.Errorf("%s daemon fds: %d before, %d after\nbefore:\n%s\nafter:\n%s", spec.name, before, after, beforeList, d.fdList())
		}
	})
}
