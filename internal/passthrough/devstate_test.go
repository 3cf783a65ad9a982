package passthrough

import (
	"bytes"
	"strings"
	"testing"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/migration"
)

// TestDeviceStateCarriesFUSEFlags saves through the migration.Handler of a
// source that negotiated a flag set and loads into a fresh FS and FUSE
// server that never saw INIT: the destination continues with exactly the
// source's INIT flags (from the trailer), and with the flags derived from
// the negotiated options when the trailer is absent (a Rust source).
func TestDeviceStateCarriesFUSEFlags(t *testing.T) {
	src, dir := newTestFS(t, nil)
	srcSrv := fuse.NewServer(src)
	caps := uint64(fuse.FUSE_SUBMOUNTS | fuse.FUSE_CREATE_SUPP_GROUP | fuse.FUSE_ASYNC_READ | fuse.FUSE_PARALLEL_DIROPS)
	// newTestFS ran INIT with every flag; this INIT replaces that session.
	if _, e := src.Init(caps); e != 0 {
		t.Fatal(e)
	}
	negotiated := caps | fuse.FUSE_INIT_EXT
	srcSrv.SetNegotiated(negotiated)
	writeFile(t, join(dir, "f"), "data")
	f := mustLookup(t, src, RootID, "f").NodeID

	var buf bytes.Buffer
	if err := NewDeviceState(src, srcSrv).Save(&buf); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()

	load := func(t *testing.T, b []byte) *fuse.Server {
		t.Helper()
		dst, err := New(testConfig(dir)) // never sees INIT
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(dst.Close)
		srv := fuse.NewServer(dst)
		if err := NewDeviceState(dst, srv).Load(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		var ao fuse.AttrOut
		if e := dst.Getattr(root, f, &ao); e != 0 {
			t.Fatalf("GETATTR of the migrated node = %v", e)
		}
		if !dst.cur().suppGroups.Load() || !dst.cur().announce.Load() {
			t.Error("negotiated options not restored in the session")
		}
		return srv
	}
	t.Run("trailer", func(t *testing.T) {
		if got := load(t, stream).Negotiated(); got != negotiated {
			t.Errorf("destination INIT flags = %#x, want the source's %#x", got, negotiated)
		}
	})
	t.Run("rust-source", func(t *testing.T) {
		st, err := migration.Decode(stream)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ext == nil {
			t.Fatal("our stream has no trailer")
		}
		st.Ext = nil
		b, err := migration.Encode(st)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(fuse.FUSE_SUBMOUNTS | fuse.FUSE_CREATE_SUPP_GROUP)
		if got := load(t, b).Negotiated(); got != want {
			t.Errorf("destination INIT flags without trailer = %#x, want %#x", got, want)
		}
	})
}

// TestDeviceStateLoadRefusesBadStreams feeds the Handler a garbage stream
// and one larger than the limit: Load fails and the destination's session
// is left as it was.
func TestDeviceStateLoadRefusesBadStreams(t *testing.T) {
	dst, dir := newTestFS(t, nil)
	writeFile(t, join(dir, "f"), "x")
	f := mustLookup(t, dst, RootID, "f").NodeID
	h := &deviceState{fs: dst, srv: fuse.NewServer(dst), limit: 1 << 10}
	for name, r := range map[string]*strings.Reader{
		"garbage":   strings.NewReader("\x05\xff\xff"),
		"truncated": strings.NewReader("\x01\x04\x01"),
		"oversized": strings.NewReader(strings.Repeat("\x00", 1<<10+1)),
	} {
		if err := h.Load(r); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
		var ao fuse.AttrOut
		if e := dst.Getattr(root, f, &ao); e != 0 {
			t.Errorf("%s: the session was changed by a failed load (GETATTR = %v)", name, e)
		}
	}
}
