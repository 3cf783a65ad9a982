package fuse

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// compat returns the 8-byte fuse_setxattr_in of a session without
// FUSE_SETXATTR_EXT.
func (in SetxattrIn) compat() []byte { return enc(in)[:setxattrCompatSize] }

func withSetxattrExt(_ *fakeFS, s *Server) { s.SetNegotiated(FUSE_SETXATTR_EXT) }

func withXattr(v string) func(*fakeFS, *Server) {
	return func(f *fakeFS, _ *Server) { f.xattr = []byte(v) }
}

func TestXattrOps(t *testing.T) {
	ext := SetxattrIn{Size: 3, Flags: unix.XATTR_CREATE, SetxattrFlags: 1}
	compatIn := SetxattrIn{Size: 3, Flags: unix.XATTR_REPLACE}
	runCases(t, []tcase{
		// SETXATTR: the fixed part is 8 bytes unless SETXATTR_EXT was
		// negotiated.
		{name: "setxattr compat", req: request(FUSE_SETXATTR, 4, compatIn.compat(), "user.a/b.c\x00xyz"),
			calls: []string{fmt.Sprintf(`SetXattr %%c node=4 name="user.a/b.c\x00" value="xyz" in=%+v`, compatIn)}, reply: reply()},
		{name: "setxattr compat ignores a 16-byte struct", req: request(FUSE_SETXATTR, 4, ext, "n\x00xyz"), reply: errReply(unix.EINVAL)},
		{name: "setxattr ext", setup: withSetxattrExt, req: request(FUSE_SETXATTR, 4, ext, "user.x\x00xyz"),
			calls: []string{fmt.Sprintf(`SetXattr %%c node=4 name="user.x\x00" value="xyz" in=%+v`, ext)}, reply: reply()},
		{name: "setxattr ext with a compat struct", setup: withSetxattrExt, req: request(FUSE_SETXATTR, 4, compatIn.compat(), "user.x\x00xyz"),
			reply: errReply(unix.EINVAL)},
		{name: "setxattr ext truncated", setup: withSetxattrExt, req: request(FUSE_SETXATTR, 4, compatIn.compat(), "abc"),
			reply: errReply(unix.EINVAL)},
		{name: "setxattr empty value", req: request(FUSE_SETXATTR, 4, SetxattrIn{}.compat(), "user.x\x00"),
			calls: []string{fmt.Sprintf(`SetXattr %%c node=4 name="user.x\x00" value="" in=%+v`, SetxattrIn{})}, reply: reply()},
		{name: "setxattr value with NULs", req: request(FUSE_SETXATTR, 4, SetxattrIn{Size: 3}.compat(), "user.x\x00\x00a\x00"),
			calls: []string{fmt.Sprintf(`SetXattr %%c node=4 name="user.x\x00" value="\x00a\x00" in=%+v`, SetxattrIn{Size: 3})}, reply: reply()},
		{name: "setxattr size larger than the value", req: request(FUSE_SETXATTR, 4, SetxattrIn{Size: 4}.compat(), "user.x\x00xyz"),
			reply: errReply(unix.EINVAL)},
		{name: "setxattr size smaller than the value", req: request(FUSE_SETXATTR, 4, SetxattrIn{Size: 2}.compat(), "user.x\x00xyz"),
			reply: errReply(unix.EINVAL)},
		{name: "setxattr name without NUL", req: request(FUSE_SETXATTR, 4, SetxattrIn{}.compat(), "user.x"),
			reply: errReply(unix.EINVAL)},
		{name: "setxattr truncated", req: request(FUSE_SETXATTR, 4, uint32(0)), reply: errReply(unix.EINVAL)},
		{name: "setxattr error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.ENOSYS }, req: request(FUSE_SETXATTR, 4, compatIn.compat(), "n\x00xyz"),
			calls: []string{fmt.Sprintf(`SetXattr %%c node=4 name="n\x00" value="xyz" in=%+v`, compatIn)}, reply: errReply(unix.ENOSYS)},
		// A request whose reply cannot be delivered is not executed.
		{name: "setxattr no out", req: request(FUSE_SETXATTR, 4, compatIn.compat(), "n\x00xyz"), noOut: true},

		// GETXATTR.
		{name: "getxattr size", setup: withXattr("value"), req: request(FUSE_GETXATTR, 4, GetxattrIn{}, "user.x\x00"),
			calls: []string{`GetXattr %c node=4 name="user.x\x00" size=0`}, reply: reply(GetxattrOut{Size: 5})},
		{name: "getxattr value", setup: withXattr("value"), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 100}, "user.x\x00"),
			calls: []string{`GetXattr %c node=4 name="user.x\x00" size=100`}, reply: reply("value")},
		{name: "getxattr empty value", setup: withXattr(""), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 100}, "user.x\x00"),
			calls: []string{`GetXattr %c node=4 name="user.x\x00" size=100`}, reply: reply()},
		{name: "getxattr value too big", setup: withXattr("value"), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 4}, "user.x\x00"),
			calls: []string{`GetXattr %c node=4 name="user.x\x00" size=4`}, reply: errReply(unix.ERANGE)},
		{name: "getxattr 1 MiB", setup: withXattr("v"), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: MaxBufferSize}, "n\x00"),
			calls: []string{`GetXattr %c node=4 name="n\x00" size=1048576`}, reply: reply("v")},
		{name: "getxattr over 1 MiB", req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: MaxBufferSize + 1}, "n\x00"), reply: errReply(unix.ENOMEM)},
		{name: "getxattr odd name", setup: withXattr("v"), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 1}, "../x\x00"),
			calls: []string{`GetXattr %c node=4 name="../x\x00" size=1`}, reply: reply("v")},
		{name: "getxattr empty name", setup: withXattr("v"), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 1}, "\x00"),
			calls: []string{`GetXattr %c node=4 name="\x00" size=1`}, reply: reply("v")},
		{name: "getxattr name without NUL", req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 1}, "n"), reply: errReply(unix.EINVAL)},
		{name: "getxattr name with two NULs", req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 1}, "n\x00\x00"), reply: errReply(unix.EINVAL)},
		{name: "getxattr no name", req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 1}), reply: errReply(unix.EINVAL)},
		{name: "getxattr truncated", req: request(FUSE_GETXATTR, 4, uint32(1)), reply: errReply(unix.EINVAL)},
		{name: "getxattr error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.ENODATA }, req: request(FUSE_GETXATTR, 4, GetxattrIn{}, "n\x00"),
			calls: []string{`GetXattr %c node=4 name="n\x00" size=0`}, reply: errReply(unix.ENODATA)},
		{name: "getxattr size reply too small", req: request(FUSE_GETXATTR, 4, GetxattrIn{}, "n\x00"), out: 16 + 7, reply: errReply(unix.EINVAL)},
		{name: "getxattr value reply too small", setup: withXattr("value"), req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 10}, "n\x00"), out: 16 + 4,
			calls: []string{`GetXattr %c node=4 name="n\x00" size=10`}, reply: errReply(unix.EINVAL)},
		{name: "getxattr bad length from the file system", setup: func(f *fakeFS, _ *Server) { f.useRet, f.xattrRet = true, 11 },
			req: request(FUSE_GETXATTR, 4, GetxattrIn{Size: 10}, "n\x00"), calls: []string{`GetXattr %c node=4 name="n\x00" size=10`}, reply: errReply(unix.EIO)},
		{name: "getxattr negative length from the file system", setup: func(f *fakeFS, _ *Server) { f.useRet, f.xattrRet = true, -1 },
			req: request(FUSE_GETXATTR, 4, GetxattrIn{}, "n\x00"), calls: []string{`GetXattr %c node=4 name="n\x00" size=0`}, reply: errReply(unix.EIO)},

		// LISTXATTR.
		{name: "listxattr size", setup: withXattr("user.a\x00user.b\x00"), req: request(FUSE_LISTXATTR, 4, GetxattrIn{}),
			calls: []string{`ListXattr %c node=4 size=0`}, reply: reply(GetxattrOut{Size: 14})},
		{name: "listxattr names", setup: withXattr("user.a\x00user.b\x00"), req: request(FUSE_LISTXATTR, 4, GetxattrIn{Size: 14}),
			calls: []string{`ListXattr %c node=4 size=14`}, reply: reply("user.a\x00user.b\x00")},
		{name: "listxattr empty", setup: withXattr(""), req: request(FUSE_LISTXATTR, 4, GetxattrIn{Size: 14}),
			calls: []string{`ListXattr %c node=4 size=14`}, reply: reply()},
		{name: "listxattr over 1 MiB", req: request(FUSE_LISTXATTR, 4, GetxattrIn{Size: MaxBufferSize + 1}), reply: errReply(unix.ENOMEM)},
		{name: "listxattr truncated", req: request(FUSE_LISTXATTR, 4, uint32(1)), reply: errReply(unix.EINVAL)},
		{name: "listxattr error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.ENOSYS }, req: request(FUSE_LISTXATTR, 4, GetxattrIn{Size: 5}),
			calls: []string{`ListXattr %c node=4 size=5`}, reply: errReply(unix.ENOSYS)},
		{name: "listxattr reply too small", setup: withXattr("user.a\x00"), req: request(FUSE_LISTXATTR, 4, GetxattrIn{Size: 100}), out: 16 + 6,
			calls: []string{`ListXattr %c node=4 size=100`}, reply: errReply(unix.EINVAL)},

		// REMOVEXATTR.
		{name: "removexattr", req: request(FUSE_REMOVEXATTR, 4, "user.x\x00"),
			calls: []string{`RemoveXattr %c node=4 name="user.x\x00"`}, reply: reply()},
		{name: "removexattr name without NUL", req: request(FUSE_REMOVEXATTR, 4, "user.x"), reply: errReply(unix.EINVAL)},
		{name: "removexattr interior NUL", req: request(FUSE_REMOVEXATTR, 4, "us\x00er.x\x00"), reply: errReply(unix.EINVAL)},
		{name: "removexattr empty body", req: request(FUSE_REMOVEXATTR, 4), reply: errReply(unix.EINVAL)},
		{name: "removexattr error", setup: func(f *fakeFS, _ *Server) { f.errno = unix.EROFS }, req: request(FUSE_REMOVEXATTR, 4, "n\x00"),
			calls: []string{`RemoveXattr %c node=4 name="n\x00"`}, reply: errReply(unix.EROFS)},
	})
}

// TestXattrLongValue round-trips a value of the largest size through
// several reply buffers.
func TestXattrLongValue(t *testing.T) {
	v := strings.Repeat("0123456789abcdef", MaxBufferSize/16)
	runCases(t, []tcase{{name: "1 MiB value", setup: withXattr(v), out: 16 + MaxBufferSize,
		req:   request(FUSE_GETXATTR, 4, GetxattrIn{Size: MaxBufferSize}, "user.big\x00"),
		calls: []string{`GetXattr %c node=4 name="user.big\x00" size=1048576`}, reply: reply(v)}})
}
