// Command virtiofsd is a vhost-user virtio-fs back-end: it serves a host
// directory to a guest through a UNIX socket that a virtual machine monitor
// such as QEMU connects to. Its command line and behaviour follow virtiofsd
// 1.13 (the Rust implementation), so it can replace that program.
//
// # Start-up
//
// Start-up is a fixed sequence of small steps (see run) in the reference's
// order: parse the command line (usage errors exit with status 2, with the
// reference's wording), answer --print-capabilities, set up logging, install
// the signal handlers, refuse options that are not implemented yet, check
// the shared directory, create the listener, set the socket group, raise
// RLIMIT_NOFILE and compute the guest's descriptor budget, build the file
// system and the device, then accept exactly one front-end connection. Every
// failure after parsing is one error line in the log and exit status 1.
//
// The listener is either the inherited --fd descriptor or a new socket at
// --socket-path (or the deprecated --socket), bound with umask 0077 (0007
// with --socket-group). The file <socket>.pid, created with mode 0600 and
// held under an exclusive flock for the life of the process, keeps a second
// daemon off the same socket path; any stale socket file is replaced. The
// pid file is truncated before the PID is written (the reference leaves
// digits of a longer old PID behind).
//
// After the connection is accepted the listener is closed; with an explicit
// --sandbox=none the socket path is also removed, as the reference does in
// that mode. When the front-end disconnects, or the connection fails, the
// daemon exits with status 0. SIGTERM and SIGHUP end it at once with status
// 1, leaving the socket and the pid file behind; SIGPIPE is ignored.
//
// # Options not implemented yet
//
// Every option of the reference is parsed and validated, but the following
// are refused with "<option> is not supported yet" and status 1: --xattr,
// --posix-acl, --xattrmap, --modcaps, --security-label, --uid-map,
// --gid-map, --translate-uid, --translate-gid, --migration-verify-handles,
// --migration-confirm-paths, --migration-mode other than find-paths,
// --migration-on-error other than abort, and any explicit --sandbox or
// --seccomp other than none. The same holds for the equivalent -o items. The xattrmap rule language is not parsed yet, so a
// malformed --xattrmap is refused (status 1) instead of being a usage error
// (status 2) as in the reference.
//
// Sandboxing and seccomp are not implemented yet. With their defaults left
// implicit (namespace and kill in the reference) the daemon starts anyway
// and logs one warning for each; giving --sandbox=none and --seccomp=none
// acknowledges this and silences the warnings.
//
// # Logging
//
// Log lines look like the reference's, "[2026-11-27T02:03:24Z INFO
// virtiofsd] message" (see package logging). The level comes from
// --log-level, -d forces debug, and RUST_LOG, when set, replaces both for
// standard error. --syslog sends the records to the system logger with
// facility LOG_USER; if it cannot be reached the daemon warns "can't enable
// syslog: ..." and logs to standard error.
//
// # Open file limit
//
// Without --rlimit-nofile the daemon raises RLIMIT_NOFILE to
// min(1000000, /proc/sys/fs/nr_open), falling back to the hard limit. The
// Go runtime has already raised the soft limit to the hard limit before main
// runs, so "--rlimit-nofile 0" and the "already high enough" case keep that
// raised value and the guest's budget can be larger than the reference's.
package main
