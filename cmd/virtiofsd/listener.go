package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Socket bind umasks: the socket is created mode 0700, or 0770 when a group
// is given with --socket-group (fs.md §1.7).
const (
	umaskPrivate = 0o077
	umaskGroup   = 0o007
)

// listenBacklog is the listen(2) backlog; a single connection is accepted.
const listenBacklog = 1

// socketParent returns the directory part of a socket path the way the
// reference computes it. ok is false when the path has no parent at all
// ("" or "/"), which the reference rejects as an invalid file name.
func socketParent(path string) (parent string, ok bool) {
	trimmed := strings.TrimRight(path, "/")
	if trimmed == "" {
		return "", false
	}
	i := strings.LastIndexByte(trimmed, '/')
	if i < 0 {
		return "", true
	}
	parent = strings.TrimRight(trimmed[:i], "/")
	if parent == "" {
		parent = "/"
	}
	return parent, true
}

// pidFile is an open, locked <socket>.pid file. It stays open for the life
// of the process: the lock is what keeps a second daemon off the socket.
type pidFile struct {
	fd   int
	path string
}

// createPIDFile opens or creates path (mode 0600), takes an exclusive
// non-blocking flock on it, checks that the locked file is still the one at
// path (another daemon may have replaced it between open and lock) and
// writes the process ID. Unlike the reference it truncates the file, so a
// shorter PID does not leave digits of an older one behind.
func createPIDFile(path string) (*pidFile, error) {
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		if err := flock(fd); err != nil {
			unix.Close(fd)
			return nil, err
		}
		var locked, current unix.Stat_t
		if err := unix.Fstat(fd, &locked); err != nil {
			unix.Close(fd)
			return nil, err
		}
		if err := unix.Stat(path, &current); err != nil || current.Ino != locked.Ino || current.Dev != locked.Dev {
			// The file we locked was unlinked or replaced: try again
			// with whatever is at the path now.
			unix.Close(fd)
			continue
		}
		if err := unix.Ftruncate(fd, 0); err != nil {
			unix.Close(fd)
			return nil, err
		}
		if _, err := unix.Pwrite(fd, []byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return &pidFile{fd: fd, path: path}, nil
	}
}

func flock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}

// listenUnix creates a listening UNIX stream socket at path, replacing any
// file there, with the process umask set to umask while binding. It returns
// the socket fd (close-on-exec). The process umask is process-wide here:
// no thread has unshared its fs context yet.
func listenUnix(path string, umask int) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	// A stale socket from an earlier daemon is removed; the pid file lock
	// guarantees that no live daemon uses it. Errors show up at bind.
	_ = unix.Unlink(path)
	old := unix.Umask(umask)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("listen", err)
	}
	return fd, nil
}

// lookupGroup resolves a group name to its ID from the group database.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("parse gid %q of group %s: %w", g.Gid, name, err)
	}
	return gid, nil
}

// accept waits for one connection on the listening socket lfd and returns
// the connected socket (close-on-exec, blocking).
func accept(lfd int) (int, error) {
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ECONNABORTED) {
			return -1, os.NewSyscallError("accept", err)
		}
	}
}
