package daemon

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// suppGroupExt is a FUSE request extension carrying one supplementary
// group (fs.md §2.8, type 32).
func suppGroupExt(gid uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 16) // size incl. header
	b = binary.LittleEndian.AppendUint32(b, 32)    // FUSE_EXT_GROUPS
	b = binary.LittleEndian.AppendUint32(b, 1)     // nr_groups
	return binary.LittleEndian.AppendUint32(b, gid)
}

// TestSupplementaryGroup creates files in a directory writable only by a
// group the caller has as a supplementary group, carried in the request
// extension negotiated with FUSE_CREATE_SUPP_GROUP.
func TestSupplementaryGroup(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{noInit: true})
		in := must[fe.InitOut](t, "INIT")(d.FE.Init(fe.DefaultInitFlags | fe.FUSE_CREATE_SUPP_GROUP))
		if in.Flags&fe.FUSE_CREATE_SUPP_GROUP == 0 {
			t.Fatalf("CREATE_SUPP_GROUP not negotiated: %#x", in.Flags)
		}
		gdir := filepath.Join(d.Shared, "g")
		os.Mkdir(gdir, 0o770)
		os.Chmod(gdir, 0o770)
		os.Chown(gdir, 0, 5000)
		de := must[fe.EntryOut](t, "LOOKUP g")(d.FE.Lookup(root, "g"))
		d.FE.UID, d.FE.GID = 1000, 1000
		defer func() { d.FE.UID, d.FE.GID = 0, 0 }()

		mkdir := func(name string, ext []byte) error {
			body := [][]byte{le32(unix.S_IFDIR|0o755, 0), append([]byte(name), 0)}
			if ext != nil {
				body = append(body, ext)
			}
			_, err := d.FE.CallView(fe.FUSE_MKDIR, de.NodeID, fe.EntryOutSize, body...)
			return err
		}
		create := func(name string, ext []byte) error {
			body := [][]byte{le32(unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0, 0), append([]byte(name), 0)}
			if ext != nil {
				body = append(body, ext)
			}
			p, err := d.FE.CallView(fe.FUSE_CREATE, de.NodeID, fe.EntryOutSize+fe.OpenOutSize, body...)
			if err == nil {
				e, o := fe.DecodeEntryOut(p), fe.DecodeOpenOut(p[fe.EntryOutSize:])
				d.FE.Release(e.NodeID, o.Fh)
			}
			return err
		}
		wantErrno(t, "MKDIR without the group", mkdir("no", nil), unix.EACCES)
		wantErrno(t, "CREATE without the group", create("nof", nil), unix.EACCES)
		wantErrno(t, "MKDIR with another group", mkdir("no2", suppGroupExt(6000)), unix.EACCES)
		mustOK(t, "MKDIR with the group", mkdir("yes", suppGroupExt(5000)))
		mustOK(t, "CREATE with the group", create("yesf", suppGroupExt(5000)))
		for _, n := range []string{"yes", "yesf"} {
			st := hostStat(t, filepath.Join(gdir, n))
			if st.Uid != 1000 || st.Gid != 1000 {
				t.Errorf("%s owner %d:%d, want 1000:1000", n, st.Uid, st.Gid)
			}
		}
		d.FE.UID, d.FE.GID = 0, 0
		d.serves()
	})
}
