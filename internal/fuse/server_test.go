package fuse

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tcase is one request fed to a fresh Server and fakeFS.
type tcase struct {
	name  string
	setup func(f *fakeFS, s *Server)
	req   []byte
	out   int // writable capacity; 0 means 8192
	noOut bool
	// calls are the expected FileSystem calls; the context of the test
	// request is written as %c.
	calls []string
	reply []byte // nil: expect n == 0
	check func(t *testing.T, f *fakeFS, s *Server)
}

// splits are the (in, out) buffer sizes each case runs with: whole
// buffers, one byte per buffer, and awkward sizes that cut through every
// structure.
var splits = [][2]int{{0, 0}, {1, 1}, {3, 5}, {7, 0}, {41, 17}, {0, 1}, {1, 0}, {-3, -5}, {-40, -16}}

const guard = 0xA5

const ctxStr = "uid=1000 gid=1001 pid=4242"

// serveOnce runs req through a fresh Server with the given splits and
// returns the reply bytes and the fake.
func serveOnce(t *testing.T, c *tcase, inSplit, outSplit int) ([]byte, *fakeFS, *Server) {
	t.Helper()
	f := newFakeFS()
	s := NewServerWithOptions(f, Options{Log: quietLog()})
	if c.setup != nil {
		c.setup(f, s)
	}
	f.calls = nil
	capacity := c.out
	if capacity == 0 && !c.noOut {
		capacity = 8192
	}
	mem := bytes.Repeat([]byte{guard}, capacity+64)
	out := mem[32 : 32+capacity]
	req := slices.Clone(c.req)
	var outBufs [][]byte
	if capacity > 0 {
		outBufs = split(out, outSplit)
	}
	n := s.NewWorker().Serve(split(req, inSplit), outBufs)
	if int(n) > capacity {
		t.Fatalf("Serve() = %d, more than the capacity %d", n, capacity)
	}
	for i, b := range mem[:32] {
		if b != guard {
			t.Fatalf("byte %d before the out buffer was written", i)
		}
	}
	for i, b := range mem[32+capacity:] {
		if b != guard {
			t.Fatalf("byte %d after the out buffer was written", i)
		}
	}
	if !bytes.Equal(req, c.req) {
		t.Fatalf("Serve modified the request buffers")
	}
	for i, b := range out[n:] {
		if b != guard {
			t.Fatalf("out byte %d beyond the reply length %d was written", int(n)+i, n)
		}
	}
	return out[:n], f, s
}

func runCases(t *testing.T, cases []tcase) {
	t.Helper()
	for i := range cases {
		c := &cases[i]
		t.Run(c.name, func(t *testing.T) {
			for _, sp := range splits {
				got, f, s := serveOnce(t, c, sp[0], sp[1])
				want := c.reply
				if !bytes.Equal(got, want) {
					t.Fatalf("split %v: reply\n got %x\nwant %x", sp, got, want)
				}
				wantCalls := make([]string, len(c.calls))
				for i, s := range c.calls {
					wantCalls[i] = strings.ReplaceAll(s, "%c", ctxStr)
				}
				if !slices.Equal(f.calls, wantCalls) {
					t.Fatalf("split %v: calls\n got %q\nwant %q", sp, f.calls, wantCalls)
				}
				if c.check != nil {
					c.check(t, f, s)
				}
			}
		})
	}
}

// testEntry is the EntryOut the fake fills in (NodeID/Ino per call).
var testEntry = EntryOut{Generation: 7, EntryValid: 1, AttrValid: 2, EntryValidNsec: 3, AttrValidNsec: 4,
	Attr: Attr{Size: 10, Blocks: 1, Atime: 11, Mtime: 12, Ctime: 13, Atimensec: 14, Mtimensec: 15, Ctimensec: 16,
		Mode: unix.S_IFREG | 0o644, Nlink: 1, UID: 1000, GID: 1001, Rdev: 0, Blksize: 4096, Flags: 0}}

func entryFor(node uint64) EntryOut {
	e := testEntry
	e.NodeID = node
	e.Attr.Ino = node
	return e
}

var testAttr = AttrOut{AttrValid: 9, AttrValidNsec: 8, Attr: Attr{Ino: 5, Size: 1 << 40, Mode: unix.S_IFDIR | 0o755, Nlink: 2, UID: 1, GID: 2, Blksize: 512}}

