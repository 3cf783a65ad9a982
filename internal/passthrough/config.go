package passthrough

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// CachePolicy is the --cache option.
type CachePolicy int

const (
	CacheAuto CachePolicy = iota
	CacheAlways
	CacheNever
	CacheMetadata
)

// MigrationMode is the --migration-mode option.
type MigrationMode int

const (
	// MigrateFindPaths describes inodes by parent and name.
	MigrateFindPaths MigrationMode = iota
	// MigrateFileHandles describes inodes by file handle; both hosts must
	// see the same file system.
	MigrateFileHandles
)

// MigrationOnError is the --migration-on-error option.
type MigrationOnError int

const (
	// OnErrorAbort fails the whole load.
	OnErrorAbort MigrationOnError = iota
	// OnErrorGuestError keeps the failed inode or handle, and answers every
	// guest request on it with an error.
	OnErrorGuestError
)

// Config configures an FS.
type Config struct {
	// Root is the canonical path of the shared directory, as seen by the
	// daemon after sandboxing ("/" inside the namespace and chroot
	// sandboxes).
	Root string
	// RootFD, if positive, is a descriptor on the shared directory
	// (O_DIRECTORY, O_PATH or O_RDONLY) opened once at start-up, inside the
	// sandbox; the FS takes ownership of it. Otherwise New opens Root once.
	// The shared directory is never looked up by path again.
	RootFD int
	// MountinfoPrefix is stripped from the mount points read from
	// mountinfo when they are host paths while the daemon's root is the
	// shared directory (the chroot sandbox); empty otherwise. Only a
	// whole-component prefix is stripped; a mount point outside it is
	// taken to be the shared directory's own mount ("/"), as the reference
	// does, and the mount ID check catches any other.
	MountinfoPrefix string
	Cache           CachePolicy
	// Readdirplus is offered unless --no-readdirplus or --cache=never.
	Readdirplus bool
	// AnnounceSubmounts sets FUSE_ATTR_SUBMOUNT on submount roots.
	AnnounceSubmounts bool
	// Writeback is --writeback: ask for FUSE_WRITEBACK_CACHE.
	Writeback bool
	// AllowDirectIO is --allow-direct-io: keep O_DIRECT in guest opens.
	AllowDirectIO bool
	// AllowMmap is --allow-mmap: ask for FUSE_DIRECT_IO_ALLOW_MMAP.
	AllowMmap bool
	// PreserveNoatime is --preserve-noatime: keep O_NOATIME in guest opens.
	PreserveNoatime bool
	// ThreadPoolSize is --thread-pool-size (affects the fd budget).
	ThreadPoolSize int
	// FDBudget is the number of fds the guest may hold open (inodes with
	// an O_PATH fd plus open handles); ENFILE past it. Zero makes INIT fail
	// with ENFILE.
	FDBudget int
	// ProcSelfFD, if positive, is an O_PATH descriptor on /proc/self/fd
	// prepared by the sandbox; the FS takes ownership of it. Otherwise New
	// opens /proc/self/fd itself.
	ProcSelfFD int
	// InodeFileHandles is --inode-file-handles; the zero value is never.
	InodeFileHandles FileHandleMode
	// MountinfoFD, if positive, is a read-only descriptor on
	// /proc/self/mountinfo prepared by the sandbox; the FS takes ownership
	// of it. Otherwise New opens /proc/self/mountinfo itself when the file
	// handle mode is not never.
	MountinfoFD int
	// KillprivV2 is --killpriv-v2: ask for FUSE_HANDLE_KILLPRIV_V2 and make
	// the host clear the set-user-ID and set-group-ID bits on the requests
	// the guest flags. Like the reference, the flags are honoured whenever
	// the option is on, even if the guest did not take up the offer (a
	// Linux guest then never sets them).
	KillprivV2 bool
	// MigrationMode is --migration-mode: how a migration source describes
	// its inodes (docs/migration.md). In file-handles mode the FS also keeps
	// /proc/self/mountinfo (MountinfoFD or its own) whatever
	// InodeFileHandles says.
	MigrationMode MigrationMode
	// MigrationOnError is --migration-on-error: what a destination does
	// with an inode or handle it cannot restore.
	MigrationOnError MigrationOnError
	// MigrationVerifyHandles is --migration-verify-handles (source, find-paths
	// mode): send every inode's file handle for the destination to check.
	MigrationVerifyHandles bool
	// MigrationConfirmPaths is --migration-confirm-paths (source, find-paths
	// mode): re-check every path while saving.
	MigrationConfirmPaths bool
	// handleHook is a test hook, see FS.handleHook.
	handleHook func(fd int) unix.Errno
	// Log receives the file system's log records; nil means slog.Default().
	Log *slog.Logger
}
