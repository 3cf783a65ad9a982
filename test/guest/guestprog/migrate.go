package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/test/guest/scenario"
)

// The migration boot (scenario.ModeMigrate): the guest holds state in the
// share — its current directory, cached entries, a file open for appending,
// a file and a directory open for reading — and keeps using it while the host
// migrates the guest from QEMU to QEMU. At the end it checks that everything
// it held still works and that the tree looks as it did at the start.

// migrateLoopLimit bounds the loop when the host never creates the stop file.
const migrateLoopLimit = 20 * time.Minute

// migratePace is the pause between two rounds of the loop: enough for the
// guest to leave CPU time to the host's migration work under TCG.
const migratePace = 10 * time.Millisecond

// maxMigrateErrors bounds the errors the report carries.
const maxMigrateErrors = 20

// walked is what the first walk saw of one entry.
type walked struct {
	path string
	st   unix.Stat_t
}

type migrator struct {
	m      scenario.Manifest
	rep    scenario.MigrateReport
	errs   int
	first  []walked
	byPath map[string]unix.Stat_t
}

func (r *migrator) fail(format string, args ...any) {
	r.errs++
	if len(r.rep.Errors) < maxMigrateErrors {
		r.rep.Errors = append(r.rep.Errors, fmt.Sprintf(format, args...))
	} else if len(r.rep.Errors) == maxMigrateErrors {
		r.rep.Errors = append(r.rep.Errors, "more errors left out")
	}
}

// runMigrate performs the migration boot and prints its report.
func runMigrate(m scenario.Manifest) int {
	r := &migrator{m: m}
	start := time.Now()
	if err := r.run(); err != nil {
		r.fail("%v", err)
	}
	fmt.Fprintf(os.Stderr, "guestprog: migration boot took %v\n", time.Since(start).Round(time.Millisecond))
	fmt.Println(scenario.FormatMigrateReport(r.rep))
	if len(r.rep.Errors) > 0 {
		return 1
	}
	return 0
}

// run returns an error only when it cannot go on; other problems are
// recorded with fail.
func (r *migrator) run() error {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(r.m.Tag, mnt, "virtiofs", 0, ""); err != nil {
		return fmt.Errorf("mount -t virtiofs %s %s: %w", r.m.Tag, mnt, err)
	}
	defer func() {
		if err := os.Chdir("/"); err != nil {
			r.fail("chdir /: %v", err)
		}
		unix.Sync()
		if err := unix.Unmount(mnt, 0); err != nil {
			r.fail("umount %s: %v", mnt, err)
		}
	}()
	if err := os.Mkdir(filepath.Join(mnt, scenario.GuestDir), 0o755); err != nil {
		return err
	}
	treeDir := filepath.Join(mnt, scenario.MigrateTreeDir)
	if err := os.Chdir(treeDir); err != nil {
		return err
	}

	// Stat every entry: they are now in the guest's caches, and each
	// holds a lookup reference in the daemon.
	t0 := time.Now()
	first, err := walkTree()
	if err != nil {
		return fmt.Errorf("first walk: %w", err)
	}
	r.first = first
	r.rep.Entries = len(first) - 1
	r.byPath = map[string]unix.Stat_t{}
	for _, w := range first {
		r.byPath[w.path] = w.st
	}
	r.checkAgainstManifest()
	fmt.Fprintf(os.Stderr, "guestprog: first walk of %d entries took %v\n", len(first), time.Since(t0).Round(time.Millisecond))

	logRel := filepath.Join("..", scenario.GuestDir, scenario.MigrateLogFile)
	logf, err := os.OpenFile(logRel, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if logf != nil {
			logf.Close()
		}
	}()
	known, err := os.Open(scenario.MigrateKnownFile)
	if err != nil {
		return err
	}
	defer func() {
		if known != nil {
			known.Close()
		}
	}()
	held, err := os.Open(scenario.MigrateHeldDir)
	if err != nil {
		return err
	}
	defer func() {
		if held != nil {
			held.Close()
		}
	}()
	heldNames, err := held.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("readdir %s: %w", scenario.MigrateHeldDir, err)
	}
	slices.Sort(heldNames)

	fmt.Println(scenario.MigrateReady)
	r.loop(logf, known)

	// Every held descriptor still works.
	r.appendLine(logf)
	r.checkKnown(known)
	for _, f := range []*os.File{logf, known, held} {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			r.fail("fstat held %s: %v", f.Name(), err)
		}
	}
	if _, err := held.Seek(0, io.SeekStart); err != nil {
		r.fail("rewind held directory %s: %v", scenario.MigrateHeldDir, err)
	} else if names, err := held.Readdirnames(-1); err != nil {
		r.fail("readdir held directory %s: %v", scenario.MigrateHeldDir, err)
	} else if slices.Sort(names); !slices.Equal(names, heldNames) {
		r.fail("readdir held directory %s: %d names %q..., had %d", scenario.MigrateHeldDir, len(names), names[:min(3, len(names))], len(heldNames))
	}
	for _, f := range []**os.File{&logf, &known, &held} {
		name := (*f).Name()
		err := (*f).Close()
		*f = nil
		if err != nil {
			r.fail("close held %s: %v", name, err)
		}
	}

	// What was appended, read back through the daemon.
	if err := dropCaches(); err != nil {
		r.fail("drop caches: %v", err)
	}
	if b, err := os.ReadFile(logRel); err != nil {
		r.fail("read %s: %v", logRel, err)
	} else if n, err := scenario.CheckMigrateLog(b); err != nil {
		r.fail("%s: %v", logRel, err)
	} else if n != r.rep.Lines {
		r.fail("%s holds %d lines, the guest appended %d", logRel, n, r.rep.Lines)
	}

	// The current directory is still the tree, and the tree is unchanged.
	if wd, err := os.Getwd(); err != nil || wd != treeDir {
		r.fail("getcwd: %q, %v; want %q", wd, err, treeDir)
	}
	t0 = time.Now()
	again, err := walkTree()
	fmt.Fprintf(os.Stderr, "guestprog: second walk took %v\n", time.Since(t0).Round(time.Millisecond))
	if err != nil {
		r.fail("second walk: %v", err)
	} else {
		r.compareWalks(again)
	}
	r.checkContents()
	return nil
}

