package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/test/guest/scenario"
)

// daemonKind names the daemon binary of a slot in a migration chain.
type daemonKind string

const (
	ours      daemonKind = "ours"
	reference daemonKind = "reference"
)

// hop is one migration of a chain: to a new QEMU instance served by a new
// daemon of kind to.
type hop struct {
	to daemonKind
	// viaFile saves the guest into a file (migrate to file:PATH), and
	// restores it from there into the new instance, instead of migrating
	// over a socket.
	viaFile bool
	// refused makes the new daemon serve an empty directory on a tmpfs, so
	// that it cannot load the state (--migration-on-error=abort): the
	// migration fails and the guest goes on running on the source.
	refused bool
}

func (h hop) String() string {
	switch {
	case h.refused:
		return fmt.Sprintf("refused by %s", h.to)
	case h.viaFile:
		return fmt.Sprintf("through a file to %s", h.to)
	}
	return string(h.to)
}

// migrationChain is one guest boot and the hops it makes.
type migrationChain struct {
	name string
	boot daemonKind
	hops []hop
}

// migrationChains are the chains TestGuestMigration runs in each mode.
// "mixed" covers reference→ours, ours→ours, ours→reference, a migration
// from ours refused by its destination and a save of ours to a file
// restored into ours; "reference" is the same
// with the reference daemon in every slot, which shows what the harness and
// QEMU do with a daemon known to migrate.
var migrationChains = []migrationChain{
	{
		name: "mixed",
		boot: reference,
		hops: []hop{
			{to: ours},
			{to: ours},
			{to: reference},
			{to: ours},
			{to: ours, refused: true},
			{to: ours, viaFile: true},
		},
	},
	{
		name: "reference",
		boot: reference,
		hops: []hop{
			{to: reference},
			{to: reference, refused: true},
			{to: reference, viaFile: true},
		},
	},
}

// migrationMode is a --migration-mode and the options each daemon needs for
// it. Every daemon of a chain gets its mode's options: each destination may
// be the source of the next hop.
type migrationMode struct {
	name string
	args map[daemonKind][]string
}

var migrationModes = []migrationMode{
	{name: "find-paths"},
	{
		// A destination opens the file handles with open_by_handle_at,
		// which needs CAP_DAC_READ_SEARCH: ours keeps it as root, the
		// reference drops it unless told otherwise.
		name: "file-handles",
		args: map[daemonKind][]string{
			ours:      {"--migration-mode=file-handles"},
			reference: {"--migration-mode=file-handles", "--modcaps=+dac_read_search"},
		},
	},
}

const (
	// migrationTimeout bounds one chain: the boot, every hop and the
	// guest's final checks.
	migrationTimeout = 4 * time.Minute
	// migrationStepTimeout bounds each wait within a chain.
	migrationStepTimeout = 2 * time.Minute
	// quitGrace is how long QEMU gets to quit when asked.
	quitGrace = 30 * time.Second
)

// TestGuestMigration live-migrates a guest that keeps using the share
// between QEMU instances, each served by its own daemon, ours or the
// reference: TestGuestMigration/<chain>/<mode>. The guest program's
// migration mode holds its current directory, cached entries and open files
// in the share through every hop, appending numbered lines through one of
// them; at the end it checks that all of it still works and reports. The
// host then checks the appended lines (none missing, none doubled) and that
// the tree it prepared is unchanged.
func TestGuestMigration(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("QEMU guest migration test must run as root (the daemons need it)")
		}
		t.Skip("SKIP: QEMU guest migration test must run as root (the daemons need it)")
	}
	deps := requireDeps(t)
	prog, err := guestProgram()
	if err != nil {
		t.Fatalf("build guest program: %v", err)
	}
	if err := noteSources(); err != nil {
		t.Fatal(err)
	}
	bins := map[daemonKind]string{reference: deps.Reference}
	bins[ours] = filepath.Join(t.TempDir(), "virtiofsd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := GoBuild(ctx, "./cmd/virtiofsd", bins[ours]); err != nil {
		t.Fatalf("build our daemon: %v", err)
	}
	for _, c := range migrationChains {
		t.Run(c.name, func(t *testing.T) {
			for _, m := range migrationModes {
				t.Run(m.name, func(t *testing.T) {
					runMigrationChain(t, deps, prog, bins, m, c)
				})
			}
		})
	}
}

