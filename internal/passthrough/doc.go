// Package passthrough implements fuse.FileSystem over a host directory
// (the shared directory), the way virtiofsd's passthrough file system does.
//
// # Inodes
//
// Every host object the guest knows is an inode record in the inode table,
// found by node ID (the guest's handle on it) and by identity key
// (st_ino, st_dev, mount ID). A record holds either an O_PATH file
// descriptor on the object, opened once at discovery and never reopened by
// path, or a file handle (--inode-file-handles), so that later operations
// act on the object itself wherever it has been renamed to. It also keeps
// the file type seen at discovery.
//
// # Shared directory and sessions
//
// The shared directory is opened once, by New (or handed over in
// Config.RootFD), and never looked up by path again: each FUSE_INIT builds
// the root record from a fresh O_PATH descriptor reopened from that one
// through /proc/self/fd, so renaming the directory or replacing a component
// of its path by a symbolic link after start-up changes nothing. INIT first
// drops the previous session's state like DESTROY. INIT, DESTROY and Close
// are serialised by one mutex, so two INITs at once (one per queue) leave
// exactly one root record and nothing behind.
//
// # File handles
//
// In prefer and mandatory mode a LOOKUP asks name_to_handle_at for a handle
// (at most MAX_HANDLE_SZ, 128 bytes). A record with a handle keeps no
// descriptor and takes no guest-fd slot; whenever a descriptor is needed it
// opens one with open_by_handle_at on the descriptor of the object's mount
// (O_PATH for metadata operations, closed afterwards; the guest's flags for
// OPEN). Mount descriptors are shared by every record on that mount and
// reference counted; they are found through /proc/self/mountinfo, whose
// mount points are host paths in the chroot sandbox: the shared
// directory's host path (Config.MountinfoPrefix) is stripped from them
// first. Records
// with handles are found by handle first; a match on the identity key alone
// only counts for a record holding a descriptor, because a handle does not
// keep its inode alive and the number may belong to a new object. On a file
// system without handles, prefer keeps the O_PATH descriptor (warning once
// per file system) and mandatory fails the LOOKUP with EOPNOTSUPP. A
// start-up self-test on the shared directory turns prefer into never (and
// makes mandatory fail) when handles cannot be made or opened, e.g. without
// CAP_DAC_READ_SEARCH. A removed object is stale through its handle
// (ESTALE), where its O_PATH descriptor would still answer, as in the
// reference.
//
// # KILLPRIV_V2
//
// With --killpriv-v2, OPEN and CREATE's fallback open with
// FUSE_OPEN_KILL_SUIDGID, WRITE with FUSE_WRITE_KILL_SUIDGID and SETATTR
// SIZE with FATTR_KILL_SUIDGID run with CAP_FSETID removed from the calling
// thread's effective set, so that the host kernel clears the set-user-ID
// and set-group-ID bits as it would for an unprivileged writer.
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
// before returning. Every change is made in a small function that defers
// its restore (mkAsGuest, createAsGuest, the CAP_FSETID drop of
// KILLPRIV_V2), so the thread gets its identity back on every path, also
// when the operation panics: the FUSE server recovers panics and goes on
// serving with the same thread.
//
// # Lock order
//
// FS.initMu (INIT, DESTROY, loading a migration stream, Close) comes
// first: it is held while the others are taken. The session's mu (inode
// table) and hmu (handle table) are leaves: neither is held while taking
// the other, and no system call is made under either, except close(2) of a
// descriptor whose last reference was dropped (done after unlocking).
// handle.io is taken without either table lock held. FS.mig.mu (the
// outgoing migration) comes before the session's locks and is never taken
// by a request. FS.mmu (mount
// descriptors) is taken without the session's mu held; opening a new mount
// descriptor happens under it (rare: once per mount).
//
// # Sessions
//
// The FS holds the configuration and the host resources; the state of the
// FUSE session with the guest (inode and handle tables, ID counters,
// negotiated flags) is a session object, built by INIT or by loading a
// migration stream, and replaced whole (see session.go).
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
//   - An outgoing migration (migrate_save.go) checks every path against
//     the host again while saving and looks a renamed file up under its
//     new name, so that host changes during the migration only fail the
//     files that are really gone; the serialized refcounts follow the
//     stream's contract exactly; mount paths are made relative to the
//     shared directory by whole path components; cancelling the migration
//     clears what the preparation attached.
//
// Scope: Linux, little-endian amd64 and arm64.
package passthrough
