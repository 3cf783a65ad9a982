package passthrough

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// hostSnapshot describes every object under dir except access times: a
// modification anywhere changes it (ctime included).
func hostSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d size=%d nlink=%d ino=%d mtime=%d.%d ctime=%d.%d",
			st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Ino, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " target=" + l
		}
		rel, _ := filepath.Rel(dir, p)
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// newReadOnlyFS returns a ReadOnly over a temporary directory holding a
// file "f" (with content), a directory "d" with a file "d/g", a symbolic
// link "l" -> "f" and a file "x" without permissions, and the host snapshot
// taken after Init.
func newReadOnlyFS(t *testing.T) (*ReadOnly, string, map[string]string) {
	t.Helper()
	inner, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "hello, world\n")
	if err := os.Mkdir(join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, join(dir, "d", "g"), "g")
	writeFile(t, join(dir, "x"), "x")
	if err := os.Chmod(join(dir, "x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	r := NewReadOnly(inner)
	if r.FS() != inner {
		t.Fatal("FS() does not return the wrapped file system")
	}
	if _, e := r.Init(allCaps); e != 0 {
		t.Fatalf("Init = %v", e)
	}
	return r, dir, hostSnapshot(t, dir)
}

func checkHostUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := hostSnapshot(t, dir)
	if !maps.Equal(before, after) {
		t.Errorf("the shared directory changed:\nbefore %v\nafter  %v", before, after)
	}
}

func roLookup(t *testing.T, r *ReadOnly, parent uint64, name string) uint64 {
	t.Helper()
	var e fuse.EntryOut
	if errno := r.Lookup(root, parent, nm(name), &e); errno != 0 {
		t.Fatalf("Lookup(%q) = %v", name, errno)
	}
	return e.NodeID
}

func roOpen(t *testing.T, r *ReadOnly, nodeid uint64, flags uint32) uint64 {
	t.Helper()
	var o fuse.OpenOut
	if errno := r.Open(root, nodeid, &fuse.OpenIn{Flags: flags}, &o); errno != 0 {
		t.Fatalf("Open(%#x) = %v", flags, errno)
	}
	return o.Fh
}

