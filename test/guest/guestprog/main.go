package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/test/guest/scenario"
)

// fuseSuperMagic is FUSE_SUPER_MAGIC from linux/magic.h.
const fuseSuperMagic = 0x65735546

const mnt = "/mnt"

// g is the guest-side state shared by the checks.
type g struct {
	m       scenario.Manifest
	run     scenario.Run
	root    string // mnt/scenario.GuestDir
	mounted bool
}

func main() {
	os.Exit(run())
}

// asUserEnv makes the program run one of the unprivileged helpers (see
// helpers) instead of the checks; its value names the helper.
const asUserEnv = "GUESTPROG_AS_USER"

func run() int {
	unix.Umask(0o022)
	if h := os.Getenv(asUserEnv); h != "" {
		if err := runHelper(h, filepath.Join(mnt, scenario.GuestDir)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	start := time.Now()
	var t g
	raw, err := os.ReadFile(scenario.ManifestPath)
	if err == nil {
		err = json.Unmarshal(raw, &t.m)
	}
	if err == nil && t.m.Mode == scenario.ModeMigrate {
		fmt.Fprintln(os.Stderr, "guestprog: migration boot")
		return runMigrate(t.m)
	}
	if err == nil {
		t.run, err = scenario.RunByName(t.m.Run)
	}
	if err != nil {
		fmt.Println(scenario.FormatResult("mount", fmt.Errorf("read manifest: %w", err)))
		fmt.Println(scenario.FormatSummary(0, 1))
		return 1
	}
	t.root = filepath.Join(mnt, scenario.GuestDir)
	fmt.Fprintf(os.Stderr, "guestprog: run %s\n", t.run.Name)

	checks := map[string]func() error{
		"mount":         t.mount,
		"statfs":        t.statfs,
		"seed-tree":     t.seedTree,
		"create-small":  t.createSmall,
		"create-big":    t.createBig,
		"append":        t.append,
		"sparse":        t.sparse,
		"mmap":          t.mmap,
		"fallocate":     t.fallocate,
		"copy-range":    t.copyRange,
		"readdir-1000":  t.readdir1000,
		"mkdir":         t.mkdir,
		"rename":        t.rename,
		"hardlink":      t.hardlink,
		"symlink":       t.symlink,
		"mkfifo":        t.mkfifo,
		"chmod":         t.chmod,
		"chown":         t.chown,
		"truncate":      t.truncate,
		"utimens":       t.utimens,
		"unlink-rmdir":  t.unlinkRmdir,
		"credentials":   t.credentials,
		"errors":        t.errors,
		"open-flags":    t.openFlags,
		"seek-hole":     t.seekHole,
		"punch-hole":    t.punchHole,
		"huge-sparse":   t.hugeSparse,
		"readdir-10000": t.readdir10000,
		"sticky":        t.sticky,
		"permissions":   t.permissions,
		"locks":         t.locks,
		"groups":        t.groups,
		"mmap-refused":  t.mmapRefused,
		"times-ns":      t.timesNs,
		"readonly":      t.readonly,
		"stress":        t.stress,
		"after-stress":  t.afterStress,
		"guest-tree":    t.guestTree,
		"submount":      t.submount,
		"no-submount":   t.noSubmount,
		"umount":        t.umount,
	}
	passed, failed := 0, 0
	for _, name := range t.run.Checks {
		fn := checks[name]
		var err error
		if fn == nil {
			err = errors.New("not implemented by the guest program")
		} else {
			t0 := time.Now()
			err = protect(fn)
			fmt.Fprintf(os.Stderr, "guestprog: %s took %v\n", name, time.Since(t0).Round(time.Millisecond))
		}
		fmt.Println(scenario.FormatResult(name, err))
		if err != nil {
			failed++
			if name == "mount" && !t.mounted {
				// Nothing else can work; report the rest as failed.
				for _, rest := range t.run.Checks[1:] {
					fmt.Println(scenario.FormatResult(rest, errors.New("share not mounted")))
					failed++
				}
				break
			}
		} else {
			passed++
		}
	}
	fmt.Fprintf(os.Stderr, "guestprog: all checks took %v\n", time.Since(start).Round(time.Millisecond))
	fmt.Println(scenario.FormatSummary(passed, failed))
	if failed > 0 {
		return 1
	}
	return 0
}

// protect runs fn, turning a panic into an error so that one broken check
// does not hide the others.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}

func (t *g) path(rel string) string { return filepath.Join(t.root, filepath.FromSlash(rel)) }

func (t *g) mount() error {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(t.m.Tag, mnt, "virtiofs", 0, ""); err != nil {
		return fmt.Errorf("mount -t virtiofs %s %s: %w", t.m.Tag, mnt, err)
	}
	t.mounted = true
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", mnt, err)
	}
	if st.Type != fuseSuperMagic {
		return fmt.Errorf("statfs %s: type %#x, want FUSE %#x", mnt, st.Type, fuseSuperMagic)
	}
	if t.run.ReadOnly {
		return nil
	}
	return os.Mkdir(t.root, 0o755)
}

func (t *g) statfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs(t.root, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	var errs []error
	if st.Blocks != t.m.Blocks {
		errs = append(errs, fmt.Errorf("blocks %d, host has %d", st.Blocks, t.m.Blocks))
	}
	if st.Bsize != t.m.Bsize {
		errs = append(errs, fmt.Errorf("bsize %d, host has %d", st.Bsize, t.m.Bsize))
	}
	if st.Namelen != t.m.Namelen {
		errs = append(errs, fmt.Errorf("namelen %d, host has %d", st.Namelen, t.m.Namelen))
	}
	if st.Bfree > st.Blocks || st.Bavail > st.Bfree || st.Ffree > st.Files {
		errs = append(errs, fmt.Errorf("inconsistent counts: blocks=%d bfree=%d bavail=%d files=%d ffree=%d",
			st.Blocks, st.Bfree, st.Bavail, st.Files, st.Ffree))
	}
	return errors.Join(errs...)
}

func (t *g) seedTree() error {
	seed := filepath.Join(mnt, scenario.SeedDir)
	if err := scenario.Verify(seed, t.m.Seeds); err != nil {
		return err
	}
	// Reading through a symlink reaches the target's content.
	b, err := os.ReadFile(filepath.Join(seed, "sub/up"))
	if err != nil {
		return err
	}
	if !bytes.Equal(b, scenario.SeedHello) {
		return fmt.Errorf("read sub/up: %q, want %q", b, scenario.SeedHello)
	}
	// The top-level listing holds exactly the two directories.
	names, err := readNames(mnt)
	if err != nil {
		return err
	}
	want := scenario.TopLevel(t.run)
	if !slices.Equal(names, want) {
		return fmt.Errorf("readdir %s: %q", mnt, names)
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// dropCaches makes the next reads go to the daemon instead of the page cache.
func dropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// writeNew creates rel with O_EXCL and mode 0666 (0644 after the umask), writes
// content in chunk-sized pieces and fsyncs.
func (t *g) writeNew(rel string, content []byte, chunk int) error {
	f, err := os.OpenFile(t.path(rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	for off := 0; off < len(content); off += chunk {
		end := min(off+chunk, len(content))
		if _, err := f.Write(content[off:end]); err != nil {
			f.Close()
			return fmt.Errorf("write %s at %d: %w", rel, off, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", rel, err)
	}
	return f.Close()
}

// expectContent checks rel's size and content.
func (t *g) expectContent(rel string, want []byte) error {
	fi, err := os.Stat(t.path(rel))
	if err != nil {
		return err
	}
	if fi.Size() != int64(len(want)) {
		return fmt.Errorf("stat %s: size %d, want %d", rel, fi.Size(), len(want))
	}
	got, err := os.ReadFile(t.path(rel))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		if len(want) > 64 {
			return fmt.Errorf("read %s: sha256 %s, want %s", rel, scenario.Digest(got), scenario.Digest(want))
		}
		return fmt.Errorf("read %s: %q, want %q", rel, got, want)
	}
	return nil
}

func (t *g) expectMode(rel string, want uint32) error {
	var st unix.Stat_t
	if err := unix.Lstat(t.path(rel), &st); err != nil {
		return fmt.Errorf("lstat %s: %w", rel, err)
	}
	if st.Mode&0o7777 != want {
		return fmt.Errorf("lstat %s: mode %#o, want %#o", rel, st.Mode&0o7777, want)
	}
	return nil
}

func expectErrno(what string, err, want error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("%s: got %v, want %v", what, err, want)
	}
	return nil
}

func (t *g) createSmall() error {
	if err := t.writeNew("small.txt", scenario.GuestSmall, 7); err != nil {
		return err
	}
	if err := t.expectMode("small.txt", 0o644); err != nil {
		return err
	}
	if err := t.expectContent("small.txt", scenario.GuestSmall); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	// Partial read at an offset, through the daemon.
	f, err := os.Open(t.path("small.txt"))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 6)
	n, err := f.ReadAt(buf, 8)
	if err != nil || !bytes.Equal(buf[:n], scenario.GuestSmall[8:14]) {
		return fmt.Errorf("pread small.txt at 8: %q, %v", buf[:n], err)
	}
	return t.expectContent("small.txt", scenario.GuestSmall)
}

func (t *g) createBig() error {
	big := scenario.GuestBig()
	if err := t.writeNew("big.bin", big, 1<<20+13); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("big.bin", big)
}

func (t *g) append() error {
	first, second := scenario.GuestAppend[:6], scenario.GuestAppend[6:]
	if err := t.writeNew("append.txt", first, 1<<10); err != nil {
		return err
	}
	f, err := os.OpenFile(t.path("append.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(second); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("append.txt", scenario.GuestAppend)
}

func (t *g) sparse() error {
	f, err := os.OpenFile(t.path("sparse.bin"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(scenario.GuestSparseTail, int64(scenario.GuestSparseOffset)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("sparse.bin", scenario.GuestSparse())
}

func (t *g) mmap() error {
	f, err := os.OpenFile(t.path("mmap.bin"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(scenario.GuestMmapSize)); err != nil {
		return fmt.Errorf("ftruncate: %w", err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, scenario.GuestMmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap shared writable: %w", err)
	}
	copy(m, scenario.GuestMmap())
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		unix.Munmap(m)
		return fmt.Errorf("msync: %w", err)
	}
	if err := unix.Munmap(m); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	if err := t.expectContent("mmap.bin", scenario.GuestMmap()); err != nil {
		return err
	}
	// Read back through a fresh private mapping too.
	f2, err := os.Open(t.path("mmap.bin"))
	if err != nil {
		return err
	}
	defer f2.Close()
	r, err := unix.Mmap(int(f2.Fd()), 0, scenario.GuestMmapSize, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("mmap read-only: %w", err)
	}
	defer unix.Munmap(r)
	if !bytes.Equal(r, scenario.GuestMmap()) {
		return fmt.Errorf("mapped mmap.bin: sha256 %s, want %s", scenario.Digest(r), scenario.Digest(scenario.GuestMmap()))
	}
	return nil
}

func (t *g) fallocate() error {
	f, err := os.OpenFile(t.path("falloc.bin"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(scenario.GuestFallocSize)); err != nil {
		return fmt.Errorf("fallocate: %w", err)
	}
	// KEEP_SIZE beyond the end allocates without growing the file.
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, int64(scenario.GuestFallocSize), 1<<16); err != nil {
		return fmt.Errorf("fallocate KEEP_SIZE: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Size != int64(scenario.GuestFallocSize) || st.Blocks*512 < int64(scenario.GuestFallocSize) {
		return fmt.Errorf("fstat falloc.bin: size %d blocks %d, want size %d, fully allocated", st.Size, st.Blocks, scenario.GuestFallocSize)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return t.expectContent("falloc.bin", make([]byte, scenario.GuestFallocSize))
}

func (t *g) copyRange() error {
	src, err := os.Open(t.path("big.bin"))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(t.path("copy.bin"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer dst.Close()
	off := int64(scenario.GuestCopyOffset)
	for left := scenario.GuestCopyLen; left > 0; {
		n, err := unix.CopyFileRange(int(src.Fd()), &off, int(dst.Fd()), nil, left, 0)
		if err != nil {
			return fmt.Errorf("copy_file_range: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("copy_file_range: early end with %d bytes left", left)
		}
		left -= n
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("copy.bin", scenario.GuestCopy())
}

func (t *g) readdir1000() error {
	if err := os.Mkdir(t.path("many"), 0o777); err != nil {
		return err
	}
	want := make([]string, scenario.GuestManyCount)
	for i := range want {
		want[i] = scenario.ManyName(i)
		if err := os.WriteFile(t.path("many/"+want[i]), scenario.ManyContent(i), 0o666); err != nil {
			return err
		}
	}
	if err := dropCaches(); err != nil {
		return err
	}
	ents, err := os.ReadDir(t.path("many"))
	if err != nil {
		return err
	}
	got := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("readdir many: %s has type %v", e.Name(), e.Type())
		}
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("readdir many: %d names, want %d (first %q)", len(got), len(want), got[:min(3, len(got))])
	}
	// Raw getdents64 with a small buffer: every name exactly once, plus . and ..
	seen, err := getdentsNames(t.path("many"), 512)
	if err != nil {
		return err
	}
	for _, n := range append([]string{".", ".."}, want...) {
		if seen[n] != 1 {
			return fmt.Errorf("getdents many: %q seen %d times", n, seen[n])
		}
	}
	if len(seen) != len(want)+2 {
		return fmt.Errorf("getdents many: %d distinct names, want %d", len(seen), len(want)+2)
	}
	for _, i := range []int{0, 499, 999} {
		if err := t.expectContent("many/"+scenario.ManyName(i), scenario.ManyContent(i)); err != nil {
			return err
		}
	}
	return nil
}

func getdentsNames(dir string, bufSize int) (map[string]int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	seen := map[string]int{}
	buf := make([]byte, bufSize)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("getdents %s: %w", dir, err)
		}
		if n == 0 {
			return seen, nil
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:n], -1, nil)
		// ParseDirent drops . and ..; count them from the raw records.
		for off := 0; off < n; {
			reclen := int(buf[off+16]) | int(buf[off+17])<<8
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s == "." || s == ".." {
				seen[s]++
			}
			off += reclen
		}
		for _, name := range names {
			seen[name]++
		}
	}
}

func (t *g) mkdir() error {
	if err := os.Mkdir(t.path("dir"), 0o777); err != nil {
		return err
	}
	if err := os.MkdirAll(t.path("dir/a/b"), 0o750); err != nil {
		return err
	}
	if err := os.Mkdir(t.path("dir/a/b/c"), 0o700); err != nil {
		return err
	}
	for rel, mode := range map[string]uint32{"dir": 0o755, "dir/a": 0o750, "dir/a/b": 0o750, "dir/a/b/c": 0o700} {
		if err := t.expectMode(rel, mode); err != nil {
			return err
		}
	}
	return expectErrno("mkdir dir/a again", os.Mkdir(t.path("dir/a"), 0o755), unix.EEXIST)
}

func (t *g) rename() error {
	// Plain rename into another directory.
	if err := os.WriteFile(t.path("ren-src"), []byte("rename me\n"), 0o666); err != nil {
		return err
	}
	if err := os.Rename(t.path("ren-src"), t.path("dir/renamed")); err != nil {
		return err
	}
	if _, err := os.Lstat(t.path("ren-src")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lstat ren-src after rename: %v, want ENOENT", err)
	}
	if err := t.expectContent("dir/renamed", []byte("rename me\n")); err != nil {
		return err
	}
	// Rename over an existing file replaces it.
	if err := os.WriteFile(t.path("ren-over-dst"), []byte("old\n"), 0o666); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("ren-over-src"), []byte("new\n"), 0o666); err != nil {
		return err
	}
	if err := os.Rename(t.path("ren-over-src"), t.path("ren-over-dst")); err != nil {
		return err
	}
	if err := t.expectContent("ren-over-dst", []byte("new\n")); err != nil {
		return err
	}
	// RENAME_NOREPLACE onto an existing name fails and changes nothing.
	if err := os.WriteFile(t.path("noreplace-a"), []byte("a\n"), 0o666); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("noreplace-b"), []byte("b\n"), 0o666); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, t.path("noreplace-a"), unix.AT_FDCWD, t.path("noreplace-b"), unix.RENAME_NOREPLACE)
	if err := expectErrno("renameat2 RENAME_NOREPLACE", err, unix.EEXIST); err != nil {
		return err
	}
	// RENAME_EXCHANGE swaps two files.
	if err := os.WriteFile(t.path("xa"), []byte("A\n"), 0o666); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("xb"), []byte("B\n"), 0o666); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, t.path("xa"), unix.AT_FDCWD, t.path("xb"), unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("renameat2 RENAME_EXCHANGE: %w", err)
	}
	if err := t.expectContent("xa", []byte("B\n")); err != nil {
		return err
	}
	if err := t.expectContent("xb", []byte("A\n")); err != nil {
		return err
	}
	// A directory moves with its content.
	if err := os.Mkdir(t.path("dir-old"), 0o777); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("dir-old/inside.txt"), []byte("moved with its directory\n"), 0o666); err != nil {
		return err
	}
	if err := os.Rename(t.path("dir-old"), t.path("dir-new")); err != nil {
		return err
	}
	if _, err := os.Lstat(t.path("dir-old")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lstat dir-old after rename: %v, want ENOENT", err)
	}
	return t.expectContent("dir-new/inside.txt", []byte("moved with its directory\n"))
}

func (t *g) hardlink() error {
	if err := os.WriteFile(t.path("hl-a"), []byte("linked content\n"), 0o666); err != nil {
		return err
	}
	if err := os.Link(t.path("hl-a"), t.path("hl-b")); err != nil {
		return err
	}
	f, err := os.OpenFile(t.path("hl-b"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("appended via b\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	var a, b unix.Stat_t
	if err := unix.Stat(t.path("hl-a"), &a); err != nil {
		return err
	}
	if err := unix.Stat(t.path("hl-b"), &b); err != nil {
		return err
	}
	if a.Ino != b.Ino || a.Nlink != 2 || b.Nlink != 2 {
		return fmt.Errorf("stat hl-a/hl-b: ino %d/%d nlink %d/%d, want one inode with nlink 2", a.Ino, b.Ino, a.Nlink, b.Nlink)
	}
	if err := t.expectContent("hl-a", []byte("linked content\nappended via b\n")); err != nil {
		return err
	}
	// A third name raises the count on every name; removing it lowers it
	// again, also as seen after the caches are dropped.
	if err := os.Link(t.path("hl-b"), t.path("hl-c")); err != nil {
		return err
	}
	if err := t.expectNlink(3, "hl-a", "hl-b", "hl-c"); err != nil {
		return err
	}
	if err := os.Remove(t.path("hl-c")); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	if err := t.expectNlink(2, "hl-a", "hl-b"); err != nil {
		return err
	}
	return expectErrno("link onto existing name", os.Link(t.path("hl-a"), t.path("hl-b")), unix.EEXIST)
}

func (t *g) symlink() error {
	links := map[string]string{
		"sym-rel":      "small.txt",
		"sym-abs":      "/etc/hostname",
		"sym-dangling": "nowhere/at/all",
	}
	for name, target := range links {
		if err := os.Symlink(target, t.path(name)); err != nil {
			return err
		}
	}
	for name, target := range links {
		got, err := os.Readlink(t.path(name))
		if err != nil {
			return err
		}
		if got != target {
			return fmt.Errorf("readlink %s: %q, want %q", name, got, target)
		}
		var st unix.Stat_t
		if err := unix.Lstat(t.path(name), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != int64(len(target)) {
			return fmt.Errorf("lstat %s: mode %#o size %d, want a symlink of size %d", name, st.Mode, st.Size, len(target))
		}
	}
	// Following the relative link reaches small.txt; the dangling one fails.
	if err := t.expectContent("sym-rel", scenario.GuestSmall); err != nil {
		return err
	}
	if _, err := os.Stat(t.path("sym-dangling")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat sym-dangling: %v, want ENOENT", err)
	}
	return nil
}

func (t *g) mkfifo() error {
	if err := unix.Mkfifo(t.path("fifo"), 0o666); err != nil {
		return fmt.Errorf("mkfifo: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(t.path("fifo"), &st); err != nil {
		return err
	}
	if st.Mode != unix.S_IFIFO|0o644 || st.Size != 0 {
		return fmt.Errorf("lstat fifo: mode %#o size %d, want %#o and 0", st.Mode, st.Size, unix.S_IFIFO|0o644)
	}
	return expectErrno("mkfifo existing", unix.Mkfifo(t.path("fifo"), 0o666), unix.EEXIST)
}

func (t *g) chmod() error {
	if err := os.WriteFile(t.path("chmod.txt"), []byte("chmod me\n"), 0o666); err != nil {
		return err
	}
	if err := unix.Chmod(t.path("chmod.txt"), 0o751); err != nil {
		return err
	}
	if err := t.expectMode("chmod.txt", 0o751); err != nil {
		return err
	}
	f, err := os.Open(t.path("chmod.txt"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fchmod(int(f.Fd()), 0o711); err != nil {
		return fmt.Errorf("fchmod: %w", err)
	}
	return t.expectMode("chmod.txt", 0o711)
}

func (t *g) expectOwner(rel string, uid, gid uint32) error {
	var st unix.Stat_t
	if err := unix.Lstat(t.path(rel), &st); err != nil {
		return err
	}
	if st.Uid != uid || st.Gid != gid {
		return fmt.Errorf("lstat %s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
	}
	return nil
}

func (t *g) chown() error {
	if err := os.WriteFile(t.path("chown.txt"), []byte("chown me\n"), 0o640); err != nil {
		return err
	}
	if err := t.expectOwner("chown.txt", 0, 0); err != nil {
		return err
	}
	if err := os.Chown(t.path("chown.txt"), 4321, 0); err != nil {
		return err
	}
	f, err := os.Open(t.path("chown.txt"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chown(-1, 8765); err != nil {
		return err
	}
	if err := t.expectOwner("chown.txt", 4321, 8765); err != nil {
		return err
	}
	// lchown changes the link, not small.txt behind it.
	if err := os.Lchown(t.path("sym-rel"), 1111, 2222); err != nil {
		return err
	}
	if err := t.expectOwner("sym-rel", 1111, 2222); err != nil {
		return err
	}
	return t.expectOwner("small.txt", 0, 0)
}

func (t *g) truncate() error {
	if err := t.writeNew("trunc.bin", scenario.GuestTruncPattern, 4096); err != nil {
		return err
	}
	f, err := os.OpenFile(t.path("trunc.bin"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(scenario.GuestTruncShort)); err != nil {
		f.Close()
		return fmt.Errorf("ftruncate: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := t.expectContent("trunc.bin", scenario.GuestTruncPattern[:scenario.GuestTruncShort]); err != nil {
		return err
	}
	if err := os.Truncate(t.path("trunc.bin"), int64(scenario.GuestTruncLong)); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	if err := t.expectContent("trunc.bin", scenario.GuestTrunc()); err != nil {
		return err
	}
	// O_TRUNC on open empties an existing file.
	if err := os.WriteFile(t.path("otrunc.txt"), []byte("long original content\n"), 0o666); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("otrunc.txt"), scenario.GuestOTrunc, 0o666); err != nil {
		return fmt.Errorf("rewrite with O_TRUNC: %w", err)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("otrunc.txt", scenario.GuestOTrunc)
}

func (t *g) expectTimes(rel string, atime, mtime int64) error {
	var st unix.Stat_t
	if err := unix.Stat(t.path(rel), &st); err != nil {
		return err
	}
	if st.Atim.Nano() != atime || st.Mtim.Nano() != mtime {
		return fmt.Errorf("stat %s: atime %d mtime %d, want %d %d", rel, st.Atim.Nano(), st.Mtim.Nano(), atime, mtime)
	}
	return nil
}

func (t *g) utimens() error {
	// times.txt stays empty so that no read can move its access time.
	f, err := os.OpenFile(t.path("times.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	ts := []unix.Timespec{unix.NsecToTimespec(scenario.GuestAtimeNs), unix.NsecToTimespec(scenario.GuestMtimeNs1)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, t.path("times.txt"), ts, 0); err != nil {
		return fmt.Errorf("utimensat: %w", err)
	}
	if err := t.expectTimes("times.txt", scenario.GuestAtimeNs, scenario.GuestMtimeNs1); err != nil {
		return err
	}
	// futimens with UTIME_OMIT for the access time.
	ts = []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(scenario.GuestMtimeNs2)}
	if err := unix.UtimesNanoAt(int(f.Fd()), "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("futimens: %w", err)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectTimes("times.txt", scenario.GuestAtimeNs, scenario.GuestMtimeNs2)
}

func (t *g) unlinkRmdir() error {
	if err := os.WriteFile(t.path("gone.txt"), []byte("soon gone\n"), 0o666); err != nil {
		return err
	}
	if err := os.Remove(t.path("gone.txt")); err != nil {
		return err
	}
	if _, err := os.Lstat(t.path("gone.txt")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lstat gone.txt after unlink: %v, want ENOENT", err)
	}
	if err := os.Mkdir(t.path("gonedir"), 0o777); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("gonedir/inner"), []byte("x"), 0o666); err != nil {
		return err
	}
	if err := expectErrno("rmdir non-empty gonedir", unix.Rmdir(t.path("gonedir")), unix.ENOTEMPTY); err != nil {
		return err
	}
	if err := expectErrno("unlink a directory", unix.Unlink(t.path("gonedir")), unix.EISDIR); err != nil {
		return err
	}
	if err := expectErrno("rmdir a file", unix.Rmdir(t.path("gonedir/inner")), unix.ENOTDIR); err != nil {
		return err
	}
	// An open file stays readable after its name is gone.
	f, err := os.Open(t.path("gonedir/inner"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Unlink(t.path("gonedir/inner")); err != nil {
		return err
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "x" {
		return fmt.Errorf("read unlinked open file: %q, %v", b, err)
	}
	if err := unix.Rmdir(t.path("gonedir")); err != nil {
		return fmt.Errorf("rmdir gonedir: %w", err)
	}
	if _, err := os.Lstat(t.path("gonedir")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lstat gonedir after rmdir: %v, want ENOENT", err)
	}
	return expectErrno("unlink missing", unix.Unlink(t.path("gone.txt")), unix.ENOENT)
}

// credentials runs this program again as uid and gid scenario.GuestUser;
// the daemon must create that process's files with its owner and refuse what
// the user may not do.
func (t *g) credentials() error {
	if err := os.Mkdir(t.path("user"), 0o777); err != nil {
		return err
	}
	if err := os.Chmod(t.path("user"), 0o777); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := runAsUser(self, "credentials"); err != nil {
		return err
	}
	for _, rel := range []string{"user/u.txt", "user/ud", "user/ul"} {
		if err := t.expectOwner(rel, scenario.GuestUser, scenario.GuestUser); err != nil {
			return err
		}
	}
	return t.expectContent("user/u.txt", scenario.GuestUserTxt)
}

// runAsUser runs this program's helper named helper as uid and gid
// scenario.GuestUser, with no supplementary groups.
func runAsUser(self, helper string) error {
	cmd := exec.Command(self)
	cmd.Env = []string{asUserEnv + "=" + helper}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: scenario.GuestUser, Gid: scenario.GuestUser, Groups: []uint32{},
	}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s helper as uid %d: %v: %s", helper, scenario.GuestUser, err, bytes.TrimSpace(out))
	}
	return nil
}

// asUser is the unprivileged half of the credentials check, run below root
// (the guest directory).
func asUser(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	if uid, gid := os.Getuid(), os.Getgid(); uid != int(scenario.GuestUser) || gid != int(scenario.GuestUser) {
		return fmt.Errorf("running as %d:%d, want %d:%d", uid, gid, scenario.GuestUser, scenario.GuestUser)
	}
	if err := os.WriteFile(p("user/u.txt"), scenario.GuestUserTxt, 0o666); err != nil {
		return err
	}
	if err := os.Mkdir(p("user/ud"), 0o777); err != nil {
		return err
	}
	if err := os.Symlink("u.txt", p("user/ul")); err != nil {
		return err
	}
	_, err := os.OpenFile(p("small.txt"), os.O_WRONLY, 0)
	if err := expectErrno("open root's 0644 file for writing", err, unix.EACCES); err != nil {
		return err
	}
	if err := expectErrno("mkdir in root's 0755 directory", os.Mkdir(p("dir/nope"), 0o777), unix.EACCES); err != nil {
		return err
	}
	if err := expectErrno("chown own file to root", os.Chown(p("user/u.txt"), 0, 0), unix.EPERM); err != nil {
		return err
	}
	return expectErrno("chmod root's file", os.Chmod(p("small.txt"), 0o777), unix.EPERM)
}

func (t *g) errors() error {
	_, err := os.Open(t.path("does-not-exist"))
	if err := expectErrno("open missing", err, unix.ENOENT); err != nil {
		return err
	}
	_, err = os.OpenFile(t.path("small.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err := expectErrno("O_EXCL create existing", err, unix.EEXIST); err != nil {
		return err
	}
	_, err = os.ReadDir(t.path("small.txt"))
	if err := expectErrno("readdir a file", err, unix.ENOTDIR); err != nil {
		return err
	}
	// Extended attributes are off unless the daemon runs with --xattr.
	err = unix.Setxattr(t.path("small.txt"), "user.test", []byte("v"), 0)
	if err := expectErrno("setxattr without --xattr", err, unix.EOPNOTSUPP); err != nil {
		return err
	}
	long := strings.Repeat("n", 256)
	err = os.WriteFile(t.path(long), nil, 0o666)
	if err := expectErrno("create 256-byte name", err, unix.ENAMETOOLONG); err != nil {
		return err
	}
	return nil
}

func (t *g) guestTree() error {
	if err := dropCaches(); err != nil {
		return err
	}
	return scenario.Verify(t.root, t.run.Expected())
}

func (t *g) umount() error {
	unix.Sync()
	if err := unix.Unmount(mnt, 0); err != nil {
		return fmt.Errorf("umount %s: %w", mnt, err)
	}
	return nil
}