var testOpen = OpenOut{Fh: 0x0102030405060708, OpenFlags: FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR}

func withEntry(f *fakeFS, _ *Server) { f.entry = testEntry }

func TestEntryOps(t *testing.T) {
	sa := SetattrIn{Valid: FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME | FATTR_MTIME_NOW | FATTR_FH,
		Fh: 3, Size: 4096, Atime: 100, Atimensec: 5, Mode: 0o600, UID: 7, GID: 8}
	runCases(t, []tcase{
		{name: "lookup", setup: withEntry, req: request(FUSE_LOOKUP, 1, "foo\x00"),
			calls: []string{`Lookup %c parent=1 name="foo"`}, reply: reply(entryFor(100))},
		{name: "lookup 255 bytes", setup: withEntry, req: request(FUSE_LOOKUP, 1, strings.Repeat("x", 255)+"\x00"),
			calls: []string{`Lookup %c parent=1 name="` + strings.Repeat("x", 255) + `"`}, reply: reply(entryFor(100))},
		{name: "lookup error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.ENOENT }, req: request(FUSE_LOOKUP, 1, "foo\x00"),
			calls: []string{`Lookup %c parent=1 name="foo"`}, reply: errReply(unix.ENOENT)},
		{name: "getattr", setup: func(f *fakeFS, _ *Server) { f.attr = testAttr },
			req:   request(FUSE_GETATTR, 5, GetattrIn{GetattrFlags: FUSE_GETATTR_FH, Fh: 9}),
			calls: []string{`Getattr %c node=5`}, reply: reply(testAttr)},
		{name: "setattr", setup: func(f *fakeFS, _ *Server) { f.attr = testAttr },
			req:   request(FUSE_SETATTR, 5, sa),
			calls: []string{fmt.Sprintf("Setattr %%c node=5 in=%+v", sa)}, reply: reply(testAttr)},
		{name: "symlink", setup: withEntry, req: request(FUSE_SYMLINK, 2, "ln\x00../target\x00"),
			calls: []string{`Symlink %c parent=2 name="ln" target="../target\x00"`}, reply: reply(entryFor(100))},
		{name: "mknod", setup: withEntry, req: request(FUSE_MKNOD, 2, MknodIn{Mode: unix.S_IFIFO | 0o644, Rdev: 0x0801, Umask: 0o22}, "fifo\x00"),
			calls: []string{fmt.Sprintf("Mknod %%c parent=2 name=\"fifo\" in=%+v", MknodIn{Mode: unix.S_IFIFO | 0o644, Rdev: 0x0801, Umask: 0o22})},
			reply: reply(entryFor(100))},
		{name: "mkdir", setup: withEntry, req: request(FUSE_MKDIR, 2, MkdirIn{Mode: 0o755, Umask: 0o22}, "dir\x00"),
			calls: []string{fmt.Sprintf("Mkdir %%c parent=2 name=\"dir\" in=%+v", MkdirIn{Mode: 0o755, Umask: 0o22})},
			reply: reply(entryFor(100))},
		{name: "mkdir trailing bytes without extensions", setup: withEntry,
			req:   request(FUSE_MKDIR, 2, MkdirIn{Mode: 0o755}, "dir\x00garbage"),
			calls: []string{fmt.Sprintf("Mkdir %%c parent=2 name=\"dir\" in=%+v", MkdirIn{Mode: 0o755})},
			reply: reply(entryFor(100))},
		{name: "link", setup: withEntry, req: request(FUSE_LINK, 2, LinkIn{OldNodeID: 5}, "hard\x00"),
			calls: []string{`Link %c node=5 newparent=2 new="hard"`}, reply: reply(entryFor(100))},
		{name: "create", setup: func(f *fakeFS, _ *Server) { f.entry = testEntry; f.open = testOpen },
			req: request(FUSE_CREATE, 2, CreateIn{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o644, Umask: 0o22, OpenFlags: FUSE_OPEN_KILL_SUIDGID}, "new\x00"),
			calls: []string{fmt.Sprintf("Create %%c parent=2 name=\"new\" in=%+v",
				CreateIn{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o644, Umask: 0o22, OpenFlags: FUSE_OPEN_KILL_SUIDGID})},
			reply: reply(entryFor(100), testOpen)},
		{name: "create error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.EEXIST },
			req:   request(FUSE_CREATE, 2, CreateIn{Flags: unix.O_CREAT}, "new\x00"),
			calls: []string{fmt.Sprintf("Create %%c parent=2 name=\"new\" in=%+v", CreateIn{Flags: unix.O_CREAT})},
			reply: errReply(unix.EEXIST)},
	})
}

