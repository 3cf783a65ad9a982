package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/test/guest/scenario"
)

// runHelper runs the unprivileged helper called name below root (the guest
// directory).
func runHelper(name, root string) error {
	switch name {
	case "credentials":
		return asUser(root)
	case "sticky":
		return stickyUser(root)
	case "permissions":
		return permUser(root)
	case "locks-held":
		return locksUser(root, true)
	case "locks-free":
		return locksUser(root, false)
	case "groups":
		return groupsUser(root)
	}
	return fmt.Errorf("unknown helper %q", name)
}

func (t *g) expectNlink(n uint64, rels ...string) error {
	for _, rel := range rels {
		var st unix.Stat_t
		if err := unix.Lstat(t.path(rel), &st); err != nil {
			return err
		}
		if st.Nlink != n {
			return fmt.Errorf("lstat %s: nlink %d, want %d", rel, st.Nlink, n)
		}
	}
	return nil
}

// openFlags checks O_EXCL (also on a dangling symlink, which it must not
// follow) and O_APPEND (writes land at the end whatever the offset, pwrite
// included, as Linux does).
func (t *g) openFlags() error {
	if err := os.Symlink("oflags-missing", t.path("oflags-link")); err != nil {
		return err
	}
	_, err := os.OpenFile(t.path("oflags-link"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err := expectErrno("O_CREAT|O_EXCL on a dangling symlink", err, unix.EEXIST); err != nil {
		return err
	}
	if _, err := os.Lstat(t.path("oflags-missing")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("O_EXCL followed the symlink: lstat oflags-missing: %v", err)
	}
	if err := t.writeNew("oflags.txt", scenario.GuestOflags[:10], 64); err != nil {
		return err
	}
	fd, err := unix.Open(t.path("oflags.txt"), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return err
	}
	if _, err := unix.Write(fd, scenario.GuestOflags[10:12]); err != nil {
		return err
	}
	if _, err := unix.Pwrite(fd, scenario.GuestOflags[12:], 0); err != nil {
		return fmt.Errorf("pwrite O_APPEND: %w", err)
	}
	// pwrite leaves the file offset where write left it.
	if off, err := unix.Seek(fd, 0, io.SeekCurrent); err != nil || off != 12 {
		return fmt.Errorf("offset after O_APPEND write and pwrite: %d, %v; want 12", off, err)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("oflags.txt", scenario.GuestOflags)
}

// seekExpect checks lseek(fd, off, whence) = want (or the errno wantErr).
func seekExpect(fd int, off int64, whence int, want int64, wantErr error) error {
	names := map[int]string{unix.SEEK_DATA: "SEEK_DATA", unix.SEEK_HOLE: "SEEK_HOLE"}
	got, err := unix.Seek(fd, off, whence)
	if wantErr != nil {
		return expectErrno(fmt.Sprintf("lseek %d %s", off, names[whence]), err, wantErr)
	}
	if err != nil || got != want {
		return fmt.Errorf("lseek %d %s: %d, %v; want %d", off, names[whence], got, err, want)
	}
	return nil
}

func (t *g) seekHole() error {
	f, err := os.OpenFile(t.path("holes.bin"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := int64(scenario.GuestHoleChunk)
	if _, err := f.WriteAt(scenario.Pattern(5, scenario.GuestHoleChunk), 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(scenario.Pattern(6, scenario.GuestHoleChunk), scenario.GuestHoleAt); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fd := int(f.Fd())
	end := scenario.GuestHoleAt + chunk
	for _, c := range []struct {
		off, want int64
		whence    int
		err       error
	}{
		{0, 0, unix.SEEK_DATA, nil},
		{0, chunk, unix.SEEK_HOLE, nil},
		{chunk, scenario.GuestHoleAt, unix.SEEK_DATA, nil},
		{chunk + 1, chunk + 1, unix.SEEK_HOLE, nil},
		{scenario.GuestHoleAt + 5, end, unix.SEEK_HOLE, nil},
		{end, 0, unix.SEEK_DATA, unix.ENXIO},
		{end + 1, 0, unix.SEEK_HOLE, unix.ENXIO},
	} {
		if err := seekExpect(fd, c.off, c.whence, c.want, c.err); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("holes.bin", scenario.GuestHoles())
}

func (t *g) punchHole() error {
	if err := t.writeNew("punch.bin", scenario.Pattern(7, scenario.GuestPunchSize), 1<<16); err != nil {
		return err
	}
	f, err := os.OpenFile(t.path("punch.bin"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var before, after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &before); err != nil {
		return err
	}
	// Without KEEP_SIZE the kernel refuses a punch.
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE, scenario.GuestPunchOff, scenario.GuestPunchLen)
	if err := expectErrno("fallocate PUNCH_HOLE without KEEP_SIZE", err, unix.EOPNOTSUPP); err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, scenario.GuestPunchOff, scenario.GuestPunchLen)
	if err != nil {
		return fmt.Errorf("fallocate PUNCH_HOLE|KEEP_SIZE: %w", err)
	}
	if err := seekExpect(int(f.Fd()), 0, unix.SEEK_HOLE, scenario.GuestPunchOff, nil); err != nil {
		return err
	}
	if err := seekExpect(int(f.Fd()), scenario.GuestPunchOff, unix.SEEK_DATA, scenario.GuestPunchOff+scenario.GuestPunchLen, nil); err != nil {
		return err
	}
	if err := unix.Fstat(int(f.Fd()), &after); err != nil {
		return err
	}
	if after.Size != int64(scenario.GuestPunchSize) || after.Blocks*512 > before.Blocks*512-scenario.GuestPunchLen {
		return fmt.Errorf("fstat after punch: size %d blocks %d (before %d), want size %d and %d bytes fewer allocated",
			after.Size, after.Blocks, before.Blocks, scenario.GuestPunchSize, scenario.GuestPunchLen)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	return t.expectContent("punch.bin", scenario.GuestPunch())
}

// hugeSparse writes a sparse file over 4 GiB: data across the 4 GiB boundary
// and at 5 GiB, read back at those offsets through the daemon.
func (t *g) hugeSparse() error {
	e := scenario.GuestHuge()
	f, err := os.OpenFile(t.path(e.Path), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range e.Pieces {
		if _, err := f.WriteAt(p.Data, p.Off); err != nil {
			return fmt.Errorf("pwrite at %d: %w", p.Off, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(t.path(e.Path), &st); err != nil {
		return err
	}
	if st.Size != e.Size || st.Blocks*512 > 1<<20 {
		return fmt.Errorf("stat %s: size %d blocks %d, want size %d and sparse", e.Path, st.Size, st.Blocks, e.Size)
	}
	if err := scenario.CheckPieces(t.path(e.Path), e.Pieces); err != nil {
		return err
	}
	fd, err := unix.Open(t.path(e.Path), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	first := e.Pieces[0].Off &^ 4095
	if got, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != nil || got != first {
		return fmt.Errorf("lseek 0 SEEK_DATA: %d, %v; want %d", got, err, first)
	}
	return nil
}

// readdir10000 makes a directory of 10 000 entries and reads it with
// getdents64, then uses the offsets it returned as telldir/seekdir do
// (lseek on the directory to an entry's d_off resumes after that entry).
func (t *g) readdir10000() error {
	dir := t.path("large")
	if err := os.Mkdir(dir, 0o777); err != nil {
		return err
	}
	want := make([]string, scenario.GuestLargeCount)
	for i := range want {
		want[i] = scenario.LargeName(i)
		if err := unix.Mknod(filepath.Join(dir, want[i]), unix.S_IFREG|0o666, 0); err != nil {
			return fmt.Errorf("mknod %s: %w", want[i], err)
		}
	}
	if err := dropCaches(); err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	all, err := readDirents(fd, 4096, -1)
	if err != nil {
		return err
	}
	var names []string
	for _, d := range all {
		if d.name != "." && d.name != ".." {
			names = append(names, d.name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		return fmt.Errorf("getdents large: %d names, want %d", len(names), len(want))
	}
	if len(all) != len(want)+2 {
		return fmt.Errorf("getdents large: %d entries, want %d with . and ..", len(all), len(want)+2)
	}
	// seekdir(telldir()) at several positions: the rest of the listing
	// follows, in the same order.
	for _, k := range []int{1, 2, 777, 5000, len(all) - 2, len(all) - 1} {
		if _, err := unix.Seek(fd, all[k-1].off, io.SeekStart); err != nil {
			return fmt.Errorf("seekdir to the offset of entry %d: %w", k-1, err)
		}
		rest, err := readDirents(fd, 1024, 3)
		if err != nil {
			return err
		}
		for i, d := range rest {
			if k+i >= len(all) {
				return fmt.Errorf("after seekdir to entry %d: extra entry %q", k-1, d.name)
			}
			if d.name != all[k+i].name {
				return fmt.Errorf("after seekdir to entry %d: entry %d is %q, want %q", k-1, i, d.name, all[k+i].name)
			}
		}
		if wantN := min(3, len(all)-k); len(rest) < wantN {
			return fmt.Errorf("after seekdir to entry %d: %d entries, want %d", k-1, len(rest), wantN)
		}
	}
	// rewinddir gives the whole listing again.
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return err
	}
	again, err := readDirents(fd, 32768, -1)
	if err != nil {
		return err
	}
	if len(again) != len(all) {
		return fmt.Errorf("after rewinddir: %d entries, want %d", len(again), len(all))
	}
	return nil
}

type dirent struct {
	name string
	off  int64
}

// readDirents reads up to max entries (all if max < 0) with getdents64 and a
// buffer of bufSize bytes. Reading stops at the first buffer that reaches
// max, so the directory offset then lies after that buffer.
func readDirents(fd, bufSize, max int) ([]dirent, error) {
	buf := make([]byte, bufSize)
	var out []dirent
	for max < 0 || len(out) < max {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("getdents: %w", err)
		}
		if n == 0 {
			break
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
			d := buf[off:]
			reclen := int(d[16]) | int(d[17])<<8
			name := d[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			doff := int64(uint64(d[8]) | uint64(d[9])<<8 | uint64(d[10])<<16 | uint64(d[11])<<24 |
				uint64(d[12])<<32 | uint64(d[13])<<40 | uint64(d[14])<<48 | uint64(d[15])<<56)
			out = append(out, dirent{name: string(name), off: doff})
			off += reclen
		}
	}
	if max >= 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// sticky checks a sticky world-writable directory: the unprivileged user may
// write root's world-writable file there but neither remove nor replace it,
// and may remove its own files.
func (t *g) sticky() error {
	if err := os.Mkdir(t.path("sticky"), 0o777); err != nil {
		return err
	}
	if err := unix.Chmod(t.path("sticky"), 0o1777); err != nil {
		return err
	}
	if err := os.WriteFile(t.path("sticky/root.txt"), scenario.GuestStickyRoot[:len("root's")], 0o666); err != nil {
		return err
	}
	if err := os.Chmod(t.path("sticky/root.txt"), 0o666); err != nil {
		return err
	}
	if err := t.expectMode("sticky", 0o1777); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := runAsUser(self, "sticky"); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	if err := t.expectContent("sticky/root.txt", scenario.GuestStickyRoot); err != nil {
		return err
	}
	return t.expectOwner("sticky/user.txt", scenario.GuestUser, scenario.GuestUser)
}

func stickyUser(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	f, err := os.OpenFile(p("sticky/root.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open root's world-writable file: %w", err)
	}
	if _, err := f.Write(scenario.GuestStickyRoot[len("root's"):]); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := expectErrno("unlink root's file in a sticky directory", os.Remove(p("sticky/root.txt")), unix.EPERM); err != nil {
		return err
	}
	if err := expectErrno("rename root's file in a sticky directory", os.Rename(p("sticky/root.txt"), p("sticky/moved")), unix.EPERM); err != nil {
		return err
	}
	if err := os.WriteFile(p("sticky/tmp"), []byte("x"), 0o666); err != nil {
		return err
	}
	if err := expectErrno("rename own file over root's in a sticky directory", os.Rename(p("sticky/tmp"), p("sticky/root.txt")), unix.EPERM); err != nil {
		return err
	}
	if err := os.Remove(p("sticky/tmp")); err != nil {
		return fmt.Errorf("unlink own file in a sticky directory: %w", err)
	}
	return os.WriteFile(p("sticky/user.txt"), scenario.GuestStickyUser, 0o666)
}

// permissions checks, as the unprivileged user, the permission bits the
// guest kernel and the daemon enforce together.
func (t *g) permissions() error {
	files := []struct {
		rel     string
		perm    os.FileMode
		content string
	}{
		{"perm/secret", 0o600, "secret\n"},
		{"perm/closed/inner", 0o644, "inner\n"},
		{"perm/noexec.sh", 0o644, "#!/bin/sh\nexit 0\n"},
		{"perm/root-rw", 0o644, "root's\n"},
		{"perm/mine.txt", 0o444, string(scenario.GuestPermMine[:len("owned by the user\n")])},
	}
	if err := os.Mkdir(t.path("perm"), 0o777); err != nil {
		return err
	}
	if err := os.Mkdir(t.path("perm/closed"), 0o700); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(t.path(f.rel), []byte(f.content), f.perm); err != nil {
			return err
		}
	}
	if err := os.Chown(t.path("perm/mine.txt"), int(scenario.GuestUser), int(scenario.GuestUser)); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := runAsUser(self, "permissions"); err != nil {
		return err
	}
	if err := dropCaches(); err != nil {
		return err
	}
	if err := t.expectContent("perm/root-rw", []byte("root's\n")); err != nil {
		return err
	}
	if err := t.expectMode("perm/mine.txt", 0o644); err != nil {
		return err
	}
	return t.expectContent("perm/mine.txt", scenario.GuestPermMine)
}

func permUser(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	_, err := os.ReadFile(p("perm/secret"))
	if err := expectErrno("read root's 0600 file", err, unix.EACCES); err != nil {
		return err
	}
	_, err = os.Stat(p("perm/closed/inner"))
	if err := expectErrno("stat below root's 0700 directory", err, unix.EACCES); err != nil {
		return err
	}
	_, err = os.ReadDir(p("perm/closed"))
	if err := expectErrno("readdir root's 0700 directory", err, unix.EACCES); err != nil {
		return err
	}
	err = exec.Command(p("perm/noexec.sh")).Run()
	if err := expectErrno("exec a 0644 file", err, unix.EACCES); err != nil {
		return err
	}
	if err := expectErrno("truncate root's 0644 file", os.Truncate(p("perm/root-rw"), 0), unix.EACCES); err != nil {
		return err
	}
	if err := expectErrno("unlink in root's 0755 directory", os.Remove(p("perm/root-rw")), unix.EACCES); err != nil {
		return err
	}
	// Setting explicit times needs ownership; setting them to now needs
	// write permission.
	ts := []unix.Timespec{unix.NsecToTimespec(1e9), unix.NsecToTimespec(1e9)}
	if err := expectErrno("utimensat explicit times on root's file", unix.UtimesNanoAt(unix.AT_FDCWD, p("perm/root-rw"), ts, 0), unix.EPERM); err != nil {
		return err
	}
	if err := expectErrno("utimensat now on root's 0644 file", unix.UtimesNanoAt(unix.AT_FDCWD, p("perm/root-rw"), nil, 0), unix.EACCES); err != nil {
		return err
	}
	_, err = os.OpenFile(p("perm/mine.txt"), os.O_WRONLY, 0)
	if err := expectErrno("open own 0444 file for writing", err, unix.EACCES); err != nil {
		return err
	}
	if err := os.Chmod(p("perm/mine.txt"), 0o644); err != nil {
		return fmt.Errorf("chmod own file: %w", err)
	}
	f, err := os.OpenFile(p("perm/mine.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open own file after chmod: %w", err)
	}
	if _, err := f.Write(scenario.GuestPermMine[len("owned by the user\n"):]); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// locks checks flock(2) and fcntl(2) record locks between this process and
// an unprivileged helper process: whatever the daemon provides, the guest
// must see locks conflict and go away when released.
func (t *g) locks() error {
	if err := os.WriteFile(t.path("locks.txt"), scenario.GuestLocks, 0o644); err != nil {
		return err
	}
	fl, err := os.Open(t.path("locks.txt"))
	if err != nil {
		return err
	}
	defer fl.Close()
	if err := unix.Flock(int(fl.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("flock LOCK_EX: %w", err)
	}
	// Another open file description conflicts even in the same process.
	other, err := os.Open(t.path("locks.txt"))
	if err != nil {
		return err
	}
	defer other.Close()
	err = unix.Flock(int(other.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err := expectErrno("flock LOCK_SH on a second open while LOCK_EX is held", err, unix.EWOULDBLOCK); err != nil {
		return err
	}
	rec, err := os.OpenFile(t.path("locks.txt"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer rec.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 0, Len: 4}
	if err := unix.FcntlFlock(rec.Fd(), unix.F_SETLK, &lk); err != nil {
		return fmt.Errorf("fcntl F_SETLK F_WRLCK: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := runAsUser(self, "locks-held"); err != nil {
		return err
	}
	if err := unix.Flock(int(fl.Fd()), unix.LOCK_UN); err != nil {
		return fmt.Errorf("flock LOCK_UN: %w", err)
	}
	lk = unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart, Start: 0, Len: 4}
	if err := unix.FcntlFlock(rec.Fd(), unix.F_SETLK, &lk); err != nil {
		return fmt.Errorf("fcntl F_SETLK F_UNLCK: %w", err)
	}
	return runAsUser(self, "locks-free")
}

func locksUser(root string, held bool) error {
	f, err := os.Open(filepath.Join(root, "locks.txt"))
	if err != nil {
		return err
	}
	defer f.Close()
	ppid := int32(os.Getppid())
	flockErr := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	rd := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: 2, Len: 10}
	setErr := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &rd)
	probe := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: 0, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &probe); err != nil {
		return fmt.Errorf("fcntl F_GETLK: %w", err)
	}
	if !held {
		if flockErr != nil {
			return fmt.Errorf("flock LOCK_SH after release: %w", flockErr)
		}
		if setErr != nil {
			return fmt.Errorf("fcntl F_SETLK F_RDLCK after release: %w", setErr)
		}
		if probe.Type != unix.F_UNLCK {
			return fmt.Errorf("fcntl F_GETLK after release: type %d pid %d, want F_UNLCK", probe.Type, probe.Pid)
		}
		return nil
	}
	if err := expectErrno("flock LOCK_SH while another process holds LOCK_EX", flockErr, unix.EWOULDBLOCK); err != nil {
		return err
	}
	if err := expectErrno("fcntl F_SETLK F_RDLCK over another process's write lock", setErr, unix.EAGAIN); err != nil {
		return err
	}
	if probe.Type != unix.F_WRLCK || probe.Pid != ppid || probe.Start != 0 || probe.Len != 4 {
		return fmt.Errorf("fcntl F_GETLK: type %d pid %d range %d+%d, want F_WRLCK (%d) by pid %d on 0+4",
			probe.Type, probe.Pid, probe.Start, probe.Len, unix.F_WRLCK, ppid)
	}
	return nil
}

// groups checks that a supplementary group of the unprivileged user grants
// access on the host as it does in the guest, and that a set-group-ID
// directory passes its group (and, to directories, the bit) on.
func (t *g) groups() error {
	for _, d := range []struct {
		rel  string
		mode uint32
	}{{"grp", 0o770}, {"grp-sgid", 0o2770}} {
		if err := os.Mkdir(t.path(d.rel), 0o700); err != nil {
			return err
		}
		if err := os.Chown(t.path(d.rel), 0, int(scenario.GuestGroup)); err != nil {
			return err
		}
		if err := unix.Chmod(t.path(d.rel), d.mode); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = []string{asUserEnv + "=groups"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: scenario.GuestUser, Gid: scenario.GuestUser, Groups: []uint32{scenario.GuestGroup},
	}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("groups helper as uid %d with group %d: %v: %s", scenario.GuestUser, scenario.GuestGroup, err, bytes.TrimSpace(out))
	}
	if err := dropCaches(); err != nil {
		return err
	}
	for _, c := range []struct {
		rel  string
		gid  uint32
		mode uint32
	}{
		{"grp/f.txt", scenario.GuestUser, 0o644},
		{"grp/d", scenario.GuestUser, 0o755},
		{"grp-sgid/f.txt", scenario.GuestGroup, 0o644},
		{"grp-sgid/d", scenario.GuestGroup, 0o2755},
	} {
		if err := t.expectOwner(c.rel, scenario.GuestUser, c.gid); err != nil {
			return err
		}
		if err := t.expectMode(c.rel, c.mode); err != nil {
			return err
		}
	}
	return nil
}

func groupsUser(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	if err := os.WriteFile(p("grp/f.txt"), []byte("group member\n"), 0o666); err != nil {
		return fmt.Errorf("create in a directory writable through a supplementary group: %w", err)
	}
	if err := os.Mkdir(p("grp/d"), 0o777); err != nil {
		return fmt.Errorf("mkdir in a directory writable through a supplementary group: %w", err)
	}
	if err := os.WriteFile(p("grp-sgid/f.txt"), []byte("inherits the group\n"), 0o666); err != nil {
		return fmt.Errorf("create in a set-group-ID directory: %w", err)
	}
	if err := os.Mkdir(p("grp-sgid/d"), 0o777); err != nil {
		return fmt.Errorf("mkdir in a set-group-ID directory: %w", err)
	}
	return nil
}

// timesNs checks nanosecond timestamps: those the host sets on a write, and
// those utimensat sets on a directory and, without following it, a symlink.
func (t *g) timesNs() error {
	// The host's clock stamps new files with nanoseconds; all three being
	// whole seconds would mean the guest lost the nanoseconds.
	whole := 0
	for i := range 3 {
		rel := fmt.Sprintf("times-ns-%d", i)
		if err := os.WriteFile(t.path(rel), []byte("x"), 0o666); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat(t.path(rel), &st); err != nil {
			return err
		}
		if st.Mtim.Nsec == 0 {
			whole++
		}
		if err := os.Remove(t.path(rel)); err != nil {
			return err
		}
		time.Sleep(3 * time.Millisecond)
	}
	if whole == 3 {
		return errors.New("three new files all have whole-second modification times")
	}
	if err := os.Mkdir(t.path("times-dir"), 0o777); err != nil {
		return err
	}
	if err := os.Symlink("times-dir", t.path("times-link")); err != nil {
		return err
	}
	for _, c := range []struct {
		rel   string
		ns    int64
		flags int
	}{{"times-dir", scenario.GuestDirMtimeNs, 0}, {"times-link", scenario.GuestLinkMtimeNs, unix.AT_SYMLINK_NOFOLLOW}} {
		ts := []unix.Timespec{unix.NsecToTimespec(c.ns), unix.NsecToTimespec(c.ns)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, t.path(c.rel), ts, c.flags); err != nil {
			return fmt.Errorf("utimensat %s: %w", c.rel, err)
		}
	}
	if err := dropCaches(); err != nil {
		return err
	}
	for _, c := range []struct {
		rel string
		ns  int64
	}{{"times-dir", scenario.GuestDirMtimeNs}, {"times-link", scenario.GuestLinkMtimeNs}} {
		var st unix.Stat_t
		if err := unix.Lstat(t.path(c.rel), &st); err != nil {
			return err
		}
		if st.Mtim.Nano() != c.ns || st.Atim.Nano() != c.ns {
			return fmt.Errorf("lstat %s: atime %d mtime %d, want %d", c.rel, st.Atim.Nano(), st.Mtim.Nano(), c.ns)
		}
	}
	return nil
}
