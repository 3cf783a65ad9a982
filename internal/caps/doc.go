// Package caps reduces the daemon's capabilities at start-up (capabilities(7)).
//
// When the daemon runs as root, it keeps only what it needs to act on files
// on behalf of any guest user: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID,
// SETUID, MKNOD and SETFCAP (Default), modified by --modcaps, plus
// DAC_READ_SEARCH when --inode-file-handles is not "never"
// (open_by_handle_at(2) needs it). Config.Compute works the set out and
// Config.Reduce applies it; Compute and Reduce are shorthands taking the
// --modcaps value and whether file handles are used.
//
// # The --modcaps grammar
//
// A colon-separated list of elements, processed left to right. Each element
// is "+" or "-" followed by a capability name of linux/capability.h without
// its CAP_ prefix, in any case ("+sys_admin", "-MKNOD"); "+" adds the
// capability, "-" removes it. The name is upper-cased with the full Unicode
// case mapping and must then equal a known name: "cap_chown", numbers and
// "all" are refused. An empty element, an action other than "+" or "-" and
// an unknown name are errors, and so is removing dac_read_search (as the
// last word about it) while file handles are in use. Error texts are those of
// the reference daemon (Error), so that the caller can log them unchanged.
//
// # Errors
//
// The text of every error of Compute, Reduce and ClearAll is the message the
// reference daemon logs for the same failure, without the log prefix: the
// caller logs err.Error() at error level and, for Compute and Reduce, exits
// with status 1; a ClearAll failure is only logged. A failed system call is
// still available through errors.Is and errors.As (Error.Err).
//
// # All threads
//
// Capabilities are per thread, and a Go program always has several. Reduce
// and ClearAll change every thread with syscall.AllThreadsSyscall, which
// also reaches the runtime's template thread, the one new threads are cloned
// from while a goroutine is locked to its thread; so threads started later
// inherit the reduced sets. AllThreadsSyscall only exists in binaries built
// without cgo. The order of the steps matters: the bounding set can only be
// emptied (prctl(2) PR_CAPBSET_DROP) while CAP_SETPCAP is still effective, so
// it is emptied first and capset(2) comes last.
//
// The per-request capability changes of the file system (CAP_FSETID
// dropped for some writes, CAP_DAC_OVERRIDE raised after an euid switch) are
// per-thread capset(2) calls made by the passthrough package on its locked
// worker threads, after Reduce.
//
// ReadStatus and its siblings read what /proc tells about a process or
// thread (capability sets, no_new_privs, seccomp mode, namespaces), for tests
// that check a running daemon.
package caps
