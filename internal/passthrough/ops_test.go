package passthrough

import (
	"bytes"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

func TestGetattrMatchesHost(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	p := join(dir, "f")
	writeFile(t, p, "hello")
	ts := time.Unix(1700000000, 123456789)
	if err := os.Chtimes(p, ts, ts); err != nil {
		t.Fatal(err)
	}
	id := mustLookup(t, fs, RootID, "f").NodeID
	var a fuse.AttrOut
	if e := fs.Getattr(root, id, &a); e != 0 {
		t.Fatal(e)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	at := a.Attr
	if at.Ino != st.Ino || at.Size != 5 || at.Mode != st.Mode || at.Nlink != 1 || at.UID != st.Uid ||
		at.GID != st.Gid || at.Blocks != uint64(st.Blocks) || at.Blksize != uint32(st.Blksize) ||
		at.Mtime != 1700000000 || at.Mtimensec != 123456789 || at.Atime != 1700000000 || at.Flags != 0 {
		t.Errorf("attr = %+v, host %+v", at, st)
	}
	if a.AttrValid != 1 || a.AttrValidNsec != 0 {
		t.Errorf("attr timeout = %d.%d, want 1", a.AttrValid, a.AttrValidNsec)
	}
	if e := fs.Getattr(root, 999, &a); e != unix.EBADF {
		t.Errorf("Getattr(unknown) = %v, want EBADF", e)
	}
}

func TestMknodRdev(t *testing.T) {
	requireRoot(t)
	fs, dir := newTestFS(t, nil)
	dev := uint32(unix.Mkdev(0x123, 0x45678))
	var out fuse.EntryOut
	if e := fs.Mknod(root, RootID, nm("dev"), &fuse.MknodIn{Mode: unix.S_IFCHR | 0o600, Rdev: dev}, &out); e != 0 {
		t.Fatalf("Mknod = %v", e)
	}
	var st unix.Stat_t
	if err := unix.Stat(join(dir, "dev"), &st); err != nil {
		t.Fatal(err)
	}
	if unix.Major(st.Rdev) != 0x123 || unix.Minor(st.Rdev) != 0x45678 {
		t.Errorf("host rdev = %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if out.Attr.Rdev != dev || out.Attr.Mode != unix.S_IFCHR|0o600 {
		t.Errorf("attr rdev/mode = %#x/%o, want %#x/%o", out.Attr.Rdev, out.Attr.Mode, dev, unix.S_IFCHR|0o600)
	}
	// Devices are never opened for real.
	var oo fuse.OpenOut
	if e := fs.Open(root, out.NodeID, &fuse.OpenIn{Flags: unix.O_RDONLY}, &oo); e != unix.EBADF {
		t.Errorf("Open(char device) = %v, want EBADF", e)
	}
	if e := fs.Mknod(root, RootID, nm("fifo"), &fuse.MknodIn{Mode: unix.S_IFIFO | 0o640}, &out); e != 0 {
		t.Fatalf("Mknod(fifo) = %v", e)
	}
	if e := fs.Open(root, out.NodeID, &fuse.OpenIn{Flags: unix.O_RDONLY}, &oo); e != unix.EBADF {
		t.Errorf("Open(fifo) = %v, want EBADF", e)
	}
	if fi, err := os.Lstat(join(dir, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o640 {
		t.Errorf("host fifo = %v, %v", fi, err)
	}
}

func TestDirOps(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	var d fuse.EntryOut
	if e := fs.Mkdir(root, RootID, nm("d"), &fuse.MkdirIn{Mode: 0o750}, &d); e != 0 {
		t.Fatalf("Mkdir = %v", e)
	}
	if fi, err := os.Stat(join(dir, "d")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Fatalf("host dir = %v, %v (umask must be 0)", fi, err)
	}
	if e := fs.Mkdir(root, RootID, nm("d"), &fuse.MkdirIn{Mode: 0o750}, &d); e != unix.EEXIST {
		t.Errorf("Mkdir(existing) = %v, want EEXIST", e)
	}
	var s fuse.EntryOut
	if e := fs.Symlink(root, d.NodeID, nm("s"), []byte("target/x\x00"), &s); e != 0 {
		t.Fatalf("Symlink = %v", e)
	}
	if tgt, err := os.Readlink(join(dir, "d", "s")); err != nil || tgt != "target/x" {
		t.Errorf("host symlink = %q, %v", tgt, err)
	}
	buf := make([]byte, 4096)
	if n, e := fs.Readlink(root, s.NodeID, buf); e != 0 || string(buf[:n]) != "target/x" {
		t.Errorf("Readlink = %q, %v", buf[:n], e)
	}
	if _, e := fs.Readlink(root, d.NodeID, buf); e == 0 {
		t.Errorf("Readlink(dir) succeeded")
	}
	if e := fs.Symlink(root, d.NodeID, nm("bad"), []byte("no-nul"), &s); e != unix.EINVAL {
		t.Errorf("Symlink(unterminated target) = %v, want EINVAL", e)
	}
	if e := fs.Symlink(root, d.NodeID, nm("empty"), []byte("\x00"), &s); e != unix.ENOENT {
		t.Errorf("Symlink(empty target) = %v, want ENOENT (from symlinkat)", e)
	}

	writeFile(t, join(dir, "f"), "x")
	f := mustLookup(t, fs, RootID, "f")
	var l fuse.EntryOut
	if e := fs.Link(root, f.NodeID, d.NodeID, nm("hard"), &l); e != 0 {
		t.Fatalf("Link = %v", e)
	}
	if l.NodeID != f.NodeID || l.Attr.Nlink != 2 {
		t.Errorf("Link entry = node %d nlink %d, want node %d nlink 2", l.NodeID, l.Attr.Nlink, f.NodeID)
	}
	// Linking a symlink links the symlink itself.
	if e := fs.Link(root, s.NodeID, RootID, nm("s2"), &l); e != 0 {
		t.Fatalf("Link(symlink) = %v", e)
	}
	if tgt, err := os.Readlink(join(dir, "s2")); err != nil || tgt != "target/x" {
		t.Errorf("linked symlink = %q, %v", tgt, err)
	}

	if e := fs.Rename(root, RootID, nm("f"), d.NodeID, nm("g"), 0); e != 0 {
		t.Fatalf("Rename = %v", e)
	}
	if _, err := os.Stat(join(dir, "d", "g")); err != nil {
		t.Error(err)
	}
	writeFile(t, join(dir, "h"), "h")
	if e := fs.Rename(root, RootID, nm("h"), d.NodeID, nm("g"), unix.RENAME_NOREPLACE); e != unix.EEXIST {
		t.Errorf("Rename(NOREPLACE onto existing) = %v, want EEXIST", e)
	}
	if e := fs.Rename(root, RootID, nm("h"), d.NodeID, nm("g"), unix.RENAME_EXCHANGE); e != 0 {
		t.Fatalf("Rename(EXCHANGE) = %v", e)
	}
	if b, _ := os.ReadFile(join(dir, "h")); string(b) != "x" {
		t.Errorf("after exchange h = %q, want x", b)
	}
	if e := fs.Rename(root, RootID, nm("h"), d.NodeID, nm("g"), 1<<8); e != unix.EINVAL {
		t.Errorf("Rename(bad flags) = %v, want EINVAL", e)
	}

	if e := fs.Rmdir(root, RootID, nm("d")); e != unix.ENOTEMPTY {
		t.Errorf("Rmdir(non-empty) = %v, want ENOTEMPTY", e)
	}
	for _, n := range []string{"g", "hard", "s"} {
		if e := fs.Unlink(root, d.NodeID, nm(n)); e != 0 {
			t.Errorf("Unlink(%s) = %v", n, e)
		}
	}
	if e := fs.Unlink(root, d.NodeID, nm("g")); e != unix.ENOENT {
		t.Errorf("Unlink(missing) = %v, want ENOENT", e)
	}
	if e := fs.Rmdir(root, RootID, nm("d")); e != 0 {
		t.Errorf("Rmdir = %v", e)
	}
	if _, err := os.Stat(join(dir, "d")); !os.IsNotExist(err) {
		t.Errorf("dir still exists: %v", err)
	}
	// The known directory inode still answers GETATTR (nlink 0) through
	// its O_PATH descriptor; a file handle of a removed directory is
	// stale, as it is for the reference.
	var a fuse.AttrOut
	e := fs.Getattr(root, d.NodeID, &a)
	if fs.FileHandleMode() == FileHandlesNever && (e != 0 || a.Attr.Nlink != 0) {
		t.Errorf("Getattr(removed dir) = %v nlink %d", e, a.Attr.Nlink)
	}
	if fs.FileHandleMode() != FileHandlesNever && e != unix.ESTALE {
		t.Errorf("Getattr(removed dir) with file handles = %v, want ESTALE", e)
	}
}

func TestReaddir(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	want := []string{".", ".."}
	for i := 0; i < 50; i++ {
		n := "file" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		writeFile(t, join(dir, n), "")
		want = append(want, n)
	}
	var oo fuse.OpenOut
	if e := fs.Opendir(root, RootID, &fuse.OpenIn{}, &oo); e != 0 {
		t.Fatalf("Opendir = %v", e)
	}
	if fl := handleFlags(t, fs, RootID, oo.Fh); fl&unix.O_DIRECTORY == 0 {
		t.Errorf("dir handle flags %#x lack O_DIRECTORY", fl)
	}
	var got []string
	off := uint64(0)
	buf := make([]byte, 256) // forces several calls
	for {
		n, e := fs.Readdir(root, RootID, &fuse.ReadIn{Fh: oo.Fh, Offset: off, Size: uint32(len(buf))}, buf)
		if e != 0 {
			t.Fatalf("Readdir = %v", e)
		}
		if n == 0 {
			break
		}
		names, offs := direntNames(buf[:n])
		got = append(got, names...)
		off = offs[len(offs)-1]
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Readdir names = %v, want %v", got, want)
	}
	// Rewinding to cookie 0 starts over.
	if n, e := fs.Readdir(root, RootID, &fuse.ReadIn{Fh: oo.Fh, Size: 4096}, make([]byte, 4096)); e != 0 || n == 0 {
		t.Errorf("Readdir from 0 = %d, %v", n, e)
	}
	if n, e := fs.Readdir(root, RootID, &fuse.ReadIn{Fh: oo.Fh}, nil); n != 0 || e != 0 {
		t.Errorf("Readdir(size 0) = %d, %v", n, e)
	}
	if e := fs.Fsyncdir(root, RootID, &fuse.FsyncIn{Fh: oo.Fh}); e != 0 {
		t.Errorf("Fsyncdir = %v", e)
	}
	if e := fs.Releasedir(root, RootID, &fuse.ReleaseIn{Fh: oo.Fh}); e != 0 {
		t.Fatalf("Releasedir = %v", e)
	}
	if _, e := fs.Readdir(root, RootID, &fuse.ReadIn{Fh: oo.Fh, Size: 4096}, make([]byte, 4096)); e != unix.EBADF {
		t.Errorf("Readdir after release = %v, want EBADF", e)
	}
	if e := fs.Releasedir(root, RootID, &fuse.ReleaseIn{Fh: oo.Fh}); e != unix.EBADF {
		t.Errorf("double Releasedir = %v, want EBADF", e)
	}
}

func TestReadWrite(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "")
	id := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, id, unix.O_RDWR)

	src := [][]byte{[]byte("hello, "), []byte("guest "), []byte("world!-ignored")}
	n, e := fs.Write(root, id, &fuse.WriteIn{Fh: fh, Offset: 3, Size: 19}, src)
	if e != 0 || n != 19 {
		t.Fatalf("Write = %d, %v, want 19", n, e)
	}
	if b, _ := os.ReadFile(join(dir, "f")); string(b) != "\x00\x00\x00hello, guest world!" {
		t.Errorf("host content = %q", b)
	}
	dst := [][]byte{make([]byte, 4), make([]byte, 100)}
	n, e = fs.Read(root, id, &fuse.ReadIn{Fh: fh, Offset: 3, Size: 104}, dst)
	if e != 0 || n != 19 {
		t.Fatalf("Read = %d, %v, want 19 (short at EOF)", n, e)
	}
	if got := string(dst[0]) + string(dst[1][:15]); got != "hello, guest world!" {
		t.Errorf("Read data = %q", got)
	}
	// Never more than Size bytes, even with larger buffers.
	big := make([]byte, 64)
	if n, e = fs.Read(root, id, &fuse.ReadIn{Fh: fh, Offset: 3, Size: 5}, [][]byte{big}); n != 5 || e != 0 || string(big[:6]) != "hello\x00" {
		t.Errorf("Read(size 5) = %d, %v, %q", n, e, big[:6])
	}
	if n, e = fs.Read(root, id, &fuse.ReadIn{Fh: fh, Offset: 1000, Size: 10}, [][]byte{big}); n != 0 || e != 0 {
		t.Errorf("Read past EOF = %d, %v", n, e)
	}

	// More vectors than IOV_MAX.
	many := make([][]byte, 2500)
	var want []byte
	for i := range many {
		many[i] = []byte{byte('a' + i%26)}
		want = append(want, many[i][0])
	}
	if n, e = fs.Write(root, id, &fuse.WriteIn{Fh: fh, Size: uint32(len(many))}, many); n != len(many) || e != 0 {
		t.Fatalf("Write(2500 vectors) = %d, %v", n, e)
	}
	for i := range many {
		many[i][0] = 0
	}
	if n, e = fs.Read(root, id, &fuse.ReadIn{Fh: fh, Size: uint32(len(many))}, many); n != len(many) || e != 0 {
		t.Fatalf("Read(2500 vectors) = %d, %v", n, e)
	}
	var back []byte
	for _, b := range many {
		back = append(back, b[0])
	}
	if !bytes.Equal(back, want) {
		t.Errorf("2500-vector round trip differs")
	}

	if e := fs.Flush(root, id, &fuse.FlushIn{Fh: fh}); e != 0 {
		t.Errorf("Flush = %v", e)
	}
	if e := fs.Fsync(root, id, &fuse.FsyncIn{Fh: fh}); e != 0 {
		t.Errorf("Fsync = %v", e)
	}
	if e := fs.Fsync(root, id, &fuse.FsyncIn{Fh: fh, FsyncFlags: fuse.FUSE_FSYNC_FDATASYNC}); e != 0 {
		t.Errorf("Fsync(datasync) = %v", e)
	}

	// Handle/node mismatch and unknown handles.
	writeFile(t, join(dir, "other"), "")
	other := mustLookup(t, fs, RootID, "other").NodeID
	if _, e := fs.Read(root, other, &fuse.ReadIn{Fh: fh, Size: 1}, [][]byte{big}); e != unix.EBADF {
		t.Errorf("Read with another node's handle = %v, want EBADF", e)
	}
	if _, e := fs.Write(root, id, &fuse.WriteIn{Fh: 777, Size: 1}, [][]byte{big[:1]}); e != unix.EBADF {
		t.Errorf("Write with unknown handle = %v, want EBADF", e)
	}
	for name, e := range map[string]unix.Errno{
		"Flush":   fs.Flush(root, other, &fuse.FlushIn{Fh: fh}),
		"Fsync":   fs.Fsync(root, other, &fuse.FsyncIn{Fh: fh}),
		"Release": fs.Release(root, other, &fuse.ReleaseIn{Fh: fh}),
		"Setattr": fs.Setattr(root, other, &fuse.SetattrIn{Valid: fuse.FATTR_FH | fuse.FATTR_MODE, Fh: fh, Mode: 0o600}, &fuse.AttrOut{}),
	} {
		if e != unix.EBADF {
			t.Errorf("%s with another node's handle = %v, want EBADF", name, e)
		}
	}
	if e := fs.Release(root, id, &fuse.ReleaseIn{Fh: fh}); e != 0 {
		t.Errorf("Release = %v", e)
	}
	if _, e := fs.Read(root, id, &fuse.ReadIn{Fh: fh, Size: 1}, [][]byte{big}); e != unix.EBADF {
		t.Errorf("Read after release = %v, want EBADF", e)
	}
}

func TestWriteAppend(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "0123456789")
	id := mustLookup(t, fs, RootID, "f").NodeID
	fh := mustOpen(t, fs, id, unix.O_WRONLY|unix.O_APPEND)
	if fl := handleFlags(t, fs, id, fh); fl&unix.O_APPEND != 0 {
		t.Errorf("host fd has O_APPEND (%#x); appends must be per write", fl)
	}
	// A guest O_APPEND write lands at the end whatever its offset.
	if _, e := fs.Write(root, id, &fuse.WriteIn{Fh: fh, Offset: 0, Size: 3, Flags: unix.O_APPEND | unix.O_WRONLY}, [][]byte{[]byte("abc")}); e != 0 {
		t.Fatal(e)
	}
	// A page-cache write-back keeps its offset.
	if _, e := fs.Write(root, id, &fuse.WriteIn{Fh: fh, Offset: 0, Size: 2, WriteFlags: fuse.FUSE_WRITE_CACHE, Flags: unix.O_APPEND}, [][]byte{[]byte("XY")}); e != 0 {
		t.Fatal(e)
	}
	if b, _ := os.ReadFile(join(dir, "f")); string(b) != "XY23456789abc" {
		t.Errorf("content = %q, want XY23456789abc", b)
	}
}

func TestOpenFlagNormalisation(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Config)
		flags  uint32
		want   int // access mode and selected bits of the host fd
		absent int
	}{
		{"append dropped", nil, unix.O_WRONLY | unix.O_APPEND, unix.O_WRONLY, unix.O_APPEND},
		{"noatime dropped", nil, unix.O_RDONLY | unix.O_NOATIME, unix.O_RDONLY, unix.O_NOATIME},
		{"noatime kept", func(c *Config) { c.PreserveNoatime = true }, unix.O_RDONLY | unix.O_NOATIME, unix.O_RDONLY | unix.O_NOATIME, 0},
		{"direct dropped", nil, unix.O_RDWR | unix.O_DIRECT, unix.O_RDWR, unix.O_DIRECT},
		{"writeback upgrade", func(c *Config) { c.Writeback = true }, unix.O_WRONLY, unix.O_RDWR, 0},
		{"no upgrade without writeback", nil, unix.O_WRONLY, unix.O_WRONLY, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, dir := newTestFS(t, tc.mod)
			writeFile(t, join(dir, "f"), "x")
			id := mustLookup(t, fs, RootID, "f").NodeID
			fh := mustOpen(t, fs, id, tc.flags)
			fl := handleFlags(t, fs, id, fh)
			if fl&unix.O_ACCMODE != tc.want&unix.O_ACCMODE || fl&tc.want&^unix.O_ACCMODE != tc.want&^unix.O_ACCMODE || fl&tc.absent != 0 {
				t.Errorf("host flags = %#x, want %#x without %#x", fl, tc.want, tc.absent)
			}
			fdFlags, _ := unix.FcntlInt(uintptr(fs.cur().handles[fh].fd), unix.F_GETFD, 0)
			if fdFlags&unix.FD_CLOEXEC == 0 {
				t.Errorf("handle fd is not close-on-exec")
			}
		})
	}
}

