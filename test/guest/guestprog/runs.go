package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/test/guest/scenario"
)

// readonly checks a share served with --readonly: every request that would
// change it fails with EROFS, and reading still works.
func (t *g) readonly() error {
	seed := func(rel string) string { return filepath.Join(mnt, scenario.SeedDir, rel) }
	var errs []error
	expect := func(what string, err error) {
		if e := expectErrno(what, err, unix.EROFS); e != nil {
			errs = append(errs, e)
		}
	}
	_, err := os.OpenFile(seed("new.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	expect("create", err)
	_, err = os.OpenFile(seed("hello.txt"), os.O_WRONLY, 0)
	expect("open for writing", err)
	_, err = os.OpenFile(seed("hello.txt"), os.O_WRONLY|os.O_TRUNC, 0)
	expect("open with O_WRONLY|O_TRUNC", err)
	// Read-only with O_TRUNC: both daemons refuse it with EINVAL rather
	// than EROFS; either way the file must stay as it is.
	_, err = os.OpenFile(seed("hello.txt"), os.O_RDONLY|os.O_TRUNC, 0)
	if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EINVAL) {
		errs = append(errs, fmt.Errorf("open with O_RDONLY|O_TRUNC: got %v, want EROFS or EINVAL", err))
	}
	expect("mkdir", os.Mkdir(seed("newdir"), 0o755))
	expect("mknod fifo", unix.Mkfifo(seed("newfifo"), 0o644))
	expect("symlink", os.Symlink("hello.txt", seed("newlink")))
	expect("link", os.Link(seed("hello.txt"), seed("newhard")))
	expect("unlink", os.Remove(seed("hello.txt")))
	expect("rmdir", unix.Rmdir(seed("sub/deeper")))
	expect("rename", os.Rename(seed("hello.txt"), seed("renamed")))
	expect("chmod", os.Chmod(seed("hello.txt"), 0o600))
	expect("chown", os.Chown(seed("hello.txt"), 1, 1))
	expect("truncate", os.Truncate(seed("hello.txt"), 1))
	ts := []unix.Timespec{unix.NsecToTimespec(1e9), unix.NsecToTimespec(1e9)}
	expect("utimensat", unix.UtimesNanoAt(unix.AT_FDCWD, seed("hello.txt"), ts, 0))
	expect("mkdir guest directory", os.Mkdir(t.root, 0o755))
	if err := dropCaches(); err != nil {
		errs = append(errs, err)
	}
	// Reading still works, and nothing changed.
	if b, err := os.ReadFile(seed("hello.txt")); err != nil || !bytes.Equal(b, scenario.SeedHello) {
		errs = append(errs, fmt.Errorf("read hello.txt: %q, %v", b, err))
	}
	if err := scenario.Verify(filepath.Join(mnt, scenario.SeedDir), t.m.Seeds); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stressBytes are the per-stressor data sizes: small enough for a 512 MiB
// guest under TCG, large enough to span many requests.
var stressBytes = map[string][]string{
	"hdd":       {"--hdd-bytes", "32M"},
	"fallocate": {"--fallocate-bytes", "32M"},
	"mmap":      {"--mmap-bytes", "16M"},
	"readahead": {"--readahead-bytes", "16M"},
	"seek":      {"--seek-size", "16M"},
	"copy-file": {"--copy-file-bytes", "128M"}, // its minimum
	"sync-file": {"--sync-file-bytes", "16M"},
}

// stressNG is where the initramfs holds stress-ng.
const stressNG = "/usr/bin/stress-ng"

// stress runs each stressor of the run, one stress-ng process each, with
// --verify in a directory on the share, and reports one stress line per
// stressor. The check itself fails only when stress-ng cannot run at all or
// the share stops answering; the host judges the stressors' outcomes.
func (t *g) stress() error {
	dir := t.path(scenario.StressDir)
	if err := os.Mkdir(dir, 0o777); err != nil {
		return err
	}
	if out, err := exec.Command(stressNG, "--version").CombinedOutput(); err != nil {
		return fmt.Errorf("%s --version: %v: %s", stressNG, err, bytes.TrimSpace(out))
	}
	for _, s := range t.run.Stressors {
		args := []string{"--" + s, "1", "--verify", "--timeout", fmt.Sprintf("%ds", t.run.StressSeconds),
			"--temp-path", dir, "--metrics-brief"}
		args = append(args, stressBytes[s]...)
		cmd := exec.Command(stressNG, args...)
		cmd.Dir = dir
		// A stressor that hangs is a failure, not a stuck guest.
		limit := time.Duration(t.run.StressSeconds)*time.Second + 60*time.Second
		t0 := time.Now()
		out, err := runWithLimit(cmd, limit)
		took := time.Since(t0).Round(100 * time.Millisecond)
		outcome, detail := judgeStress(out, err)
		fmt.Fprintf(os.Stderr, "guestprog: stress-ng --%s took %v: %s\n", s, took, outcome)
		fmt.Println(scenario.FormatStress(s, outcome, fmt.Sprintf("%v; %s", took, detail)))
		if outcome == scenario.StressFail {
			// Show stress-ng's whole output on the console for the record.
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				fmt.Fprintf(os.Stderr, "guestprog: stress-ng --%s: %s\n", s, l)
			}
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return fmt.Errorf("statfs after stressor %s: %w", s, err)
		}
	}
	return nil
}

// runWithLimit runs cmd, killing it after limit, and returns its combined
// output.
func runWithLimit(cmd *exec.Cmd, limit time.Duration) ([]byte, error) {
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.Bytes(), err
	case <-time.After(limit):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return buf.Bytes(), fmt.Errorf("killed after %v", limit)
	}
}

