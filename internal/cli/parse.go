package cli

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"unicode/utf8"

	"virtiofsd/internal/logging"
	"virtiofsd/internal/passthrough"
)

// Usage is the usage line printed with help and usage errors.
const Usage = "Usage: virtiofsd --shared-dir <SHARED_DIR> --socket-path <SOCKET_PATH> [OPTIONS]"

const moreInfo = "For more information, try '--help'."

// Exit is returned by Parse when the program must stop without running:
// after printing help or the version (Code 0, text on stdout) or after a
// usage error (Code 2, text on stderr).
type Exit struct {
	Code   int
	Stdout string
	Stderr string
}

func (e *Exit) Error() string {
	if e.Stderr != "" {
		return strings.TrimSuffix(e.Stderr, "\n")
	}
	return fmt.Sprintf("exit %d", e.Code)
}

// usageError is a usage error whose text ends with the usage line.
func usageError(format string, args ...any) *Exit {
	return &Exit{Code: 2, Stderr: "error: " + fmt.Sprintf(format, args...) + "\n\n" + Usage + "\n\n" + moreInfo + "\n"}
}

// valueError is a usage error about one value; the reference prints no
// usage line for these.
func valueError(format string, args ...any) *Exit {
	return &Exit{Code: 2, Stderr: "error: " + fmt.Sprintf(format, args...) + "\n\n" + moreInfo + "\n"}
}

// arg describes one option.
type arg struct {
	long  string // without "--"; empty for short-only options
	short byte   // 0 if none
	// value is the value placeholder; empty for flags.
	value string
	// requireEquals: the value must be attached with '='.
	requireEquals bool
	// set applies a flag (v is empty) or a value, returning the reason
	// why the value is invalid, or "".
	set func(o *Options, v string) string
	// conflicts lists the long names of options this one cannot be used
	// with; the relation is made symmetric when checked.
	conflicts []string
}

// display is how the reference names the option in messages.
func (a *arg) display() string {
	name := "--" + a.long
	if a.long == "" {
		name = "-" + string(a.short)
	}
	switch {
	case a.value == "":
		return name
	case a.requireEquals:
		return name + "=<" + a.value + ">"
	}
	return name + " <" + a.value + ">"
}

// key is the name used by Options.Given.
func (a *arg) key() string {
	if a.long != "" {
		return a.long
	}
	return string(a.short)
}

// args lists the options in the order of the reference's help text, which is
// also the order in which spelling suggestions are searched. help and
// version are handled by the parser.
var args []*arg

