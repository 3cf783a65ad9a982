package passthrough

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

func TestExtraOps(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "a"), "0123456789")
	writeFile(t, join(dir, "b"), "")
	a := mustLookup(t, fs, RootID, "a").NodeID
	b := mustLookup(t, fs, RootID, "b").NodeID
	fa := mustOpen(t, fs, a, unix.O_RDWR)
	fb := mustOpen(t, fs, b, unix.O_RDWR)

	if e := fs.Fallocate(root, b, &fuse.FallocateIn{Fh: fb, Offset: 0, Length: 8192}); e != 0 {
		t.Errorf("Fallocate = %v", e)
	}
	if fi, _ := os.Stat(join(dir, "b")); fi.Size() != 8192 {
		t.Errorf("size after Fallocate = %d", fi.Size())
	}
	if e := fs.Fallocate(root, a, &fuse.FallocateIn{Fh: fb, Length: 1}); e != unix.EBADF {
		t.Errorf("Fallocate(mismatched handle) = %v", e)
	}

	var lo fuse.LseekOut
	if e := fs.Lseek(root, a, &fuse.LseekIn{Fh: fa, Offset: 3, Whence: unix.SEEK_DATA}, &lo); e != 0 || lo.Offset != 3 {
		t.Errorf("Lseek(SEEK_DATA) = %d, %v", lo.Offset, e)
	}
	if e := fs.Lseek(root, a, &fuse.LseekIn{Fh: fa, Offset: 0, Whence: unix.SEEK_END}, &lo); e != 0 || lo.Offset != 10 {
		t.Errorf("Lseek(SEEK_END) = %d, %v", lo.Offset, e)
	}
	if e := fs.Lseek(root, b, &fuse.LseekIn{Fh: fa}, &lo); e != unix.EBADF {
		t.Errorf("Lseek(mismatched handle) = %v", e)
	}

	n, e := fs.CopyFileRange(root, a, &fuse.CopyFileRangeIn{FhIn: fa, OffIn: 2, NodeIDOut: b, FhOut: fb, OffOut: 1, Len: 4})
	if e != 0 || n != 4 {
		t.Fatalf("CopyFileRange = %d, %v", n, e)
	}
	if got, _ := os.ReadFile(join(dir, "b")); string(got[:5]) != "\x002345" {
		t.Errorf("copied = %q", got[:5])
	}
	if _, e := fs.CopyFileRange(root, a, &fuse.CopyFileRangeIn{FhIn: fa, NodeIDOut: a, FhOut: fb, Len: 1}); e != unix.EBADF {
		t.Errorf("CopyFileRange(mismatched out handle) = %v", e)
	}

	if e := fs.Syncfs(root, RootID); e != 0 {
		t.Errorf("Syncfs = %v", e)
	}
	os.Symlink("a", join(dir, "l"))
	if e := fs.Syncfs(root, mustLookup(t, fs, RootID, "l").NodeID); e != unix.EBADF {
		t.Errorf("Syncfs(symlink) = %v, want EBADF", e)
	}
}

func TestPath(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	os.MkdirAll(join(dir, "x", "y"), 0o755)
	writeFile(t, join(dir, "x", "y", "f"), "")
	x := mustLookup(t, fs, RootID, "x").NodeID
	y := mustLookup(t, fs, x, "y").NodeID
	f := mustLookup(t, fs, y, "f").NodeID
	for id, want := range map[uint64]string{RootID: "", x: "x", y: "x/y", f: "x/y/f"} {
		if got, err := fs.Path(id); err != nil || got != want {
			t.Errorf("Path(%d) = %q, %v, want %q", id, got, err, want)
		}
	}
	os.Rename(join(dir, "x", "y"), join(dir, "z"))
	if got, err := fs.Path(f); err != nil || got != "z/f" {
		t.Errorf("Path after rename = %q, %v, want z/f", got, err)
	}
	os.Remove(join(dir, "z", "f"))
	if got, err := fs.Path(f); err == nil {
		t.Errorf("Path(deleted) = %q, want error", got)
	}
	if _, err := fs.Path(999); err == nil {
		t.Errorf("Path(unknown) succeeded")
	}
}
