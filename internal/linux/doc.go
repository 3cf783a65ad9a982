// Package linux holds the small system-call helpers shared by the device
// packages: EINTR-retrying wrappers, file-descriptor ownership helpers,
// SCM_RIGHTS reception, eventfd signalling and the per-thread fs-context
// probe.
//
// Retrying on EINTR happens only here, so callers never loop on it. Errors
// are wrapped with os.NewSyscallError, so errors.Is(err, unix.EAGAIN) and
// friends keep working.
//
// Scope: Linux, little-endian amd64 and arm64.
package linux
