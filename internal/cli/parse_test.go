package cli

import (
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"virtiofsd/internal/logging"
	"virtiofsd/internal/passthrough"
)

// base is a minimal valid command line.
var base = []string{"--shared-dir", "/srv", "--socket-path", "/run/vfs.sock"}

func mustParse(t *testing.T, args ...string) *Options {
	t.Helper()
	o, err := Parse(args)
	if err != nil {
		t.Fatalf("Parse(%q) = %v, want success", args, err)
	}
	return o
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		args  []string
		check func(*Options) bool
	}{
		{base, func(o *Options) bool {
			return o.SharedDir == "/srv" && o.SocketPath == "/run/vfs.sock" && o.Cache == CacheAuto &&
				o.Sandbox == SandboxNamespace && o.Seccomp == SeccompKill && o.AnnounceSubmounts &&
				o.LogLevel == slog.LevelInfo && o.ThreadPoolSize == 0 && !o.FDSet && o.Readdirplus() &&
				o.MigrationMode == passthrough.MigrateFindPaths && o.MigrationOnError == passthrough.OnErrorAbort &&
				!o.MigrationVerifyHandles && !o.MigrationConfirmPaths
		}},
		{append(slices.Clone(base), "--migration-mode", "file-handles"), func(o *Options) bool { return o.MigrationMode == passthrough.MigrateFileHandles }},
		{append(slices.Clone(base), "--migration-mode=file-handles", "--migration-mode=find-paths"), func(o *Options) bool { return o.MigrationMode == passthrough.MigrateFindPaths }},
		{append(slices.Clone(base), "--migration-on-error=guest-error"), func(o *Options) bool { return o.MigrationOnError == passthrough.OnErrorGuestError }},
		{append(slices.Clone(base), "--migration-on-error", "guest-error", "--migration-on-error", "abort"), func(o *Options) bool { return o.MigrationOnError == passthrough.OnErrorAbort }},
		{append(slices.Clone(base), "--migration-verify-handles", "--migration-verify-handles"), func(o *Options) bool {
			return o.MigrationVerifyHandles && !o.MigrationConfirmPaths
		}},
		{append(slices.Clone(base), "--migration-confirm-paths"), func(o *Options) bool { return o.MigrationConfirmPaths && !o.MigrationVerifyHandles }},
		{[]string{"--shared-dir=/a", "--socket-path=/s"}, func(o *Options) bool { return o.SharedDir == "/a" && o.SocketPath == "/s" }},
		{append(slices.Clone(base), "--cache", "never"), func(o *Options) bool { return o.Cache == CacheNever && !o.Readdirplus() }},
		{append(slices.Clone(base), "--cache=METADATA"), func(o *Options) bool { return o.Cache == CacheMetadata }},
		{append(slices.Clone(base), "--cache", "always", "--cache", "auto"), func(o *Options) bool { return o.Cache == CacheAuto }},
		{append(slices.Clone(base), "--no-readdirplus"), func(o *Options) bool { return !o.Readdirplus() }},
		{append(slices.Clone(base), "--sandbox", "NONE", "--seccomp", "none"), func(o *Options) bool {
			return o.Sandbox == SandboxNone && o.Seccomp == SeccompNone && o.Given("sandbox") && o.Given("seccomp")
		}},
		{append(slices.Clone(base), "--log-level", "TRACE"), func(o *Options) bool { return o.LogLevel == logging.LevelTrace }},
		{append(slices.Clone(base), "--log-level=off"), func(o *Options) bool { return o.LogLevel == logging.LevelOff }},
		{append(slices.Clone(base), "--thread-pool-size", "+16"), func(o *Options) bool { return o.ThreadPoolSize == 16 }},
		{append(slices.Clone(base), "--tag", "012345678901234567890123456789012345"), func(o *Options) bool { return len(o.Tag) == 36 }},
		{append(slices.Clone(base), "--tag", "ü"), func(o *Options) bool { return o.Tag == "ü" }},
		{append(slices.Clone(base), "--no-announce-submounts"), func(o *Options) bool { return !o.AnnounceSubmounts }},
		{append(slices.Clone(base), "--no-announce-submounts", "--announce-submounts"), func(o *Options) bool { return o.AnnounceSubmounts }},
		{append(slices.Clone(base), "--killpriv-v2", "--no-killpriv-v2"), func(o *Options) bool { return !o.KillprivV2 }},
		{append(slices.Clone(base), "--xattr", "--xattr"), func(o *Options) bool { return o.Xattr }},
		{append(slices.Clone(base), "--inode-file-handles=fallback"), func(o *Options) bool { return o.InodeFileHandles == FileHandlesFallback }},
		{append(slices.Clone(base), "--rlimit-nofile", "0"), func(o *Options) bool { return o.RlimitNofileSet && o.RlimitNofile == 0 }},
		{append(slices.Clone(base), "--uid-map", ":0:1000:1:", "--uid-map=/1/2/3/"), func(o *Options) bool {
			return slices.Equal(o.UIDMap, []string{":0:1000:1:", "/1/2/3/"})
		}},
		{append(slices.Clone(base), "--translate-uid", "map:0:1000:1", "--translate-gid", "forbid-guest 5 10"), func(o *Options) bool {
			return len(o.TranslateUID) == 1 && len(o.TranslateGID) == 1
		}},
		{[]string{"--shared-dir", "/a", "--fd", "7"}, func(o *Options) bool { return o.FDSet && o.FD == 7 }},
		{[]string{"--shared-dir", "/a", "--fd=-1"}, func(o *Options) bool { return o.FDSet && o.FD == -1 }},
		{[]string{"--shared-dir", "/a", "--socket", "/old"}, func(o *Options) bool {
			p, dep := o.ListenPath()
			return p == "/old" && dep
		}},
		{[]string{"--shared-dir", "/a", "--socket", "/old", "--socket-path", "/new"}, func(o *Options) bool {
			p, dep := o.ListenPath()
			return p == "/new" && !dep
		}},
		{[]string{"--print-capabilities"}, func(o *Options) bool { return o.PrintCapabilities }},
		{append(slices.Clone(base), "-df"), func(o *Options) bool { return o.Debug && o.Foreground }},
		{[]string{"-dfo", "source=/x", "--socket-path", "/s"}, func(o *Options) bool { return o.Debug && o.SharedDir == "/x" }},
		{[]string{"-osource=/x", "--socket-path", "/s"}, func(o *Options) bool { return o.SharedDir == "/x" }},
		{[]string{"-o=source=/x", "--socket-path", "/s"}, func(o *Options) bool { return o.SharedDir == "/x" }},
		{[]string{"--shared-dir", "/a", "--socket-path", "-"}, func(o *Options) bool { return o.SocketPath == "-" }},
		// -o items override regular options whatever their position.
		{[]string{"-o", "cache=none,source=/o", "--cache", "always", "--shared-dir", "/a", "--socket-path", "/s"}, func(o *Options) bool {
			return o.Cache == CacheNever && o.SharedDir == "/o"
		}},
		{[]string{"-o", "loglevel=err", "--log-level", "debug", "--socket-path", "/s"}, func(o *Options) bool {
			return o.LogLevel == slog.LevelError && !o.SharedDirSet
		}},
		{append(slices.Clone(base), "--writeback", "-o", "no_writeback,readdirplus,announce_submounts,no_posix_lock,no_flock"), func(o *Options) bool {
			return !o.Writeback && o.Readdirplus()
		}},
		{append(slices.Clone(base), "-o", "no_readdirplus", "-o", "allow_direct_io"), func(o *Options) bool {
			return !o.Readdirplus() && o.AllowDirectIO && slices.Equal(o.Compat, []string{"no_readdirplus", "allow_direct_io"})
		}},
	}
	for _, tt := range tests {
		o := mustParse(t, tt.args...)
		if !tt.check(o) {
			t.Errorf("Parse(%q) = %+v, which fails the check", tt.args, *o)
		}
	}
}