// TestReadOnlyRefusesModifications checks the EROFS rows: every modifying
// request is refused, whether or not its target exists.
func TestReadOnlyRefusesModifications(t *testing.T) {
	r, dir, before := newReadOnlyFS(t)
	f := roLookup(t, r, 1, "f")
	d := roLookup(t, r, 1, "d")
	fh := roOpen(t, r, f, unix.O_RDONLY)
	const bogus = 1 << 40
	data := [][]byte{[]byte("data")}
	for _, node := range []struct {
		name         string
		file, parent uint64
	}{{"existing", f, 1}, {"unknown node", bogus, bogus}} {
		for _, c := range []struct {
			op string
			do func() unix.Errno
		}{
			{"setattr mode", func() unix.Errno {
				return r.Setattr(root, node.file, &fuse.SetattrIn{Valid: fuse.FATTR_MODE, Mode: 0o777}, &fuse.AttrOut{})
			}},
			{"setattr size", func() unix.Errno {
				return r.Setattr(root, node.file, &fuse.SetattrIn{Valid: fuse.FATTR_SIZE}, &fuse.AttrOut{})
			}},
			{"setattr times", func() unix.Errno {
				return r.Setattr(root, node.file, &fuse.SetattrIn{Valid: fuse.FATTR_ATIME | fuse.FATTR_MTIME}, &fuse.AttrOut{})
			}},
			{"symlink new", func() unix.Errno { return r.Symlink(root, node.parent, nm("new"), []byte("f\x00"), &fuse.EntryOut{}) }},
			{"symlink existing", func() unix.Errno { return r.Symlink(root, node.parent, nm("f"), []byte("f\x00"), &fuse.EntryOut{}) }},
			{"mknod", func() unix.Errno {
				return r.Mknod(root, node.parent, nm("new"), &fuse.MknodIn{Mode: unix.S_IFREG | 0o644}, &fuse.EntryOut{})
			}},
			{"mknod fifo", func() unix.Errno {
				return r.Mknod(root, node.parent, nm("new"), &fuse.MknodIn{Mode: unix.S_IFIFO | 0o644}, &fuse.EntryOut{})
			}},
			{"mkdir", func() unix.Errno {
				return r.Mkdir(root, node.parent, nm("new"), &fuse.MkdirIn{Mode: 0o755}, &fuse.EntryOut{})
			}},
			{"mkdir existing", func() unix.Errno {
				return r.Mkdir(root, node.parent, nm("d"), &fuse.MkdirIn{Mode: 0o755}, &fuse.EntryOut{})
			}},
			{"unlink", func() unix.Errno { return r.Unlink(root, node.parent, nm("f")) }},
			{"unlink missing", func() unix.Errno { return r.Unlink(root, node.parent, nm("missing")) }},
			{"rmdir", func() unix.Errno { return r.Rmdir(root, node.parent, nm("d")) }},
			{"rmdir missing", func() unix.Errno { return r.Rmdir(root, node.parent, nm("missing")) }},
			{"rename", func() unix.Errno { return r.Rename(root, node.parent, nm("f"), node.parent, nm("f2"), 0) }},
			{"rename missing", func() unix.Errno { return r.Rename(root, node.parent, nm("missing"), node.parent, nm("f2"), 0) }},
			{"rename2 exchange", func() unix.Errno {
				return r.Rename(root, node.parent, nm("f"), d, nm("g"), unix.RENAME_EXCHANGE)
			}},
			{"rename2 noreplace", func() unix.Errno {
				return r.Rename(root, node.parent, nm("f"), node.parent, nm("f3"), unix.RENAME_NOREPLACE)
			}},
			{"link", func() unix.Errno { return r.Link(root, node.file, node.parent, nm("hard"), &fuse.EntryOut{}) }},
			{"write", func() (e unix.Errno) {
				_, e = r.Write(root, node.file, &fuse.WriteIn{Fh: fh, Size: 4}, data)
				return e
			}},
			{"fallocate", func() unix.Errno { return r.Fallocate(root, node.file, &fuse.FallocateIn{Fh: fh, Length: 1 << 20}) }},
			{"fallocate punch hole", func() unix.Errno {
				return r.Fallocate(root, node.file, &fuse.FallocateIn{Fh: fh, Length: 4, Mode: unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE})
			}},
			{"copy_file_range", func() (e unix.Errno) {
				_, e = r.CopyFileRange(root, node.file, &fuse.CopyFileRangeIn{FhIn: fh, NodeIDOut: node.file, FhOut: fh, OffOut: 100, Len: 5})
				return e
			}},
			{"setxattr", func() unix.Errno {
				return r.SetXattr(root, node.file, []byte("user.x\x00"), []byte("v"), &fuse.SetxattrIn{Size: 1})
			}},
			{"removexattr", func() unix.Errno { return r.RemoveXattr(root, node.file, []byte("user.x\x00")) }},
			{"access write", func() unix.Errno { return r.Access(root, node.file, unix.W_OK) }},
			{"access read write", func() unix.Errno { return r.Access(root, node.file, unix.R_OK|unix.W_OK|unix.X_OK) }},
		} {
			if got := c.do(); got != unix.EROFS {
				t.Errorf("%s, %s = %v, want EROFS", c.op, node.name, got)
			}
		}
	}
	checkHostUnchanged(t, dir, before)
}

