package passthrough

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// allCaps is what a current Linux guest offers in FUSE_INIT.
const allCaps = ^uint64(0) &^ (1 << 63)

var root = &fuse.Context{}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// nm returns s as a fuse.Name.
func nm(s string) fuse.Name { return fuse.Name(append([]byte(s), 0)) }

// testHandleMode is the file handle mode of testConfig. The package's
// tests run in never mode by default; VIRTIOFSD_TEST_FILE_HANDLES=prefer or
// =mandatory runs them all with file handles (TestSuiteWithFileHandles
// does that for the tests that do not depend on the mode).
var testHandleMode = func() FileHandleMode {
	switch os.Getenv("VIRTIOFSD_TEST_FILE_HANDLES") {
	case "prefer":
		return FileHandlesPrefer
	case "mandatory":
		return FileHandlesMandatory
	}
	return FileHandlesNever
}()

func testConfig(dir string) Config {
	return Config{Root: dir, Cache: CacheAuto, Readdirplus: true, AnnounceSubmounts: true, FDBudget: 1000,
		InodeFileHandles: testHandleMode, Log: slog.New(slog.DiscardHandler)}
}

// newTestFS returns an initialised FS over a fresh temporary directory.
func newTestFS(t testing.TB, mod func(*Config)) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(dir)
	if mod != nil {
		mod(&cfg)
	}
	fs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Close)
	if _, e := fs.Init(allCaps); e != 0 {
		t.Fatalf("Init = %v", e)
	}
	return fs, dir
}

func mustLookup(t testing.TB, fs *FS, parent uint64, name string) *fuse.EntryOut {
	t.Helper()
	var out fuse.EntryOut
	if e := fs.Lookup(root, parent, nm(name), &out); e != 0 {
		t.Fatalf("Lookup(%d, %q) = %v", parent, name, e)
	}
	return &out
}

func mustOpen(t testing.TB, fs *FS, nodeid uint64, flags uint32) uint64 {
	t.Helper()
	var out fuse.OpenOut
	if e := fs.Open(root, nodeid, &fuse.OpenIn{Flags: flags}, &out); e != 0 {
		t.Fatalf("Open(%d, %#x) = %v", nodeid, flags, e)
	}
	return out.Fh
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// handleFlags returns the file status flags of handle fh's descriptor.
func handleFlags(t testing.TB, fs *FS, nodeid, fh uint64) int {
	t.Helper()
	h, _ := fs.getHandle(nodeid, fh)
	if h == nil {
		t.Fatalf("handle %d of node %d not found", fh, nodeid)
	}
	defer fs.putHandle(h)
	fl, err := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

// lookups returns the lookup count of nodeid (0 if unknown).
func lookups(fs *FS, nodeid uint64) uint64 {
	fs.cur().mu.Lock()
	defer fs.cur().mu.Unlock()
	if in := fs.cur().inodes[nodeid]; in != nil {
		return in.lookups
	}
	return 0
}

// direntNames parses linux_dirent64 records and returns names and offsets.
func direntNames(b []byte) (names []string, offs []uint64) {
	for len(b) >= 19 {
		off := binary.LittleEndian.Uint64(b[8:])
		reclen := int(binary.LittleEndian.Uint16(b[16:]))
		if reclen < 19 || reclen > len(b) {
			break
		}
		name := b[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		names = append(names, string(name))
		offs = append(offs, off)
		b = b[reclen:]
	}
	return names, offs
}

// onLockedThread runs f on a fresh goroutine locked to its own OS thread;
// the thread is discarded afterwards, so changes f leaves behind cannot leak
// into other tests.
func onLockedThread(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// No UnlockOSThread: the thread exits with the goroutine.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			t.Errorf("unshare(CLONE_FS): %v", err)
			return
		}
		f()
	}()
	<-done
}

func ownerOf(t testing.TB, path string) (uid, gid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

func join(dir string, elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
