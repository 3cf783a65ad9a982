// Package logging provides the daemon's log/slog handler.
//
// Records are written one per line in the reference daemon's format,
//
//	[2026-11-27T02:03:24Z INFO  virtiofsd] message key=value
//
// with a UTC timestamp in seconds, the level name left-aligned in five
// columns and the fixed target "virtiofsd". Attributes follow the message as
// key=value pairs (values quoted when they contain spaces or quotes).
//
// Levels are the slog levels plus LevelTrace below Debug and LevelOff above
// Error; ParseLevel accepts the names used by --log-level. FilterFromEnv
// interprets a RUST_LOG style directive list, which overrides --log-level for
// the stderr logger. NewSyslog sends records to the system logger (facility
// LOG_USER) instead of stderr.
//
// A Handler is safe for concurrent use; each record is written with a single
// Write call under a mutex, so lines from different goroutines never
// interleave. Logging is not on the request path: formatting allocates.
package logging