// TestReadOnlyPassesReads checks the unchanged rows: they behave like the
// wrapped file system.
func TestReadOnlyPassesReads(t *testing.T) {
	r, dir, before := newReadOnlyFS(t)
	inner := r.FS()
	f := roLookup(t, r, 1, "f")
	d := roLookup(t, r, 1, "d")
	l := roLookup(t, r, 1, "l")
	if n := lookups(inner, f); n != 1 {
		t.Errorf("lookup count of f = %d, want 1", n)
	}
	var e fuse.EntryOut
	if errno := r.Lookup(root, 1, nm("missing"), &e); errno != unix.ENOENT {
		t.Errorf("Lookup(missing) = %v, want ENOENT", errno)
	}

	var a, b fuse.AttrOut
	if errno := r.Getattr(root, f, &a); errno != 0 {
		t.Fatalf("Getattr = %v", errno)
	}
	if errno := inner.Getattr(root, f, &b); errno != 0 || a != b {
		t.Errorf("Getattr = %+v, inner %+v (%v)", a, b, errno)
	}
	if a.Attr.Size != 13 {
		t.Errorf("size of f = %d, want 13", a.Attr.Size)
	}

	buf := make([]byte, 4096)
	if n, errno := r.Readlink(root, l, buf); errno != 0 || string(buf[:n]) != "f" {
		t.Errorf("Readlink = %q, %v", buf[:n], errno)
	}

	fh := roOpen(t, r, f, unix.O_RDONLY)
	got := make([]byte, 5)
	if n, errno := r.Read(root, f, &fuse.ReadIn{Fh: fh, Offset: 7, Size: 5}, [][]byte{got}); errno != 0 || string(got[:n]) != "world" {
		t.Errorf("Read = %q, %v", got[:n], errno)
	}
	var lo fuse.LseekOut
	if errno := r.Lseek(root, f, &fuse.LseekIn{Fh: fh, Offset: 3, Whence: unix.SEEK_DATA}, &lo); errno != 0 || lo.Offset != 3 {
		t.Errorf("Lseek(SEEK_DATA) = %d, %v", lo.Offset, errno)
	}
	if errno := r.Lseek(root, f, &fuse.LseekIn{Fh: fh, Whence: unix.SEEK_HOLE}, &lo); errno != 0 || lo.Offset != 13 {
		t.Errorf("Lseek(SEEK_HOLE) = %d, %v", lo.Offset, errno)
	}
	if errno := r.Flush(root, f, &fuse.FlushIn{Fh: fh}); errno != 0 {
		t.Errorf("Flush = %v", errno)
	}
	if errno := r.Fsync(root, f, &fuse.FsyncIn{Fh: fh}); errno != 0 {
		t.Errorf("Fsync = %v", errno)
	}
	if errno := r.Release(root, f, &fuse.ReleaseIn{Fh: fh}); errno != 0 {
		t.Errorf("Release = %v", errno)
	}
	if errno := r.Release(root, f, &fuse.ReleaseIn{Fh: fh}); errno != unix.EBADF {
		t.Errorf("second Release = %v, want EBADF", errno)
	}

	var st fuse.StatfsOut
	if errno := r.Statfs(root, 1, &st); errno != 0 || st.Bsize == 0 {
		t.Errorf("Statfs = %+v, %v", st, errno)
	}
	if errno := r.Syncfs(root, 1); errno != 0 {
		t.Errorf("Syncfs = %v", errno)
	}

	var do fuse.OpenOut
	if errno := r.Opendir(root, d, &fuse.OpenIn{Flags: unix.O_RDONLY | unix.O_DIRECTORY}, &do); errno != 0 {
		t.Fatalf("Opendir = %v", errno)
	}
	dbuf := make([]byte, 4096)
	n, errno := r.Readdir(root, d, &fuse.ReadIn{Fh: do.Fh, Size: 4096}, dbuf)
	names, _ := direntNames(dbuf[:n])
	if errno != 0 || len(names) != 3 {
		t.Errorf("Readdir = %q, %v; want ., .. and g", names, errno)
	}
	if errno := r.Fsyncdir(root, d, &fuse.FsyncIn{Fh: do.Fh}); errno != 0 {
		t.Errorf("Fsyncdir = %v", errno)
	}
	if errno := r.Releasedir(root, d, &fuse.ReleaseIn{Fh: do.Fh}); errno != 0 {
		t.Errorf("Releasedir = %v", errno)
	}

	// Extended attributes are disabled: reads answer like the wrapped FS.
	if _, errno := r.GetXattr(root, f, []byte("user.x\x00"), nil); errno != unix.ENOSYS {
		t.Errorf("GetXattr = %v, want ENOSYS", errno)
	}
	if _, errno := r.ListXattr(root, f, nil); errno != unix.ENOSYS {
		t.Errorf("ListXattr = %v, want ENOSYS", errno)
	}

	// ACCESS without W_OK is answered by the wrapped FS.
	for _, c := range []struct {
		node uint64
		mask uint32
		want unix.Errno
	}{
		{f, unix.R_OK, 0},
		{f, unix.F_OK, 0},
		{d, unix.R_OK | unix.X_OK, 0},
		{f, unix.X_OK, unix.EACCES},
		{1 << 40, unix.R_OK, unix.EBADF},
	} {
		if got, inner := r.Access(root, c.node, c.mask), inner.Access(root, c.node, c.mask); got != c.want || got != inner {
			t.Errorf("Access(%d, %#o) = %v, inner %v, want %v", c.node, c.mask, got, inner, c.want)
		}
	}

	r.Forget(f, 1)
	if n := lookups(inner, f); n != 0 {
		t.Errorf("lookup count of f after Forget = %d, want 0", n)
	}
	checkHostUnchanged(t, dir, before)

	r.Destroy()
	if errno := r.Getattr(root, 1, &a); errno != unix.EBADF {
		t.Errorf("Getattr after Destroy = %v, want EBADF", errno)
	}
}

