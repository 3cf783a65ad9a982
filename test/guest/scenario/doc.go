// Package scenario is the single description of what the QEMU guest test does,
// shared by the host side (package guest) and the program that runs inside the
// guest (guestprog).
//
// The host seeds the shared directory with [CreateSeeds] and hands the guest
// a [Manifest] inside the initramfs (not through the share, so that a daemon
// bug cannot corrupt both the data and its description). The guest mounts the
// share, checks the seeded tree with [Verify], performs the operations listed
// in [Checks] below [GuestDir], and reports one line per check on its console
// in the format of [FormatResult] and [FormatSummary]. After the guest powers
// off, the host checks the shared directory with the same [Verify] against
// [Expected]: the host must see exactly what the guest wrote.
//
// Everything here is deterministic: file contents come from [Pattern], so both
// sides can compute every expected byte without exchanging data.
package scenario
