// Command guestprog runs inside the test guest: it mounts the virtio-fs share,
// exercises it, and prints one result line per check on the console in the
// format of package scenario, followed by a summary line. It is built
// statically (CGO_ENABLED=0) and started as root by the initramfs /init
// script, which powers the guest off when it returns. The manifest in the
// initramfs names the run (scenario.Runs), and so the checks to perform.
//
// Each check both acts and asserts: it performs file operations below
// /mnt/guest and compares contents and metadata with what package scenario
// says they must be. Data written is dropped from the guest page cache before
// it is read back, so the reads reach the daemon. Checks that need an
// unprivileged process run this program again as uid and gid 1000 with
// GUESTPROG_AS_USER naming the helper. The stress check runs stress-ng (from
// the initramfs) once per stressor and prints one stress line each. The last
// checks walk the whole guest-written tree and unmount the share; the host
// then checks the same tree on its side.
//
// A manifest with Mode scenario.ModeMigrate makes it run the migration boot
// instead (migrate.go): it holds state in the share and keeps using it while
// the host migrates the guest, and prints one report line at the end.
package main
