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
// 100,000 looked-up inodes, per migration mode, source daemon and
// destination daemon (BenchmarkMigrate/<n>/<mode>/<source>/to-<dest>):
// save-ms runs from SET_DEVICE_STATE_FD to EOF on the source's pipe
// (dirty logging is turned on precopyPhase before, as QEMU does while it
// copies RAM; the save includes whatever preparation is left), load-ms from SET_DEVICE_STATE_FD to the reply to
// CHECK_DEVICE_STATE on the destination. Each source is set up once and
// resumes after every round; every round loads into a fresh destination.
// It measures, it does not assert. Setting up 100k inodes takes a while:
// run it with -benchtime 1x (or a small count).
func BenchmarkMigrate(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			shared, names := migBenchTree(b, n)
			for _, mode := range []string{modeFindPaths, modeFileHandles} {
				b.Run(mode, func(b *testing.B) {
					forEachDaemonBench(b, func(b *testing.B, src *daemonSpec) {
						benchMigrateFrom(b, src, mode, shared, names)
					})
				})
			}
		})
	}
}

// precopyPhase is the time QEMU is taken to spend copying guest RAM
// before it stops the device: about what 2 GiB take over a 10 Gbit/s link.
const precopyPhase = 2 * time.Second

// benchMigrateFrom sets up a source with every name looked up and runs a
// sub-benchmark per destination daemon.
func benchMigrateFrom(b *testing.B, spec *daemonSpec, mode, shared string, names [][2]string) {
	// Each looked-up inode holds an O_PATH descriptor by default. Where
	// the hard RLIMIT_NOFILE (which the daemons cannot raise without
	// CAP_SYS_RESOURCE) leaves too few, inodes hold file handles instead.
	var extra []string
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Max < uint64(len(names))+2000 {
		extra = []string{"--inode-file-handles=mandatory"}
		b.Logf("hard RLIMIT_NOFILE %d: inodes hold file handles (%s)", lim.Max, extra[0])
	}
	src := startDaemonIn(b, spec, shared, startOpts{args: append(srcArgs(mode), extra...), fe: fe.Options{Timeout: 2 * time.Minute}})
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
	for _, dspec := range daemons {
		b.Run("to-"+dspec.name, func(b *testing.B) {
			requireDaemon(b, dspec)
			benchMigrateTo(b, src, dspec, mode, extra)
		})
	}
}

// benchMigrateTo runs b.N rounds of save from src and load into a fresh
// destination; the source resumes after each round, also after a failed
// one.
func benchMigrateTo(b *testing.B, src *daemon, spec *daemonSpec, mode string, extra []string) {
	b.StopTimer()
	f := src.FE
	var save, load time.Duration
	var size int
	for i := 0; i < b.N; i++ {
		dst := startDaemonIn(b, spec, src.Shared, startOpts{args: dstArgs(spec, mode, extra...), noFE: true})
		fd, err := dst.dial()
		if err != nil {
			b.Fatal(err)
		}
		dst.connected = true
		tm, state, err := migrateRound(b, f, fd, dst)
		if err != nil {
			b.Fatalf("%v\nsource log:\n%s\ndestination log:\n%s", err, src.Log(), dst.Log())
		}
		save += tm[0]
		load += tm[1]
		size = state
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(save), "save-ms")
	b.ReportMetric(ms(load), "load-ms")
	b.ReportMetric(float64(size), "state-bytes")
}

// migrateRound saves the state of the source f talks to, loads it into
// the destination connected on fd (which it closes) and lets the source
// resume. It returns the save and load times and the state's size.
func migrateRound(b *testing.B, f *fe.Frontend, fd int, dst *daemon) (tm [2]time.Duration, size int, err error) {
	if err := f.SetLogAll(true); err != nil {
		unix.Close(fd)
		return tm, 0, fmt.Errorf("source: %w", err)
	}
	// QEMU copies guest RAM between turning dirty logging on and stopping
	// the device; the daemons prepare their state meanwhile. This stands
	// in for that copy (it models the front-end, it synchronises nothing),
	// so that save-ms is the part of the save that falls into the
	// downtime, as in a real migration.
	time.Sleep(precopyPhase)
	if err := f.StopQueues(); err != nil {
		unix.Close(fd)
		return tm, 0, fmt.Errorf("source: %w", err)
	}
	defer func() {
		// The migration is over (for the destination, whatever became
		// of it): the source resumes.
		if e := f.SetLogAll(false); e != nil && err == nil {
			err = fmt.Errorf("source: %w", e)
		}
		if e := f.StartQueues(); e != nil && err == nil {
			err = fmt.Errorf("source: %w", e)
		}
	}()
	b.StartTimer()
	state, st, err := f.SaveStateTimed()
	b.StopTimer()
	if err != nil {
		unix.Close(fd)
		return tm, 0, fmt.Errorf("source: %w", err)
	}
	tm[0] = st.Transfer
	srcBackend := f.Connect(fd, dst.alive)
	defer func() { f.Attach(srcBackend).Close() }()
	if err := f.Negotiate(); err != nil {
		return tm, 0, fmt.Errorf("destination: %w", err)
	}
	if err := f.SendMemory(fe.MemTable); err != nil {
		return tm, 0, fmt.Errorf("destination: %w", err)
	}
	b.StartTimer()
	lt, err := f.LoadStateTimed(state)
	b.StopTimer()
	if err != nil {
		return tm, 0, fmt.Errorf("destination: %w", err)
	}
	tm[1] = lt.Total
	return tm, len(state), nil
}