// TestReadOnlyOpenFlags checks the flag filter of OPEN and OPENDIR and its
// order.
func TestReadOnlyOpenFlags(t *testing.T) {
	for _, c := range []struct {
		in     uint32
		out    uint32
		create bool
		errno  unix.Errno
	}{
		{unix.O_RDONLY, unix.O_RDONLY, false, 0},
		{unix.O_RDONLY | unix.O_NOATIME | unix.O_NONBLOCK, unix.O_RDONLY | unix.O_NOATIME | unix.O_NONBLOCK, false, 0},
		{unix.O_RDONLY | unix.O_CREAT, unix.O_RDONLY, true, 0},
		{unix.O_RDONLY | unix.O_CREAT | unix.O_DIRECTORY, unix.O_DIRECTORY, true, 0},
		{unix.O_WRONLY, 0, false, unix.EROFS},
		{unix.O_RDWR, 0, false, unix.EROFS},
		{unix.O_ACCMODE, 0, false, unix.EROFS},
		{unix.O_RDONLY | unix.O_EXCL, 0, false, unix.EROFS},
		{unix.O_RDONLY | unix.O_TMPFILE, 0, false, unix.EINVAL},
		{unix.O_RDONLY | unix.O_TRUNC, 0, false, unix.EINVAL},
		// Order: access mode, then O_EXCL, then O_TMPFILE, then O_TRUNC.
		{unix.O_WRONLY | unix.O_TRUNC, 0, false, unix.EROFS},
		{unix.O_RDWR | unix.O_TMPFILE, 0, false, unix.EROFS},
		{unix.O_RDONLY | unix.O_EXCL | unix.O_TRUNC | unix.O_TMPFILE, 0, false, unix.EROFS},
		{unix.O_RDONLY | unix.O_TMPFILE | unix.O_TRUNC, 0, false, unix.EINVAL},
		// O_PATH passes everything unchanged.
		{unix.O_PATH | unix.O_WRONLY | unix.O_TRUNC | unix.O_CREAT | unix.O_EXCL, unix.O_PATH | unix.O_WRONLY | unix.O_TRUNC | unix.O_CREAT | unix.O_EXCL, false, 0},
	} {
		out, create, errno := readOnlyOpenFlags(c.in)
		if out != c.out || create != c.create || errno != c.errno {
			t.Errorf("readOnlyOpenFlags(%#o) = %#o, %v, %v; want %#o, %v, %v", c.in, out, create, errno, c.out, c.create, c.errno)
		}
	}

	r, dir, before := newReadOnlyFS(t)
	inner := r.FS()
	f := roLookup(t, r, 1, "f")
	d := roLookup(t, r, 1, "d")
	for _, c := range []struct {
		flags uint32
		want  unix.Errno
	}{
		{unix.O_WRONLY, unix.EROFS},
		{unix.O_RDWR, unix.EROFS},
		{unix.O_WRONLY | unix.O_APPEND, unix.EROFS},
		{unix.O_RDONLY | unix.O_EXCL, unix.EROFS},
		{unix.O_RDONLY | unix.O_TRUNC, unix.EINVAL},
		{unix.O_RDONLY | unix.O_TMPFILE, unix.EINVAL},
		{unix.O_RDONLY, 0},
		{unix.O_RDONLY | unix.O_CREAT, 0},
	} {
		fds := openFDs(t)
		var o fuse.OpenOut
		errno := r.Open(root, f, &fuse.OpenIn{Flags: c.flags}, &o)
		if errno != c.want {
			t.Errorf("Open(f, %#o) = %v, want %v", c.flags, errno, c.want)
		}
		if errno != 0 {
			if got := openFDs(t); got != fds {
				t.Errorf("Open(f, %#o) refused but left %d descriptors open", c.flags, got-fds)
			}
			continue
		}
		if fl := handleFlags(t, inner, f, o.Fh); fl&unix.O_ACCMODE != unix.O_RDONLY || fl&unix.O_CREAT != 0 {
			t.Errorf("Open(f, %#o) opened the host file with %#o", c.flags, fl)
		}
		if errno := r.Release(root, f, &fuse.ReleaseIn{Fh: o.Fh}); errno != 0 {
			t.Errorf("Release = %v", errno)
		}
	}
	for _, c := range []struct {
		flags uint32
		want  unix.Errno
	}{
		{unix.O_RDONLY | unix.O_DIRECTORY, 0},
		{unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CREAT, 0},
		{unix.O_WRONLY | unix.O_DIRECTORY, unix.EROFS},
		{unix.O_RDWR | unix.O_DIRECTORY, unix.EROFS},
		{unix.O_RDONLY | unix.O_DIRECTORY | unix.O_EXCL, unix.EROFS},
		{unix.O_RDONLY | unix.O_DIRECTORY | unix.O_TRUNC, unix.EINVAL},
	} {
		var o fuse.OpenOut
		errno := r.Opendir(root, d, &fuse.OpenIn{Flags: c.flags}, &o)
		if errno != c.want {
			t.Errorf("Opendir(d, %#o) = %v, want %v", c.flags, errno, c.want)
		}
		if errno == 0 {
			r.Releasedir(root, d, &fuse.ReleaseIn{Fh: o.Fh})
		}
	}
	checkHostUnchanged(t, dir, before)
}