// The expected texts below are what the reference daemon prints for the same
// command lines.
const tail = "\n\n" + Usage + "\n\nFor more information, try '--help'.\n"

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--foo"}, "error: unexpected argument '--foo' found" + tail},
		{[]string{"--xatr"}, "error: unexpected argument '--xatr' found\n\n  tip: a similar argument exists: '--xattr'" + tail},
		{[]string{"--xatr=1"}, "error: unexpected argument '--xatr' found\n\n  tip: a similar argument exists: '--xattr'" + tail},
		{[]string{"--fd2"}, "error: unexpected argument '--fd2' found\n\n  tip: a similar argument exists: '--fd'" + tail},
		{[]string{"--=x"}, "error: unexpected argument '--' found" + tail},
		{[]string{"foo"}, "error: unexpected argument 'foo' found" + tail},
		{[]string{"--", "--xattr"}, "error: unexpected argument '--xattr' found" + tail},
		{[]string{"-dx"}, "error: unexpected argument '-x' found" + tail},
		{[]string{"-d=1"}, "error: unexpected argument '-=' found" + tail},
		{[]string{"--fd", "-1"}, "error: unexpected argument '-1' found" + tail},
		{[]string{"--cache", "bad", "bar"}, "error: unexpected argument 'bar' found" + tail},
		{[]string{"--cache", "bad", "--bogus"}, "error: unexpected argument '--bogus' found" + tail},
		{[]string{"--xattr=1"}, "error: unexpected value '1' for '--xattr' found; no more were expected" + tail},
		{[]string{"--migration-verify-handles=yes"}, "error: unexpected value 'yes' for '--migration-verify-handles' found; no more were expected" + tail},
		{[]string{"--migration-confirm-paths=1"}, "error: unexpected value '1' for '--migration-confirm-paths' found; no more were expected" + tail},
		{[]string{"--migration-mode"}, "error: a value is required for '--migration-mode <MIGRATION_MODE>' but none was supplied\n\nFor more information, try '--help'.\n"},
		{[]string{"--migration-on-error"}, "error: a value is required for '--migration-on-error <MIGRATION_ON_ERROR>' but none was supplied\n\nFor more information, try '--help'.\n"},
		{[]string{"--inode-file-handles", "never"}, "error: equal sign is needed when assigning values to '--inode-file-handles=<INODE_FILE_HANDLES>'" + tail},
		{[]string{"--shared-dir", "\xff"}, "error: invalid UTF-8 was detected in one or more arguments" + tail},
		{[]string{"--cache"}, "error: a value is required for '--cache <CACHE>' but none was supplied\n\nFor more information, try '--help'.\n"},
		{[]string{"--cache", "--xattr"}, "error: a value is required for '--cache <CACHE>' but none was supplied\n\nFor more information, try '--help'.\n"},
		{[]string{"--cache", "--"}, "error: a value is required for '--cache <CACHE>' but none was supplied\n\nFor more information, try '--help'.\n"},
		{[]string{"-o"}, "error: a value is required for '-o <COMPAT_OPTIONS>' but none was supplied\n\nFor more information, try '--help'.\n"},
		{[]string{"--shared-dir", "/a"}, "error: the following required arguments were not provided:\n  --socket <SOCKET>\n  --socket-path <SOCKET_PATH>\n  --fd <FD>" + tail},
		{[]string{"--socket-path", "/s"}, "error: the following required arguments were not provided:\n  --shared-dir <SHARED_DIR>" + tail},
		{[]string{"--xattr"}, "error: the following required arguments were not provided:\n  --shared-dir <SHARED_DIR>\n  --socket <SOCKET>\n  --socket-path <SOCKET_PATH>\n  --fd <FD>" + tail},
		{[]string{"--fd", "3", "--socket-path", "/x", "--shared-dir", "/tmp"}, "error: the argument '--fd <FD>' cannot be used with '--socket-path <SOCKET_PATH>'" + tail},
		{[]string{"--socket-path", "/x", "--fd", "3", "--shared-dir", "/tmp"}, "error: the argument '--socket-path <SOCKET_PATH>' cannot be used with '--fd <FD>'" + tail},
		{[]string{"--fd", "3", "--socket-path", "/x", "--socket", "/y"}, "error: the argument '--fd <FD>' cannot be used with:\n  --socket-path <SOCKET_PATH>\n  --socket <SOCKET>" + tail},
		{[]string{"--print-capabilities", "--socket-group", "g"}, "error: the argument '--print-capabilities' cannot be used with '--socket-group <SOCKET_GROUP>'" + tail},
		{[]string{"--socket-group", "g", "--fd", "3", "--print-capabilities"}, "error: the argument '--socket-group <SOCKET_GROUP>' cannot be used with:\n  --fd <FD>\n  --print-capabilities" + tail},
		{append(slices.Clone(base), "--translate-uid", "map:0:0:1", "--posix-acl"), "error: the argument '--translate-uid <TRANSLATE_UID>' cannot be used with '--posix-acl'" + tail},
		{[]string{"-o", "foo", "--socket-path", "/x"}, "error: Invalid compat argument '-o foo'" + tail},
		{[]string{"-o", "cache=auto,,xattr", "--print-capabilities"}, "error: Invalid compat argument '-o '" + tail},
		{[]string{"-o", "source=/a=b", "--socket-path", "/x"}, "error: Invalid compat argument '-o source=/a=b'" + tail},
		{[]string{"-o", "xattr=1", "--socket-path", "/x"}, "error: Invalid compat argument '-o xattr=1'" + tail},
		{[]string{"-o", "cache=never", "--socket-path", "/x"}, "error: Invalid compat value 'never' for '-o cache'" + tail},
		{[]string{"-o", "loglevel=error", "--socket-path", "/x"}, "error: Invalid compat value 'error' for '-o loglevel'" + tail},
		{[]string{"-o", "sandbox=none", "--socket-path", "/x"}, "error: Invalid compat value 'none' for '-o sandbox'" + tail},
	}
	for _, tt := range tests {
		checkExit(t, tt.args, 2, "", tt.want)
	}
}

