// Package guest boots a real Linux guest under QEMU against a virtio-fs
// daemon and checks, from both sides, what the guest did to the share.
//
// TestGuest makes every run of scenario.Runs against the reference daemon,
// Debian trixie's virtiofsd 1.13.2 (TestGuest/reference/<run>), and then
// against ours built from ./cmd/virtiofsd (TestGuest/ours/<run>). A run is a
// boot with given daemon options and a list of checks performed by the guest
// program (./guestprog, scenario in ./scenario):
//
//   - default: the POSIX conformance checks (file data, sparse files and
//     SEEK_DATA/SEEK_HOLE, fallocate and punch-hole, a sparse file over
//     4 GiB, O_EXCL, O_APPEND, O_TRUNC, mmap, rename flags, link counts,
//     directories of 1000 and 10 000 entries with telldir/seekdir offsets,
//     nanosecond timestamps, an unprivileged guest user's permissions, a
//     sticky directory, flock and fcntl locks between processes, and a
//     tmpfs the host mounted inside the share, announced as a submount: its
//     own virtiofs mount with its own st_dev in the guest, files read and
//     created in it (the host finds them on the tmpfs), SYNCFS on it and on
//     the root, EXDEV when renaming out of it);
//   - no-announce-submounts: --no-announce-submounts, the same tmpfs is an
//     ordinary directory with the share's st_dev and no mount of its own;
//   - cache-never: --cache=never, shared mappings refused, private ones work;
//   - cache-never-mmap: --cache=never --allow-mmap, shared writable mmap;
//   - readonly: --readonly, every modifying request answered with EROFS;
//   - stress: stress-ng's file system stressors with --verify on the share.
//
// Ours must pass every check and every stressor the reference passes. The
// checks and stressors that do not pass are listed, with their reasons, in
// known.go: the reference's failures (the test requires the reference to keep
// failing the listed checks) and our known bugs.
//
// TestGuestMigration live-migrates one running guest along a chain of QEMU
// instances on this machine, each served by its own daemon, ours or the
// reference: TestGuestMigration/<chain>/<mode>. The mode is find-paths (the
// default options) or file-handles (--migration-mode=file-handles on every
// daemon; the reference also gets --modcaps=+dac_read_search, which a
// destination needs to open file handles). The "mixed" chain boots on the
// reference and migrates reference → ours → ours → reference → ours, then
// from ours to a destination that cannot load the state (its daemon serves an empty tmpfs with
// --migration-on-error=abort: the migration fails and the guest goes on on
// the source), then saves the guest to a file and restores it into a new
// instance; the "reference" chain does the same with the reference in every
// slot. QEMU negotiates the device state with each daemon by itself; the
// test drives the instances over QMP (migration events and the return path
// on, so that a destination's failure reaches the source) and waits on
// events throughout. The guest program's migration mode
// (scenario.ModeMigrate) holds its current directory, the cached entries of
// a tree of a few thousand host-made files, a file it appends numbered lines
// to, a host file and a directory it reads, all through every hop; when the
// host creates the stop file it checks that all of it still works and that
// the tree looks as at the start, and reports. The host then checks that
// every appended line is there exactly once and that the tree is unchanged.
// Every process is killed on every path; a failure prints every console and
// daemon log.
//
// The external pieces (QEMU 10, the Debian 6.12 cloud kernel, the reference
// daemon, a static busybox, bookworm's stress-ng with its libraries) are
// installed by scripts/setup.sh; FindDeps and Deps.StressNGDir locate them.
// When they are absent the test skips with a message, except under CI=true,
// where it fails.
//
// The harness in this package (WriteCPIO, TreeEntries, Boot, and for the
// migration test StartDaemon, StartVM and the QMP client) has no FUSE
// knowledge: it builds gzip cpio initramfs archives, starts the daemon in its
// own process group, waits for its socket, starts QEMU with
// vhost-user-fs-pci, and bounds every wait with a timeout; both processes are
// killed on every path.
package guest
