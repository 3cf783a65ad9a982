package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// closeFD closes *fd if it is open and marks it closed.
func closeFD(fd *int) {
	if *fd >= 0 {
		unix.Close(*fd)
		*fd = -1
	}
}

// retryEINTR repeats f while it fails with EINTR.
func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

func openFD(dirfd int, path string, flags int) (int, error) {
	var fd int
	err := retryEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirfd, path, flags|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

func mount(source, target, fstype string, flags uintptr) error {
	if err := unix.Mount(source, target, fstype, flags, ""); err != nil {
		return fmt.Errorf("mount %q on %q: %w", source, target, err)
	}
	return nil
}

// OpenNone is the none mode: the file system works with host paths; only
// the shared directory is opened here, once.
func OpenNone(root string) (*FDs, error) {
	fd, err := openFD(unix.AT_FDCWD, root, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	return &FDs{Root: root, RootFD: fd, ProcSelfFD: -1, MountinfoFD: -1}, nil
}

// EnterChroot is the chroot mode: /proc/self/fd and /proc/self/mountinfo
// are opened first, then the process (all threads: they share one fs
// context) is confined to root with chroot(2). root must be canonical; it
// is the prefix of the mount points in mountinfo.
func EnterChroot(root string) (_ *FDs, err error) {
	f := &FDs{Root: "/", RootFD: -1, ProcSelfFD: -1, MountinfoFD: -1, MountinfoPrefix: root}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.ProcSelfFD, err = openFD(unix.AT_FDCWD, "/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY); err != nil {
		return nil, err
	}
	if f.MountinfoFD, err = openFD(unix.AT_FDCWD, "/proc/self/mountinfo", unix.O_RDONLY); err != nil {
		return nil, err
	}
	if err := unix.Chroot(root); err != nil {
		return nil, fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return nil, fmt.Errorf("chdir /: %w", err)
	}
	if f.RootFD, err = openFD(unix.AT_FDCWD, "/", unix.O_PATH|unix.O_DIRECTORY); err != nil {
		return nil, err
	}
	return f, nil
}

// EnterNamespace is the namespace mode, run by the copy started by Spawn,
// alone in new mount and PID namespaces: it replaces /proc with the
// process's own fd directory of a fresh procfs, makes the shared directory
// root (canonical path) the root of the mount namespace with
// pivot_root(2) and detaches the old root. The fs context is shared by all
// threads at this point (none has unshared CLONE_FS), so every thread ends
// up in the new root. With root "/" the root stays as it is.
func EnterNamespace(root string) (_ *FDs, err error) {
	f := &FDs{Root: "/", RootFD: -1, ProcSelfFD: -1, MountinfoFD: -1}
	self := -1
	defer func() {
		closeFD(&self)
		if err != nil {
			f.Close()
		}
	}()
	// The old procfs's /proc/self gives the post-pivot mountinfo later.
	if self, err = openFD(unix.AT_FDCWD, "/proc/self", unix.O_PATH|unix.O_DIRECTORY); err != nil {
		return nil, err
	}
	// Stop mount events from propagating back to the host.
	if err := mount("", "/", "", unix.MS_SLAVE|unix.MS_REC); err != nil {
		return nil, err
	}
	if err := mount("proc", "/proc", "proc", unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_RELATIME); err != nil {
		return nil, err
	}
	// Only this process's fd directory stays visible under /proc.
	if err := mount("/proc/self/fd", "/proc", "", unix.MS_BIND); err != nil {
		return nil, err
	}
	if f.ProcSelfFD, err = openFD(unix.AT_FDCWD, "/proc", unix.O_PATH|unix.O_DIRECTORY); err != nil {
		return nil, err
	}
	if root != "/" {
		if err := pivot(root); err != nil {
			return nil, err
		}
	}
	if f.MountinfoFD, err = openFD(self, "mountinfo", unix.O_RDONLY); err != nil {
		return nil, err
	}
	if f.RootFD, err = openFD(unix.AT_FDCWD, "/", unix.O_PATH|unix.O_DIRECTORY); err != nil {
		return nil, err
	}
	return f, nil
}

// pivot makes root the root of the mount namespace: root becomes a mount
// point of its own, pivot_root(".", ".") with root as working directory
// stacks the old root on top of it, and the old root is then detached
// (pivot_root(2), "NOTES").
func pivot(root string) error {
	if err := mount(root, root, "", unix.MS_BIND|unix.MS_REC); err != nil {
		return err
	}
	oldRoot, err := openFD(unix.AT_FDCWD, "/", unix.O_DIRECTORY|unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer closeFD(&oldRoot)
	newRoot, err := openFD(unix.AT_FDCWD, root, unix.O_DIRECTORY|unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer closeFD(&newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("fchdir to %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("fchdir to the old root: %w", err)
	}
	if err := mount("", ".", "", unix.MS_SLAVE|unix.MS_REC); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("fchdir to the new root: %w", err)
	}
	return nil
}