// migrateSample is the share of the tree's files whose content the guest
// reads at the end: one in migrateSample (the host reads them all).
const migrateSample = 20

// checkContents reads a sample of the tree's files, the held file and the
// hard-linked pair among them, and compares them with the host's digests.
func (r *migrator) checkContents() {
	t0 := time.Now()
	n := 0
	for i, e := range r.m.Seeds {
		if e.Kind != scenario.File || (i%migrateSample != 0 && e.Path != scenario.MigrateKnownFile && e.Nlink < 2) {
			continue
		}
		n++
		b, err := os.ReadFile(e.Path)
		switch {
		case err != nil:
			r.fail("read %s: %v", e.Path, err)
		case scenario.Digest(b) != e.SHA256:
			r.fail("read %s: %d bytes, sha256 %s; host wrote %d bytes, sha256 %s", e.Path, len(b), scenario.Digest(b), e.Size, e.SHA256)
		}
	}
	fmt.Fprintf(os.Stderr, "guestprog: read %d files in %v\n", n, time.Since(t0).Round(time.Millisecond))
}

// loop runs the rounds until the stop file appears.
func (r *migrator) loop(logf, known *os.File) {
	stop := filepath.Join(mnt, scenario.MigrateStopFile)
	deadline := time.Now().Add(migrateLoopLimit)
	lastAlive := time.Now()
	for i := 0; ; i++ {
		if _, err := os.Lstat(stop); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			r.fail("lstat %s: %v", stop, err)
		}
		if time.Now().After(deadline) {
			r.fail("no stop file after %v", migrateLoopLimit)
			break
		}
		r.rep.Iterations++
		r.appendLine(logf)
		r.checkKnown(known)
		for k := 0; k < 3; k++ {
			w := r.first[(3*i+k)%len(r.first)]
			var st unix.Stat_t
			if err := unix.Lstat(w.path, &st); err != nil {
				r.fail("round %d: lstat %s: %v", r.rep.Iterations, w.path, err)
			} else if d := diffStat(w.st, st); d != "" {
				r.fail("round %d: lstat %s: %s", r.rep.Iterations, w.path, d)
			}
		}
		if time.Since(lastAlive) >= time.Second {
			lastAlive = time.Now()
			fmt.Printf("%s%d\n", scenario.MigrateAlive, r.rep.Iterations)
		}
		time.Sleep(migratePace)
	}
	fmt.Printf("%s%d\n", scenario.MigrateAlive, r.rep.Iterations)
}