// chainRun is the state of one chain being run.
type chainRun struct {
	t     *testing.T
	ctx   context.Context
	deps  Deps
	bins  map[daemonKind]string
	mode  migrationMode
	work  string
	share string
	empty string
	// machine returns the QEMU options of the slot whose daemon listens on
	// sock.
	machine func(sock string) []string
	// slots numbers the daemon and QEMU pairs started so far.
	slots int
	// procs are every process started, for the logs and the cleanup.
	procs []*Proc
}

// slot is a daemon and the QEMU instance it serves.
type slot struct {
	kind   daemonKind
	daemon *Proc
	vm     *VM
}

func (s slot) String() string { return fmt.Sprintf("%s (%s)", s.vm.Name, s.kind) }

// start starts a daemon of kind serving dir, and a QEMU instance connected
// to it, waiting for an incoming migration when incoming is set.
func (r *chainRun) start(kind daemonKind, dir string, extra []string, incoming bool) (slot, error) {
	n := r.slots
	r.slots++
	s := slot{kind: kind}
	sock := filepath.Join(r.work, fmt.Sprintf("vfsd%d.sock", n))
	args := append(slices.Clone(r.mode.args[kind]), extra...)
	ctx, cancel := context.WithTimeout(r.ctx, migrationStepTimeout)
	defer cancel()
	var err error
	s.daemon, err = StartDaemon(ctx, fmt.Sprintf("daemon%d", n), r.bins[kind], args, dir, sock)
	if s.daemon != nil {
		r.procs = append(r.procs, s.daemon)
	}
	if err != nil {
		return s, err
	}
	s.vm, err = StartVM(ctx, fmt.Sprintf("qemu%d", n), r.deps.QEMU, r.machine(sock), filepath.Join(r.work, fmt.Sprintf("qmp%d.sock", n)), incoming)
	if s.vm != nil {
		r.procs = append(r.procs, s.vm.Proc)
	}
	return s, err
}

// stop quits the slot's QEMU and checks that its daemon then exits by
// itself, successfully.
func (r *chainRun) stop(s slot) {
	ctx, cancel := context.WithTimeout(r.ctx, migrationStepTimeout)
	defer cancel()
	if !s.vm.Quit(ctx, quitGrace) {
		r.t.Errorf("%s did not quit within %v", s.vm.Name, quitGrace)
	}
	s.vm.QMP.Close()
	r.checkDaemonExit(s)
}

func (r *chainRun) checkDaemonExit(s slot) {
	if !s.daemon.WaitExit(daemonExitGrace) {
		r.t.Errorf("%s (%s) did not exit within %v of its QEMU leaving", s.daemon.Name, s.kind, daemonExitGrace)
		s.daemon.Kill()
	} else if err := s.daemon.Err(); err != nil {
		r.t.Errorf("%s (%s) exited with %v after its QEMU left", s.daemon.Name, s.kind, err)
	}
}

// waitAlive waits for the guest to report a round of its loop on the
// console of vm after offset from.
func (r *chainRun) waitAlive(vm *VM, from int) error {
	ctx, cancel := context.WithTimeout(r.ctx, migrationStepTimeout)
	defer cancel()
	_, err := vm.Out.WaitFor(ctx, from, scenario.MigrateAlive, vm.Done())
	if err != nil {
		return fmt.Errorf("guest not running on %s: %w", vm.Name, err)
	}
	return nil
}