func init() {
	args = []*arg{
		{long: "shared-dir", value: "SHARED_DIR", set: func(o *Options, v string) string {
			o.SharedDir, o.SharedDirSet = v, true
			return ""
		}},
		{long: "tag", value: "TAG", set: func(o *Options, v string) string {
			if r := checkTag(v); r != "" {
				return r
			}
			o.Tag = v
			return ""
		}},
		{long: "socket", value: "SOCKET", set: func(o *Options, v string) string { o.Socket = v; return "" }},
		{long: "socket-path", value: "SOCKET_PATH", set: func(o *Options, v string) string { o.SocketPath = v; return "" }},
		{long: "socket-group", value: "SOCKET_GROUP", conflicts: []string{"fd", "print-capabilities"},
			set: func(o *Options, v string) string { o.SocketGroup = v; return "" }},
		{long: "fd", value: "FD", conflicts: []string{"socket-path", "socket"}, set: func(o *Options, v string) string {
			fd, r := parseFD(v)
			if r != "" {
				return r
			}
			o.FD, o.FDSet = fd, true
			return ""
		}},
		{long: "thread-pool-size", value: "THREAD_POOL_SIZE", set: func(o *Options, v string) string {
			n, r := parseUint(v, math.MaxUint64)
			if r != "" {
				return r
			}
			o.ThreadPoolSize = int(min(n, math.MaxInt32))
			return ""
		}},
		{long: "xattr", set: func(o *Options, _ string) string { o.Xattr = true; return "" }},
		{long: "posix-acl", set: func(o *Options, _ string) string { o.PosixACL = true; return "" }},
		{long: "xattrmap", value: "XATTRMAP", set: func(o *Options, v string) string {
			o.Xattrmap, o.XattrmapSet = v, true
			return ""
		}},
		{long: "sandbox", value: "SANDBOX", set: func(o *Options, v string) string {
			m, ok := parseSandbox(v)
			if !ok {
				return "Unknown sandbox mode"
			}
			o.Sandbox = m
			return ""
		}},
		{long: "readonly", set: func(o *Options, _ string) string { o.Readonly = true; return "" }},
		{long: "seccomp", value: "SECCOMP", set: func(o *Options, v string) string {
			a, ok := map[string]SeccompAction{"none": SeccompNone, "kill": SeccompKill, "log": SeccompLog, "trap": SeccompTrap}[v]
			if !ok {
				return "Matching variant not found"
			}
			o.Seccomp = a
			return ""
		}},
		{long: "announce-submounts", set: func(o *Options, _ string) string { o.AnnounceSubmounts = true; return "" }},
		{long: "no-announce-submounts", set: func(o *Options, _ string) string { o.AnnounceSubmounts = false; return "" }},
		{long: "inode-file-handles", value: "INODE_FILE_HANDLES", requireEquals: true, set: func(o *Options, v string) string {
			m, ok := map[string]InodeFileHandles{"never": FileHandlesNever, "prefer": FileHandlesPrefer,
				"fallback": FileHandlesFallback, "mandatory": FileHandlesMandatory}[v]
			if !ok {
				return "invalid inode file handles mode"
			}
			o.InodeFileHandles = m
			return ""
		}},
		{long: "cache", value: "CACHE", set: func(o *Options, v string) string {
			c, ok := parseCache(v)
			if !ok {
				return "invalid cache policy"
			}
			o.Cache = c
			return ""
		}},
		{long: "allow-mmap", set: func(o *Options, _ string) string { o.AllowMmap = true; return "" }},
		{long: "no-readdirplus", set: func(o *Options, _ string) string { o.NoReaddirplus = true; return "" }},
		{long: "writeback", set: func(o *Options, _ string) string { o.Writeback = true; return "" }},
		{long: "allow-direct-io", set: func(o *Options, _ string) string { o.AllowDirectIO = true; return "" }},
		{long: "print-capabilities", conflicts: []string{"socket-group"},
			set: func(o *Options, _ string) string { o.PrintCapabilities = true; return "" }},
		{long: "modcaps", value: "MODCAPS", set: func(o *Options, v string) string {
			o.Modcaps, o.ModcapsSet = v, true
			return ""
		}},
		{long: "log-level", value: "LOG_LEVEL", set: func(o *Options, v string) string {
			l, ok := logging.ParseLevel(v)
			if !ok {
				return "attempted to convert a string that doesn't match an existing log level"
			}
			o.LogLevel = l
			return ""
		}},
		{long: "syslog", set: func(o *Options, _ string) string { o.Syslog = true; return "" }},
		{long: "rlimit-nofile", value: "RLIMIT_NOFILE", set: func(o *Options, v string) string {
			n, r := parseUint(v, math.MaxUint64)
			if r != "" {
				return r
			}
			o.RlimitNofile, o.RlimitNofileSet = n, true
			return ""
		}},
		{short: 'o', value: "COMPAT_OPTIONS", set: func(o *Options, v string) string {
			o.Compat = append(o.Compat, v)
			return ""
		}},
		{short: 'd', set: func(o *Options, _ string) string { o.Debug = true; return "" }},
		{long: "no-killpriv-v2", set: func(o *Options, _ string) string { o.KillprivV2 = false; return "" }},
		{long: "killpriv-v2", set: func(o *Options, _ string) string { o.KillprivV2 = true; return "" }},
		{short: 'f', set: func(o *Options, _ string) string { o.Foreground = true; return "" }},
		{long: "security-label", set: func(o *Options, _ string) string { o.SecurityLabel = true; return "" }},
		{long: "uid-map", value: "UID_MAP", set: func(o *Options, v string) string {
			if r := checkIDMap(v); r != "" {
				return r
			}
			o.UIDMap = append(o.UIDMap, v)
			return ""
		}},
		{long: "gid-map", value: "GID_MAP", set: func(o *Options, v string) string {
			if r := checkIDMap(v); r != "" {
				return r
			}
			o.GIDMap = append(o.GIDMap, v)
			return ""
		}},
		{long: "translate-uid", value: "TRANSLATE_UID", conflicts: []string{"posix-acl"}, set: func(o *Options, v string) string {
			if r := checkTranslation(v); r != "" {
				return r
			}
			o.TranslateUID = append(o.TranslateUID, v)
			return ""
		}},
		{long: "translate-gid", value: "TRANSLATE_GID", conflicts: []string{"posix-acl"}, set: func(o *Options, v string) string {
			if r := checkTranslation(v); r != "" {
				return r
			}
			o.TranslateGID = append(o.TranslateGID, v)
			return ""
		}},
		{long: "preserve-noatime", set: func(o *Options, _ string) string { o.PreserveNoatime = true; return "" }},
		{long: "migration-mode", value: "MIGRATION_MODE", set: func(o *Options, v string) string {
			switch v {
			case "find-paths":
				o.MigrationMode = passthrough.MigrateFindPaths
			case "file-handles":
				o.MigrationMode = passthrough.MigrateFileHandles
			default:
				return "invalid migration-mode value"
			}
			return ""
		}},
		{long: "migration-on-error", value: "MIGRATION_ON_ERROR", set: func(o *Options, v string) string {
			switch v {
			case "abort":
				o.MigrationOnError = passthrough.OnErrorAbort
			case "guest-error":
				o.MigrationOnError = passthrough.OnErrorGuestError
			default:
				return "invalid migration-on-error value"
			}
			return ""
		}},
		{long: "migration-verify-handles", set: func(o *Options, _ string) string { o.MigrationVerifyHandles = true; return "" }},
		{long: "migration-confirm-paths", set: func(o *Options, _ string) string { o.MigrationConfirmPaths = true; return "" }},
		{long: "help", short: 'h'},
		{long: "version", short: 'V'},
	}
}

