package passthrough

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// TestReadFailureAfterDataIsShortRead makes the second preadv of a READ
// fail (its buffer is inaccessible) after the first one has filled a buffer:
// the reply must be a short read of the bytes already written, not an error
// that leaves written guest memory unaccounted for.
func TestReadFailureAfterDataIsShortRead(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatal(e)
	}
	page := unix.Getpagesize()
	writeFile(t, join(dir, "f"), strings.Repeat("a", 2*page))
	f := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, f, unix.O_RDONLY)

	m, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := unix.Mprotect(m[page:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	n, e := fs.Read(root, f, &fuse.ReadIn{Fh: fh, Size: uint32(2 * page)}, [][]byte{m[:page], m[page:]})
	if e != 0 || n != page {
		t.Fatalf("READ = %d, %v; want a short read of %d bytes", n, e, page)
	}
	if m[0] != 'a' || m[page-1] != 'a' {
		t.Error("the first buffer does not hold the file's data")
	}
}