func TestValueErrors(t *testing.T) {
	const more = "\n\nFor more information, try '--help'.\n"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--cache", "bad"}, "error: invalid value 'bad' for '--cache <CACHE>': invalid cache policy"},
		{[]string{"--cache=bad", "--bogus"}, "error: invalid value 'bad' for '--cache <CACHE>': invalid cache policy"},
		{[]string{"--cache", "bad", "--xattr"}, "error: invalid value 'bad' for '--cache <CACHE>': invalid cache policy"},
		{[]string{"--fd", "x"}, "error: invalid value 'x' for '--fd <FD>': invalid digit found in string"},
		{[]string{"--fd", ""}, "error: invalid value '' for '--fd <FD>': cannot parse integer from empty string"},
		{[]string{"--fd", "2147483648"}, "error: invalid value '2147483648' for '--fd <FD>': 2147483648 is not in -2147483648..=2147483647"},
		{[]string{"--fd=-2147483649"}, "error: invalid value '-2147483649' for '--fd <FD>': -2147483649 is not in -2147483648..=2147483647"},
		{[]string{"--fd=-99999999999999999999"}, "error: invalid value '-99999999999999999999' for '--fd <FD>': number too small to fit in target type"},
		{[]string{"--thread-pool-size", "99999999999999999999999"}, "error: invalid value '99999999999999999999999' for '--thread-pool-size <THREAD_POOL_SIZE>': number too large to fit in target type"},
		{[]string{"--thread-pool-size=+"}, "error: invalid value '+' for '--thread-pool-size <THREAD_POOL_SIZE>': invalid digit found in string"},
		{[]string{"--rlimit-nofile=-3"}, "error: invalid value '-3' for '--rlimit-nofile <RLIMIT_NOFILE>': invalid digit found in string"},
		{[]string{"--tag", ""}, "error: invalid value '' for '--tag <TAG>': The tag may not be empty or longer than 36 bytes (encoded as UTF-8)."},
		{[]string{"--tag", strings.Repeat("é", 19)}, "error: invalid value '" + strings.Repeat("é", 19) + "' for '--tag <TAG>': The tag may not be empty or longer than 36 bytes (encoded as UTF-8)."},
		{[]string{"--sandbox", "bad"}, "error: invalid value 'bad' for '--sandbox <SANDBOX>': Unknown sandbox mode"},
		{[]string{"--seccomp", "NONE"}, "error: invalid value 'NONE' for '--seccomp <SECCOMP>': Matching variant not found"},
		{[]string{"--log-level", "bad"}, "error: invalid value 'bad' for '--log-level <LOG_LEVEL>': attempted to convert a string that doesn't match an existing log level"},
		{[]string{"--inode-file-handles=Never"}, "error: invalid value 'Never' for '--inode-file-handles=<INODE_FILE_HANDLES>': invalid inode file handles mode"},
		{[]string{"--migration-mode", "x"}, "error: invalid value 'x' for '--migration-mode <MIGRATION_MODE>': invalid migration-mode value"},
		{[]string{"--migration-on-error", "x"}, "error: invalid value 'x' for '--migration-on-error <MIGRATION_ON_ERROR>': invalid migration-on-error value"},
		{[]string{"--migration-mode="}, "error: invalid value '' for '--migration-mode <MIGRATION_MODE>': invalid migration-mode value"},
		{[]string{"--migration-mode", "File-Handles"}, "error: invalid value 'File-Handles' for '--migration-mode <MIGRATION_MODE>': invalid migration-mode value"},
		{[]string{"--migration-on-error=Abort"}, "error: invalid value 'Abort' for '--migration-on-error <MIGRATION_ON_ERROR>': invalid migration-on-error value"},
		{[]string{"--migration-on-error", "guest_error"}, "error: invalid value 'guest_error' for '--migration-on-error <MIGRATION_ON_ERROR>': invalid migration-on-error value"},
		{[]string{"--uid-map", "0:1:1"}, "error: invalid value '0:1:1' for '--uid-map <UID_MAP>': A delimiter has been found that does not match the delimiter the map started with"},
		{[]string{"--gid-map", ":0:1:"}, "error: invalid value ':0:1:' for '--gid-map <GID_MAP>': The map is empty or incorrect number of values are provided"},
		{[]string{"--uid-map", ":0:x:1:"}, "error: invalid value ':0:x:1:' for '--uid-map <UID_MAP>': invalid digit found in string"},
		{[]string{"--uid-map", ":"}, "error: invalid value ':' for '--uid-map <UID_MAP>': A delimiter has been found that does not match the delimiter the map started with"},
		{[]string{"--uid-map", "::"}, "error: invalid value '::' for '--uid-map <UID_MAP>': The map is empty or incorrect number of values are provided"},
		{[]string{"--uid-map", ":0:1:2/"}, "error: invalid value ':0:1:2/' for '--uid-map <UID_MAP>': A delimiter has been found that does not match the delimiter the map started with"},
		{[]string{"--translate-uid", "foo:1:2:3"}, "error: invalid value 'foo:1:2:3' for '--translate-uid <TRANSLATE_UID>': Invalid ID map prefix foo"},
		{[]string{"--translate-uid", "map:1:2"}, "error: invalid value 'map:1:2' for '--translate-uid <TRANSLATE_UID>': Invalid ID map length (expected 3 elements, got 2 elements)"},
		{[]string{"--translate-uid", "map:1:x:3"}, "error: invalid value 'map:1:x:3' for '--translate-uid <TRANSLATE_UID>': Invalid value x in ID map: invalid digit found in string"},
		{[]string{"--translate-uid", ""}, "error: invalid value '' for '--translate-uid <TRANSLATE_UID>': Invalid ID map length (expected 1 elements, got 0 elements)"},
		{[]string{"--translate-uid", "map:1:2:3:"}, "error: invalid value 'map:1:2:3:' for '--translate-uid <TRANSLATE_UID>': Invalid value  in ID map: cannot parse integer from empty string"},
		{[]string{"--translate-uid", ":1:2:3"}, "error: invalid value ':1:2:3' for '--translate-uid <TRANSLATE_UID>': Invalid ID map prefix "},
		{[]string{"--translate-gid", "forbid-guest:1:2:3"}, "error: invalid value 'forbid-guest:1:2:3' for '--translate-gid <TRANSLATE_GID>': Invalid ID map length (expected 2 elements, got 3 elements)"},
		{[]string{"--translate-uid", "map:99999999999:1:1"}, "error: invalid value 'map:99999999999:1:1' for '--translate-uid <TRANSLATE_UID>': Invalid value 99999999999 in ID map: number too large to fit in target type"},
		{[]string{"--translate-uid", "foo:1", "--translate-uid", "bar:1"}, "error: invalid value 'foo:1' for '--translate-uid <TRANSLATE_UID>': Invalid ID map prefix foo"},
		{[]string{"--translate-uid", "foo:1", "--help"}, "error: invalid value 'foo:1' for '--translate-uid <TRANSLATE_UID>': Invalid ID map prefix foo"},
	}
	for _, tt := range tests {
		checkExit(t, tt.args, 2, "", tt.want+more)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, tt := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{nil, 2, "", ShortHelp},
		{[]string{"--"}, 2, "", ShortHelp},
		{[]string{"-h"}, 0, ShortHelp, ""},
		{[]string{"-h=1"}, 0, ShortHelp, ""},
		{[]string{"--help"}, 0, LongHelp, ""},
		{[]string{"--help", "--bogus"}, 0, LongHelp, ""},
		{[]string{"--cache", "bad", "--help"}, 2, "", "error: invalid value 'bad' for '--cache <CACHE>': invalid cache policy\n\nFor more information, try '--help'.\n"},
		{[]string{"-V"}, 0, Version + "\n", ""},
		{[]string{"-Vh"}, 0, Version + "\n", ""},
		{[]string{"-hV"}, 0, ShortHelp, ""},
		{[]string{"--version", "--bogus"}, 0, Version + "\n", ""},
	} {
		checkExit(t, tt.args, tt.code, tt.stdout, tt.errs)
	}
}