func parseCache(v string) (CachePolicy, bool) {
	switch strings.ToLower(v) {
	case "auto":
		return CacheAuto, true
	case "always":
		return CacheAlways, true
	case "never":
		return CacheNever, true
	case "metadata":
		return CacheMetadata, true
	}
	return 0, false
}

func parseSandbox(v string) (SandboxMode, bool) {
	switch strings.ToLower(v) {
	case "namespace":
		return SandboxNamespace, true
	case "chroot":
		return SandboxChroot, true
	case "none":
		return SandboxNone, true
	}
	return 0, false
}

func lookupLong(name string) *arg {
	for _, a := range args {
		if a.long != "" && a.long == name {
			return a
		}
	}
	return nil
}

func lookupShort(c rune) *arg {
	for _, a := range args {
		if a.short != 0 && rune(a.short) == c {
			return a
		}
	}
	return nil
}

// defaults returns the options in effect when none are given.
func defaults() *Options {
	return &Options{
		Sandbox:           SandboxNamespace,
		Seccomp:           SeccompKill,
		AnnounceSubmounts: true,
		InodeFileHandles:  FileHandlesPrefer,
		Cache:             CacheAuto,
		LogLevel:          slog.LevelInfo,
		MigrationMode:     passthrough.MigrateFindPaths,
		MigrationOnError:  passthrough.OnErrorAbort,
		given:             map[string]bool{},
	}
}

// parser holds the state of one Parse call.
type parser struct {
	o *Options
	// seen lists the options given, in order of first appearance.
	seen []*arg
	// pending is an option whose value came (or is to come) from a
	// separate argument and has not been checked yet.
	pending    *arg
	pendingVal string
	pendingHas bool
}

// Parse parses the command-line arguments that follow the program name.
// It returns an *Exit error for help, version and usage errors.
func Parse(argv []string) (*Options, error) {
	p := &parser{o: defaults()}
	onlyPositional := false
	for _, s := range argv {
		switch {
		case onlyPositional || s == "-" || !strings.HasPrefix(s, "-"):
			if !onlyPositional && p.pending != nil && !p.pendingHas {
				p.pendingVal, p.pendingHas = s, true
				continue
			}
			return nil, usageError("unexpected argument '%s' found", lossy(s))
		case s == "--":
			onlyPositional = true
		case strings.HasPrefix(s, "--"):
			if err := p.long(s[2:]); err != nil {
				return nil, err
			}
		default:
			if err := p.shorts(s[1:]); err != nil {
				return nil, err
			}
		}
	}
	if err := p.resolvePending(); err != nil {
		return nil, err
	}
	if len(p.seen) == 0 {
		return nil, &Exit{Code: 2, Stderr: ShortHelp}
	}
	if err := p.checkConflicts(); err != nil {
		return nil, err
	}
	if err := p.checkRequired(); err != nil {
		return nil, err
	}
	if err := applyCompat(p.o); err != nil {
		return nil, err
	}
	return p.o, nil
}

