package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// migBenchTree makes a shallow tree of n files: directories of 1000
// files each.
func migBenchTree(b *testing.B, n int) (shared string, names [][2]string) {
	b.Helper()
	shared = filepath.Join(b.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		b.Fatal(err)
	}
	const perDir = 1000
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("d%03d", i/perDir)
		if i%perDir == 0 {
			if err := os.Mkdir(filepath.Join(shared, dir), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		name := fmt.Sprintf("f%06d", i)
		f, err := os.OpenFile(filepath.Join(shared, dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		names = append(names, [2]string{dir, name})
	}
	return shared, names
}

// BenchmarkMigrate measures the device-state transfer with 10,000 and
// 100,000 looked-up inodes, per daemon (it migrates to a daemon of its
// own kind) and migration mode: save-ms runs from SET_DEVICE_STATE_FD to
// EOF on the source's pipe (dirty logging is turned on just before, so it
// includes whatever preparation is left), load-ms from
// SET_DEVICE_STATE_FD to the reply to CHECK_DEVICE_STATE on the
// destination. The source resumes after each round. It measures, it does
// not assert. Setting up 100k inodes takes a while: run it with
// -benchtime 1x (or a small count).
func BenchmarkMigrate(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			shared, names := migBenchTree(b, n)
			for _, mode := range []string{modeFindPaths, modeFileHandles} {
				b.Run(mode, func(b *testing.B) {
					forEachDaemonBench(b, func(b *testing.B, spec *daemonSpec) {
						benchMigrate(b, spec, mode, shared, names)
					})
				})
			}
		})
	}
}

func benchMigrate(b *testing.B, spec *daemonSpec, mode, shared string, names [][2]string) {
	b.StopTimer()
	timeout := 2 * time.Minute
	// Each looked-up inode holds an O_PATH descriptor by default. Where
	// the hard RLIMIT_NOFILE (which the daemons cannot raise without
	// CAP_SYS_RESOURCE) leaves too few, inodes hold file handles instead.
	var extra []string
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Max < uint64(len(names))+2000 {
		extra = []string{"--inode-file-handles=mandatory"}
		b.Logf("hard RLIMIT_NOFILE %d: inodes hold file handles (%s)", lim.Max, extra[0])
	}
	src := startDaemonIn(b, spec, shared, startOpts{args: append(srcArgs(mode), extra...), fe: fe.Options{Timeout: timeout}})
	f := src.FE
	dirs := map[string]uint64{}
	for _, nm := range names {
		parent, ok := dirs[nm[0]]
		if !ok {
			e, err := f.Lookup(fe.FUSE_ROOT_ID, nm[0])
			if err != nil {
				b.Fatalf("lookup %s: %v", nm[0], err)
			}
			parent = e.NodeID
			dirs[nm[0]] = parent
		}
		if _, err := f.Lookup(parent, nm[1]); err != nil {
			b.Fatalf("lookup %s/%s: %v", nm[0], nm[1], err)
		}
	}
	var save, load time.Duration
	var size int
	for i := 0; i < b.N; i++ {
		dst := startDaemonIn(b, spec, shared, startOpts{args: dstArgs(spec, mode, extra...), noFE: true})
		fd, err := dst.dial()
		if err != nil {
			b.Fatal(err)
		}
		dst.connected = true
		if err := f.SetLogAll(true); err != nil {
			b.Fatal(err)
		}
		if err := f.StopQueues(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		state, tm, err := f.SaveStateTimed()
		b.StopTimer()
		if err != nil {
			b.Fatalf("%s source: %v", spec.name, err)
		}
		save += tm.Transfer
		size = len(state)
		srcBackend := f.Connect(fd, dst.alive)
		err = f.Negotiate()
		if err == nil {
			err = f.SendMemory(fe.MemTable)
		}
		if err != nil {
			b.Fatalf("%s destination: %v", spec.name, err)
		}
		b.StartTimer()
		tm, err = f.LoadStateTimed(state)
		b.StopTimer()
		if err != nil {
			b.Fatalf("%s destination: %v\nlog:\n%s", spec.name, err, dst.Log())
		}
		load += tm.Total
		// The destination goes; the source resumes for the next round.
		f.Attach(srcBackend).Close()
		if err := f.SetLogAll(false); err != nil {
			b.Fatal(err)
		}
		if err := f.StartQueues(); err != nil {
			b.Fatal(err)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(save), "save-ms")
	b.ReportMetric(ms(load), "load-ms")
	b.ReportMetric(float64(size), "state-bytes")
}
