package seccomp

import "golang.org/x/sys/unix"

// auditArch is the AUDIT_ARCH of the native calling convention.
const auditArch = unix.AUDIT_ARCH_X86_64

// checkX32 refuses x32-ABI numbers, which share AUDIT_ARCH_X86_64.
const checkX32 = true

// table is the amd64 allow-list.
//
// How it was derived: the first part is the reference daemon's list
// (virtiofsd 1.13, seccomp.rs) for x86-64. The second part is what the Go
// runtime and this daemon call once the filter is in place:
//   - the daemon's end-to-end tests (test/daemon, with every option set they
//     use: thread pools, file handles never/prefer/mandatory, read-only,
//     migration) were run with the daemon under `strace -f -c`; after
//     start-up it made only calls of the reference's list plus nanosleep
//     and getgroups;
//   - the same tests then passed with the kill filter installed in the
//     daemon, once just before serving and once before the file system is
//     built, with no seccomp record in the kernel log;
//   - this package's tests run a busy Go workload (scheduler, GC, timers,
//     preemption, signals, network poller, files) and a stopped and
//     continued process under the kill filter (restart_syscall);
//   - the runtime's system-call wrappers (runtime/sys_linux_amd64.s) were
//     read for the rest.
//
// Calls made only before the filter (socket, bind, listen, execve,
// prlimit64, getrlimit, ...) are left out. So is arch_prctl: the runtime
// calls it only for the first thread; later threads get their TLS base from
// clone's CLONE_SETTLS. So are the runtime's profiling timers
// (timer_create, setitimer): the daemon does not profile.
var table = []entry{
	// The reference's list: processes, threads, signals, memory.
	{nr: unix.SYS_BRK, name: "brk"},
	{nr: unix.SYS_CLONE, name: "clone"},
	{nr: unix.SYS_CLONE3, name: "clone3"},
	{nr: unix.SYS_EXIT, name: "exit"},
	{nr: unix.SYS_EXIT_GROUP, name: "exit_group"},
	{nr: unix.SYS_FUTEX, name: "futex"},
	{nr: unix.SYS_GETPID, name: "getpid"},
	{nr: unix.SYS_GETTID, name: "gettid"},
	{nr: unix.SYS_GETEGID, name: "getegid"},
	{nr: unix.SYS_GETEUID, name: "geteuid"},
	{nr: unix.SYS_MEMBARRIER, name: "membarrier"},
	{nr: unix.SYS_MADVISE, name: "madvise"},
	{nr: unix.SYS_MMAP, name: "mmap"},
	{nr: unix.SYS_MPROTECT, name: "mprotect"},
	{nr: unix.SYS_MREMAP, name: "mremap"},
	{nr: unix.SYS_MUNMAP, name: "munmap"},
	{nr: unix.SYS_PRCTL, name: "prctl"},
	{nr: unix.SYS_RSEQ, name: "rseq"},
	{nr: unix.SYS_RT_SIGACTION, name: "rt_sigaction"},
	{nr: unix.SYS_RT_SIGPROCMASK, name: "rt_sigprocmask"},
	{nr: unix.SYS_RT_SIGRETURN, name: "rt_sigreturn"},
	{nr: unix.SYS_SCHED_GETAFFINITY, name: "sched_getaffinity"},
	{nr: unix.SYS_SCHED_YIELD, name: "sched_yield"},
	{nr: unix.SYS_SET_ROBUST_LIST, name: "set_robust_list"},
	{nr: unix.SYS_SIGALTSTACK, name: "sigaltstack"},
	{nr: unix.SYS_TGKILL, name: "tgkill"},
	{nr: unix.SYS_TKILL, name: "tkill"},
	{nr: unix.SYS_GETRANDOM, name: "getrandom"},
	{nr: unix.SYS_CLOCK_GETTIME, name: "clock_gettime"},
	{nr: unix.SYS_GETTIMEOFDAY, name: "gettimeofday"},
	{nr: unix.SYS_TIME, name: "time"},
	// The reference's list: credentials, capabilities, fs context.
	{nr: unix.SYS_CAPGET, name: "capget"},
	{nr: unix.SYS_CAPSET, name: "capset"},
	{nr: unix.SYS_SETRESUID, name: "setresuid"},
	{nr: unix.SYS_SETRESGID, name: "setresgid"},
	{nr: unix.SYS_SETGROUPS, name: "setgroups"},
	{nr: unix.SYS_UMASK, name: "umask"},
	{nr: unix.SYS_UNSHARE, name: "unshare"},
	{nr: unix.SYS_FCHDIR, name: "fchdir"},
	// The reference's list: event loop and vhost-user socket.
	{nr: unix.SYS_ACCEPT4, name: "accept4"},
	{nr: unix.SYS_EPOLL_CREATE, name: "epoll_create"},
	{nr: unix.SYS_EPOLL_CREATE1, name: "epoll_create1"},
	{nr: unix.SYS_EPOLL_CTL, name: "epoll_ctl"},
	{nr: unix.SYS_EPOLL_PWAIT, name: "epoll_pwait"},
	{nr: unix.SYS_EPOLL_WAIT, name: "epoll_wait"},
	{nr: unix.SYS_EVENTFD2, name: "eventfd2"},
	{nr: unix.SYS_RECVMSG, name: "recvmsg"},
	{nr: unix.SYS_SENDMSG, name: "sendmsg"},
	{nr: unix.SYS_READ, name: "read"},
	{nr: unix.SYS_WRITE, name: "write"},
	{nr: unix.SYS_WRITEV, name: "writev"},
	{nr: unix.SYS_CLOSE, name: "close"},
	{nr: unix.SYS_DUP, name: "dup"},
	{nr: unix.SYS_FCNTL, name: "fcntl"},
	{nr: unix.SYS_FLOCK, name: "flock"},
	// The reference's list: files.
	{nr: unix.SYS_OPEN, name: "open"},
	{nr: unix.SYS_OPENAT, name: "openat"},
	{nr: unix.SYS_OPENAT2, name: "openat2"},
	{nr: unix.SYS_OPEN_BY_HANDLE_AT, name: "open_by_handle_at"},
	{nr: unix.SYS_NAME_TO_HANDLE_AT, name: "name_to_handle_at"},
	{nr: unix.SYS_FSTAT, name: "fstat"},
	{nr: unix.SYS_NEWFSTATAT, name: "newfstatat"},
	{nr: unix.SYS_STATX, name: "statx"},
	{nr: unix.SYS_FSTATFS, name: "fstatfs"},
	{nr: unix.SYS_LSEEK, name: "lseek"},
	{nr: unix.SYS_GETDENTS, name: "getdents"},
	{nr: unix.SYS_GETDENTS64, name: "getdents64"},
	{nr: unix.SYS_PREAD64, name: "pread64"},
	{nr: unix.SYS_PREADV, name: "preadv"},
	{nr: unix.SYS_PWRITE64, name: "pwrite64"},
	{nr: unix.SYS_PWRITEV2, name: "pwritev2"},
	{nr: unix.SYS_FALLOCATE, name: "fallocate"},
	{nr: unix.SYS_FTRUNCATE, name: "ftruncate"},
	{nr: unix.SYS_FSYNC, name: "fsync"},
	{nr: unix.SYS_FDATASYNC, name: "fdatasync"},
	{nr: unix.SYS_SYNCFS, name: "syncfs"},
	{nr: unix.SYS_COPY_FILE_RANGE, name: "copy_file_range"},
	{nr: unix.SYS_FCHMOD, name: "fchmod"},
	{nr: unix.SYS_FCHMODAT, name: "fchmodat"},
	{nr: unix.SYS_FCHOWNAT, name: "fchownat"},
	{nr: unix.SYS_UTIMENSAT, name: "utimensat"},
	{nr: unix.SYS_LINKAT, name: "linkat"},
	{nr: unix.SYS_MKDIRAT, name: "mkdirat"},
	{nr: unix.SYS_MKNODAT, name: "mknodat"},
	{nr: unix.SYS_SYMLINKAT, name: "symlinkat"},
	{nr: unix.SYS_READLINKAT, name: "readlinkat"},
	{nr: unix.SYS_RENAMEAT, name: "renameat"},
	{nr: unix.SYS_RENAMEAT2, name: "renameat2"},
	{nr: unix.SYS_UNLINK, name: "unlink"},
	{nr: unix.SYS_UNLINKAT, name: "unlinkat"},
	// The reference's list: extended attributes.
	{nr: unix.SYS_FGETXATTR, name: "fgetxattr"},
	{nr: unix.SYS_FLISTXATTR, name: "flistxattr"},
	{nr: unix.SYS_FREMOVEXATTR, name: "fremovexattr"},
	{nr: unix.SYS_FSETXATTR, name: "fsetxattr"},
	{nr: unix.SYS_GETXATTR, name: "getxattr"},
	{nr: unix.SYS_LISTXATTR, name: "listxattr"},
	{nr: unix.SYS_REMOVEXATTR, name: "removexattr"},
	{nr: unix.SYS_SETXATTR, name: "setxattr"},
	// The reference's list, only with --syslog: the log handler's datagrams.
	{nr: unix.SYS_SENDTO, name: "sendto", syslog: true},

	// The Go runtime.
	// runtime·usleep: back-off in the scheduler, the GC and signal
	// forwarding.
	{nr: unix.SYS_NANOSLEEP, name: "nanosleep"},
	// A sleep or timed futex wait interrupted by a stop signal (SIGSTOP,
	// then SIGCONT) is resumed through restart_syscall.
	{nr: unix.SYS_RESTART_SYSCALL, name: "restart_syscall"},

	// This daemon.
	// Requests with supplementary groups save the thread's list first
	// (passthrough credential switching).
	{nr: unix.SYS_GETGROUPS, name: "getgroups"},
}
