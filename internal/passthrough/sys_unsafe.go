package passthrough

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds thin wrappers around the system calls that take guest
// names or guest memory. They take NUL-terminated names as *byte and iovec
// arrays directly, so that the request paths neither convert names to
// strings nor allocate. Each retries on EINTR and returns the bare errno.
//
// Safety invariant for every *byte argument: it points to the first byte of
// a NUL-terminated byte sequence that stays reachable for the duration of
// the call (a checked fuse.Name, a procName, or emptyPath). Go keeps the
// pointed-to memory alive across the call because the unsafe.Pointer to
// uintptr conversion happens in the call's argument list.

// emptyPath is "" for the AT_EMPTY_PATH system calls.
var emptyPath = [1]byte{0}

// ptr returns a *byte for the NUL-terminated bytes b.
//
// Preconditions: len(b) > 0 and b ends with a NUL byte.
func ptr(b []byte) *byte { return unsafe.SliceData(b) }

func sysOpenat2(dirfd int, name *byte, flags uint64, mode uint64, resolve uint64) (int, unix.Errno) {
	how := unix.OpenHow{Flags: flags, Mode: mode, Resolve: resolve}
	for {
		r, _, e := unix.Syscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

func sysOpenat(dirfd int, name *byte, flags int, mode uint32) (int, unix.Errno) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(flags), uintptr(mode), 0, 0)
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

func sysStatx(dirfd int, name *byte, flags int, mask int, stx *unix.Statx_t) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(stx)), 0)
		if e != unix.EINTR {
			return e
		}
	}
}

func sysMkdirat(dirfd int, name *byte, mode uint32) unix.Errno {
	for {
		_, _, e := unix.Syscall(unix.SYS_MKDIRAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(mode))
		if e != unix.EINTR {
			return e
		}
	}
}

func sysMknodat(dirfd int, name *byte, mode uint32, dev uint32) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_MKNODAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(mode), uintptr(dev), 0, 0)
		if e != unix.EINTR {
			return e
		}
	}
}

func sysSymlinkat(target *byte, dirfd int, name *byte) unix.Errno {
	for {
		_, _, e := unix.Syscall(unix.SYS_SYMLINKAT, uintptr(unsafe.Pointer(target)), uintptr(dirfd),
			uintptr(unsafe.Pointer(name)))
		if e != unix.EINTR {
			return e
		}
	}
}

func sysUnlinkat(dirfd int, name *byte, flags int) unix.Errno {
	for {
		_, _, e := unix.Syscall(unix.SYS_UNLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(flags))
		if e != unix.EINTR {
			return e
		}
	}
}

func sysRenameat2(olddirfd int, oldname *byte, newdirfd int, newname *byte, flags uint32) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_RENAMEAT2, uintptr(olddirfd), uintptr(unsafe.Pointer(oldname)),
			uintptr(newdirfd), uintptr(unsafe.Pointer(newname)), uintptr(flags), 0)
		if e != unix.EINTR {
			return e
		}
	}
}

func sysLinkat(olddirfd int, oldname *byte, newdirfd int, newname *byte, flags int) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_LINKAT, uintptr(olddirfd), uintptr(unsafe.Pointer(oldname)),
			uintptr(newdirfd), uintptr(unsafe.Pointer(newname)), uintptr(flags), 0)
		if e != unix.EINTR {
			return e
		}
	}
}

// sysReadlinkat reads the target of the symlink dirfd/name into buf.
//
// Preconditions: len(buf) > 0.
func sysReadlinkat(dirfd int, name *byte, buf []byte) (int, unix.Errno) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)), 0, 0)
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

func sysFchmodat(dirfd int, name *byte, mode uint32) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_FCHMODAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(mode), 0, 0, 0)
		if e != unix.EINTR {
			return e
		}
	}
}

func sysFchownat(dirfd int, name *byte, uid, gid uint32, flags int) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_FCHOWNAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(uid), uintptr(gid), uintptr(flags), 0)
		if e != unix.EINTR {
			return e
		}
	}
}