func TestCachePolicy(t *testing.T) {
	tests := []struct {
		cache                   CachePolicy
		timeout                 uint64
		open, opendir, createFl uint32
	}{
		{CacheNever, 0, fuse.FOPEN_DIRECT_IO, 0, fuse.FOPEN_DIRECT_IO},
		{CacheMetadata, 86400, fuse.FOPEN_DIRECT_IO, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, fuse.FOPEN_DIRECT_IO},
		{CacheAuto, 1, 0, 0, 0},
		{CacheAlways, 86400, fuse.FOPEN_KEEP_CACHE, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR, fuse.FOPEN_KEEP_CACHE},
	}
	for _, tc := range tests {
		fs, dir := newTestFS(t, func(c *Config) { c.Cache = tc.cache })
		writeFile(t, join(dir, "f"), "x")
		e := mustLookup(t, fs, RootID, "f")
		if e.EntryValid != tc.timeout || e.AttrValid != tc.timeout {
			t.Errorf("cache %d: entry timeouts %d/%d, want %d", tc.cache, e.EntryValid, e.AttrValid, tc.timeout)
		}
		var a fuse.AttrOut
		fs.Getattr(root, e.NodeID, &a)
		if a.AttrValid != tc.timeout {
			t.Errorf("cache %d: attr timeout %d, want %d", tc.cache, a.AttrValid, tc.timeout)
		}
		var oo fuse.OpenOut
		if fs.Open(root, e.NodeID, &fuse.OpenIn{}, &oo); oo.OpenFlags != tc.open {
			t.Errorf("cache %d: OPEN flags %#x, want %#x", tc.cache, oo.OpenFlags, tc.open)
		}
		if fs.Opendir(root, RootID, &fuse.OpenIn{}, &oo); oo.OpenFlags != tc.opendir {
			t.Errorf("cache %d: OPENDIR flags %#x, want %#x", tc.cache, oo.OpenFlags, tc.opendir)
		}
		var ce fuse.EntryOut
		if fs.Create(root, RootID, nm("new"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o644}, &ce, &oo); oo.OpenFlags != tc.createFl {
			t.Errorf("cache %d: CREATE flags %#x, want %#x", tc.cache, oo.OpenFlags, tc.createFl)
		}
	}
}

