package scenario

import (
	"fmt"
	"slices"
	"strings"
)

// Run is one guest boot: the daemon options, the checks the guest performs
// and, for a stress run, the stress-ng stressors it runs.
type Run struct {
	Name string
	// DaemonArgs are added to both daemons' command lines.
	DaemonArgs []string
	// Checks are performed in this order.
	Checks []string
	// ReadOnly runs leave the share untouched: the guest creates no
	// GuestDir.
	ReadOnly bool
	// Stressors are run by the "stress" check, each for StressSeconds.
	Stressors     []string
	StressSeconds int
	// Expected returns the entries below GuestDir once the guest is done.
	Expected func() []Entry
	// Submount, when set, makes the host mount a tmpfs on SubmountDir,
	// holding SubmountSeeds, before the daemon starts; it returns the
	// entries below SubmountDir once the guest is done.
	Submount func() []Entry
}

// Stressors are the stress-ng file system stressors the stress run uses, each
// with --verify.
var Stressors = []string{
	"dir", "dentry", "link", "symlink", "rename", "chmod", "chown", "utime", "flock", "lockf",
	"fallocate", "seek", "hdd", "mmap", "readahead", "sync-file", "copy-file", "fiemap",
}

// StressDir is where, below GuestDir, stress-ng keeps its temporary files.
const StressDir = "stress"

// Runs lists every guest boot of the test, in order; each is made against
// both daemons.
var Runs = []Run{
	{
		Name:     "default",
		Checks:   Checks,
		Expected: Expected,
		Submount: func() []Entry { return append(SubmountSeeds(), file(SubmountGuestFile, 0o644, GuestSubmount)) },
	},
	{
		// The tmpfs below the share is an ordinary directory of the
		// share's file system.
		Name:       "no-announce-submounts",
		DaemonArgs: []string{"--no-announce-submounts"},
		Checks:     []string{"mount", "no-submount", "umount"},
		Expected:   func() []Entry { return nil },
		Submount:   SubmountSeeds,
	},
	{
		// Without the page cache and without --allow-mmap, the guest
		// refuses shared mappings.
		Name:       "cache-never",
		DaemonArgs: []string{"--cache=never"},
		Checks:     []string{"mount", "create-small", "mmap-refused", "guest-tree", "umount"},
		Expected:   func() []Entry { return []Entry{file("small.txt", 0o644, GuestSmall)} },
	},
	{
		// Shared writable mappings need --allow-mmap when the page
		// cache is off.
		Name:       "cache-never-mmap",
		DaemonArgs: []string{"--cache=never", "--allow-mmap"},
		Checks:     []string{"mount", "create-small", "mmap", "guest-tree", "umount"},
		Expected: func() []Entry {
			return []Entry{file("small.txt", 0o644, GuestSmall), file("mmap.bin", 0o644, GuestMmap())}
		},
	},
	{
		// Every other run uses the daemons' default sandbox (namespace)
		// and seccomp filter (kill); these two boot without a sandbox and
		// in the chroot sandbox.
		Name:       "sandbox-none",
		DaemonArgs: []string{"--sandbox=none", "--seccomp=none"},
		Checks:     []string{"mount", "statfs", "seed-tree", "create-small", "mmap", "guest-tree", "umount"},
		Expected: func() []Entry {
			return []Entry{file("small.txt", 0o644, GuestSmall), file("mmap.bin", 0o644, GuestMmap())}
		},
	},
	{
		Name:       "sandbox-chroot",
		DaemonArgs: []string{"--sandbox=chroot"},
		Checks:     []string{"mount", "statfs", "seed-tree", "create-small", "mmap", "guest-tree", "umount"},
		Expected: func() []Entry {
			return []Entry{file("small.txt", 0o644, GuestSmall), file("mmap.bin", 0o644, GuestMmap())}
		},
	},
	{
		Name:       "readonly",
		DaemonArgs: []string{"--readonly"},
		Checks:     []string{"mount", "seed-tree", "readonly", "umount"},
		ReadOnly:   true,
	},
	{
		Name:          "stress",
		Checks:        []string{"mount", "stress", "after-stress", "guest-tree", "umount"},
		Stressors:     Stressors,
		StressSeconds: 3,
		Expected:      func() []Entry { return nil },
	},
}

// RunByName returns the entry of [Runs] called name.
func RunByName(name string) (Run, error) {
	i := slices.IndexFunc(Runs, func(r Run) bool { return r.Name == name })
	if i < 0 {
		return Run{}, fmt.Errorf("unknown guest run %q", name)
	}
	return Runs[i], nil
}

// Stress outcomes.
const (
	StressPass = "pass"
	StressFail = "fail"
	// StressSkip is stress-ng declining to run a stressor (exit status 3
	// or 4: no resource, not implemented on this file system or system).
	StressSkip = "skip"
)

// StressResult is one stressor's outcome as the guest reported it.
type StressResult struct {
	Outcome string
	// Detail is stress-ng's exit status and its failure or skip lines.
	Detail string
}

// FormatStress returns the console line reporting one stressor.
func FormatStress(stressor, outcome, detail string) string {
	detail = strings.ReplaceAll(strings.TrimSpace(detail), "\n", "; ")
	return linePrefix + stressWord + " " + stressor + " " + outcome + ": " + detail
}
