package passthrough

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/migration"
)

// BenchmarkSave100k measures an outgoing migration of 100,000 looked-up
// inodes (100 directories of 1,000 files, held as file handles so that the
// descriptor limit does not matter): the preparation, which runs while the
// guest still runs, and the save, which runs while the device is stopped
// (the downtime), reported separately.
func BenchmarkSave100k(b *testing.B) {
	const dirs, files = 100, 1000
	fs, _ := bench100k(b, dirs, files)
	// Wall time depends on the machine's load; the CPU time the process
	// spends (user and system) does much less.
	var prep, save, prepCPU, saveCPU time.Duration
	n := 0
	for b.Loop() {
		t0, c0 := time.Now(), cpuTime(b)
		fs.prepareMigration()
		waitPrepared(b, fs)
		t1, c1 := time.Now(), cpuTime(b)
		st := mustSaveNow(b, fs)
		t2, c2 := time.Now(), cpuTime(b)
		if len(st.Inodes) != dirs*files+dirs+1 {
			b.Fatalf("%d inodes saved", len(st.Inodes))
		}
		prep += t1.Sub(t0)
		save += t2.Sub(t1)
		prepCPU += c1 - c0
		saveCPU += c2 - c1
		n++
	}
	b.ReportMetric(float64(prep.Milliseconds())/float64(n), "prepare-ms")
	b.ReportMetric(float64(save.Milliseconds())/float64(n), "save-ms")
	b.ReportMetric(float64(prepCPU.Milliseconds())/float64(n), "prepare-cpu-ms")
	b.ReportMetric(float64(saveCPU.Milliseconds())/float64(n), "save-cpu-ms")
}

// BenchmarkLoad100k measures an incoming migration of the session that
// BenchmarkSave100k saves (find-paths locations), decoded from its encoded
// stream, into a fresh FS in each --inode-file-handles mode that can hold
// 100,000 inodes here.
func BenchmarkLoad100k(b *testing.B) {
	const dirs, files = 100, 1000
	src, dir := bench100k(b, dirs, files)
	st := mustSaveNow(b, src)
	stream, err := migration.Encode(st)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []FileHandleMode{FileHandlesPrefer, FileHandlesMandatory} {
		b.Run(mode.String(), func(b *testing.B) {
			var wall, cpu time.Duration
			n := 0
			for b.Loop() {
				cfg := testConfig(dir)
				cfg.InodeFileHandles = mode
				cfg.FDBudget = 1 << 20
				dst, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				t0, c0 := time.Now(), cpuTime(b)
				st, err := migration.Decode(stream)
				if err == nil {
					err = dst.loadState(st)
				}
				wall += time.Since(t0)
				cpu += cpuTime(b) - c0
				if err != nil {
					b.Fatal(err)
				}
				dst.Close()
				n++
			}
			b.ReportMetric(float64(wall.Milliseconds())/float64(n), "load-ms")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(n), "load-cpu-ms")
		})
	}
}

// bench100k returns an FS (file handles preferred) whose session holds
// dirs directories of files looked-up files each.
func bench100k(b *testing.B, dirs, files int) (*FS, string) {
	requireRoot(b)
	fs, dir := newTestFS(b, func(c *Config) { c.InodeFileHandles = FileHandlesPrefer; c.FDBudget = 1 << 20 })
	if fs.FileHandleMode() != FileHandlesPrefer {
		b.Skip("no file handles on the test directory")
	}
	for i := 0; i < dirs; i++ {
		d := fmt.Sprintf("dir%03d", i)
		if err := os.Mkdir(join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
		id := mustLookup(b, fs, RootID, d).NodeID
		for j := 0; j < files; j++ {
			name := fmt.Sprintf("file%04d", j)
			f, err := os.Create(join(dir, d, name))
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
			mustLookup(b, fs, id, name)
		}
	}
	return fs, dir
}

// cpuTime returns the process's user plus system time.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
