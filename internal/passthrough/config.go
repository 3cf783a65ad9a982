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
	// Root is the canonical path of the shared directory.
	Root  string
	Cache CachePolicy
	// Readdirplus is offered unless --no-readdirplus or --cache=never.
	Readdirplus bool
	// AnnounceSubmounts sets FUSE_ATTR_SUBMOUNT on submount roots.
	AnnounceSubmounts bool
	// ThreadPoolSize is --thread-pool-size (affects the fd budget).
	ThreadPoolSize int
	// FDBudget is the number of fds the guest may hold open (inodes with
	// an O_PATH fd plus open handles); ENFILE past it.
	FDBudget int
	Log      *slog.Logger
}