// appendLine appends the next numbered line through the held descriptor.
func (r *migrator) appendLine(logf *os.File) {
	line := scenario.MigrateLine(r.rep.Lines + 1)
	n, err := logf.WriteString(line)
	switch {
	case err != nil:
		r.fail("append line %d: %v (%d bytes written)", r.rep.Lines+1, err, n)
	default:
		r.rep.Lines++
	}
}

// checkKnown drops the held file's cached pages and reads it whole through
// the held descriptor, so that the read reaches the daemon's handle.
func (r *migrator) checkKnown(known *os.File) {
	fd := int(known.Fd())
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		r.fail("fadvise DONTNEED %s: %v", scenario.MigrateKnownFile, err)
	}
	buf := make([]byte, len(scenario.MigrateKnown)+1)
	n, err := known.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		r.fail("pread held %s: %v", scenario.MigrateKnownFile, err)
	} else if !bytes.Equal(buf[:n], scenario.MigrateKnown) {
		r.fail("pread held %s: %d bytes, sha256 %s, want %d bytes, sha256 %s", scenario.MigrateKnownFile,
			n, scenario.Digest(buf[:n]), len(scenario.MigrateKnown), scenario.Digest(scenario.MigrateKnown))
	}
}

// walkTree stats every entry below the current directory, itself first.
func walkTree() ([]walked, error) {
	var ws []walked
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		ws = append(ws, walked{path: p, st: st})
		return nil
	})
	return ws, err
}

// diffStat describes how the identity and metadata of an entry changed.
func diffStat(a, b unix.Stat_t) string {
	switch {
	case a.Ino != b.Ino:
		return fmt.Sprintf("inode %d, was %d", b.Ino, a.Ino)
	case a.Dev != b.Dev:
		return fmt.Sprintf("device %#x, was %#x", b.Dev, a.Dev)
	case a.Mode != b.Mode:
		return fmt.Sprintf("mode %#o, was %#o", b.Mode, a.Mode)
	case a.Nlink != b.Nlink:
		return fmt.Sprintf("nlink %d, was %d", b.Nlink, a.Nlink)
	case a.Size != b.Size:
		return fmt.Sprintf("size %d, was %d", b.Size, a.Size)
	case a.Mtim != b.Mtim:
		return fmt.Sprintf("mtime %v, was %v", b.Mtim, a.Mtim)
	case a.Uid != b.Uid || a.Gid != b.Gid:
		return fmt.Sprintf("owner %d:%d, was %d:%d", b.Uid, b.Gid, a.Uid, a.Gid)
	}
	return ""
}

// checkAgainstManifest compares the first walk with the host's description:
// the same names, inode numbers and types.
func (r *migrator) checkAgainstManifest() {
	if len(r.first)-1 != len(r.m.Seeds) {
		r.fail("first walk: %d entries, the host created %d", len(r.first)-1, len(r.m.Seeds))
	}
	for _, e := range r.m.Seeds {
		st, ok := r.byPath[e.Path]
		if !ok {
			r.fail("first walk: %s missing", e.Path)
			continue
		}
		if e.Ino != 0 && st.Ino != e.Ino {
			r.fail("first walk: %s has inode %d, host has %d", e.Path, st.Ino, e.Ino)
		}
	}
}

// compareWalks compares the last walk with the first.
func (r *migrator) compareWalks(again []walked) {
	if len(again) != len(r.first) {
		r.fail("second walk: %d entries, first had %d", len(again), len(r.first))
	}
	for _, w := range again {
		st, ok := r.byPath[w.path]
		if !ok {
			r.fail("second walk: %s is new", w.path)
			continue
		}
		if d := diffStat(st, w.st); d != "" {
			r.fail("second walk: %s: %s", w.path, d)
		}
	}
}