// judgeStress turns stress-ng's exit status and output into an outcome. Exit
// status 3 (no resource) and 4 (not implemented) are skips; any other
// non-zero status, and any "fail:" line, is a failure.
func judgeStress(out []byte, err error) (string, string) {
	var fails, skips []string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.Contains(l, " fail: "), strings.Contains(l, "verification"), strings.Contains(l, "unsuccessful"):
			fails = append(fails, strings.TrimSpace(l))
		case strings.Contains(l, "skipping stressor"), strings.Contains(l, "not implemented"):
			skips = append(skips, strings.TrimSpace(l))
		}
	}
	var ee *exec.ExitError
	code := 0
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		return scenario.StressFail, fmt.Sprintf("%v; %s", err, strings.Join(fails, "; "))
	}
	detail := fmt.Sprintf("exit %d", code)
	switch {
	case code == 0 && len(fails) == 0:
		if len(skips) > 0 {
			return scenario.StressSkip, detail + "; " + strings.Join(skips, "; ")
		}
		return scenario.StressPass, detail
	case (code == 3 || code == 4) && len(fails) == 0:
		return scenario.StressSkip, detail + "; " + strings.Join(skips, "; ")
	}
	if len(fails) == 0 {
		// Say something: stress-ng's last lines.
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		fails = lines[max(0, len(lines)-3):]
	}
	return scenario.StressFail, detail + "; " + strings.Join(fails, "; ")
}

// afterStress checks that the share still works after the stressors and
// clears what they left.
func (t *g) afterStress() error {
	dir := t.path(scenario.StressDir)
	left, err := readNames(dir)
	if err != nil {
		return fmt.Errorf("readdir %s after the stressors: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s (it held %q): %w", dir, left, err)
	}
	p := t.path("alive.txt")
	if err := os.WriteFile(p, scenario.GuestSmall, 0o666); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	if err := t.expectContent("alive.txt", scenario.GuestSmall); err != nil {
		return err
	}
	return os.Remove(p)
}

// mmapRefused checks a share served with --cache=never and without
// --allow-mmap: files are opened for direct I/O, so the guest refuses shared
// mappings (ENODEV) and still allows private ones.
func (t *g) mmapRefused() error {
	f, err := os.OpenFile(t.path("small.txt"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n := len(scenario.GuestSmall)
	for _, prot := range []int{unix.PROT_READ, unix.PROT_READ | unix.PROT_WRITE} {
		m, err := unix.Mmap(int(f.Fd()), 0, n, prot, unix.MAP_SHARED)
		if err == nil {
			unix.Munmap(m)
		}
		if err := expectErrno(fmt.Sprintf("mmap MAP_SHARED prot %#x", prot), err, unix.ENODEV); err != nil {
			return err
		}
	}
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("mmap MAP_PRIVATE: %w", err)
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m, scenario.GuestSmall) {
		return fmt.Errorf("private mapping of small.txt: %q, want %q", m, scenario.GuestSmall)
	}
	return nil
}
