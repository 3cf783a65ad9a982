package cli

import (
	"fmt"
	"log/slog"

	"virtiofsd/internal/passthrough"
)

// CachePolicy is the --cache value.
type CachePolicy int

// Cache policies, in the order of the reference's help text.
const (
	CacheAuto CachePolicy = iota
	CacheAlways
	CacheNever
	CacheMetadata
)

// SandboxMode is the --sandbox value.
type SandboxMode int

// Sandbox modes.
const (
	SandboxNamespace SandboxMode = iota
	SandboxChroot
	SandboxNone
)

func (m SandboxMode) String() string {
	return [...]string{"namespace", "chroot", "none"}[m]
}

// SeccompAction is the --seccomp value.
type SeccompAction int

// Seccomp actions.
const (
	SeccompKill SeccompAction = iota
	SeccompNone
	SeccompLog
	SeccompTrap
)

func (a SeccompAction) String() string {
	return [...]string{"kill", "none", "log", "trap"}[a]
}

// InodeFileHandles is the --inode-file-handles value.
type InodeFileHandles int

// Inode file handle modes. FileHandlesFallback is the deprecated spelling of
// FileHandlesPrefer; it is kept apart only to emit the deprecation warning.
const (
	FileHandlesPrefer InodeFileHandles = iota
	FileHandlesNever
	FileHandlesMandatory
	FileHandlesFallback
)

func (m InodeFileHandles) String() string {
	return [...]string{"prefer", "never", "mandatory", "fallback"}[m]
}

// Options is the parsed command line. Fields hold the effective values
// after -o compat items have been applied.
type Options struct {
	SharedDir    string // empty if neither --shared-dir nor -o source= was given
	SharedDirSet bool
	Tag          string // empty: no tag
	// Socket is --socket, SocketPath --socket-path; empty if absent.
	Socket, SocketPath string
	SocketGroup        string
	FD                 int
	FDSet              bool
	ThreadPoolSize     int

	Xattr, PosixACL bool
	Xattrmap        string
	XattrmapSet     bool
	Sandbox         SandboxMode
	Readonly        bool
	Seccomp         SeccompAction
	// AnnounceSubmounts is false after --no-announce-submounts (unless a
	// later --announce-submounts overrides it).
	AnnounceSubmounts bool
	InodeFileHandles  InodeFileHandles
	Cache             CachePolicy
	AllowMmap         bool
	NoReaddirplus     bool
	Writeback         bool
	AllowDirectIO     bool

	PrintCapabilities bool
	Modcaps           string
	ModcapsSet        bool
	LogLevel          slog.Level // logging.LevelOff for "off"
	Syslog            bool
	RlimitNofile      uint64
	RlimitNofileSet   bool

	// Compat holds the -o values in command-line order.
	Compat []string
	// Debug is -d, Foreground -f.
	Debug, Foreground bool
	KillprivV2        bool
	SecurityLabel     bool

	UIDMap, GIDMap             []string
	TranslateUID, TranslateGID []string
	PreserveNoatime            bool

	MigrationMode          passthrough.MigrationMode
	MigrationOnError       passthrough.MigrationOnError
	MigrationVerifyHandles bool
	MigrationConfirmPaths  bool

	// given records the options that appeared on the command line, by
	// long name (or "o", "d", "f"), including those set through -o.
	given map[string]bool
}

// Given reports whether the option with long name name (without dashes;
// "o", "d" or "f" for the short-only options) was given, directly or
// through a -o compat item.
func (o *Options) Given(name string) bool { return o.given[name] }

// ListenPath returns the socket path to create: --socket-path, else
// --socket. deprecated reports that the path came from --socket.
func (o *Options) ListenPath() (path string, deprecated bool) {
	if o.SocketPath != "" || o.given["socket-path"] {
		return o.SocketPath, false
	}
	return o.Socket, o.given["socket"]
}

// Readdirplus reports whether READDIRPLUS is offered.
func (o *Options) Readdirplus() bool {
	return o.Cache != CacheNever && !o.NoReaddirplus
}

// Unsupported returns one message per option on the command line that this
// daemon does not implement yet. Options whose given value is the behaviour
// the daemon has anyway are accepted.
func (o *Options) Unsupported() []string {
	var msgs []string
	refuse := func(format string, args ...any) {
		msgs = append(msgs, fmt.Sprintf(format, args...)+" is not supported yet")
	}
	flags := []struct {
		on   bool
		name string
	}{
		{o.Xattr, "--xattr"},
		{o.PosixACL, "--posix-acl"},
		{o.XattrmapSet, "--xattrmap"},
		{o.SecurityLabel, "--security-label"},
		{len(o.TranslateUID) > 0, "--translate-uid"},
		{len(o.TranslateGID) > 0, "--translate-gid"},
	}
	for _, f := range flags {
		if f.on {
			refuse("%s", f.name)
		}
	}
	return msgs
}

// MigrationConflicts returns one message per option that
// --migration-mode=file-handles makes pointless, in the reference's order
// and words. The daemon logs each one and exits with status 1, after
// logging is set up.
func (o *Options) MigrationConflicts() []string {
	if o.MigrationMode != passthrough.MigrateFileHandles {
		return nil
	}
	var msgs []string
	for _, f := range []struct {
		on   bool
		name string
	}{
		{o.MigrationConfirmPaths, "--migration-confirm-paths"},
		{o.MigrationVerifyHandles, "--migration-verify-handles"},
	} {
		if f.on {
			msgs = append(msgs, "Cannot use "+f.name+" with --migration-mode=file-handles (because it is unnecessary)")
		}
	}
	return msgs
}