func checkExit(t *testing.T, args []string, code int, stdout, stderr string) {
	t.Helper()
	o, err := Parse(args)
	var e *Exit
	if !errors.As(err, &e) {
		t.Errorf("Parse(%q) = %+v, %v; want exit %d", args, o, err, code)
		return
	}
	if e.Code != code || e.Stdout != stdout || e.Stderr != stderr {
		t.Errorf("Parse(%q) = exit %d, stdout %q, stderr %q;\nwant exit %d, stdout %q, stderr %q",
			args, e.Code, trim(e.Stdout), e.Stderr, code, trim(stdout), stderr)
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func TestHelpListsEveryOption(t *testing.T) {
	for _, a := range args {
		name := "--" + a.long
		if a.long == "" {
			name = "-" + string(a.short)
		}
		needle := name
		if a.value != "" {
			needle = a.display()
		}
		for _, h := range []string{ShortHelp, LongHelp} {
			if !strings.Contains(h, needle+"\n") {
				t.Errorf("help text does not list %q", needle)
			}
		}
	}
	if !strings.HasSuffix(ShortHelp, "Print version\n") || !strings.HasSuffix(LongHelp, "Print version\n") {
		t.Errorf("help texts must end with the version entry and one newline")
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		extra []string
		want  []string
	}{
		{nil, nil},
		{[]string{"--sandbox=none", "--seccomp=none", "--cache=never", "--no-readdirplus", "--writeback", "--allow-mmap",
			"--allow-direct-io", "--preserve-noatime", "--no-announce-submounts", "--no-killpriv-v2", "--announce-submounts",
			"--inode-file-handles=never", "--migration-mode=find-paths", "--migration-on-error=abort", "--syslog",
			"--rlimit-nofile=0", "-o", "no_xattr,no_posix_acl,no_killpriv_v2,no_security_label,announce_submounts"}, nil},
		{[]string{"--xattr"}, []string{"--xattr is not supported yet"}},
		{[]string{"--xattr", "-o", "no_xattr"}, nil},
		{[]string{"-o", "xattr"}, []string{"--xattr is not supported yet"}},
		{[]string{"--posix-acl", "--readonly"}, []string{"--posix-acl is not supported yet"}},
		{[]string{"--xattrmap", ":ok:all::"}, []string{"--xattrmap is not supported yet"}},
		{[]string{"-o", "xattrmap=:ok:all::"}, []string{"--xattrmap is not supported yet"}},
		{[]string{"--modcaps=-chown"}, nil},
		{[]string{"-o", "modcaps=-chown"}, nil},
		{[]string{"--killpriv-v2"}, nil},
		{[]string{"-o", "killpriv_v2"}, nil},
		{[]string{"--security-label"}, []string{"--security-label is not supported yet"}},
		{[]string{"--uid-map=:0:1:1:", "--gid-map=:0:1:1:"}, nil},
		{[]string{"--translate-uid=map:0:1:1", "--translate-gid=map:0:1:1"}, []string{"--translate-uid is not supported yet", "--translate-gid is not supported yet"}},
		{[]string{"--sandbox=namespace"}, nil},
		{[]string{"--sandbox=Chroot"}, nil},
		{[]string{"-o", "sandbox=namespace"}, nil},
		{[]string{"--seccomp=kill"}, nil},
		{[]string{"--seccomp=log"}, nil},
		{[]string{"--seccomp=trap"}, nil},
		{[]string{"--xattr", "--modcaps=+sys_admin", "--sandbox=chroot", "--seccomp=trap", "--uid-map=:0:1:1:"}, []string{"--xattr is not supported yet"}},
		{[]string{"--inode-file-handles=prefer"}, nil},
		{[]string{"--inode-file-handles=fallback"}, nil},
		{[]string{"--inode-file-handles=mandatory"}, nil},
		{[]string{"--migration-mode=file-handles"}, nil},
		{[]string{"--migration-on-error=guest-error"}, nil},
		{[]string{"--migration-verify-handles", "--migration-confirm-paths"}, nil},
	}
	for _, tt := range tests {
		o := mustParse(t, append(slices.Clone(base), tt.extra...)...)
		if got := o.Unsupported(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Unsupported() after %q = %q, want %q", tt.extra, got, tt.want)
		}
	}
}

// TestMigrationConflicts checks the file-handles rule of the migration
// options: one message per pointless option, confirm-paths first.
func TestMigrationConflicts(t *testing.T) {
	const (
		confirm = "Cannot use --migration-confirm-paths with --migration-mode=file-handles (because it is unnecessary)"
		verify  = "Cannot use --migration-verify-handles with --migration-mode=file-handles (because it is unnecessary)"
	)
	tests := []struct {
		extra []string
		want  []string
	}{
		{nil, nil},
		{[]string{"--migration-mode=file-handles"}, nil},
		{[]string{"--migration-mode=find-paths", "--migration-verify-handles", "--migration-confirm-paths"}, nil},
		{[]string{"--migration-verify-handles", "--migration-confirm-paths"}, nil},
		{[]string{"--migration-mode=file-handles", "--migration-confirm-paths"}, []string{confirm}},
		{[]string{"--migration-mode=file-handles", "--migration-verify-handles"}, []string{verify}},
		{[]string{"--migration-verify-handles", "--migration-confirm-paths", "--migration-mode", "file-handles"}, []string{confirm, verify}},
		{[]string{"--migration-mode=file-handles", "--migration-verify-handles", "--migration-mode=find-paths"}, nil},
	}
	for _, tt := range tests {
		o := mustParse(t, append(slices.Clone(base), tt.extra...)...)
		if got := o.MigrationConflicts(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("MigrationConflicts() after %q = %q, want %q", tt.extra, got, tt.want)
		}
	}
}

func TestJaro(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want float64
	}{
		{"", "", 1},
		{"a", "", 0},
		{"abc", "abc", 1},
		{"abc", "xyz", 0},
		{"martha", "marhta", 0.944444},
		{"dixon", "dicksonx", 0.766667},
		{"xatr", "xattr", 0.933333},
	} {
		if got := jaro(tt.a, tt.b); got < tt.want-1e-5 || got > tt.want+1e-5 {
			t.Errorf("jaro(%q, %q) = %f, want %f", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseIntegers(t *testing.T) {
	for _, tt := range []struct {
		in     string
		want   int64
		reason string
	}{
		{"0", 0, ""}, {"+7", 7, ""}, {"-7", -7, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"-9223372036854775808", -1 << 63, ""},
		{"9223372036854775808", 0, errIntTooLarge},
		{"-9223372036854775809", 0, errIntTooSmall},
		{"", 0, errEmptyInt}, {"-", 0, errInvalidInt}, {"+-1", 0, errInvalidInt}, {"1x", 0, errInvalidInt}, {" 1", 0, errInvalidInt},
		// The first overflow is reported even if a bad digit follows.
		{"99999999999999999999x", 0, errIntTooLarge},
	} {
		got, reason := parseInt64(tt.in)
		if got != tt.want || reason != tt.reason {
			t.Errorf("parseInt64(%q) = %d, %q; want %d, %q", tt.in, got, reason, tt.want, tt.reason)
		}
	}
}
