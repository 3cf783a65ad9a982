package passthrough

import "log/slog"

// CachePolicy is the --cache option.
type CachePolicy int

const (
	CacheAuto CachePolicy = iota
	CacheAlways
	CacheNever
	CacheMetadata
)

// Config configures an FS.
type Config struct {
	// Root is the canonical path of the shared directory, as seen by the
	// daemon after sandboxing ("/" inside the namespace and chroot
	// sandboxes).
	Root  string
	Cache CachePolicy
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
	// Log receives the file system's log records; nil means slog.Default().
	Log *slog.Logger
}
