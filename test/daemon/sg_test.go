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

// sgWriteRead writes total bytes as n data descriptors and reads them back
// into n writable descriptors, the way a Linux guest passes page-sized
// pieces.
func sgWriteRead(t *testing.T, d *daemon, name string, n, piece int) (writeErr, readErr error) {
	t.Helper()
	e, o, err := d.FE.Create(root, name, unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
	mustOK(t, "CREATE", err)
	total := n * piece
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i/piece) + byte(i)
	}
	wi := binary.LittleEndian.AppendUint64(nil, o.Fh)
	wi = binary.LittleEndian.AppendUint64(wi, 0)
	wi = binary.LittleEndian.AppendUint32(wi, uint32(total))
	wi = append(wi, make([]byte, 20)...)
	body := [][]byte{wi}
	for i := 0; i < n; i++ {
		body = append(body, data[i*piece:(i+1)*piece])
	}
	h := d.FE.Header(fe.FUSE_WRITE, e.NodeID, len(wi)+total)
	in := append([][]byte{fe.EncodeInHeader(h)}, body...)
	views, used, err := d.FE.DoView(fe.QueueRequest, in, []int{16, 8})
	mustOK(t, "WRITE submit", err)
	oh := fe.DecodeOutHeader(views[0])
	if oh.Error != 0 {
		writeErr = unix.Errno(-oh.Error)
	} else if used != 24 || binary.LittleEndian.Uint32(views[1]) != uint32(total) {
		t.Fatalf("WRITE used %d size %d", used, binary.LittleEndian.Uint32(views[1]))
	} else if host, _ := os.ReadFile(filepath.Join(d.Shared, name)); !bytes.Equal(host, data) {
		t.Fatalf("host data differs after scattered WRITE")
	}
	if writeErr != nil {
		os.WriteFile(filepath.Join(d.Shared, name), data, 0o644)
	}

	ri := binary.LittleEndian.AppendUint64(nil, o.Fh)
	ri = binary.LittleEndian.AppendUint64(ri, 0)
	ri = binary.LittleEndian.AppendUint32(ri, uint32(total))
	ri = append(ri, make([]byte, 20)...)
	h = d.FE.Header(fe.FUSE_READ, e.NodeID, len(ri))
	sizes := []int{16}
	for i := 0; i < n; i++ {
		sizes = append(sizes, piece)
	}
	views, used, err = d.FE.DoView(fe.QueueRequest, [][]byte{fe.EncodeInHeader(h), ri}, sizes)
	mustOK(t, "READ submit", err)
	oh = fe.DecodeOutHeader(views[0])
	if oh.Error != 0 {
		readErr = unix.Errno(-oh.Error)
	} else {
		got := fe.Gather(views[1:], used-16)
		if used != uint32(16+total) || !bytes.Equal(got, data) {
			t.Fatalf("scattered READ used %d, data equal %v", used, bytes.Equal(got, data))
		}
	}
	mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))
	return writeErr, readErr
}

// TestScatterGather moves 1 MiB through many descriptors: 256 pages (what
// a Linux guest sends) and 2048 half-kilobyte pieces, more than IOV_MAX
// (1024) for one preadv/pwritev.
func TestScatterGather(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{fe: fe.Options{QueueSize: 1024, Indirect: true}})
		werr, rerr := sgWriteRead(t, d, "pages", 256, 4096)
		if werr != nil || rerr != nil {
			t.Fatalf("256 pages: WRITE %v READ %v", werr, rerr)
		}
		werr, rerr = sgWriteRead(t, d, "pieces", 2048, 512)
		t.Logf("%s: 2048 descriptors: WRITE %v, READ %v", spec.name, werr, rerr)
		if spec.hardened && (werr != nil || rerr != nil) {
			t.Fatalf("2048 descriptors: WRITE %v READ %v (iovecs must be split at IOV_MAX)", werr, rerr)
		}
		// The reference passes all slices to one pwritev2/preadv and gets
		// EINVAL beyond IOV_MAX (vhost.md §5.6).
		if !spec.hardened && (werr != unix.EINVAL || rerr != unix.EINVAL) {
			t.Errorf("reference with 2048 descriptors: WRITE %v READ %v, want EINVAL for both", werr, rerr)
		}
		d.serves()
	})
}

// TestMemoryHotplug adds a guest memory region while the queues run, uses
// it for request buffers, then removes it again.
func TestMemoryHotplug(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		extraGPA := uint64(0x2_0000_0000)
		d := startDaemon(t, spec, startOpts{fe: fe.Options{
			Regions: []fe.RegionSpec{{GPA: 0x1000_0000, Size: 8 << 20}, {GPA: extraGPA, Size: 4 << 20, FileOffset: 1 << 20}},
			MemMode: fe.AddMemReg,
		}})
		regs := d.FE.Mem.Regions()
		extra := regs[1]
		// Remove the data region, then add it back while running.
		mustOK(t, "REM_MEM_REG", d.FE.Request(fe.VHOST_USER_REM_MEM_REG, fe.SingleRegionPayload(extra), nil))
		mustOK(t, "ADD_MEM_REG", d.FE.Request(fe.VHOST_USER_ADD_MEM_REG, fe.SingleRegionPayload(extra), []int{extra.FD}))
		roundTrip(t, d, "hotplug", 1<<20)
		for i := 0; i < 10; i++ {
			d.serves()
		}
	})
}