func TestSimpleOps(t *testing.T) {
	rel := ReleaseIn{Fh: 3, Flags: unix.O_RDWR, ReleaseFlags: FUSE_RELEASE_FLUSH, LockOwner: 99}
	fl := FlushIn{Fh: 3, LockOwner: 98}
	fs := FsyncIn{Fh: 3, FsyncFlags: FUSE_FSYNC_FDATASYNC}
	st := StatfsOut{Blocks: 1, Bfree: 2, Bavail: 3, Files: 4, Ffree: 5, Bsize: 4096, Namelen: 255, Frsize: 4096}
	runCases(t, []tcase{
		{name: "forget", req: request(FUSE_FORGET, 5, ForgetIn{Nlookup: 3}), noOut: true,
			calls: []string{"Forget node=5 n=3"}},
		{name: "forget with a writable buffer", req: request(FUSE_FORGET, 5, ForgetIn{Nlookup: 3}),
			calls: []string{"Forget node=5 n=3"}},
		{name: "batch forget", req: request(FUSE_BATCH_FORGET, 0, BatchForgetIn{Count: 2}, ForgetOne{NodeID: 5, Nlookup: 1}, ForgetOne{NodeID: 6, Nlookup: 7}),
			noOut: true, calls: []string{"Forget node=5 n=1", "Forget node=6 n=7"}},
		{name: "batch forget count too big", req: request(FUSE_BATCH_FORGET, 0, BatchForgetIn{Count: 3}, ForgetOne{NodeID: 5, Nlookup: 1}, ForgetOne{NodeID: 6, Nlookup: 7}),
			noOut: true},
		{name: "batch forget huge count", req: request(FUSE_BATCH_FORGET, 0, BatchForgetIn{Count: 0xffffffff}), noOut: true},
		{name: "readlink", setup: func(f *fakeFS, _ *Server) { f.link = "some/where" }, req: request(FUSE_READLINK, 4),
			calls: []string{"Readlink %c node=4 buf=4096"}, reply: reply("some/where")},
		{name: "readlink reply too big", setup: func(f *fakeFS, _ *Server) { f.link = "some/where" }, req: request(FUSE_READLINK, 4),
			out: 20, calls: []string{"Readlink %c node=4 buf=4096"}, reply: errReply(unix.EINVAL)},
		{name: "unlink", req: request(FUSE_UNLINK, 2, "gone\x00"), calls: []string{`Unlink %c parent=2 name="gone"`}, reply: reply()},
		{name: "unlink error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.EISDIR }, req: request(FUSE_UNLINK, 2, "gone\x00"),
			calls: []string{`Unlink %c parent=2 name="gone"`}, reply: errReply(unix.EISDIR)},
		{name: "rmdir", req: request(FUSE_RMDIR, 2, "d\x00"), calls: []string{`Rmdir %c parent=2 name="d"`}, reply: reply()},
		{name: "rename", req: request(FUSE_RENAME, 2, RenameIn{Newdir: 7}, "a\x00bb\x00"),
			calls: []string{`Rename %c olddir=2 old="a" newdir=7 new="bb" flags=0`}, reply: reply()},
		{name: "rename2 masks flags", req: request(FUSE_RENAME2, 2, Rename2In{Newdir: 7, Flags: 0xffffffff}, "a\x00bb\x00"),
			calls: []string{`Rename %c olddir=2 old="a" newdir=7 new="bb" flags=7`}, reply: reply()},
		{name: "rename2 exchange", req: request(FUSE_RENAME2, 2, Rename2In{Newdir: 2, Flags: unix.RENAME_EXCHANGE}, "a\x00b\x00"),
			calls: []string{`Rename %c olddir=2 old="a" newdir=2 new="b" flags=2`}, reply: reply()},
		{name: "open", setup: func(f *fakeFS, _ *Server) { f.open = testOpen }, req: request(FUSE_OPEN, 4, OpenIn{Flags: unix.O_RDWR, OpenFlags: FUSE_OPEN_KILL_SUIDGID}),
			calls: []string{fmt.Sprintf("Open %%c node=4 in=%+v", OpenIn{Flags: unix.O_RDWR, OpenFlags: FUSE_OPEN_KILL_SUIDGID})}, reply: reply(testOpen)},
		{name: "opendir", setup: func(f *fakeFS, _ *Server) { f.open = testOpen }, req: request(FUSE_OPENDIR, 4, OpenIn{Flags: unix.O_RDONLY}),
			calls: []string{fmt.Sprintf("Opendir %%c node=4 in=%+v", OpenIn{Flags: unix.O_RDONLY})}, reply: reply(testOpen)},
		{name: "statfs", setup: func(f *fakeFS, _ *Server) { f.statfs = st }, req: request(FUSE_STATFS, 1),
			calls: []string{"Statfs %c node=1"}, reply: reply(st)},
		{name: "release", req: request(FUSE_RELEASE, 4, rel), calls: []string{fmt.Sprintf("Release %%c node=4 in=%+v", rel)}, reply: reply()},
		{name: "releasedir", req: request(FUSE_RELEASEDIR, 4, rel), calls: []string{fmt.Sprintf("Releasedir %%c node=4 in=%+v", rel)}, reply: reply()},
		{name: "flush", req: request(FUSE_FLUSH, 4, fl), calls: []string{fmt.Sprintf("Flush %%c node=4 in=%+v", fl)}, reply: reply()},
		{name: "fsync", req: request(FUSE_FSYNC, 4, fs), calls: []string{fmt.Sprintf("Fsync %%c node=4 in=%+v", fs)}, reply: reply()},
		{name: "fsyncdir", req: request(FUSE_FSYNCDIR, 4, fs), calls: []string{fmt.Sprintf("Fsyncdir %%c node=4 in=%+v", fs)}, reply: reply()},
		{name: "fsync error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.EBADF }, req: request(FUSE_FSYNC, 4, fs),
			calls: []string{fmt.Sprintf("Fsync %%c node=4 in=%+v", fs)}, reply: errReply(unix.EBADF)},
		{name: "access", req: request(FUSE_ACCESS, 4, AccessIn{Mask: unix.W_OK | unix.X_OK}), calls: []string{"Access %c node=4 mask=3"}, reply: reply()},
		{name: "interrupt", req: request(FUSE_INTERRUPT, 0, uint64(testUnique)), noOut: true},
		{name: "destroy", setup: func(_ *fakeFS, s *Server) { s.SetNegotiated(FUSE_ASYNC_READ) },
			req: request(FUSE_DESTROY, 0), noOut: true, calls: []string{"Destroy"},
			check: func(t *testing.T, _ *fakeFS, s *Server) {
				if got := s.Negotiated(); got != 0 {
					t.Errorf("Negotiated() after DESTROY = %#x, want 0", got)
				}
			}},
	})
}

