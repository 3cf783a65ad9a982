package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"virtiofsd/test/guest/scenario"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dev    uint64
	point  string
	fstype string
	source string
}

// mountInfo returns the mounts of the guest program's mount namespace.
func mountInfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fs, ps := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fs) < 5 || len(ps) < 2 {
			return nil, fmt.Errorf("parse mountinfo line %q", sc.Text())
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(fs[2], "%d:%d", &major, &minor); err != nil {
			return nil, fmt.Errorf("parse mountinfo line %q: %w", sc.Text(), err)
		}
		ms = append(ms, mountEntry{dev: unix.Mkdev(major, minor), point: fs[4], fstype: ps[0], source: ps[1]})
	}
	return ms, sc.Err()
}

// statSubmount reads the submount directory (which makes the guest kernel
// cross an announced submount: stat(2) alone does not) and its seeded file,
// and returns the stat of the share's root and of the directory, and the
// mount entries for the directory.
func (t *g) statSubmount() (root, sub unix.Stat_t, entries []mountEntry, err error) {
	dir := filepath.Join(mnt, scenario.SubmountDir)
	names, err := readNames(dir)
	if err != nil {
		return root, sub, nil, fmt.Errorf("readdir %s: %w", dir, err)
	}
	if !slices.Contains(names, scenario.SubmountSeedFile) {
		return root, sub, nil, fmt.Errorf("readdir %s: %q, want %s in it", dir, names, scenario.SubmountSeedFile)
	}
	b, err := os.ReadFile(filepath.Join(dir, scenario.SubmountSeedFile))
	if err != nil {
		return root, sub, nil, err
	}
	if !bytes.Equal(b, scenario.SeedSubmount) {
		return root, sub, nil, fmt.Errorf("read %s: %q, want %q", scenario.SubmountSeedFile, b, scenario.SeedSubmount)
	}
	if err := unix.Stat(mnt, &root); err != nil {
		return root, sub, nil, fmt.Errorf("stat %s: %w", mnt, err)
	}
	if err := unix.Stat(dir, &sub); err != nil {
		return root, sub, nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	ms, err := mountInfo()
	if err != nil {
		return root, sub, nil, err
	}
	for _, m := range ms {
		if m.point == dir {
			entries = append(entries, m)
		}
	}
	return root, sub, entries, nil
}

// submount checks a tmpfs the host mounted inside the share, announced as a
// submount (the default of both daemons): the guest mounts it on its own,
// with its own device number; files in it can be read, created and synced;
// renaming out of it fails with EXDEV.
func (t *g) submount() error {
	root, sub, entries, err := t.statSubmount()
	if err != nil {
		return err
	}
	dir := filepath.Join(mnt, scenario.SubmountDir)
	var errs []error
	if sub.Dev == root.Dev {
		errs = append(errs, fmt.Errorf("%s has the device %#x of %s, want its own", dir, sub.Dev, mnt))
	}
	if len(entries) != 1 {
		errs = append(errs, fmt.Errorf("mountinfo: %d entries for %s, want 1: %+v", len(entries), dir, entries))
	} else if e := entries[0]; e.fstype != "virtiofs" || e.dev != sub.Dev {
		// The kernel names no source for an automounted submount
		// ("none"), so only the type and the device are compared.
		errs = append(errs, fmt.Errorf("mountinfo for %s: %s (source %s) device %#x, want virtiofs device %#x",
			dir, e.fstype, e.source, e.dev, sub.Dev))
	}

	// A file created in the submount belongs to it.
	p := filepath.Join(dir, scenario.SubmountGuestFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer f.Close()
	if _, err := f.Write(scenario.GuestSubmount); err != nil {
		return errors.Join(append(errs, fmt.Errorf("write %s: %w", p, err))...)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		errs = append(errs, fmt.Errorf("fstat %s: %w", p, err))
	} else if st.Dev != sub.Dev {
		errs = append(errs, fmt.Errorf("%s: device %#x, want the submount's %#x", p, st.Dev, sub.Dev))
	}
	// SYNCFS on the submount and on the share's root.
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		errs = append(errs, fmt.Errorf("syncfs on %s: %w", p, err))
	}
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", p, err))
	}
	rf, err := os.Open(mnt)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := unix.Syncfs(int(rf.Fd())); err != nil {
		errs = append(errs, fmt.Errorf("syncfs on %s: %w", mnt, err))
	}
	rf.Close()
	if err := dropCaches(); err != nil {
		errs = append(errs, err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, scenario.GuestSubmount) {
		errs = append(errs, fmt.Errorf("read back %s: %q, %v", p, b, err))
	}

	// Renaming out of the submount crosses file systems.
	mv := filepath.Join(dir, scenario.SubmountMoveFile)
	if err := os.WriteFile(mv, []byte("stay\n"), 0o644); err != nil {
		return errors.Join(append(errs, err)...)
	}
	err = unix.Rename(mv, t.path(scenario.SubmountMoveFile))
	if e := expectErrno("rename out of the submount", err, unix.EXDEV); e != nil {
		errs = append(errs, e)
	}
	if err := os.Remove(mv); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// noSubmount checks a tmpfs the host mounted inside the share, served with
// --no-announce-submounts: it is an ordinary directory of the share, with
// the share's device number and no mount of its own, and its file reads.
func (t *g) noSubmount() error {
	root, sub, entries, err := t.statSubmount()
	if err != nil {
		return err
	}
	dir := filepath.Join(mnt, scenario.SubmountDir)
	var errs []error
	if sub.Dev != root.Dev {
		errs = append(errs, fmt.Errorf("%s: device %#x, want the device %#x of %s", dir, sub.Dev, root.Dev, mnt))
	}
	if len(entries) != 0 {
		errs = append(errs, fmt.Errorf("mountinfo: %s is mounted: %+v", dir, entries))
	}
	return errors.Join(errs...)
}
