package guest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readNewc parses a newc archive, as the kernel does, into its members.
func readNewc(t *testing.T, b []byte) []CPIOEntry {
	t.Helper()
	var out []CPIOEntry
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("bad header field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		if field(2) != 0 || field(3) != 0 {
			t.Errorf("member at %d not owned by root", off)
		}
		off += 110
		name := string(b[off : off+int(namesize)-1])
		if b[off+int(namesize)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off += int(namesize)
		align()
		data := b[off : off+int(size)]
		off += int(size)
		align()
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, CPIOEntry{Name: name, Mode: mode, Data: data, RdevMajor: rmaj, RdevMinor: rmin})
	}
}

func TestWriteCPIO(t *testing.T) {
	in := []CPIOEntry{
		{Name: "bin", Mode: syscall.S_IFDIR | 0o755},
		{Name: "bin/x", Mode: syscall.S_IFREG | 0o755, Data: []byte("12345")},
		{Name: "bin/y", Mode: syscall.S_IFLNK | 0o777, Data: []byte("x")},
		{Name: "console", Mode: syscall.S_IFCHR | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "empty", Mode: syscall.S_IFREG | 0o644},
	}
	var buf bytes.Buffer
	if err := WriteCPIO(&buf, in); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, raw)
	if len(got) != len(in) {
		t.Fatalf("read back %d members, want %d", len(got), len(in))
	}
	for i := range in {
		w, g := in[i], got[i]
		if g.Name != w.Name || g.Mode != w.Mode || !bytes.Equal(g.Data, w.Data) ||
			g.RdevMajor != w.RdevMajor || g.RdevMinor != w.RdevMinor {
			t.Errorf("member %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestWriteCPIORejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "/abs", "a/../b", "a/"} {
		err := WriteCPIO(io.Discard, []CPIOEntry{{Name: name, Mode: syscall.S_IFREG}})
		if err == nil {
			t.Errorf("WriteCPIO(name %q) = nil, want an error", name)
		}
	}
}

// TestBootDaemonFailsEarly checks that a daemon which exits before listening
// is reported, with its output, without starting QEMU.
func TestBootDaemonFailsEarly(t *testing.T) {
	dir := t.TempDir()
	daemon := filepath.Join(dir, "daemon")
	script := "#!/bin/sh\necho 'no such option' >&2\nexit 3\n"
	if err := os.WriteFile(daemon, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := Boot{QEMU: "/nonexistent/qemu", Daemon: daemon, SharedDir: dir, WorkDir: dir, Timeout: 30 * time.Second}
	out, err := b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "daemon exited before creating") {
		t.Fatalf("Run() error = %v, want a daemon exit error", err)
	}
	if !strings.Contains(out.DaemonLog, "no such option") {
		t.Errorf("Run() daemon log = %q, want the daemon's output", out.DaemonLog)
	}
}

// TestBootTimeout checks that a daemon that never listens is stopped at the
// timeout.
func TestBootTimeout(t *testing.T) {
	dir := t.TempDir()
	daemon := filepath.Join(dir, "daemon")
	if err := os.WriteFile(daemon, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := Boot{QEMU: "/nonexistent/qemu", Daemon: daemon, SharedDir: dir, WorkDir: dir, Timeout: 300 * time.Millisecond}
	start := time.Now()
	out, err := b.Run(context.Background())
	if err == nil || !out.TimedOut {
		t.Fatalf("Run() = %v (timed out %v), want a timeout", err, out.TimedOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run() took %v after a 300ms timeout", d)
	}
}

// TestBootDaemonDiesDuringRun checks that a daemon dying while QEMU runs is
// reported and that QEMU is stopped without waiting for the run's timeout.
// The daemon is this test binary in fakeDaemonEnv mode (see TestMain).
func TestBootDaemonDiesDuringRun(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	daemon := filepath.Join(dir, "daemon")
	script := "#!/bin/sh\n" + fakeDaemonEnv + "=1 exec " + self + " \"$@\"\n"
	if err := os.WriteFile(daemon, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := Boot{QEMU: qemu, Daemon: daemon, SharedDir: dir, WorkDir: dir, Timeout: 5 * time.Minute}
	start := time.Now()
	out, err := b.Run(context.Background())
	if err != nil {
		t.Fatalf("Run() = %v; daemon output: %s", err, out.DaemonLog)
	}
	if !out.DaemonDiedEarly || out.DaemonErr == nil || !strings.Contains(out.DaemonErr.Error(), "exit status 7") {
		t.Errorf("Run() outcome: died early %v, daemon error %v; want an early exit with status 7", out.DaemonDiedEarly, out.DaemonErr)
	}
	if d := time.Since(start); d > daemonExitGrace+10*time.Second {
		t.Errorf("Run() took %v, want QEMU stopped within about %v of the daemon's death", d, daemonExitGrace)
	}
}

// fakeDaemonEnv makes the test binary act as a daemon that listens on its
// --socket-path, then exits with status 7 half a second later.
const fakeDaemonEnv = "GUEST_TEST_FAKE_DAEMON"

func fakeDaemon() {
	var sock string
	for i, a := range os.Args {
		if a == "--socket-path" && i+1 < len(os.Args) {
			sock = os.Args[i+1]
		}
	}
	if _, err := net.Listen("unix", sock); err != nil {
		os.Exit(5)
	}
	time.Sleep(500 * time.Millisecond)
	os.Exit(7)
}

func TestTreeEntries(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	es, err := TreeEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Name+" "+strconv.FormatUint(uint64(e.Mode), 8)+" "+string(e.Data))
	}
	want := []string{"bin 120777 usr/bin", "usr 40755 ", "usr/bin 40755 ", "usr/bin/tool 100755 ELF"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("TreeEntries = %q, want %q", got, want)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := TreeEntries(dir); err == nil {
		t.Error("TreeEntries with a fifo = nil error, want unsupported file type")
	}
}
