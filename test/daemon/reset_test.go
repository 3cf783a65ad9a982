package daemon

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// TestResetDevice sends RESET_DEVICE while nodes and handles are live,
// sets the device up again like a rebooting guest does, and checks that
// the old FUSE state is gone.
func TestResetDevice(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		writeHost(t, filepath.Join(d.Shared, "f"), []byte("x"), 0o644)
		e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"))
		o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDONLY))
		// Stop the rings first, as QEMU does before a reset.
		for _, q := range d.FE.Queues {
			if _, err := d.FE.GetVringBase(q); err != nil {
				t.Fatalf("GET_VRING_BASE: %v", err)
			}
		}
		mustOK(t, "RESET_DEVICE", d.FE.Request(fe.VHOST_USER_RESET_DEVICE, nil, nil))
		mustOK(t, "SET_FEATURES", d.FE.Request(fe.VHOST_USER_SET_FEATURES, u64b(d.FE.AckedFeatures), nil))
		for _, q := range d.FE.Queues {
			mustOK(t, "restart queue", d.FE.StartQueue(q))
		}
		_, err := d.FE.Getattr(e.NodeID)
		wantErrno(t, "GETATTR after RESET_DEVICE", err, unix.EBADF)
		if _, err := d.FE.Init(fe.DefaultInitFlags); err != nil {
			t.Fatalf("INIT after reset: %v", err)
		}
		_, err = d.FE.Read(e.NodeID, o.Fh, 0, 1)
		wantErrno(t, "READ with a pre-reset handle", err, unix.EBADF)
		d.serves()
	})
}
