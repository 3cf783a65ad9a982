package caps

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Set is a set of capabilities, bit n for capability number n (the numbers
// of linux/capability.h, as in the Cap* lines of /proc/PID/status).
type Set uint64

// Capability numbers used by this package (linux/capability.h).
const (
	capChown         = 0
	capDacOverride   = 1
	capDacReadSearch = 2
	capFowner        = 3
	capFsetid        = 4
	capSetgid        = 6
	capSetuid        = 7
	capMknod         = 27
	capSetfcap       = 31
)

// Default is the set the daemon keeps when --modcaps is not given and file
// handles are not used: what it needs to create and access files on behalf
// of any guest user (0x880000db).
const Default = Set(1<<capChown | 1<<capDacOverride | 1<<capFowner | 1<<capFsetid |
	1<<capSetgid | 1<<capSetuid | 1<<capMknod | 1<<capSetfcap)

// names lists the capability names of linux/capability.h without their
// CAP_ prefix, indexed by capability number, up to CAP_CHECKPOINT_RESTORE
// (Linux 5.9).
var names = [...]string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// Names returns the known capability names in lower case, without the cap_
// prefix, indexed by capability number.
func Names() []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}

// Lookup returns the number of the capability called name (without the cap_
// prefix; ASCII letters in any case).
func Lookup(name string) (int, bool) {
	if !isASCII(name) {
		// strings.EqualFold also folds a few non-ASCII letters (the
		// Kelvin sign matches "k"); capability names are ASCII only.
		return 0, false
	}
	for i, n := range names {
		if strings.EqualFold(n, name) {
			return i, true
		}
	}
	return 0, false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Has reports whether capability c is in s.
func (s Set) Has(c int) bool {
	return c >= 0 && c < 64 && s&(1<<uint(c)) != 0
}

// String lists the capabilities of s by lower-case name, separated by
// commas; numbers without a name appear as "cap_N".
func (s Set) String() string {
	var b strings.Builder
	for c := 0; c < 64; c++ {
		if !s.Has(c) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if c < len(names) {
			b.WriteString(strings.ToLower(names[c]))
		} else {
			fmt.Fprintf(&b, "cap_%d", c)
		}
	}
	return b.String()
}

// FileHandles is the --inode-file-handles mode as far as capabilities are
// concerned: any mode other than never needs CAP_DAC_READ_SEARCH for
// open_by_handle_at(2).
type FileHandles int

// The --inode-file-handles modes (the deprecated "fallback" is Prefer).
const (
	FileHandlesNever FileHandles = iota
	FileHandlesPrefer
	FileHandlesMandatory
)

// String returns the mode's name as the reference daemon's messages spell
// it.
func (f FileHandles) String() string {
	switch f {
	case FileHandlesNever:
		return "Never"
	case FileHandlesPrefer:
		return "Prefer"
	case FileHandlesMandatory:
		return "Mandatory"
	}
	return fmt.Sprintf("FileHandles(%d)", int(f))
}

// Config describes the capabilities wanted by the command line.
type Config struct {
	// Modcaps is the --modcaps value, a colon-separated list of
	// "+name" and "-name".
	Modcaps string
	// ModcapsGiven says that --modcaps was given; an empty value is then
	// an error, while an absent option means no modification.
	ModcapsGiven bool
	// FileHandles is the --inode-file-handles mode.
	FileHandles FileHandles
}

// Error is a failure of Compute, Reduce or ClearAll. Its text is the one the
// reference daemon logs for the same failure; Err, when not nil, is the
// underlying system error.
type Error struct {
	msg string
	Err error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the underlying system error, if any.
func (e *Error) Unwrap() error { return e.Err }

func errorf(format string, args ...any) error {
	return &Error{msg: fmt.Sprintf(format, args...)}
}

// Compute returns the capabilities the daemon keeps: Default, modified by
// c.Modcaps from left to right ("+name" adds, "-name" removes), plus
// CAP_DAC_READ_SEARCH when file handles are in use. Removing
// dac_read_search explicitly (as the last word about it) while file
// handles are in use is an error.
func (c Config) Compute() (Set, error) {
	keep, disabled := Default, Set(0)
	if c.ModcapsGiven || c.Modcaps != "" {
		for _, elem := range strings.Split(c.Modcaps, ":") {
			if elem == "" {
				return 0, errorf("empty modcap found: expected (+|-)capability:...")
			}
			_, size := utf8.DecodeRuneInString(elem)
			action, name := elem[:size], upper(elem[size:])
			if action != "+" && action != "-" {
				return 0, errorf("invalid modcap action: expecting '+'|'-' but found '%s'", action)
			}
			n, ok := Lookup(name)
			if !ok {
				return 0, errorf("invalid capability '%s': failed to get the ID for the capability with name %s", name, name)
			}
			bit := Set(1) << uint(n)
			if action == "+" {
				keep |= bit
				disabled &^= bit
			} else {
				keep &^= bit
				disabled |= bit
			}
		}
	}
	if c.FileHandles != FileHandlesNever {
		if disabled.Has(capDacReadSearch) {
			return 0, errorf("can't disable DAC_READ_SEARCH when using --inode-file-handles=%s", c.FileHandles)
		}
		keep |= 1 << capDacReadSearch
	}
	return keep, nil
}

// Compute returns the capabilities the daemon keeps for --modcaps=modcaps
// (empty: not given) and file handles in use or not; see Config.Compute.
// An error about CAP_DAC_READ_SEARCH names the mode Prefer; Config tells
// Prefer and Mandatory apart.
func Compute(modcaps string, fileHandles bool) (Set, error) {
	return configFor(modcaps, fileHandles).Compute()
}

func configFor(modcaps string, fileHandles bool) Config {
	c := Config{Modcaps: modcaps, ModcapsGiven: modcaps != ""}
	if fileHandles {
		c.FileHandles = FileHandlesPrefer
	}
	return c
}

// upper converts s to upper case with the full Unicode case mapping, the
// way the reference daemon normalises a capability name before looking it
// up (and before quoting it in an error).
func upper(s string) string {
	var b strings.Builder
	for _, r := range s {
		if u, ok := fullUpper[r]; ok {
			b.WriteString(u)
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