func TestCreate(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	var e fuse.EntryOut
	var o fuse.OpenOut
	if err := fs.Create(root, RootID, nm("n"), &fuse.CreateIn{Flags: unix.O_RDWR | unix.O_APPEND, Mode: unix.S_IFREG | 0o640}, &e, &o); err != 0 {
		t.Fatalf("Create = %v", err)
	}
	fi, err := os.Stat(join(dir, "n"))
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.Mode().IsRegular() {
		t.Fatalf("host file = %v, %v", fi, err)
	}
	var st unix.Stat_t
	unix.Stat(join(dir, "n"), &st)
	if e.Attr.Ino != st.Ino || e.Attr.Mode != st.Mode {
		t.Errorf("entry ino/mode = %d/%o, want %d/%o", e.Attr.Ino, e.Attr.Mode, st.Ino, st.Mode)
	}
	if lookups(fs, e.NodeID) != 1 {
		t.Errorf("lookup count after CREATE = %d, want 1", lookups(fs, e.NodeID))
	}
	if fl := handleFlags(t, fs, e.NodeID, o.Fh); fl&unix.O_APPEND != 0 || fl&unix.O_ACCMODE != unix.O_RDWR {
		t.Errorf("created handle flags = %#x", fl)
	}
	if n, err := fs.Write(root, e.NodeID, &fuse.WriteIn{Fh: o.Fh, Size: 2}, [][]byte{[]byte("hi")}); err != 0 || n != 2 {
		t.Fatalf("Write to created = %d, %v", n, err)
	}

	// Existing file, no guest O_EXCL: opened, not truncated, same node.
	var e2 fuse.EntryOut
	var o2 fuse.OpenOut
	if err := fs.Create(root, RootID, nm("n"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o600}, &e2, &o2); err != 0 {
		t.Fatalf("Create(existing) = %v", err)
	}
	if e2.NodeID != e.NodeID || o2.Fh == o.Fh || lookups(fs, e.NodeID) != 2 {
		t.Errorf("Create(existing) node %d fh %d count %d", e2.NodeID, o2.Fh, lookups(fs, e.NodeID))
	}
	if b, _ := os.ReadFile(join(dir, "n")); string(b) != "hi" {
		t.Errorf("existing file content = %q", b)
	}
	if fi, _ := os.Stat(join(dir, "n")); fi.Mode().Perm() != 0o640 {
		t.Errorf("existing file mode changed to %o", fi.Mode().Perm())
	}
	// With O_TRUNC the fallback open truncates.
	if err := fs.Create(root, RootID, nm("n"), &fuse.CreateIn{Flags: unix.O_RDWR | unix.O_TRUNC, Mode: 0o600}, &e2, &o2); err != 0 {
		t.Fatalf("Create(existing, O_TRUNC) = %v", err)
	}
	if b, _ := os.ReadFile(join(dir, "n")); len(b) != 0 {
		t.Errorf("O_TRUNC fallback left %q", b)
	}
	// Existing file with the guest's O_EXCL.
	if err := fs.Create(root, RootID, nm("n"), &fuse.CreateIn{Flags: unix.O_RDWR | unix.O_EXCL, Mode: 0o600}, &e2, &o2); err != unix.EEXIST {
		t.Errorf("Create(existing, O_EXCL) = %v, want EEXIST", err)
	}
	// Existing directory: the fallback OPEN of a directory for writing fails,
	// and the lookup it took is given back.
	os.Mkdir(join(dir, "d"), 0o755)
	if err := fs.Create(root, RootID, nm("d"), &fuse.CreateIn{Flags: unix.O_RDWR, Mode: 0o600}, &e2, &o2); err != unix.EISDIR {
		t.Errorf("Create(existing dir) = %v, want EISDIR", err)
	}
	fs.cur().mu.Lock()
	n := len(fs.cur().inodes)
	fs.cur().mu.Unlock()
	if n != 2 { // root and "n"
		t.Errorf("inodes after failed CREATE fallback = %d, want 2", n)
	}
	if err := fs.Create(root, 4242, nm("x"), &fuse.CreateIn{Mode: 0o600}, &e2, &o2); err != unix.EBADF {
		t.Errorf("Create(unknown parent) = %v, want EBADF", err)
	}
}

