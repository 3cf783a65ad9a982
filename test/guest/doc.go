// Package guest boots a real Linux guest under QEMU against a virtio-fs
// daemon and checks, from both sides, what the guest did to the share.
//
// TestGuest runs the same guest program (./guestprog, scenario in
// ./scenario) twice: against our daemon built from ./cmd/virtiofsd and against
// the reference daemon, Debian trixie's virtiofsd 1.13.2, so that a behaviour
// that differs between the two fails one side. The external pieces (QEMU 10,
// the Debian 6.12 cloud kernel, the reference daemon, a static busybox) are
// installed by scripts/setup.sh; FindDeps locates them. When they are absent
// the test skips with a message, except under CI=true, where it fails.
//
// The harness in this package (WriteCPIO, Boot) has no FUSE knowledge: it
// builds a gzip cpio initramfs, starts the daemon in its own process group,
// waits for its socket, starts QEMU with vhost-user-fs-pci, and bounds every
// wait with a timeout; both processes are killed on every path.
package guest
