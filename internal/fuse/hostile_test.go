package fuse

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// header builds a bare in-header with an arbitrary len field.
func header(opc Opcode, length uint32) []byte {
	return enc(InHeader{Len: length, Opcode: opc, Unique: testUnique, NodeID: 1, UID: testUID, GID: testGID, PID: testPID})
}

func TestHostileRequests(t *testing.T) {
	long := strings.Repeat("n", 256)
	cases := []tcase{
		{name: "truncated header", req: request(FUSE_GETATTR, 1, GetattrIn{})[:39]},
		{name: "empty request", req: []byte{}},
		{name: "len beyond the limit", req: header(FUSE_WRITE, MaxRequestLen+1), reply: errReply(unix.ENOMEM)},
		{name: "len beyond the limit, unknown opcode", req: header(9999, MaxRequestLen+1), reply: errReply(unix.ENOMEM)},
		{name: "len shorter than the header", req: header(FUSE_STATFS, 39), reply: errReply(unix.EINVAL)},
		{name: "len beyond the buffers", req: append(header(FUSE_GETATTR, 40+16+1), make([]byte, 16)...), reply: errReply(unix.EINVAL)},
		{name: "truncated getattr body", req: request(FUSE_GETATTR, 1, uint64(0)), reply: errReply(unix.EINVAL)},
		{name: "truncated setattr body", req: request(FUSE_SETATTR, 1, make([]byte, 87)), reply: errReply(unix.EINVAL)},
		{name: "truncated read body", req: request(FUSE_READ, 1, make([]byte, 39)), reply: errReply(unix.EINVAL)},
		{name: "truncated write body", req: request(FUSE_WRITE, 1, make([]byte, 39)), reply: errReply(unix.EINVAL)},
		{name: "truncated create body", req: request(FUSE_CREATE, 1, make([]byte, 15)), reply: errReply(unix.EINVAL)},
		{name: "truncated fallocate body", req: request(FUSE_FALLOCATE, 1, make([]byte, 31)), reply: errReply(unix.EINVAL)},
		{name: "truncated lseek body", req: request(FUSE_LSEEK, 1, make([]byte, 23)), reply: errReply(unix.EINVAL)},
		{name: "truncated copy_file_range body", req: request(FUSE_COPY_FILE_RANGE, 1, make([]byte, 55)), reply: errReply(unix.EINVAL)},
		{name: "truncated forget body", req: request(FUSE_FORGET, 1, uint32(1)), noOut: true},
		{name: "truncated init body", req: request(FUSE_INIT, 0, uint32(7), uint32(38)), reply: errReply(unix.EINVAL)},
		{name: "lookup without NUL", req: request(FUSE_LOOKUP, 1, "foo"), reply: errReply(unix.EINVAL)},
		{name: "lookup empty body", req: request(FUSE_LOOKUP, 1), reply: errReply(unix.EINVAL)},
		{name: "lookup interior NUL", req: request(FUSE_LOOKUP, 1, "fo\x00o\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup two NULs", req: request(FUSE_LOOKUP, 1, "foo\x00\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup empty name", req: request(FUSE_LOOKUP, 1, "\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup dot", req: request(FUSE_LOOKUP, 1, ".\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup dotdot", req: request(FUSE_LOOKUP, 1, "..\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup slash", req: request(FUSE_LOOKUP, 1, "a/b\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup absolute", req: request(FUSE_LOOKUP, 1, "/etc\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup dotdot slash", req: request(FUSE_LOOKUP, 1, "../x\x00"), reply: errReply(unix.EINVAL)},
		{name: "lookup 256 bytes", req: request(FUSE_LOOKUP, 1, long+"\x00"), reply: errReply(unix.ENAMETOOLONG)},
		{name: "mkdir name without NUL", req: request(FUSE_MKDIR, 1, MkdirIn{}, "dir"), reply: errReply(unix.EINVAL)},
		{name: "mkdir dotdot", req: request(FUSE_MKDIR, 1, MkdirIn{}, "..\x00"), reply: errReply(unix.EINVAL)},
		{name: "mknod slash", req: request(FUSE_MKNOD, 1, MknodIn{}, "x/y\x00"), reply: errReply(unix.EINVAL)},
		{name: "create dot", req: request(FUSE_CREATE, 1, CreateIn{}, ".\x00"), reply: errReply(unix.EINVAL)},
		{name: "symlink name slash", req: request(FUSE_SYMLINK, 1, "a/b\x00t\x00"), reply: errReply(unix.EINVAL)},
		{name: "symlink without target", req: request(FUSE_SYMLINK, 1, "a\x00"), reply: errReply(unix.EINVAL)},
		{name: "symlink target without NUL", req: request(FUSE_SYMLINK, 1, "a\x00target"), reply: errReply(unix.EINVAL)},
		{name: "unlink dotdot", req: request(FUSE_UNLINK, 1, "..\x00"), reply: errReply(unix.EINVAL)},
		{name: "rmdir slash", req: request(FUSE_RMDIR, 1, "/\x00"), reply: errReply(unix.EINVAL)},
		{name: "rename old dotdot", req: request(FUSE_RENAME, 1, RenameIn{Newdir: 1}, "..\x00b\x00"), reply: errReply(unix.EINVAL)},
		{name: "rename new slash", req: request(FUSE_RENAME, 1, RenameIn{Newdir: 1}, "a\x00../b\x00"), reply: errReply(unix.EINVAL)},
		{name: "rename one name", req: request(FUSE_RENAME, 1, RenameIn{Newdir: 1}, "a\x00"), reply: errReply(unix.EINVAL)},
		{name: "rename new without NUL", req: request(FUSE_RENAME, 1, RenameIn{Newdir: 1}, "a\x00b"), reply: errReply(unix.EINVAL)},
		{name: "rename2 too long", req: request(FUSE_RENAME2, 1, Rename2In{Newdir: 1}, "a\x00"+long+"\x00"), reply: errReply(unix.ENAMETOOLONG)},
		{name: "link dot", req: request(FUSE_LINK, 1, LinkIn{OldNodeID: 2}, ".\x00"), reply: errReply(unix.EINVAL)},
		{name: "link missing name", req: request(FUSE_LINK, 1, LinkIn{OldNodeID: 2}), reply: errReply(unix.EINVAL)},
		// Reply buffers too small: the request is not executed.
		{name: "lookup out holds only a header", req: request(FUSE_LOOKUP, 1, "foo\x00"), out: 16 + 127, reply: errReply(unix.EINVAL)},
		{name: "lookup out smaller than a header", req: request(FUSE_LOOKUP, 1, "foo\x00"), out: 15},
		{name: "lookup no out", req: request(FUSE_LOOKUP, 1, "foo\x00"), noOut: true},
		{name: "unlink no out", req: request(FUSE_UNLINK, 1, "foo\x00"), noOut: true},
		{name: "create out too small", req: request(FUSE_CREATE, 1, CreateIn{}, "foo\x00"), out: 16 + 128 + 15, reply: errReply(unix.EINVAL)},
		{name: "init out too small", req: request(FUSE_INIT, 0, InitIn{Major: 7, Minor: 38}), out: 16 + 63, reply: errReply(unix.EINVAL)},
		{name: "statfs out too small", req: request(FUSE_STATFS, 1), out: 16 + 79, reply: errReply(unix.EINVAL)},
		{name: "lseek out too small", req: request(FUSE_LSEEK, 1, LseekIn{}), out: 16 + 7, reply: errReply(unix.EINVAL)},
		{name: "copy_file_range out too small", req: request(FUSE_COPY_FILE_RANGE, 1, CopyFileRangeIn{}), out: 16 + 7, reply: errReply(unix.EINVAL)},
		{name: "getattr out too small", req: request(FUSE_GETATTR, 1, GetattrIn{}), out: 16 + 103, reply: errReply(unix.EINVAL)},
	}
	for _, opc := range []Opcode{0, 7, 19,
		FUSE_GETLK, FUSE_SETLK, FUSE_SETLKW, FUSE_BMAP, FUSE_IOCTL, FUSE_POLL, FUSE_NOTIFY_REPLY,
		FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING, FUSE_TMPFILE, FUSE_STATX, 53, 1000, CUSE_INIT, 0xffffffff} {
		cases = append(cases, tcase{name: "enosys " + opc.String(), req: request(opc, 1, make([]byte, 64)), reply: errReply(unix.ENOSYS)})
	}
	runCases(t, cases)
}

func TestMalformedRequestsAreLogged(t *testing.T) {
	log, buf := captureLog()
	s := NewServerWithOptions(newFakeFS(), Options{Log: log})
	out := make([]byte, 256)
	if n := s.NewWorker().Serve([][]byte{request(FUSE_LOOKUP, 1, "a/b\x00")}, [][]byte{out}); n != 16 {
		t.Fatalf("Serve() = %d, want 16", n)
	}
	if n := s.NewWorker().Serve([][]byte{make([]byte, 10)}, [][]byte{out}); n != 0 {
		t.Fatalf("Serve(truncated header) = %d, want 0", n)
	}
	for _, want := range []string{"bad name", "truncated header"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log does not mention %q:\n%s", want, buf.String())
		}
	}
}

func TestLogRateLimit(t *testing.T) {
	log, buf := captureLog()
	s := NewServerWithOptions(newFakeFS(), Options{Log: log})
	w := s.NewWorker()
	for range 1000 {
		w.Serve([][]byte{make([]byte, 10)}, nil)
	}
	if n := strings.Count(buf.String(), "truncated header"); n != logBurst {
		t.Errorf("1000 bad requests logged %d lines, want %d", n, logBurst)
	}
}

func TestPanicBecomesEIO(t *testing.T) {
	log, buf := captureLog()
	f := newFakeFS()
	f.panicMsg = "boom"
	s := NewServerWithOptions(f, Options{Log: log})
	w := s.NewWorker()
	out := make([]byte, 256)
	n := w.Serve([][]byte{request(FUSE_GETATTR, 1, GetattrIn{})}, [][]byte{out})
	if got, want := string(out[:n]), string(errReply(unix.EIO)); got != want {
		t.Errorf("reply after a panic = %x, want %x", got, want)
	}
	if !strings.Contains(buf.String(), "boom") || !strings.Contains(buf.String(), "goroutine") {
		t.Errorf("log lacks the panic value and stack:\n%s", buf.String())
	}
	// A no-reply request that panics completes with 0.
	if n := w.Serve([][]byte{request(FUSE_FORGET, 1, ForgetIn{Nlookup: 1})}, [][]byte{out}); n != 0 {
		t.Errorf("Serve(FORGET that panics) = %d, want 0", n)
	}
	// The Worker keeps serving.
	f.panicMsg = ""
	n = w.Serve([][]byte{request(FUSE_GETATTR, 1, GetattrIn{})}, [][]byte{out})
	if n != 16+104 {
		t.Errorf("Serve after a panic = %d, want %d", n, 16+104)
	}
}

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		name string
		want unix.Errno
	}{
		{"a", 0}, {"...", 0}, {".a", 0}, {"a.", 0}, {"..a", 0}, {strings.Repeat("x", 255), 0}, {"\xff\xfe", 0},
		{"", unix.EINVAL}, {".", unix.EINVAL}, {"..", unix.EINVAL}, {"/", unix.EINVAL}, {"a/", unix.EINVAL},
		{"/a", unix.EINVAL}, {strings.Repeat("x", 256), unix.ENAMETOOLONG},
	} {
		if got := checkName([]byte(c.name + "\x00")); got != c.want {
			t.Errorf("checkName(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOpcodeString(t *testing.T) {
	for _, c := range []struct {
		op   Opcode
		want string
	}{{FUSE_LOOKUP, "LOOKUP"}, {FUSE_STATX, "STATX"}, {CUSE_INIT, "CUSE_INIT"}, {7, "OPCODE_7"}, {99, "OPCODE_99"}} {
		if got := c.op.String(); got != c.want {
			t.Errorf("Opcode(%d).String() = %q, want %q", uint32(c.op), got, c.want)
		}
	}
}