func TestSetattr(t *testing.T) {
	requireRoot(t)
	fs, dir := newTestFS(t, nil)
	p := join(dir, "f")
	writeFile(t, p, "0123456789")
	id := mustLookup(t, fs, RootID, "f").NodeID
	var out fuse.AttrOut

	// Without a handle: mode via /proc/self/fd, owner, size via a temporary
	// read-write fd, explicit times.
	in := &fuse.SetattrIn{
		Valid: fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_GID | fuse.FATTR_SIZE | fuse.FATTR_ATIME | fuse.FATTR_MTIME,
		Mode:  0o604, UID: 1234, GID: 5678, Size: 4,
		Atime: 1600000000, Atimensec: 5, Mtime: 1500000000, Mtimensec: 7,
	}
	if e := fs.Setattr(root, id, in, &out); e != 0 {
		t.Fatalf("Setattr = %v", e)
	}
	var st unix.Stat_t
	unix.Stat(p, &st)
	if st.Mode&0o7777 != 0o604 || st.Uid != 1234 || st.Gid != 5678 || st.Size != 4 ||
		st.Atim.Sec != 1600000000 || st.Atim.Nsec != 5 || st.Mtim.Sec != 1500000000 || st.Mtim.Nsec != 7 {
		t.Errorf("host after Setattr: %+v", st)
	}
	if out.Attr.Size != 4 || out.Attr.Mode&0o7777 != 0o604 || out.Attr.UID != 1234 || out.AttrValid != 1 || out.Attr.Flags != 0 {
		t.Errorf("Setattr reply attr = %+v", out.Attr)
	}

	// Only UID: GID unchanged.
	if e := fs.Setattr(root, id, &fuse.SetattrIn{Valid: fuse.FATTR_UID, UID: 42}, &out); e != 0 {
		t.Fatal(e)
	}
	if u, g := ownerOf(t, p); u != 42 || g != 5678 {
		t.Errorf("owner = %d:%d, want 42:5678", u, g)
	}

	// NOW: mtime moves to the present, atime is left alone.
	before := time.Now().Add(-time.Second).Unix()
	if e := fs.Setattr(root, id, &fuse.SetattrIn{Valid: fuse.FATTR_MTIME | fuse.FATTR_MTIME_NOW, Mtime: 1}, &out); e != 0 {
		t.Fatal(e)
	}
	unix.Stat(p, &st)
	if st.Mtim.Sec < before || st.Atim.Sec != 1600000000 {
		t.Errorf("after MTIME_NOW mtime %d atime %d", st.Mtim.Sec, st.Atim.Sec)
	}

	// With a handle: mode through fchmod, times through futimens, size
	// through the handle.
	fh := mustOpen(t, fs, id, unix.O_RDWR)
	if e := fs.Setattr(root, id, &fuse.SetattrIn{Valid: fuse.FATTR_FH | fuse.FATTR_MODE | fuse.FATTR_SIZE | fuse.FATTR_ATIME | fuse.FATTR_ATIME_NOW,
		Fh: fh, Mode: 0o600, Size: 100}, &out); e != 0 {
		t.Fatalf("Setattr with handle = %v", e)
	}
	unix.Stat(p, &st)
	if st.Mode&0o7777 != 0o600 || st.Size != 100 || st.Atim.Sec < before {
		t.Errorf("host after Setattr with handle: mode %o size %d atime %d", st.Mode&0o7777, st.Size, st.Atim.Sec)
	}

	// Step order: mode and owner are applied, then SIZE fails on a
	// read-only handle and the times are not touched.
	ro := mustOpen(t, fs, id, unix.O_RDONLY)
	unix.Stat(p, &st)
	oldMtime := st.Mtim
	e := fs.Setattr(root, id, &fuse.SetattrIn{Valid: fuse.FATTR_FH | fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_SIZE | fuse.FATTR_MTIME,
		Fh: ro, Mode: 0o640, UID: 7, Size: 1, Mtime: 1000}, &out)
	if e == 0 {
		t.Fatalf("Setattr(SIZE on read-only handle) succeeded")
	}
	unix.Stat(p, &st)
	if st.Mode&0o7777 != 0o640 || st.Uid != 7 || st.Size != 100 || st.Mtim != oldMtime {
		t.Errorf("after failed SIZE step: mode %o uid %d size %d mtime %v (was %v)", st.Mode&0o7777, st.Uid, st.Size, st.Mtim, oldMtime)
	}

	// SIZE without a handle on something that cannot be opened: EBADF,
	// nothing applied.
	os.Symlink("f", join(dir, "l"))
	l := mustLookup(t, fs, RootID, "l").NodeID
	if e := fs.Setattr(root, l, &fuse.SetattrIn{Valid: fuse.FATTR_SIZE | fuse.FATTR_UID, UID: 9, Size: 0}, &out); e != unix.EBADF {
		t.Errorf("Setattr(SIZE on symlink) = %v, want EBADF", e)
	}
	// Owner of a symlink changes the link, not its target.
	if e := fs.Setattr(root, l, &fuse.SetattrIn{Valid: fuse.FATTR_UID | fuse.FATTR_GID, UID: 11, GID: 12}, &out); e != 0 {
		t.Fatalf("Setattr(chown symlink) = %v", e)
	}
	if u, g := ownerOf(t, join(dir, "l")); u != 11 || g != 12 {
		t.Errorf("symlink owner = %d:%d", u, g)
	}
	if u, _ := ownerOf(t, p); u != 7 {
		t.Errorf("target owner changed to %d", u)
	}
	if e := fs.Setattr(root, 999, &fuse.SetattrIn{Valid: fuse.FATTR_MODE}, &out); e != unix.EBADF {
		t.Errorf("Setattr(unknown) = %v, want EBADF", e)
	}
}

