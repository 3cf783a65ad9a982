package fuse

import (
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConcurrentWorkers runs several Workers of one Server at once (for the
// race detector): each owns its scratch state, the Server's negotiated
// flags are shared.
func TestConcurrentWorkers(t *testing.T) {
	s := NewServerWithOptions(nopFS{}, Options{Log: quietLog()})
	reqs := [][]byte{
		request(FUSE_INIT, 0, InitIn{Major: 7, Minor: 38, Flags: uint32(FUSE_INIT_EXT)}, InitInExt{Flags2: uint32(FUSE_CREATE_SUPP_GROUP >> 32)}),
		request(FUSE_LOOKUP, 1, "x\x00"),
		request(FUSE_MKDIR, 1, MkdirIn{}, "d\x00", groupsExt(4)),
		request(FUSE_READ, 2, ReadIn{Size: 1000}),
		request(FUSE_WRITE, 2, WriteIn{Size: 3}, "abc"),
		request(FUSE_READDIRPLUS, 1, ReadIn{Size: 4096}),
		request(FUSE_DESTROY, 0),
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := s.NewWorker()
			out := make([]byte, 8192)
			for i := 0; i < 200; i++ {
				r := reqs[(i+g)%len(reqs)]
				n := w.Serve(chunk(r, 1+g), [][]byte{out})
				if n >= 16 && binary.LittleEndian.Uint32(out[4:]) != 0 {
					t.Errorf("opcode %d failed with %d", r[4], int32(binary.LittleEndian.Uint32(out[4:])))
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDebugTrace(t *testing.T) {
	log, buf := captureLog()
	s := NewServerWithOptions(nopFS{}, Options{Log: log, Debug: true})
	out := make([]byte, 256)
	s.NewWorker().Serve([][]byte{request(FUSE_GETATTR, 7, GetattrIn{})}, [][]byte{out})
	s.NewWorker().Serve([][]byte{request(FUSE_BMAP, 7)}, [][]byte{out})
	for _, want := range []string{"opcode=GETATTR", "nodeid=7", "len=120", "unknown request", "error=\"function not implemented\""} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("debug log lacks %q:\n%s", want, buf.String())
		}
	}
	// Without Debug nothing is logged for well-formed requests.
	log, buf = captureLog()
	s = NewServerWithOptions(nopFS{}, Options{Log: log})
	s.NewWorker().Serve([][]byte{request(FUSE_GETATTR, 7, GetattrIn{})}, [][]byte{out})
	if buf.Len() != 0 {
		t.Errorf("log without Debug: %s", buf.String())
	}
}

func TestServerDestroy(t *testing.T) {
	f := newFakeFS()
	s := NewServerWithOptions(f, Options{Log: quietLog()})
	s.SetNegotiated(FUSE_ASYNC_READ | FUSE_SECURITY_CTX)
	if got := s.Negotiated(); got != FUSE_ASYNC_READ|FUSE_SECURITY_CTX {
		t.Fatalf("Negotiated() = %#x", got)
	}
	s.Destroy()
	if got := s.Negotiated(); got != 0 {
		t.Errorf("Negotiated() after Destroy = %#x, want 0", got)
	}
	if len(f.calls) != 1 || f.calls[0] != "Destroy" {
		t.Errorf("calls %q, want [Destroy]", f.calls)
	}
}

func TestBadErrnoBecomesEIO(t *testing.T) {
	runCases(t, []tcase{
		{name: "errno out of range", setup: func(f *fakeFS, _ *Server) { f.errno = unix.Errno(5000) },
			req: request(FUSE_ACCESS, 4, AccessIn{}), calls: []string{"Access %c node=4 mask=0"}, reply: errReply(unix.EIO)},
	})
}