// migrate makes hop h from src and returns the slot the guest runs on
// afterwards (src when the hop is refused).
func (r *chainRun) migrate(src slot, h hop) (slot, error) {
	t := r.t
	t0 := time.Now()
	dir, extra := r.share, []string(nil)
	if h.refused {
		dir, extra = r.empty, []string{"--migration-on-error=abort"}
	}
	dst, err := r.start(h.to, dir, extra, true)
	if err != nil {
		return src, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, migrationStepTimeout)
	defer cancel()
	tm := time.Now()
	var srcStatus, dstStatus string
	if h.viaFile {
		// The whole state goes into the file, then the new instance
		// restores it; the return path needs a socket.
		path := filepath.Join(r.work, fmt.Sprintf("saved%d", r.slots))
		if err := src.vm.SetReturnPath(ctx, false); err != nil {
			return src, err
		}
		if _, err := src.vm.QMP.Execute(ctx, "migrate", map[string]any{"uri": "file:" + path}); err != nil {
			return src, err
		}
		if srcStatus, err = src.vm.WaitMigration(ctx); err != nil {
			return src, err
		}
		if srcStatus != "completed" {
			return src, fmt.Errorf("save of %s to %s: %s", src, path, srcStatus)
		}
		if _, err := dst.vm.QMP.Execute(ctx, "migrate-incoming", map[string]any{"uri": "file:" + path}); err != nil {
			return src, err
		}
		if dstStatus, err = dst.vm.WaitMigration(ctx); err != nil {
			return src, err
		}
	} else {
		uri := "unix:" + filepath.Join(r.work, fmt.Sprintf("mig%d.sock", r.slots))
		if _, err := dst.vm.QMP.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}); err != nil {
			return src, err
		}
		if _, err := src.vm.QMP.Execute(ctx, "migrate", map[string]any{"uri": uri}); err != nil {
			return src, err
		}
		if srcStatus, err = src.vm.WaitMigration(ctx); err != nil {
			return src, err
		}
		if dstStatus, err = dst.vm.WaitMigration(ctx); err != nil && !h.refused {
			return src, err
		} else if err != nil {
			// A destination that fails to load may exit before
			// reporting it.
			dstStatus = fmt.Sprintf("none (%v)", err)
		}
	}
	took := time.Since(tm)

	if h.refused {
		if srcStatus != "failed" {
			return src, fmt.Errorf("migration from %s to %s, which cannot load the state: source reports %s, want failed", src, dst, srcStatus)
		}
		from := src.vm.Out.Len()
		if err := src.vm.WaitRunning(ctx); err != nil {
			return src, fmt.Errorf("after the failed migration: %w", err)
		}
		dst.vm.Close()
		dst.daemon.Kill()
		if err := r.waitAlive(src.vm, from); err != nil {
			return src, err
		}
		t.Logf("hop %s → %s refused (destination: %s) in %v; guest goes on on %s (hop %v)",
			src, dst, dstStatus, took.Round(time.Millisecond), src, time.Since(t0).Round(time.Millisecond))
		return src, nil
	}
	if srcStatus != "completed" || dstStatus != "completed" {
		return src, fmt.Errorf("migration from %s to %s: source reports %s, destination %s", src, dst, srcStatus, dstStatus)
	}
	if st, err := src.vm.RunState(ctx); err != nil {
		return src, err
	} else if st != "postmigrate" {
		t.Errorf("%s is %s after migrating away, want postmigrate", src, st)
	}
	r.stop(src)
	if err := r.waitAlive(dst.vm, 0); err != nil {
		return dst, err
	}
	how := "migrated"
	if h.viaFile {
		how = "saved and restored"
	}
	t.Logf("hop %s → %s %s in %v (hop %v)", src, dst, how, took.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	return dst, nil
}