func TestStatfs(t *testing.T) {
	fs, dir := newTestFS(t, nil)
	var out fuse.StatfsOut
	if e := fs.Statfs(root, RootID, &out); e != 0 {
		t.Fatal(e)
	}
	var st unix.Statfs_t
	unix.Statfs(dir, &st)
	if out.Bsize != uint32(st.Bsize) || out.Blocks != st.Blocks || out.Namelen != uint32(st.Namelen) || out.Frsize != uint32(st.Frsize) || out.Files != st.Files {
		t.Errorf("Statfs = %+v, host %+v", out, st)
	}
	if e := fs.Statfs(root, 55, &out); e != unix.EBADF {
		t.Errorf("Statfs(unknown) = %v", e)
	}
}

func TestAccessAlgorithm(t *testing.T) {
	const R, W, X = unix.R_OK, unix.W_OK, unix.X_OK
	tests := []struct {
		mode, fuid, fgid, uid, gid, mask uint32
		want                             unix.Errno
	}{
		{0o000, 1, 1, 2, 2, 0, 0}, // F_OK
		{0o000, 1, 1, 0, 0, R | W, 0},
		{0o000, 1, 1, 0, 0, X, unix.EACCES}, // root needs an x bit
		{0o001, 1, 1, 0, 0, X, 0},
		{0o400, 1, 1, 1, 9, R, 0},
		{0o400, 1, 1, 2, 1, R, unix.EACCES}, // group bit not set
		{0o040, 1, 1, 2, 1, R, 0},
		{0o004, 1, 1, 2, 2, R, 0},
		{0o600, 1, 1, 1, 1, R | W, 0},
		{0o400, 1, 1, 1, 1, R | W, unix.EACCES},
		{0o020, 1, 5, 2, 5, W, 0},
		{0o002, 1, 1, 2, 2, W, 0},
		{0o100, 1, 1, 1, 1, X, 0},
		{0o010, 1, 3, 2, 3, X, 0},
		{0o010, 1, 3, 2, 4, X, unix.EACCES},
		{0o001, 1, 1, 2, 2, X, 0},
		{0o006, 1, 1, 1, 1, R, 0}, // owner without owner bits still gets "other"
		{0o755, 1, 1, 2, 2, W, unix.EACCES},
		{0o755, 1, 1, 2, 2, 8 | R, 0}, // unknown bits ignored
	}
	for _, tc := range tests {
		if got := accessCheck(tc.mode, tc.fuid, tc.fgid, tc.uid, tc.gid, tc.mask); got != tc.want {
			t.Errorf("access(mode %o owner %d:%d, guest %d:%d, mask %d) = %v, want %v",
				tc.mode, tc.fuid, tc.fgid, tc.uid, tc.gid, tc.mask, got, tc.want)
		}
	}
	// And through the FS.
	fs, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "")
	os.Chmod(join(dir, "f"), 0o640)
	os.Chown(join(dir, "f"), 100, 200)
	id := mustLookup(t, fs, RootID, "f").NodeID
	if e := fs.Access(&fuse.Context{UID: 300, GID: 200}, id, R); e != 0 {
		t.Errorf("Access(group read) = %v", e)
	}
	if e := fs.Access(&fuse.Context{UID: 300, GID: 200}, id, W); e != unix.EACCES {
		t.Errorf("Access(group write) = %v, want EACCES", e)
	}
	if e := fs.Access(&fuse.Context{UID: 100, GID: 1}, id, R|W); e != 0 {
		t.Errorf("Access(owner rw) = %v", e)
	}
	if e := fs.Access(root, 77, R); e != unix.EBADF {
		t.Errorf("Access(unknown) = %v", e)
	}
}

