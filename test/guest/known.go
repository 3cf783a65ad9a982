package guest

// The lists below are the single place where the guest test records checks
// and stressors that do not pass, each with its reason. Keys of the check
// lists are "<run>/<check>" (see scenario.Runs); keys of the stress lists
// are stressor names.

// refFailures lists the checks the reference daemon fails. Each is kept in
// the suite; the test requires the reference to keep failing it (so that the
// list stays true) and does not hold ours to it.
var refFailures = map[string]string{}

// refStressFailures lists the stressors that do not pass (fail or are
// skipped by stress-ng) on the reference daemon.
var refStressFailures = map[string]string{
	// FUSE has no FIEMAP request: the guest kernel answers the ioctl
	// with EOPNOTSUPP and stress-ng skips the stressor.
	"fiemap": "FS_IOC_FIEMAP is not supported on FUSE file systems; stress-ng skips the stressor",
}

// oursKnownFailures lists checks the reference passes and ours fails: bugs
// in our daemon, kept visible here until fixed.
var oursKnownFailures = map[string]string{}

// oursKnownStressFailures lists stressors that pass on the reference and not
// on ours: bugs in our daemon, kept visible here until fixed.
var oursKnownStressFailures = map[string]string{}