// TestReadOnlyCreate checks that CREATE never creates: it opens an
// existing name through the filter and gives the lookup count back when
// the open is refused.
func TestReadOnlyCreate(t *testing.T) {
	r, dir, before := newReadOnlyFS(t)
	inner := r.FS()
	f := roLookup(t, r, 1, "f")
	d := roLookup(t, r, 1, "d")
	create := func(parent uint64, name string, flags uint32) (fuse.EntryOut, fuse.OpenOut, unix.Errno) {
		var e fuse.EntryOut
		var o fuse.OpenOut
		errno := r.Create(root, parent, nm(name), &fuse.CreateIn{Flags: flags, Mode: 0o644}, &e, &o)
		return e, o, errno
	}

	// A missing name is EROFS, nothing is created.
	for _, flags := range []uint32{unix.O_RDONLY | unix.O_CREAT, unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL, unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC} {
		if _, _, errno := create(1, "new", flags); errno != unix.EROFS {
			t.Errorf("Create(new, %#o) = %v, want EROFS", flags, errno)
		}
		if _, _, errno := create(d, "new", flags); errno != unix.EROFS {
			t.Errorf("Create(d/new, %#o) = %v, want EROFS", flags, errno)
		}
	}
	// Lookup errors other than ENOENT pass unchanged.
	if _, _, errno := create(f, "new", unix.O_RDONLY|unix.O_CREAT); errno != unix.ENOTDIR {
		t.Errorf("Create under a file = %v, want ENOTDIR", errno)
	}
	if _, _, errno := create(1<<40, "new", unix.O_RDONLY|unix.O_CREAT); errno != unix.EBADF {
		t.Errorf("Create under an unknown node = %v, want EBADF", errno)
	}

	// An existing name opened read-only: entry and handle of that file,
	// one more lookup.
	e, o, errno := create(1, "f", unix.O_RDONLY|unix.O_CREAT)
	if errno != 0 {
		t.Fatalf("Create(f, O_RDONLY|O_CREAT) = %v", errno)
	}
	if e.NodeID != f || e.Attr.Size != 13 {
		t.Errorf("Create(f) entry = node %d size %d, want node %d size 13", e.NodeID, e.Attr.Size, f)
	}
	if n := lookups(inner, f); n != 2 {
		t.Errorf("lookup count of f after Create = %d, want 2", n)
	}
	if fl := handleFlags(t, inner, f, o.Fh); fl&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("Create(f) handle flags %#o, want read-only", fl)
	}
	buf := make([]byte, 5)
	if n, errno := r.Read(root, f, &fuse.ReadIn{Fh: o.Fh, Size: 5}, [][]byte{buf}); errno != 0 || string(buf[:n]) != "hello" {
		t.Errorf("Read through the created handle = %q, %v", buf[:n], errno)
	}
	r.Release(root, f, &fuse.ReleaseIn{Fh: o.Fh})

	// A refused open gives the lookup back (the reference keeps it).
	for _, c := range []struct {
		flags uint32
		want  unix.Errno
	}{
		{unix.O_WRONLY | unix.O_CREAT, unix.EROFS},
		{unix.O_RDWR | unix.O_CREAT, unix.EROFS},
		{unix.O_RDONLY | unix.O_CREAT | unix.O_EXCL, unix.EROFS},
		{unix.O_RDONLY | unix.O_CREAT | unix.O_TRUNC, unix.EINVAL},
	} {
		fds := openFDs(t)
		e, _, errno := create(1, "f", c.flags)
		if errno != c.want {
			t.Errorf("Create(f, %#o) = %v, want %v", c.flags, errno, c.want)
		}
		if e != (fuse.EntryOut{}) {
			t.Errorf("Create(f, %#o) left an entry %+v", c.flags, e)
		}
		if n := lookups(inner, f); n != 2 {
			t.Errorf("lookup count of f after a refused Create(%#o) = %d, want 2", c.flags, n)
		}
		if got := openFDs(t); got != fds {
			t.Errorf("Create(f, %#o) refused but left %d descriptors open", c.flags, got-fds)
		}
	}
	// A name seen for the first time by a refused CREATE leaves no inode.
	e, _, errno = create(d, "g", unix.O_WRONLY|unix.O_CREAT)
	if errno != unix.EROFS {
		t.Errorf("Create(d/g, O_WRONLY) = %v, want EROFS", errno)
	}
	var ge fuse.EntryOut
	if errno := inner.Lookup(root, d, nm("g"), &ge); errno != 0 {
		t.Fatal(errno)
	}
	if n := lookups(inner, ge.NodeID); n != 1 {
		t.Errorf("lookup count of d/g = %d, want 1 (the refused CREATE kept one)", n)
	}
	checkHostUnchanged(t, dir, before)
}
