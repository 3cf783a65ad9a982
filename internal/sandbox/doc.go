// Package sandbox isolates the daemon from the host before it serves the
// guest (the --sandbox option).
//
// Three modes exist:
//
//   - namespace (the default): the daemon starts a second copy of itself
//     (Spawn) in new mount, PID and network namespaces, plus a user
//     namespace when it is not running as root. The original process only
//     keeps the pid file and waits for the copy; the copy, PID 1 of its
//     namespace, makes the shared directory its root with pivot_root and
//     leaves nothing of /proc but its own fd directory (EnterNamespace).
//     A Go program cannot unshare a user namespace or fork without exec, so
//     the copy is started with clone flags instead of the unshare-and-fork
//     of the C and Rust daemons. Information the copy needs from the
//     original process travels in a Stage in the environment.
//   - chroot (root only): EnterChroot opens what the file system needs from
//     /proc, then chroots into the shared directory. Meant for containers
//     that already provide namespaces.
//   - none: OpenNone only opens the shared directory.
//
// Each mode returns the descriptors the passthrough file system is built
// from (FDs). Check applies the option rules common to every mode, and
// DropGroups drops supplementary groups as described in
// user_namespaces(7) and setgroups(2).
//
// Unprivileged namespace mode maps IDs into the new user namespace: the
// trivial mapping of one's own ID is written by the Go runtime while
// starting the copy; anything else is written by newuidmap(1) and
// newgidmap(1), while the copy waits on a pipe before doing anything that
// depends on its IDs.
package sandbox
