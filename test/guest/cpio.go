package guest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"syscall"
)

// CPIOEntry is one member of an initramfs archive.
type CPIOEntry struct {
	// Name is the path inside the archive, without a leading slash.
	Name string
	// Mode holds the file type and permission bits (syscall.S_IFREG|0755...).
	Mode uint32
	// Data is a regular file's content or a symlink's target.
	Data []byte
	// RdevMajor and RdevMinor identify a device node.
	RdevMajor, RdevMinor uint32
}

// WriteCPIO writes entries as a gzip-compressed cpio archive in the "newc"
// format the kernel unpacks into its initial root file system
// (Documentation/driver-api/early-userspace/buffer-format.rst). Every member
// belongs to root. Parent directories must come before their contents.
func WriteCPIO(w io.Writer, entries []CPIOEntry) error {
	zw := gzip.NewWriter(w)
	cw := &countingWriter{w: zw}
	for i, e := range entries {
		if e.Name == "" || e.Name[0] == '/' || path.Clean(e.Name) != e.Name {
			return fmt.Errorf("write cpio: bad member name %q", e.Name)
		}
		if err := writeMember(cw, uint32(i+1), e); err != nil {
			return fmt.Errorf("write cpio member %s: %w", e.Name, err)
		}
	}
	if err := writeMember(cw, 0, CPIOEntry{Name: "TRAILER!!!"}); err != nil {
		return fmt.Errorf("write cpio trailer: %w", err)
	}
	return zw.Close()
}

func writeMember(cw *countingWriter, ino uint32, e CPIOEntry) error {
	nlink := uint32(1)
	if e.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.Mode, 0 /* uid */, 0 /* gid */, nlink, 0 /* mtime */, len(e.Data),
		0 /* devmajor */, 0 /* devminor */, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0 /* check */)
	if _, err := io.WriteString(cw, hdr); err != nil {
		return err
	}
	if _, err := io.WriteString(cw, e.Name+"\x00"); err != nil {
		return err
	}
	if err := cw.pad4(); err != nil {
		return err
	}
	if _, err := cw.Write(e.Data); err != nil {
		return err
	}
	return cw.pad4()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) pad4() error {
	if r := c.n % 4; r != 0 {
		_, err := c.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// FileEntry returns a regular-file member with the content of the host file
// src.
func FileEntry(name, src string, perm uint32) (CPIOEntry, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return CPIOEntry{}, err
	}
	return CPIOEntry{Name: name, Mode: syscall.S_IFREG | perm, Data: b}, nil
}

// BaseEntries returns the skeleton every test initramfs has: the usual
// top-level directories, /dev/console (the kernel opens it for init's stdio
// before anything is mounted), and busybox from the host file busybox.
func BaseEntries(busybox string) ([]CPIOEntry, error) {
	bb, err := FileEntry("bin/busybox", busybox, 0o755)
	if err != nil {
		return nil, err
	}
	var es []CPIOEntry
	for _, d := range []string{"bin", "dev", "etc", "mnt", "proc", "sys", "tmp"} {
		es = append(es, CPIOEntry{Name: d, Mode: syscall.S_IFDIR | 0o755})
	}
	es = append(es,
		CPIOEntry{Name: "dev/console", Mode: syscall.S_IFCHR | 0o600, RdevMajor: 5, RdevMinor: 1},
		bb,
		CPIOEntry{Name: "bin/sh", Mode: syscall.S_IFLNK | 0o777, Data: []byte("busybox")},
	)
	return es, nil
}