// long handles "--name" or "--name=value" (s without the dashes).
func (p *parser) long(s string) error {
	name, val, hasVal := strings.Cut(s, "=")
	a := lookupLong(name)
	if a == nil {
		return unknownLong(name)
	}
	if err := p.resolvePending(); err != nil {
		return err
	}
	switch a.long {
	case "help":
		return &Exit{Code: 0, Stdout: LongHelp}
	case "version":
		return &Exit{Code: 0, Stdout: Version + "\n"}
	}
	p.mark(a)
	switch {
	case a.value == "":
		if hasVal {
			return usageError("unexpected value '%s' for '%s' found; no more were expected", lossy(val), a.display())
		}
		a.set(p.o, "")
	case hasVal:
		return p.apply(a, val)
	case a.requireEquals:
		return usageError("equal sign is needed when assigning values to '%s'", a.display())
	default:
		p.pending, p.pendingHas = a, false
	}
	return nil
}

// shorts handles a cluster of short options (s without the dash).
func (p *parser) shorts(s string) error {
	for i, c := range s {
		a := lookupShort(c)
		if a == nil {
			return usageError("unexpected argument '-%s' found", lossy(string(c)))
		}
		if err := p.resolvePending(); err != nil {
			return err
		}
		switch a.short {
		case 'h':
			return &Exit{Code: 0, Stdout: ShortHelp}
		case 'V':
			return &Exit{Code: 0, Stdout: Version + "\n"}
		}
		p.mark(a)
		if a.value == "" {
			a.set(p.o, "")
			continue
		}
		rest := s[i+utf8.RuneLen(c):]
		if rest == "" {
			p.pending, p.pendingHas = a, false
			return nil
		}
		return p.apply(a, strings.TrimPrefix(rest, "="))
	}
	return nil
}

// resolvePending checks the value of the pending option, if any.
func (p *parser) resolvePending() error {
	a := p.pending
	if a == nil {
		return nil
	}
	p.pending = nil
	if !p.pendingHas {
		return valueError("a value is required for '%s' but none was supplied", a.display())
	}
	return p.apply(a, p.pendingVal)
}

func (p *parser) apply(a *arg, v string) error {
	if !utf8.ValidString(v) {
		return usageError("invalid UTF-8 was detected in one or more arguments")
	}
	if reason := a.set(p.o, v); reason != "" {
		return valueError("invalid value '%s' for '%s': %s", v, a.display(), reason)
	}
	return nil
}

func (p *parser) mark(a *arg) {
	if !p.o.given[a.key()] {
		p.o.given[a.key()] = true
		p.seen = append(p.seen, a)
	}
}

// conflict reports whether a and b cannot be used together.
func conflict(a, b *arg) bool {
	for _, c := range a.conflicts {
		if c == b.long {
			return true
		}
	}
	for _, c := range b.conflicts {
		if c == a.long {
			return true
		}
	}
	return false
}

// checkConflicts reports the first given option that conflicts with other
// given options, listing those in order of appearance.
func (p *parser) checkConflicts() error {
	for _, a := range p.seen {
		var with []string
		for _, b := range p.seen {
			if a != b && conflict(a, b) {
				with = append(with, b.display())
			}
		}
		switch len(with) {
		case 0:
			continue
		case 1:
			return usageError("the argument '%s' cannot be used with '%s'", a.display(), with[0])
		}
		return usageError("the argument '%s' cannot be used with:\n  %s", a.display(), strings.Join(with, "\n  "))
	}
	return nil
}

// checkRequired reports missing --shared-dir and listening socket options.
func (p *parser) checkRequired() error {
	g := p.o.given
	var missing []string
	if !g["shared-dir"] && !g["o"] && !g["print-capabilities"] {
		missing = append(missing, "--shared-dir <SHARED_DIR>")
	}
	if !g["socket"] && !g["socket-path"] && !g["fd"] && !g["print-capabilities"] {
		missing = append(missing, "--socket <SOCKET>", "--socket-path <SOCKET_PATH>", "--fd <FD>")
	}
	if len(missing) == 0 {
		return nil
	}
	return usageError("the following required arguments were not provided:\n  %s", strings.Join(missing, "\n  "))
}

// unknownLong is the error for an unknown long option, with a spelling
// suggestion when one is close enough.
func unknownLong(name string) *Exit {
	best, bestScore := "", 0.0
	for _, a := range args {
		if a.long == "" {
			continue
		}
		// Ties go to the later option.
		if score := jaro(name, a.long); score > 0.7 && score >= bestScore {
			best, bestScore = a.long, score
		}
	}
	if best == "" {
		return usageError("unexpected argument '--%s' found", lossy(name))
	}
	return usageError("unexpected argument '--%s' found\n\n  tip: a similar argument exists: '--%s'", lossy(name), best)
}

// lossy replaces invalid UTF-8 like the reference does when it prints an
// argument.
func lossy(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
