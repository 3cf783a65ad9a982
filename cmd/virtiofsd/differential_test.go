package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refBinary returns the reference daemon (Rust virtiofsd 1.13) to compare
// against. Without it the comparison is skipped, except under CI, where the
// reference is expected to be installed.
func refBinary(t *testing.T) string {
	path := os.Getenv("VIRTIOFSD_REF")
	if path == "" {
		path = "/opt/virtiofsd-test/ref/virtiofsd"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("reference daemon not found (%v); set VIRTIOFSD_REF", err)
		}
		t.Skipf("reference daemon not found (%v); set VIRTIOFSD_REF to compare against it", err)
	}
	return path
}

// firstLine returns the first line of s without a leading log timestamp.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ' '); i > 0 {
			line = "[" + line[i+1:]
		}
	}
	return line
}

// TestAgainstReference runs bad command lines through the reference and
// through this daemon and compares the exit status and the diagnostics:
// all of stderr for usage errors, the first log line (minus its timestamp)
// for start-up failures.
func TestAgainstReference(t *testing.T) {
	ref := refBinary(t)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "vfs.sock")
	none := []string{"--sandbox", "none", "--seccomp", "none"}
	valid := []string{"--shared-dir", shared, "--socket-path", sock}

	usage := [][]string{
		{"--bogus"}, {"--xatr"}, {"--xatr=1"}, {"--fd2"}, {"--sandb"}, {"--socket-pat"}, {"--cach"}, {"--hel"}, {"--vers"},
		{"--=x"}, {"---x"}, {"foo"}, {"--", "--xattr"}, {"-x"}, {"-dx"}, {"-d=1"},
		{"--cache"}, {"--cache", "bad"}, {"--cache", "--xattr"}, {"--cache", "--"}, {"--cache", "-", "--bogus"},
		{"--cache", "bad", "--bogus"}, {"--cache=bad", "--bogus"}, {"--cache", "bad", "bar"}, {"--xattr=1"},
		{"--fd", "-1"}, {"--fd", "x"}, {"--fd", ""}, {"--fd", "99999999999"}, {"--fd=-99999999999999999999"},
		{"--thread-pool-size", "-1"}, {"--thread-pool-size=+"}, {"--thread-pool-size", "99999999999999999999999"},
		{"--rlimit-nofile=-3"}, {"--rlimit-nofile", "99999999999999999999x"},
		{"--tag", ""}, {"--tag", "0123456789012345678901234567890123456"}, {"--tag", strings.Repeat("é", 19)},
		{"--sandbox", "bad"}, {"--seccomp", "NONE"}, {"--log-level", "bad"}, {"--log-level", "warning"},
		{"--inode-file-handles", "never"}, {"--inode-file-handles"}, {"--inode-file-handles=Never"}, {"--inode-file-handles="},
		{"--migration-mode", "x"}, {"--migration-on-error", "x"}, {"--migration-mode"}, {"--migration-mode="},
		{"--migration-on-error=Abort"}, {"--migration-verify-handles=yes"}, {"--migration-confirm-paths=1"},
		{"--uid-map", "0:1:1"}, {"--uid-map", ":0:1:"}, {"--uid-map", ":0:x:1:"}, {"--uid-map", ":"}, {"--gid-map", "::"},
		{"--translate-uid", "foo:1:2:3"}, {"--translate-uid", "map:1:2"}, {"--translate-uid", "map:1:x:3"},
		{"--translate-uid", ""}, {"--translate-uid", "map"}, {"--translate-uid", "map:1:2:3:"}, {"--translate-uid", ":1:2:3"},
		{"--translate-gid", "forbid-guest:1:2:3"}, {"--translate-uid", "foo:1", "--help"},
		{"-o"}, {"-o", "foo", "--socket-path", sock}, {"-o", "cache=never", "--socket-path", sock},
		{"-o", "source=/a=b", "--socket-path", sock}, {"-o=cache=bad", "--socket-path", sock}, {"-od", "--socket-path", sock},
		{"-o", "", "--socket-path", sock}, {"-o", "cache=AUTO", "--socket-path", sock}, {"-o", "loglevel=error", "--socket-path", sock},
		{"-o", "sandbox=none", "--socket-path", sock}, {"-o", "Xattr", "--socket-path", sock}, {"--print-capabilities", "-o", "bad"},
		{"--shared-dir", shared}, {"--socket-path", sock}, {"--xattr"}, {"--shared-dir", "\xff"},
		{"--fd", "3", "--socket-path", sock, "--shared-dir", shared}, {"--socket-path", sock, "--fd", "3", "--shared-dir", shared},
		{"--fd", "3", "--socket-path", sock, "--socket", sock}, {"--socket-group", "g", "--fd", "3", "--print-capabilities"},
		{"--print-capabilities", "--socket-group", "g"}, {"--posix-acl", "--translate-uid", "map:1:2:3", "--translate-gid", "map:1:2:3"},
		{"--cache", "bad", "--help"}, {"--help"}, {"-h"}, {"--version"}, {"--print-capabilities"},
	}
	runtime := [][]string{
		append([]string{"--shared-dir", "/nonexistent/dir", "--socket-path", sock}, none...),
		append([]string{"--shared-dir", shared, "--socket-path", "/nonexistent/dir/vfs.sock"}, none...),
		append([]string{"--shared-dir", shared, "--socket-path", "/"}, none...),
		append([]string{"--shared-dir", shared, "--socket-path", ""}, none...),
		append([]string{"--shared-dir", shared, "--socket-path", file + "/vfs.sock"}, none...),
		append([]string{"-o", "cache=auto", "--socket-path", sock}, none...),
		append([]string{"-o", "source=/nonexistent", "--shared-dir", shared, "--socket-path", sock}, none...),
		append(append([]string{"--socket-group", "no-such-group-here"}, valid...), none...),
		append(append([]string{"--rlimit-nofile", "500"}, valid...), none...),
		append(append([]string{"--rlimit-nofile", "99999999999"}, valid...), none...),
		append([]string{"--shared-dir", shared, "--fd", "9"}, none...),
		append([]string{"--shared-dir", shared, "--fd", "0"}, none...),
		append(append([]string{"--migration-mode=file-handles", "--migration-verify-handles"}, valid...), none...),
		append(append([]string{"--migration-confirm-paths", "--migration-verify-handles", "--migration-mode", "file-handles"}, valid...), none...),
	}
	for _, args := range usage {
		r := runBinary(t, ref, nil, args...)
		g := runBinary(t, binPath, nil, args...)
		switch {
		case r.code != g.code:
			t.Errorf("virtiofsd %q: exit %d, reference %d (stderr %q, reference %q)", args, g.code, r.code, g.stderr, r.stderr)
		case strings.HasPrefix(r.stderr, "error: ") && g.stderr != r.stderr:
			t.Errorf("virtiofsd %q: stderr\n%s\nreference:\n%s", args, g.stderr, r.stderr)
		case r.stdout == "" && g.stdout != "", r.stdout != "" && g.stdout == "":
			t.Errorf("virtiofsd %q: stdout %.40q, reference %.40q", args, g.stdout, r.stdout)
		}
	}
	for _, args := range runtime {
		r := runBinary(t, ref, nil, args...)
		g := runBinary(t, binPath, nil, args...)
		if r.code != g.code || firstLine(r.stderr) != firstLine(g.stderr) {
			t.Errorf("virtiofsd %q: exit %d, %q; reference exit %d, %q", args, g.code, firstLine(g.stderr), r.code, firstLine(r.stderr))
		}
	}
}
