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

func rwIn(fh, off uint64, size uint32) []byte {
	b := binary.LittleEndian.AppendUint64(nil, fh)
	b = binary.LittleEndian.AppendUint64(b, off)
	b = binary.LittleEndian.AppendUint32(b, size)
	return append(b, make([]byte, 20)...)
}

// TestOversizeFields sends well-framed requests whose size fields do not
// match the buffers that carry them.
func TestOversizeFields(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		p := filepath.Join(d.Shared, "f")
		writeHost(t, p, bytes.Repeat([]byte{'a'}, 100000), 0o644)
		e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"))
		o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDWR))

		// READ of 4 GiB into a 4 KiB buffer: the buffer is filled.
		got, err := d.FE.CallView(fe.FUSE_READ, e.NodeID, 4096, rwIn(o.Fh, 0, 0xffff_ffff))
		if err != nil || len(got) != 4096 {
			t.Errorf("READ 4 GiB into 4 KiB = %d bytes, %v; want 4096", len(got), err)
		}

		// WRITE whose size is larger than the data carried (a kernel always
		// sends size == data length). The reference writes the available
		// bytes (fs.md §2.5: stop when the Reader is exhausted); ours treats
		// the request as malformed and answers EINVAL without writing.
		data := bytes.Repeat([]byte{'b'}, 100)
		reply, err := d.FE.CallView(fe.FUSE_WRITE, e.NodeID, fe.WriteOutSize, rwIn(o.Fh, 0, 1<<20), data)
		if spec.hardened {
			wantErrno(t, "WRITE size 1 MiB with 100 data bytes", err, unix.EINVAL)
			if b, _ := os.ReadFile(p); b[0] != 'a' {
				t.Errorf("rejected WRITE changed the file: %q", b[:101])
			}
		} else if err != nil || len(reply) != 8 || binary.LittleEndian.Uint32(reply) != 100 {
			t.Errorf("WRITE size 1 MiB with 100 data bytes = %x, %v; want size 100", reply, err)
		} else if b, _ := os.ReadFile(p); !bytes.Equal(b[:101], append(data, 'a')) {
			t.Errorf("host data after short WRITE: %q", b[:101])
		}

		// WRITE whose size is smaller than the data carried: exactly size
		// bytes are written (fs.md §2.5: GO trims the iovecs). The
		// reference passes the whole buffer, writes too much and answers
		// EIO.
		writeHost(t, p, bytes.Repeat([]byte{'a'}, 100000), 0o644)
		reply, err = d.FE.CallView(fe.FUSE_WRITE, e.NodeID, fe.WriteOutSize, rwIn(o.Fh, 0, 10), bytes.Repeat([]byte{'c'}, 100))
		if spec.hardened {
			if err != nil || len(reply) != 8 || binary.LittleEndian.Uint32(reply) != 10 {
				t.Errorf("WRITE size 10 with 100 data bytes = %x, %v; want size 10", reply, err)
			} else if b, _ := os.ReadFile(p); string(b[:11]) != "cccccccccca" {
				t.Errorf("host data after trimmed WRITE: %q", b[:11])
			}
		} else {
			wantErrno(t, "reference WRITE size 10 with 100 data bytes", err, unix.EIO)
		}

		// READDIR sizes: more than 1 MiB, and more than the buffer.
		od := must[fe.OpenOut](t, "OPENDIR")(d.FE.Opendir(root, unix.O_RDONLY))
		_, err = d.FE.Readdir(root, od.Fh, 0, 2<<20)
		wantErrno(t, "READDIR 2 MiB", err, unix.ENOMEM)
		_, err = d.FE.CallView(fe.FUSE_READDIR, root, 100, rwIn(od.Fh, 0, 1<<20))
		wantErrno(t, "READDIR 1 MiB into 100 bytes", err, unix.ENOMEM)
		d.serves()
	})
}