func runMigrationChain(t *testing.T, deps Deps, prog string, bins map[daemonKind]string, mode migrationMode, c migrationChain) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), migrationTimeout)
	defer cancel()
	r := &chainRun{t: t, ctx: ctx, deps: deps, bins: bins, mode: mode, work: t.TempDir()}

	r.share = filepath.Join(r.work, "share")
	if err := os.Mkdir(r.share, 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := scenario.CreateMigrateTree(r.share)
	if err != nil {
		t.Fatalf("create the tree: %v", err)
	}
	r.empty = filepath.Join(r.work, "empty")
	if err := mountTmpfs(t, r.empty, "1m"); err != nil {
		t.Fatal(err)
	}
	// Registered after the tmpfs's unmount, so run before it: no daemon
	// is left serving the tmpfs when it goes.
	t.Cleanup(func() {
		for _, p := range r.procs {
			p.Kill()
		}
		if t.Failed() {
			for _, p := range r.procs {
				t.Logf("%s output:\n%s", p.Name, p.Out.String())
			}
		}
	})
	manifest, err := json.Marshal(scenario.Manifest{Tag: guestTag, Mode: scenario.ModeMigrate, Seeds: tree})
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(r.work, "initrd.gz")
	if err := writeTestInitramfs(initrd, deps.Busybox, prog, manifest, nil); err != nil {
		t.Fatalf("build initramfs: %v", err)
	}
	r.machine = func(sock string) []string {
		return machineArgs(sock, guestTag, deps.Kernel, initrd, "loglevel=4")
	}

	cur, err := r.start(c.boot, r.share, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, migrationStepTimeout)
	_, err = cur.vm.Out.WaitFor(bctx, 0, scenario.MigrateReady, cur.vm.Done())
	bcancel()
	if err != nil {
		t.Fatalf("guest on %s: %v", cur, err)
	}
	if err := r.waitAlive(cur.vm, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest booted on %s and holds its files after %v", cur, time.Since(start).Round(time.Millisecond))

	for i, h := range c.hops {
		next, err := r.migrate(cur, h)
		if err != nil {
			t.Fatalf("hop %d (%s) from %s: %v", i+1, h, cur, err)
		}
		cur = next
	}

	// Stop the guest's loop; it checks what it holds, reports and powers
	// off.
	if err := os.WriteFile(filepath.Join(r.share, scenario.MigrateStopFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cur.vm.Done():
	case <-ctx.Done():
		t.Fatalf("guest on %s did not power off: %v", cur, ctx.Err())
	}
	if err := cur.vm.Err(); err != nil {
		t.Errorf("%s: %v", cur.vm.Name, err)
	}
	r.checkDaemonExit(cur)
	t.Logf("chain done in %v", time.Since(start).Round(time.Millisecond))

	rep, err := scenario.ParseMigrateReport(cur.vm.Out.String())
	if err != nil {
		t.Fatalf("guest on %s: %v", cur, err)
	}
	t.Logf("guest: %d rounds, %d lines appended, %d entries walked", rep.Iterations, rep.Lines, rep.Entries)
	for _, l := range strings.Split(cur.vm.Out.String(), "\n") {
		if strings.HasPrefix(l, "guestprog: ") {
			t.Log(strings.TrimSpace(l))
		}
	}
	for _, e := range rep.Errors {
		t.Errorf("guest: %s", e)
	}
	if rep.Entries != len(tree) {
		t.Errorf("guest walked %d entries, the host created %d", rep.Entries, len(tree))
	}
	if rep.Lines != rep.Iterations+1 {
		t.Errorf("guest appended %d lines in %d rounds, want one per round and one more", rep.Lines, rep.Iterations)
	}

	// The host side: every line the guest appended is there once, in
	// order, and the tree is as the host made it.
	logPath := filepath.Join(r.share, scenario.GuestDir, scenario.MigrateLogFile)
	if b, err := os.ReadFile(logPath); err != nil {
		t.Errorf("host: %v", err)
	} else if n, err := scenario.CheckMigrateLog(b); err != nil {
		t.Errorf("host: %s: %v", scenario.MigrateLogFile, err)
	} else if n != rep.Lines {
		t.Errorf("host: %s holds %d lines, the guest appended %d", scenario.MigrateLogFile, n, rep.Lines)
	}
	if names, err := readDirNames(r.share); err != nil {
		t.Error(err)
	} else if want := []string{scenario.GuestDir, scenario.MigrateStopFile, scenario.MigrateTreeDir}; !slices.Equal(names, want) {
		t.Errorf("host: share holds %q, want %q", names, want)
	}
	if names, err := readDirNames(filepath.Join(r.share, scenario.GuestDir)); err != nil {
		t.Error(err)
	} else if want := []string{scenario.MigrateLogFile}; !slices.Equal(names, want) {
		t.Errorf("host: %s holds %q, want %q", scenario.GuestDir, names, want)
	}
	if err := scenario.Verify(filepath.Join(r.share, scenario.MigrateTreeDir), tree); err != nil {
		t.Errorf("host: the tree changed:\n%v", err)
	}
}

func readDirNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names, nil
}

// mountTmpfs mounts an empty tmpfs of the given size on dir, which it
// creates, and unmounts it when the test ends, whatever the outcome.
func mountTmpfs(t *testing.T, dir, size string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("detach %s: %v", dir, err)
			}
		}
	})
	return nil
}
