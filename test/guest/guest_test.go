package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"virtiofsd/test/guest/scenario"
)

const (
	// guestTag is the virtio-fs mount tag.
	guestTag = "vfstest"
	// bootTimeout bounds one guest run under TCG (a run takes well under a
	// minute; the margin is for a loaded machine).
	bootTimeout = 5 * time.Minute
)

// initScript is the initramfs /init: it mounts the pseudo file systems, runs
// the guest program and powers off whatever happened.
const initScript = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin
echo "guest: init running, kernel $(uname -r)"
/guestprog
echo "guest: guestprog exited with status $?"
poweroff -f
`

// requireDeps returns the dependencies, or skips the test (fails under
// CI=true) when one is missing.
func requireDeps(t *testing.T) Deps {
	t.Helper()
	d, missing := FindDeps()
	if len(missing) == 0 {
		return d
	}
	msg := fmt.Sprintf("QEMU guest test needs: %s; run scripts/setup.sh (as root) to install them",
		strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIP: " + msg)
	return d
}

// guestProgDir holds the guest program once built; TestMain removes it.
var guestProgDir string

var guestProgram = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "guestprog")
	if err != nil {
		return "", err
	}
	guestProgDir = dir
	out := filepath.Join(dir, "guestprog")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return out, GoBuild(ctx, "./test/guest/guestprog", out)
})

func TestMain(m *testing.M) {
	if os.Getenv(fakeDaemonEnv) == "1" {
		fakeDaemon()
	}
	code := m.Run()
	if guestProgDir != "" {
		os.RemoveAll(guestProgDir)
	}
	os.Exit(code)
}

// TestGuest makes every run of scenario.Runs against the reference daemon
// and then against ours: TestGuest/<daemon>/<run>.
func TestGuest(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("QEMU guest test must run as root (the daemons need it)")
		}
		t.Skip("SKIP: QEMU guest test must run as root (the daemons need it)")
	}
	deps := requireDeps(t)
	prog, err := guestProgram()
	if err != nil {
		t.Fatalf("build guest program: %v", err)
	}
	// The reference's stress outcomes, by run and stressor, for ours to
	// be held to.
	refStress := map[string]map[string]scenario.StressResult{}
	t.Run("reference", func(t *testing.T) {
		for _, r := range scenario.Runs {
			t.Run(r.Name, func(t *testing.T) {
				rep := runGuest(t, deps, prog, deps.Reference, r, true, func(s map[string]scenario.StressResult) bool {
					return judgeRefStress(t, r, s)
				})
				if rep != nil && len(r.Stressors) > 0 {
					refStress[r.Name] = rep.Stress
				}
			})
		}
	})
	t.Run("ours", func(t *testing.T) {
		if err := noteSources(); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(t.TempDir(), "virtiofsd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := GoBuild(ctx, "./cmd/virtiofsd", bin); err != nil {
			t.Fatalf("build our daemon: %v", err)
		}
		for _, r := range scenario.Runs {
			t.Run(r.Name, func(t *testing.T) {
				runGuest(t, deps, prog, bin, r, false, func(s map[string]scenario.StressResult) bool {
					return judgeOursStress(t, r, s, refStress[r.Name])
				})
			})
		}
	})
}

// noteSources opens every Go source file of the module (and go.mod, go.sum).
// The daemon and the guest program are built by a `go build` child process,
// whose inputs the go command's test cache cannot see; files the test
// process itself opens are part of the cache key, so a change to the daemon's
// sources reruns the test instead of reporting a stale cached result.
func noteSources() error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == ".git" || n == "bin" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if n := d.Name(); strings.HasSuffix(n, ".go") || strings.HasSuffix(n, ".s") || n == "go.mod" || n == "go.sum" {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return nil
	})
}

// runGuest seeds a share, boots the guest program for run r against daemon,
// and checks the guest's report and then the share from the host side. It
// returns the guest's report, or nil if the run could not be made. For a
// stress run, judgeStress reports whether the stressors' outcomes are a
// failure (having reported it).
func runGuest(t *testing.T, deps Deps, prog, daemon string, r scenario.Run, isRef bool,
	judgeStress func(map[string]scenario.StressResult) bool) *scenario.Report {
	var stressArchive []byte
	if len(r.Stressors) > 0 {
		a, err := stressInitramfs(deps)
		if err != nil {
			msg := fmt.Sprintf("stress-ng for the guest: %v; run scripts/setup.sh (as root)", err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip("SKIP: " + msg)
		}
		stressArchive = a
	}
	work := t.TempDir()
	share := filepath.Join(work, "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds, err := scenario.CreateSeeds(share)
	if err != nil {
		t.Fatalf("create seeds: %v", err)
	}
	if r.Submount != nil {
		if err := mountSubmount(t, filepath.Join(share, scenario.SubmountDir)); err != nil {
			t.Fatalf("mount the submount: %v", err)
		}
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(share, &sfs); err != nil {
		t.Fatal(err)
	}
	manifest, err := json.Marshal(scenario.Manifest{
		Tag: guestTag, Run: r.Name, Blocks: sfs.Blocks, Bsize: sfs.Bsize, Namelen: sfs.Namelen, Seeds: seeds,
	})
	if err != nil {
		t.Fatal(err)
	}

	initrd := filepath.Join(work, "initrd.gz")
	if err := writeTestInitramfs(initrd, deps.Busybox, prog, manifest, stressArchive); err != nil {
		t.Fatalf("build initramfs: %v", err)
	}

	boot := Boot{
		QEMU: deps.QEMU, Kernel: deps.Kernel, Initrd: initrd,
		Append: "loglevel=4",
		Daemon: daemon,
		Tag:    guestTag, SharedDir: share, WorkDir: work,
		Timeout: bootTimeout,
	}
	// VIRTIOFSD_TEST_DAEMON_ARGS adds options to both daemons, e.g. to
	// compare them under --cache=always.
	boot.DaemonArgs = append(slices.Clone(r.DaemonArgs), strings.Fields(os.Getenv("VIRTIOFSD_TEST_DAEMON_ARGS"))...)
	// VIRTIOFSD_TEST_CONSOLE=1 streams the serial console to stderr.
	if os.Getenv("VIRTIOFSD_TEST_CONSOLE") != "" {
		boot.Console = os.Stderr
	}
	out, err := boot.Run(context.Background())
	dump := func() {
		t.Logf("serial console:\n%s", out.Console)
		t.Logf("daemon output:\n%s", out.DaemonLog)
	}
	if err != nil {
		dump()
		t.Fatalf("run guest with %q: %v", boot.DaemonArgs, err)
	}
	t.Logf("guest run with %q took %v", boot.DaemonArgs, out.Elapsed.Round(time.Millisecond))
	rep := scenario.ParseConsole(out.Console)
	if rep.Summary {
		t.Logf("guest reported %d checks passed, %d failed", rep.NPassed, rep.NFailed)
	}

	failed := false
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		failed = true
	}
	if out.TimedOut {
		fail("guest did not power off within %v", bootTimeout)
	} else if out.QEMUErr != nil {
		fail("qemu: %v", out.QEMUErr)
	}
	if out.DaemonDiedEarly {
		fail("daemon exited while the guest was running: %v", out.DaemonErr)
	} else if !out.DaemonExited {
		fail("daemon did not exit within %v of QEMU closing the connection", daemonExitGrace)
	} else if out.DaemonErr != nil {
		fail("daemon exited with %v after QEMU closed the connection", out.DaemonErr)
	}
	errs, excused := judgeChecks(rep, r, isRef)
	for _, e := range errs {
		fail("guest: %s", e)
	}
	for _, e := range excused {
		t.Logf("known: %s", e)
	}
	for _, name := range r.Stressors {
		if s, ok := rep.Stress[name]; ok {
			t.Logf("stress-ng --%s: %s (%s)", name, s.Outcome, s.Detail)
		}
	}
	if len(r.Stressors) > 0 && judgeStress(rep.Stress) {
		failed = true
	}

	// The host side: the share holds exactly the seeds, unchanged, and what
	// the guest wrote.
	top, err := os.ReadDir(share)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if want := scenario.TopLevel(r); !slices.Equal(names, want) {
		fail("host: share holds %q, want %q", names, scenario.TopLevel(r))
	}
	if err := scenario.Verify(filepath.Join(share, scenario.SeedDir), seeds); err != nil {
		fail("host: seed tree changed:\n%v", err)
	}
	if !r.ReadOnly {
		if _, err := os.Lstat(filepath.Join(share, scenario.GuestDir)); err != nil {
			fail("host: the guest wrote nothing: %v", err)
		} else if err := scenario.Verify(filepath.Join(share, scenario.GuestDir), r.Expected()); err != nil {
			fail("host: guest tree differs from what the guest should have written:\n%v", err)
		}
	}
	if r.Submount != nil {
		// The guest's files in the submount are on the tmpfs, which is
		// still mounted there.
		sub := filepath.Join(share, scenario.SubmountDir)
		var sst, st syscall.Stat_t
		if err := syscall.Stat(share, &sst); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(sub, &st); err != nil {
			fail("host: stat the submount: %v", err)
		} else if st.Dev == sst.Dev {
			fail("host: %s is no longer a mount point", sub)
		} else if err := scenario.Verify(sub, r.Submount()); err != nil {
			fail("host: submount differs from what the host and the guest should have written:\n%v", err)
		}
	}
	if failed {
		dump()
	}
	return &rep
}

// mountSubmount mounts a small tmpfs on dir, which it creates, holding
// scenario.SubmountSeeds, and unmounts it when the test ends, whatever the
// outcome.
func mountSubmount(t *testing.T, dir string) error {
	if err := mountTmpfs(t, dir, "4m"); err != nil {
		return err
	}
	// The one seeded file; the host's check afterwards compares the
	// tmpfs with scenario.SubmountSeeds.
	p := filepath.Join(dir, scenario.SubmountSeedFile)
	if err := os.WriteFile(p, scenario.SeedSubmount, 0o600); err != nil {
		return err
	}
	return os.Chmod(p, 0o644)
}

// judgeChecks returns the guest report's errors, leaving out (into excused)
// the check failures listed in knownFailures for this daemon.
func judgeChecks(rep scenario.Report, r scenario.Run, isRef bool) (errs, excused []string) {
	checks := r.Checks
	var allowed []string
	for _, c := range checks {
		key := r.Name + "/" + c
		reason, ok := refFailures[key]
		if !isRef && !ok {
			reason, ok = oursKnownFailures[key]
		} else if !isRef && ok {
			reason = "fails on the reference too: " + reason
		}
		msg, failed := rep.Failed[c]
		switch {
		case ok && failed:
			excused = append(excused, fmt.Sprintf("check %s failed (%s): %s", c, reason, msg))
			allowed = append(allowed, c)
		case ok && isRef:
			errs = append(errs, fmt.Sprintf("check %s is listed as failing on the reference (%s) but passed; update refFailures", c, reason))
		}
	}
	if len(allowed) > 0 {
		// Judge the rest as if the excused checks had passed.
		rep.Failed = maps.Clone(rep.Failed)
		for _, c := range allowed {
			delete(rep.Failed, c)
			rep.Passed = append(rep.Passed, c)
		}
		rep.NFailed -= len(allowed)
		rep.NPassed += len(allowed)
	}
	return append(errs, rep.Errors(checks)...), excused
}

// judgeOursStress holds our stress outcomes to the reference's: a stressor
// that passed on the reference (in this test run, or, when the reference
// was not run, one not listed in refStressFailures) must pass on ours.
func judgeOursStress(t *testing.T, r scenario.Run, ours, ref map[string]scenario.StressResult) (failed bool) {
	for _, name := range r.Stressors {
		o, ok := ours[name]
		if !ok {
			t.Errorf("stress-ng --%s: no outcome reported", name)
			failed = true
			continue
		}
		refPassed := false
		if ref != nil {
			refPassed = ref[name].Outcome == scenario.StressPass
		} else {
			_, listed := refStressFailures[name]
			refPassed = !listed
		}
		switch {
		case o.Outcome == scenario.StressPass:
		case refPassed:
			if reason, ok := oursKnownStressFailures[name]; ok {
				t.Logf("known: stress-ng --%s %s on ours (%s): %s", name, o.Outcome, reason, o.Detail)
				continue
			}
			t.Errorf("stress-ng --%s: %s on ours, passed on the reference: %s", name, o.Outcome, o.Detail)
			failed = true
		default:
			t.Logf("stress-ng --%s: %s on ours and not passed on the reference (%s)", name, o.Outcome, refStressFailures[name])
		}
	}
	return failed
}

// judgeRefStress requires every stressor that does not pass on the reference
// to be listed in refStressFailures with its reason.
func judgeRefStress(t *testing.T, r scenario.Run, ref map[string]scenario.StressResult) (failed bool) {
	for _, name := range r.Stressors {
		s, ok := ref[name]
		if !ok {
			t.Errorf("stress-ng --%s: no outcome reported", name)
			failed = true
			continue
		}
		reason, listed := refStressFailures[name]
		switch {
		case s.Outcome != scenario.StressPass && !listed:
			t.Errorf("stress-ng --%s: %s on the reference and not listed in refStressFailures: %s", name, s.Outcome, s.Detail)
			failed = true
		case s.Outcome == scenario.StressPass && listed:
			t.Logf("stress-ng --%s passed on the reference although listed as failing (%s)", name, reason)
		}
	}
	return failed
}

// writeTestInitramfs writes the initramfs: busybox, /init, the guest program
// and the manifest, followed by extra, an archive the kernel unpacks on top.
func writeTestInitramfs(path, busybox, prog string, manifest, extra []byte) error {
	es, err := BaseEntries(busybox)
	if err != nil {
		return err
	}
	gp, err := FileEntry("guestprog", prog, 0o755)
	if err != nil {
		return err
	}
	es = append(es,
		CPIOEntry{Name: "init", Mode: syscall.S_IFREG | 0o755, Data: []byte(initScript)},
		gp,
		CPIOEntry{Name: strings.TrimPrefix(scenario.ManifestPath, "/"), Mode: syscall.S_IFREG | 0o644, Data: manifest},
	)
	var buf bytes.Buffer
	if err := WriteCPIO(&buf, es); err != nil {
		return err
	}
	buf.Write(extra)
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// stressInitramfs returns, built once, the compressed archive that adds
// stress-ng, its libraries and loader to the guest's initramfs.
var stressInitramfs = func() func(Deps) ([]byte, error) {
	var once sync.Once
	var b []byte
	var err error
	return func(d Deps) ([]byte, error) {
		once.Do(func() {
			var dir string
			if dir, err = d.StressNGDir(); err != nil {
				return
			}
			var es []CPIOEntry
			if es, err = TreeEntries(dir); err != nil {
				return
			}
			var buf bytes.Buffer
			if err = WriteCPIO(&buf, es); err == nil {
				b = buf.Bytes()
			}
		})
		return b, err
	}
}()
