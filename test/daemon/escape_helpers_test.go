package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers of the escape catalogue (escape_test.go).

// escapeTree is a temporary directory holding the shared directory and,
// next to it, an "outside" directory with a secret file and a sibling
// directory that no guest request may reach.
type escapeTree struct {
	top, shared, outside string
}

func newEscapeTree(t *testing.T) escapeTree {
	t.Helper()
	top := t.TempDir()
	e := escapeTree{top: top, shared: filepath.Join(top, "shared"), outside: filepath.Join(top, "outside")}
	for _, d := range []string{e.shared, e.outside, filepath.Join(e.outside, "sibling")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeHost(t, filepath.Join(e.outside, "secret"), []byte("secret"), 0o600)
	writeHost(t, filepath.Join(e.outside, "sibling", "inner"), []byte("inner"), 0o644)
	writeHost(t, filepath.Join(top, "topsecret"), []byte("topsecret"), 0o600)
	return e
}

// snapshot describes every object under dir (names, types, modes, owners,
// sizes, link counts, modification and change times, file contents);
// skip names subtrees (relative paths) left out.
func snapshot(t *testing.T, dir string, skip ...string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l := fmt.Sprintf("%s ino=%d mode=%#o uid=%d gid=%d size=%d nlink=%d mtime=%d.%d ctime=%d.%d",
			rel, st.Ino, st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l += fmt.Sprintf(" data=%q", b)
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return strings.Join(lines, "\n")
}

// errnoOf returns the errno of a FUSE error reply (0 for success, -1 for
// a transport or framing failure).
func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return ^unix.Errno(0)
}

// mustFail fails the test if err is not a FUSE error reply.
func mustFail(t *testing.T, what string, err error) {
	t.Helper()
	if e := errnoOf(err); e == 0 || e == ^unix.Errno(0) {
		t.Errorf("%s = %v, want an error reply", what, err)
	}
}

// daemonPids returns the daemon's process and its descendants (the
// namespace sandbox runs the serving process as a child of the one
// started).
func daemonPids(d *daemon) []int {
	pids := []int{d.Pid()}
	for i := 0; i < len(pids); i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pids[i]))
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pids[i], task.Name()))
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					pids = append(pids, c)
				}
			}
		}
	}
	return pids
}

// openedFor lists the daemon's descriptors that refer to the object at
// path (same device and inode) and were opened for real, i.e. without
// O_PATH; each as "pid/fd flags".
func openedFor(t *testing.T, d *daemon, path string) []string {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Lstat(path, &want); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	var found []string
	for _, pid := range daemonPids(d) {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			var st unix.Stat_t
			// stat follows the magic link to the object itself.
			if unix.Stat(filepath.Join(dir, e.Name()), &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
				continue
			}
			info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(info), "\n") {
				v, ok := strings.CutPrefix(l, "flags:")
				if !ok {
					continue
				}
				flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if err == nil && flags&unix.O_PATH == 0 {
					found = append(found, fmt.Sprintf("%d/%s flags %#o", pid, e.Name(), flags))
				}
			}
		}
	}
	sort.Strings(found)
	return found
}

// withGroups runs f with the test process's supplementary group list set
// to gids, so that a daemon started by f inherits them; the list is
// restored afterwards. setgroups(2) applies to every thread of the process
// (Go's syscall.Setgroups does that), and the tests of this package do not
// run in parallel with each other.
func withGroups(t *testing.T, gids []int, f func()) {
	t.Helper()
	old, err := syscall.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setgroups(gids); err != nil {
		t.Fatalf("setgroups: %v", err)
	}
	defer func() {
		if err := syscall.Setgroups(old); err != nil {
			panic(fmt.Sprintf("restore supplementary groups: %v", err))
		}
	}()
	f()
}