func TestUnknownNodeEBADF(t *testing.T) {
	fs, _ := newTestFS(t, nil)
	const bad = 9999
	var eo fuse.EntryOut
	var oo fuse.OpenOut
	buf := make([]byte, 16)
	_, rl := fs.Readlink(root, bad, buf)
	checks := map[string]unix.Errno{
		"Lookup":   fs.Lookup(root, bad, nm("x"), &eo),
		"Mkdir":    fs.Mkdir(root, bad, nm("x"), &fuse.MkdirIn{Mode: 0o755}, &eo),
		"Mknod":    fs.Mknod(root, bad, nm("x"), &fuse.MknodIn{Mode: unix.S_IFREG}, &eo),
		"Symlink":  fs.Symlink(root, bad, nm("x"), []byte("t\x00"), &eo),
		"Unlink":   fs.Unlink(root, bad, nm("x")),
		"Rmdir":    fs.Rmdir(root, bad, nm("x")),
		"Rename":   fs.Rename(root, bad, nm("x"), RootID, nm("y"), 0),
		"Rename2":  fs.Rename(root, RootID, nm("x"), bad, nm("y"), 0),
		"Link":     fs.Link(root, bad, RootID, nm("y"), &eo),
		"Link2":    fs.Link(root, RootID, bad, nm("y"), &eo),
		"Open":     fs.Open(root, bad, &fuse.OpenIn{}, &oo),
		"Opendir":  fs.Opendir(root, bad, &fuse.OpenIn{}, &oo),
		"Readlink": rl,
	}
	for name, e := range checks {
		if e != unix.EBADF {
			t.Errorf("%s(unknown node) = %v, want EBADF", name, e)
		}
	}
}