func TestReadWrite(t *testing.T) {
	data := func(f *fakeFS, _ *Server) { f.readData = []byte("0123456789") }
	runCases(t, []tcase{
		{name: "read", setup: data, req: request(FUSE_READ, 4, ReadIn{Fh: 3, Offset: 2, Size: 5}),
			calls: []string{"Read %c node=4 fh=3 off=2 size=5 iov=*"}, reply: reply("23456")},
		{name: "read at eof", setup: data, req: request(FUSE_READ, 4, ReadIn{Fh: 3, Offset: 8, Size: 5}),
			calls: []string{"Read %c node=4 fh=3 off=8 size=5 iov=*"}, reply: reply("89")},
		{name: "read trimmed to the out buffers", setup: data, req: request(FUSE_READ, 4, ReadIn{Fh: 3, Offset: 0, Size: 100}),
			out: 16 + 3, calls: []string{"Read %c node=4 fh=3 off=0 size=3 iov=*"}, reply: reply("012")},
		{name: "read out buffers hold only the header", setup: data, req: request(FUSE_READ, 4, ReadIn{Fh: 3, Size: 100}),
			out: 16, calls: []string{"Read %c node=4 fh=3 off=0 size=0 iov=*"}, reply: reply()},
		{name: "read no room for a header", setup: data, req: request(FUSE_READ, 4, ReadIn{Fh: 3, Size: 100}), out: 15},
		{name: "read error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.EBADF }, req: request(FUSE_READ, 4, ReadIn{Fh: 3, Size: 4}),
			calls: []string{"Read %c node=4 fh=3 off=0 size=4 iov=*"}, reply: errReply(unix.EBADF)},
		{name: "read bad count from file system", setup: func(f *fakeFS, _ *Server) { f.useRet = true; f.readRet = 5 },
			req: request(FUSE_READ, 4, ReadIn{Fh: 3, Size: 4}), calls: []string{"Read %c node=4 fh=3 off=0 size=4 iov=*"}, reply: errReply(unix.EIO)},
		{name: "write", req: request(FUSE_WRITE, 4, WriteIn{Fh: 3, Offset: 7, Size: 5, WriteFlags: FUSE_WRITE_CACHE, Flags: unix.O_APPEND}, "hello"),
			calls: []string{`Write %c node=4 fh=3 off=7 size=5 flags=0x400 wflags=1 data="hello"`}, reply: reply(WriteOut{Size: 5})},
		{name: "write ignores bytes beyond size", req: request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 5}, "helloEXTRA"),
			calls: []string{`Write %c node=4 fh=3 off=0 size=5 flags=0x0 wflags=0 data="hello"`}, reply: reply(WriteOut{Size: 5})},
		{name: "write short data", req: request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 10}, "hello"), reply: errReply(unix.EINVAL)},
		{name: "write zero bytes", req: request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 0}),
			calls: []string{`Write %c node=4 fh=3 off=0 size=0 flags=0x0 wflags=0 data=""`}, reply: reply(WriteOut{Size: 0})},
		{name: "write short count", setup: func(f *fakeFS, _ *Server) { f.useRet = true; f.writeRet = 2 },
			req:   request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 5}, "hello"),
			calls: []string{`Write %c node=4 fh=3 off=0 size=5 flags=0x0 wflags=0 data="hello"`}, reply: reply(WriteOut{Size: 2})},
		{name: "write bad count from file system", setup: func(f *fakeFS, _ *Server) { f.useRet = true; f.writeRet = 6 },
			req:   request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 5}, "hello"),
			calls: []string{`Write %c node=4 fh=3 off=0 size=5 flags=0x0 wflags=0 data="hello"`}, reply: errReply(unix.EIO)},
		{name: "write error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.ENOSPC },
			req:   request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 5}, "hello"),
			calls: []string{`Write %c node=4 fh=3 off=0 size=5 flags=0x0 wflags=0 data="hello"`}, reply: errReply(unix.ENOSPC)},
		{name: "write reply does not fit", req: request(FUSE_WRITE, 4, WriteIn{Fh: 3, Size: 5}, "hello"), out: 23, reply: errReply(unix.EINVAL)},
	})
}

