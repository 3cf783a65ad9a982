// Package passthrough implements fuse.FileSystem over a host directory
// (the shared directory), the way virtiofsd's passthrough file system does.
//
// # Inodes
//
// Every host object the guest knows is an inode record in the inode table,
// found by node ID (the guest's handle on it) and by identity key
// (st_ino, st_dev, mount ID). A record holds an O_PATH file descriptor on the
// object, opened once at discovery and never reopened by path, so that later
// operations act on the object itself wherever it has been renamed to. The
// record also has room for a file handle plus mount ID (--inode-file-handles)
// and the file type seen at discovery.
//
// Node IDs: the root is 1 (lookup count 2), every other record takes the
// next value of a counter that starts at 2 and is never reset or reused.
// Each LOOKUP-like reply adds one to the record's lookup count, FORGET
// subtracts; at zero the record leaves both indexes. The descriptor is
// reference counted separately: the table holds one reference while the
// record is indexed and every request that uses the descriptor holds one
// for its duration, so a FORGET racing with a request never closes a
// descriptor that is still in use (and the number can never be recycled
// under a running /proc/self/fd operation).
//
// # Handles
//
// OPEN, OPENDIR and CREATE register an open descriptor in the handle table
// under an ID from a counter that starts at 0 and is never reused. A handle
// remembers its node ID; every handle-based request must name both, or it
// fails with EBADF. Handles are reference counted like inode descriptors. A
// per-handle RWMutex is taken shared by READ, WRITE, FALLOCATE and
// COPY_FILE_RANGE and exclusively by READDIR and LSEEK, which move the
// descriptor's offset.
//
// # Resolving guest names
//
// Guest names are single path components (checked again here). They are only
// ever resolved relative to the parent's O_PATH descriptor, with
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) and O_NOFOLLOW (openat with
// O_NOFOLLOW on kernels without openat2), so symbolic links are never
// followed and no resolution can leave the directory. Host paths are never
// built from guest input. Operations on a known object go through its
// descriptor, or through /proc/self/fd/<n> (fchmodat, utimensat, linkat,
// reopening with new flags).
//
// # Credentials
//
// MKNOD, MKDIR, SYMLINK and the creating open of CREATE run with the
// requesting guest user's effective uid and gid (and its supplementary groups,
// when the request carries them), so that new objects belong to that user.
// Credentials are per OS thread in Linux: the caller runs every method on a
// goroutine locked to its thread, and this package changes them only with
// raw setresuid/setresgid/setgroups/capset system calls, restoring them
// before returning.
//
// # Lock order
//
// FS.mu (inode table) and FS.hmu (handle table) are leaves: neither is held
// while taking the other, and no system call is made under either, except
// close(2) of a descriptor whose last reference was dropped (done after
// unlocking). handle.io is taken without either table lock held.
//
// # Differences from the reference daemon
//
//   - Names are checked again (EINVAL for "", ".", "..", names with '/' or
//     without their terminating NUL) before any system call.
//   - CREATE builds the new entry from the descriptor it created instead of
//     looking the name up again, so entry and handle always name the same
//     object; O_PATH is removed from CREATE flags because it would make
//     openat ignore O_CREAT|O_EXCL.
//   - When CREATE falls back to opening an existing file and that open
//     fails, the lookup count the fallback took is given back.
//   - Credential switching always undoes everything it did: the
//     supplementary group list is restored even when no uid/gid switch
//     happened, and the gid is restored when the uid switch fails. If a
//     restore fails the process exits with status 1 rather than serve
//     requests with a guest user's identity.
//   - Reads and writes never transfer more than the requested size, and
//     vectors longer than IOV_MAX are split over several calls.
//
// Scope: Linux, little-endian amd64 and arm64.
package passthrough
