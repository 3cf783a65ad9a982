package fuse

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// groupsExt encodes a supplementary-groups extension.
func groupsExt(gids ...uint32) []byte {
	body := enc(SuppGroups{NrGroups: uint32(len(gids))})
	for _, g := range gids {
		body = append(body, enc(g)...)
	}
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	return append(enc(ExtHeader{Size: uint32(8 + len(body)), Type: FUSE_EXT_GROUPS}), body...)
}

// secctxExt encodes a security-context extension with one context (or
// none if name is empty).
func secctxExt(name, value string) []byte {
	if name == "" {
		return enc(ExtHeader{Size: 8, Type: 0})
	}
	body := append(enc(Secctx{Size: uint32(len(value))}), name+"\x00"+value...)
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	return append(enc(ExtHeader{Size: uint32(8 + len(body)), Type: 1}), body...)
}

func negotiate(flags uint64) func(f *fakeFS, s *Server) {
	return func(f *fakeFS, s *Server) {
		f.entry = testEntry
		f.open = testOpen
		s.SetNegotiated(flags)
	}
}

func TestExtensions(t *testing.T) {
	mk := MkdirIn{Mode: 0o755, Umask: 0o22}
	mkdir := func(ext ...any) []byte { return request(FUSE_MKDIR, 2, append([]any{mk, "d\x00"}, ext...)...) }
	mkdirCall := func(ctx string) string { return fmt.Sprintf("Mkdir %s parent=2 name=\"d\" in=%+v", ctx, mk) }
	sg := negotiate(FUSE_CREATE_SUPP_GROUP)
	sec := negotiate(FUSE_SECURITY_CTX)
	both := negotiate(FUSE_SECURITY_CTX | FUSE_CREATE_SUPP_GROUP)
	ok := reply(entryFor(100))
	bad := errReply(unix.EINVAL)
	runCases(t, []tcase{
		{name: "supp group", setup: sg, req: mkdir(groupsExt(55)), calls: []string{mkdirCall(ctxStr + " supp=55 groups=[55]")}, reply: ok},
		{name: "several supp groups", setup: sg, req: mkdir(groupsExt(55, 66, 77)), calls: []string{mkdirCall(ctxStr + " supp=55 groups=[55 66 77]")}, reply: ok},
		{name: "no extension", setup: sg, req: mkdir(), calls: []string{mkdirCall(ctxStr)}, reply: ok},
		{name: "extension ignored when not negotiated", req: mkdir(groupsExt(55)), setup: negotiate(0),
			calls: []string{mkdirCall(ctxStr)}, reply: ok},
		{name: "zero groups", setup: sg, req: mkdir(enc(ExtHeader{Size: 16, Type: FUSE_EXT_GROUPS}, SuppGroups{NrGroups: 0}, uint32(0))), reply: bad},
		{name: "groups beyond the block", setup: sg, req: mkdir(enc(ExtHeader{Size: 16, Type: FUSE_EXT_GROUPS}, SuppGroups{NrGroups: 2}, uint32(5), uint32(6))), reply: bad},
		{name: "huge group count", setup: sg, req: mkdir(enc(ExtHeader{Size: 16, Type: FUSE_EXT_GROUPS}, SuppGroups{NrGroups: 0xffffffff}, uint32(5))), reply: bad},
		{name: "groups twice", setup: sg, req: mkdir(groupsExt(1), groupsExt(2)), reply: bad},
		{name: "header too short", setup: sg, req: mkdir(enc(uint32(4))), reply: bad},
		{name: "size below header", setup: sg, req: mkdir(enc(ExtHeader{Size: 4, Type: FUSE_EXT_GROUPS})), reply: bad},
		{name: "size beyond request", setup: sg, req: mkdir(enc(ExtHeader{Size: 0xfffffff0, Type: FUSE_EXT_GROUPS}, SuppGroups{NrGroups: 1}, uint32(5))), reply: bad},
		{name: "unknown type", setup: both, req: mkdir(secctxExt("", ""), enc(ExtHeader{Size: 8, Type: 33})), reply: bad},
		{name: "secctx not negotiated", setup: sg, req: mkdir(secctxExt("security.selinux", "ctx")), reply: bad},
		{name: "secctx", setup: sec, req: mkdir(secctxExt("security.selinux", "system_u:object_r:tmp_t:s0\x00")),
			calls: []string{mkdirCall(ctxStr + ` secctx="security.selinux\x00":"system_u:object_r:tmp_t:s0\x00"`)}, reply: ok},
		{name: "no secctx", setup: sec, req: mkdir(secctxExt("", "")), calls: []string{mkdirCall(ctxStr)}, reply: ok},
		{name: "secctx missing", setup: sec, req: mkdir(), reply: bad},
		{name: "secctx missing with groups", setup: both, req: mkdir(groupsExt(3)), reply: bad},
		{name: "secctx and groups", setup: both, req: mkdir(groupsExt(3), secctxExt("security.smack", "x")),
			calls: []string{mkdirCall(ctxStr + ` supp=3 groups=[3] secctx="security.smack\x00":"x"`)}, reply: ok},
		{name: "secctx twice", setup: sec, req: mkdir(secctxExt("", ""), secctxExt("", "")), reply: bad},
		{name: "two contexts", setup: sec, req: mkdir(enc(ExtHeader{Size: 8, Type: 2})), reply: bad},
		{name: "secctx size zero", setup: sec, req: mkdir(enc(ExtHeader{Size: 24, Type: 1}, Secctx{Size: 0}, "a\x00\x00\x00\x00\x00\x00\x00")), reply: bad},
		{name: "secctx name without NUL", setup: sec, req: mkdir(enc(ExtHeader{Size: 24, Type: 1}, Secctx{Size: 1}, "abcdefgh")), reply: bad},
		{name: "secctx value beyond block", setup: sec, req: mkdir(enc(ExtHeader{Size: 24, Type: 1}, Secctx{Size: 9}, "a\x00bcdefg")), reply: bad},
		{name: "create with groups", setup: sg,
			req:   request(FUSE_CREATE, 2, CreateIn{Flags: unix.O_CREAT}, "f\x00", groupsExt(9)),
			calls: []string{fmt.Sprintf("Create %s supp=9 groups=[9] parent=2 name=\"f\" in=%+v", ctxStr, CreateIn{Flags: unix.O_CREAT})},
			reply: reply(entryFor(100), testOpen)},
		{name: "mknod with groups", setup: sg,
			req:   request(FUSE_MKNOD, 2, MknodIn{Mode: unix.S_IFREG}, "f\x00", groupsExt(9)),
			calls: []string{fmt.Sprintf("Mknod %s supp=9 groups=[9] parent=2 name=\"f\" in=%+v", ctxStr, MknodIn{Mode: unix.S_IFREG})},
			reply: ok},
		{name: "symlink with groups", setup: sg,
			req:   request(FUSE_SYMLINK, 2, "l\x00tgt\x00", groupsExt(9)),
			calls: []string{`Symlink ` + ctxStr + ` supp=9 groups=[9] parent=2 name="l" target="tgt\x00"`},
			reply: ok},
		{name: "symlink bad extension", setup: sg, req: request(FUSE_SYMLINK, 2, "l\x00tgt\x00", enc(uint32(1))), reply: bad},
	})
}

// TestContextReset checks that extension data of one request does not leak
// into the next one served by the same Worker.
func TestContextReset(t *testing.T) {
	f := newFakeFS()
	s := NewServerWithOptions(f, Options{Log: quietLog()})
	s.SetNegotiated(FUSE_CREATE_SUPP_GROUP)
	w := s.NewWorker()
	out := make([]byte, 512)
	w.Serve([][]byte{request(FUSE_MKDIR, 2, MkdirIn{}, "a\x00", groupsExt(5))}, [][]byte{out})
	w.Serve([][]byte{request(FUSE_MKDIR, 2, MkdirIn{}, "b\x00")}, [][]byte{out})
	want := fmt.Sprintf("Mkdir %s parent=2 name=\"b\" in=%+v", ctxStr, MkdirIn{})
	if len(f.calls) != 2 || f.calls[1] != want {
		t.Errorf("calls %q, second want %q", f.calls, want)
	}
}
