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
// the shared directory, warn about deprecated syntax, refuse
// --migration-confirm-paths and --migration-verify-handles with
// --migration-mode=file-handles (one error line each, as the reference
// does), create the listener, set the socket group, raise
// RLIMIT_NOFILE and compute the guest's descriptor budget, canonicalise the
// shared directory, enter the sandbox, install the seccomp filter (unless
// --seccomp=none), reduce the capabilities (as root only, honouring
// --modcaps), build the file system and the device, then accept exactly one
// front-end connection. Every failure after parsing is one error line in the
// log and exit status 1.
//
// The listener is either the inherited --fd descriptor or a new socket at
// --socket-path (or the deprecated --socket), bound with umask 0077 (0007
// with --socket-group). The file <socket>.pid, created with mode 0600 and
// held under an exclusive flock for the life of the process, keeps a second
// daemon off the same socket path; any stale socket file is replaced. The
// pid file is truncated before the PID is written (the reference leaves
// digits of a longer old PID behind).
//
// The pid file is opened with O_NOFOLLOW: a symbolic link at its path is
// an error, where the reference follows it.
//
// After the connection is accepted the listener is closed; with
// --sandbox=none the socket path is also removed, as the reference does in
// that mode. When the front-end disconnects, or the connection fails, the
// daemon exits with status 0. SIGTERM and SIGHUP end it at once with status
// 1, leaving the socket and the pid file behind; SIGPIPE is ignored.
//
// # Sandbox
//
// The sandbox (package sandbox) is entered after the listener and the open
// file limit are set up.
//
// With --sandbox=namespace, the default, the daemon runs a second copy of
// its own executable (opened through /proc/self/exe at start-up) in new
// mount, PID and network namespaces, plus a user namespace when the
// effective UID is not 0. The copy inherits the listening socket (also an
// inherited --fd one) and a pipe; what it must not recompute (the
// descriptor budget, the canonical shared directory, an unusable --fd) is
// handed over in an internal environment variable. It parses the same
// command line, but neither creates the pid file or the socket nor sets the
// open file limit again; its deprecation warnings are not repeated. It
// connects to syslog before entering the sandbox, which hides /dev/log.
//
// The original process keeps the pid file, closes its copy of the listener
// without removing the socket, drops all its capabilities and waits. It
// exits with the copy's status, or with 256 minus the number of the signal
// that killed it (logging "Child process terminated by signal S"). SIGTERM
// or SIGHUP ends it with status 1, and the copy then receives SIGTERM as
// its parent-death signal and also exits with status 1.
//
// Unprivileged, the copy's user namespace maps the user's own UID and GID
// unless --uid-map/--gid-map say otherwise; a single range that maps only
// the user's own ID is written directly, anything else by newuidmap(1) and
// newgidmap(1), while the copy waits on the pipe. If they fail, the error
// is logged ("sandbox: couldn't setup id mappings: ...") and the daemon
// exits with status 1. The copy then tries to become UID and GID 0 of the
// namespace, warning if the maps do not allow it, and keeps the
// capabilities it has there: they are passed as ambient capabilities,
// since a process that is not root in its namespace would lose them in
// execve. The ID maps are refused as root and with another sandbox mode,
// as is --sandbox=chroot for an unprivileged user.
//
// With --sandbox=chroot the daemon opens /proc/self/fd and
// /proc/self/mountinfo and chroots into the shared directory; with
// --sandbox=none it only opens the shared directory. Neither mode warns.
// As root, supplementary groups are dropped in every mode unless the daemon
// runs in a user namespace where setgroups(2) is denied.
//
// # Options not implemented yet
//
// Every option of the reference is parsed and validated, but the following
// are refused with "<option> is not supported yet" and status 1: --xattr,
// --posix-acl, --xattrmap, --security-label, --translate-uid and
// --translate-gid. The same holds for the equivalent -o items. The xattrmap rule
// language is not parsed yet, so a malformed --xattrmap is refused (status
// 1) instead of being a usage error (status 2) as in the reference.
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