// sysUtimensat sets the times of dirfd/name (name nil: dirfd itself, i.e.
// futimens).
func sysUtimensat(dirfd int, name *byte, ts *[2]unix.Timespec, flags int) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(unsafe.Pointer(ts)), uintptr(flags), 0, 0)
		if e != unix.EINTR {
			return e
		}
	}
}

func sysGetdents(fd int, buf []byte) (int, unix.Errno) {
	for {
		r, _, e := unix.Syscall(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

// iovMax is IOV_MAX: the most vectors one preadv/pwritev2 call accepts.
const iovMax = 1024

// iovecs is the scratch vector for one preadv/pwritev2 call; it lives on
// the calling goroutine's stack.
type iovecs [iovMax]unix.Iovec

// fill sets up to iovMax vectors from bufs, skipping the first skip bytes
// and covering at most limit bytes. It returns the number of vectors and
// the bytes they cover.
func (v *iovecs) fill(bufs [][]byte, skip, limit int) (n, total int) {
	for _, b := range bufs {
		if n == iovMax || limit == 0 {
			break
		}
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		b = b[skip:]
		skip = 0
		if len(b) > limit {
			b = b[:limit]
		}
		v[n].Base = unsafe.SliceData(b)
		v[n].SetLen(len(b))
		n++
		total += len(b)
		limit -= len(b)
	}
	return n, total
}

func sysPreadv(fd int, iov []unix.Iovec, off int64) (int, unix.Errno) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_PREADV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))),
			uintptr(len(iov)), uintptr(off), 0 /* pos_h */, 0)
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

func sysPwritev2(fd int, iov []unix.Iovec, off int64, flags int) (int, unix.Errno) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_PWRITEV2, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))),
			uintptr(len(iov)), uintptr(off), 0 /* pos_h */, uintptr(flags))
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

// The credential calls below act on the calling OS thread only (the libc
// and syscall.Set* wrappers broadcast to every thread). They must not
// retry on EINTR: none of them can be interrupted.

func sysSetresuid(euid uint32) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(euid), ^uintptr(0))
	return e
}

func sysSetresgid(egid uint32) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_SETRESGID, ^uintptr(0), uintptr(egid), ^uintptr(0))
	return e
}

// sysSetgroups sets the calling thread's supplementary groups.
func sysSetgroups(gids []uint32) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(unsafe.Pointer(unsafe.SliceData(gids))), 0)
	return e
}

// sysGetgroups returns the calling thread's supplementary group count
// (buf empty) or fills buf.
func sysGetgroups(buf []uint32) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, uintptr(len(buf)), uintptr(unsafe.Pointer(unsafe.SliceData(buf))), 0)
	return int(r), e
}

// rawHandle is struct file_handle with room for MAX_HANDLE_SZ bytes.
type rawHandle struct {
	bytes uint32
	typ   int32
	data  [maxHandleSize]byte
}

// sysNameToHandleAt makes a file handle for dirfd/name into h, whose bytes
// field must hold the buffer size, and stores the old-style mount ID.
func sysNameToHandleAt(dirfd int, name *byte, h *rawHandle, mntID *int32, flags int) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_NAME_TO_HANDLE_AT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(unsafe.Pointer(h)), uintptr(unsafe.Pointer(mntID)), uintptr(flags), 0)
		if e != unix.EINTR {
			return e
		}
	}
}

// sysOpenByHandleAt opens the object named by h on the mount of mountFD.
func sysOpenByHandleAt(mountFD int, h *rawHandle, flags int) (int, unix.Errno) {
	for {
		r, _, e := unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, uintptr(mountFD), uintptr(unsafe.Pointer(h)), uintptr(flags))
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

// capState holds the calling thread's capability sets, as read by
// sysCapget.
type capState struct {
	hdr  unix.CapUserHeader
	data [2]unix.CapUserData
}

func sysCapget(s *capState) unix.Errno {
	s.hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	_, _, e := unix.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&s.hdr)), uintptr(unsafe.Pointer(&s.data[0])), 0)
	return e
}

// sysCapset sets the calling thread's capability sets (only this thread's:
// capset(2) acts on the caller).
func sysCapset(s *capState) unix.Errno {
	s.hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	_, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&s.hdr)), uintptr(unsafe.Pointer(&s.data[0])), 0)
	return e
}
