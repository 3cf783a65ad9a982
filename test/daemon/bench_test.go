package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// benchResults keeps the last measurement of each benchmark per daemon
// for the ratio table printed by TestMain.
var benchResults = struct {
	sync.Mutex
	m map[string]map[string]benchResult
}{m: map[string]map[string]benchResult{}}

type benchResult struct {
	opsPerSec float64
	mibPerSec float64
}

func recordBench(b *testing.B, bench, daemon string, bytesPerOp int, elapsed time.Duration) {
	if elapsed <= 0 {
		return
	}
	ops := float64(b.N) / elapsed.Seconds()
	mib := ops * float64(bytesPerOp) / (1 << 20)
	b.ReportMetric(ops, "ops/s")
	if bytesPerOp > 0 {
		b.ReportMetric(mib, "MiB/s")
	}
	benchResults.Lock()
	defer benchResults.Unlock()
	if benchResults.m[bench] == nil {
		benchResults.m[bench] = map[string]benchResult{}
	}
	benchResults.m[bench][daemon] = benchResult{ops, mib}
}

// printBenchReport prints ours/reference ratios for every benchmark that
// ran against both daemons.
func printBenchReport() {
	benchResults.Lock()
	defer benchResults.Unlock()
	if len(benchResults.m) == 0 {
		return
	}
	var names []string
	for n := range benchResults.m {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("\n%-16s %14s %14s %12s %12s %8s\n", "benchmark", "ours ops/s", "ref ops/s", "ours MiB/s", "ref MiB/s", "ratio")
	for _, n := range names {
		o, okO := benchResults.m[n][ours.name]
		r, okR := benchResults.m[n][reference.name]
		ratio := "-"
		if okO && okR && r.opsPerSec > 0 {
			ratio = fmt.Sprintf("%.2f", o.opsPerSec/r.opsPerSec)
		}
		cell := func(ok bool, v float64) string {
			if !ok || v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f", v)
		}
		fmt.Printf("%-16s %14s %14s %12s %12s %8s\n", n, cell(okO, o.opsPerSec), cell(okR, r.opsPerSec),
			cell(okO, o.mibPerSec), cell(okR, r.mibPerSec), ratio)
	}
	fmt.Println("(ratio = ours / reference ops/s; higher is better for ours)")
}

// forEachDaemonBench runs fn as a sub-benchmark per daemon.
func forEachDaemonBench(b *testing.B, fn func(b *testing.B, spec *daemonSpec)) {
	for _, spec := range daemons {
		b.Run(spec.name, func(b *testing.B) {
			requireDaemon(b, spec)
			fn(b, spec)
		})
	}
}

func benchDaemon(b *testing.B, spec *daemonSpec, fileSize int) (*daemon, []byte) {
	b.Helper()
	d := startDaemon(b, spec, startOpts{fe: fe.Options{NoZeroOut: true, EventIdx: true, Regions: []fe.RegionSpec{{GPA: 0x1000_0000, Size: 64 << 20}}}})
	data := make([]byte, fileSize)
	for i := range data {
		data[i] = byte(i*13 + i>>12)
	}
	p := filepath.Join(d.Shared, "file")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	// Page-cache the file.
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		b.Fatal("prepare file")
	}
	return d, data
}

func BenchmarkLookup(b *testing.B) {
	forEachDaemonBench(b, func(b *testing.B, spec *daemonSpec) {
		d, _ := benchDaemon(b, spec, 0)
		e, err := d.FE.Lookup(root, "file")
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := d.FE.Lookup(root, "file"); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		recordBench(b, "Lookup", spec.name, 0, elapsed)
		if err := d.FE.Forget(e.NodeID, uint64(b.N)+1); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkGetattr(b *testing.B) {
	forEachDaemonBench(b, func(b *testing.B, spec *daemonSpec) {
		d, _ := benchDaemon(b, spec, 0)
		e, err := d.FE.Lookup(root, "file")
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := d.FE.Getattr(e.NodeID); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		recordBench(b, "Getattr", spec.name, 0, elapsed)
	})
}

func benchRead(b *testing.B, name string, size int) {
	const fileSize = 16 << 20
	forEachDaemonBench(b, func(b *testing.B, spec *daemonSpec) {
		d, data := benchDaemon(b, spec, fileSize)
		e, err := d.FE.Lookup(root, "file")
		if err != nil {
			b.Fatal(err)
		}
		o, err := d.FE.Open(e.NodeID, unix.O_RDONLY)
		if err != nil {
			b.Fatal(err)
		}
		// Check the content once outside the timed loop.
		for off := 0; off < fileSize; off += size {
			got, err := d.FE.ReadView(e.NodeID, o.Fh, uint64(off), uint32(size))
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, data[off:off+size]) {
				b.Fatalf("READ at %d returned wrong data", off)
			}
		}
		b.SetBytes(int64(size))
		b.ResetTimer()
		start := time.Now()
		off := 0
		for i := 0; i < b.N; i++ {
			got, err := d.FE.ReadView(e.NodeID, o.Fh, uint64(off), uint32(size))
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != size {
				b.Fatalf("short READ: %d", len(got))
			}
			if off += size; off >= fileSize {
				off = 0
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		recordBench(b, name, spec.name, size, elapsed)
	})
}

func BenchmarkRead4K(b *testing.B) { benchRead(b, "Read4K", 4096) }

func BenchmarkRead1M(b *testing.B) { benchRead(b, "Read1M", 1<<20) }
