// Package caps reduces the daemon's capabilities at start-up.
package caps

// Set is a set of capabilities, bit n for capability number n.
type Set uint64

// Compute returns the capabilities the daemon keeps: the default set,
// modified by --modcaps, plus CAP_DAC_READ_SEARCH when file handles are in
// use.
func Compute(modcaps string, fileHandles bool) (Set, error) {
	return 0, nil
}

// Reduce applies Compute's set to every thread of the process: permitted
// and effective become the set, inheritable and the bounding set empty.
func Reduce(modcaps string, fileHandles bool) error {
	return nil
}

// ClearAll empties every capability set of every thread, bounding set
// included.
func ClearAll() error {
	return nil
}