func TestFileRangeOps(t *testing.T) {
	fa := FallocateIn{Fh: 3, Offset: 4096, Length: 1 << 20, Mode: unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE}
	sd := LseekIn{Fh: 3, Offset: 100, Whence: unix.SEEK_DATA}
	sh := LseekIn{Fh: 3, Offset: 1 << 40, Whence: unix.SEEK_HOLE}
	cp := CopyFileRangeIn{FhIn: 3, OffIn: 10, NodeIDOut: 9, FhOut: 8, OffOut: 20, Len: 100, Flags: 0xdeadbeef00000001}
	big := CopyFileRangeIn{FhIn: 3, NodeIDOut: 4, FhOut: 3, Len: 1 << 33}
	copied := func(n int) func(f *fakeFS, _ *Server) { return func(f *fakeFS, _ *Server) { f.copied = n } }
	fail := func(e unix.Errno) func(f *fakeFS, _ *Server) { return func(f *fakeFS, _ *Server) { f.errno = e } }
	runCases(t, []tcase{
		{name: "fallocate", req: request(FUSE_FALLOCATE, 4, fa),
			calls: []string{fmt.Sprintf("Fallocate %%c node=4 in=%+v", fa)}, reply: reply()},
		{name: "fallocate ignores trailing bytes", req: request(FUSE_FALLOCATE, 4, fa, "junk"),
			calls: []string{fmt.Sprintf("Fallocate %%c node=4 in=%+v", fa)}, reply: reply()},
		{name: "fallocate error", setup: fail(unix.EOPNOTSUPP), req: request(FUSE_FALLOCATE, 4, fa),
			calls: []string{fmt.Sprintf("Fallocate %%c node=4 in=%+v", fa)}, reply: errReply(unix.EOPNOTSUPP)},
		{name: "fallocate not executed without room for a reply", req: request(FUSE_FALLOCATE, 4, fa), out: 15},
		{name: "lseek data", setup: func(f *fakeFS, _ *Server) { f.seekOff = 8192 }, req: request(FUSE_LSEEK, 4, sd),
			calls: []string{fmt.Sprintf("Lseek %%c node=4 in=%+v", sd)}, reply: reply(LseekOut{Offset: 8192})},
		{name: "lseek hole", setup: func(f *fakeFS, _ *Server) { f.seekOff = 1<<40 + 4096 }, req: request(FUSE_LSEEK, 4, sh),
			calls: []string{fmt.Sprintf("Lseek %%c node=4 in=%+v", sh)}, reply: reply(LseekOut{Offset: 1<<40 + 4096})},
		{name: "lseek error", setup: fail(unix.ENXIO), req: request(FUSE_LSEEK, 4, sd),
			calls: []string{fmt.Sprintf("Lseek %%c node=4 in=%+v", sd)}, reply: errReply(unix.ENXIO)},
		{name: "lseek reply fits exactly", setup: func(f *fakeFS, _ *Server) { f.seekOff = 1 }, req: request(FUSE_LSEEK, 4, sd), out: 24,
			calls: []string{fmt.Sprintf("Lseek %%c node=4 in=%+v", sd)}, reply: reply(LseekOut{Offset: 1})},
		{name: "copy_file_range", setup: copied(100), req: request(FUSE_COPY_FILE_RANGE, 4, cp),
			calls: []string{fmt.Sprintf("CopyFileRange %%c node=4 in=%+v", cp)}, reply: reply(WriteOut{Size: 100})},
		{name: "copy_file_range short", setup: copied(7), req: request(FUSE_COPY_FILE_RANGE, 4, cp),
			calls: []string{fmt.Sprintf("CopyFileRange %%c node=4 in=%+v", cp)}, reply: reply(WriteOut{Size: 7})},
		{name: "copy_file_range count truncated to 32 bits", setup: copied(1<<32 + 5), req: request(FUSE_COPY_FILE_RANGE, 4, big),
			calls: []string{fmt.Sprintf("CopyFileRange %%c node=4 in=%+v", big)}, reply: reply(WriteOut{Size: 5})},
		{name: "copy_file_range count beyond len", setup: copied(101), req: request(FUSE_COPY_FILE_RANGE, 4, cp),
			calls: []string{fmt.Sprintf("CopyFileRange %%c node=4 in=%+v", cp)}, reply: errReply(unix.EIO)},
		{name: "copy_file_range negative count", setup: copied(-1), req: request(FUSE_COPY_FILE_RANGE, 4, cp),
			calls: []string{fmt.Sprintf("CopyFileRange %%c node=4 in=%+v", cp)}, reply: errReply(unix.EIO)},
		{name: "copy_file_range error", setup: fail(unix.EXDEV), req: request(FUSE_COPY_FILE_RANGE, 4, cp),
			calls: []string{fmt.Sprintf("CopyFileRange %%c node=4 in=%+v", cp)}, reply: errReply(unix.EXDEV)},
		{name: "syncfs", req: request(FUSE_SYNCFS, 5, uint64(0)), calls: []string{"Syncfs %c node=5"}, reply: reply()},
		{name: "syncfs without body", req: request(FUSE_SYNCFS, 5), calls: []string{"Syncfs %c node=5"}, reply: reply()},
		{name: "syncfs body not read", req: request(FUSE_SYNCFS, 5, make([]byte, 64)), calls: []string{"Syncfs %c node=5"}, reply: reply()},
		{name: "syncfs error", setup: fail(unix.EBADF), req: request(FUSE_SYNCFS, 5),
			calls: []string{"Syncfs %c node=5"}, reply: errReply(unix.EBADF)},
	})
}
