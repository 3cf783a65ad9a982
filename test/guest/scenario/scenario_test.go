package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPattern(t *testing.T) {
	a, b := Pattern(1, 1000), Pattern(1, 1000)
	if string(a) != string(b) {
		t.Fatal("Pattern(1, 1000) differs between calls")
	}
	if string(Pattern(1, 999)) != string(a[:999]) {
		t.Error("Pattern(1, 999) is not a prefix of Pattern(1, 1000)")
	}
	if string(Pattern(2, 1000)) == string(a) {
		t.Error("Pattern(2, 1000) = Pattern(1, 1000)")
	}
	zeros := 0
	for _, c := range a {
		if c == 0 {
			zeros++
		}
	}
	if zeros > 20 {
		t.Errorf("Pattern(1, 1000) has %d zero bytes, want few", zeros)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to create files owned by other users")
	}
}

// TestVerifySeeds checks that Verify accepts freshly created seeds and
// rejects each kind of difference.
func TestVerifySeeds(t *testing.T) {
	requireRoot(t)
	mutations := []struct {
		name   string
		mutate func(dir string) error
		want   string
	}{
		{"none", func(string) error { return nil }, ""},
		{"content", func(d string) error {
			return os.WriteFile(filepath.Join(d, "hello.txt"), []byte("HELLO, virtio-fs\n"), 0)
		}, "hello.txt: content sha256"},
		{"size", func(d string) error { return os.Truncate(filepath.Join(d, "big.bin"), 10) }, "big.bin: size 10"},
		{"mode", func(d string) error { return os.Chmod(filepath.Join(d, "exec.sh"), 0o700) }, "exec.sh: mode 0700, want 0755"},
		{"owner", func(d string) error { return os.Chown(filepath.Join(d, "owned.txt"), 1001, 0) }, "owned.txt: owner 1001:0"},
		{"mtime", func(d string) error {
			ts := []syscall.Timespec{syscall.NsecToTimespec(1), syscall.NsecToTimespec(2)}
			return syscall.UtimesNano(filepath.Join(d, "owned.txt"), ts)
		}, "owned.txt: mtime 2 ns"},
		{"missing", func(d string) error { return os.Remove(filepath.Join(d, "empty")) }, "empty: lstat"},
		{"extra", func(d string) error { return os.WriteFile(filepath.Join(d, "sub", "stray"), nil, 0o644) }, "sub/stray: unexpected entry"},
		{"symlink", func(d string) error {
			p := filepath.Join(d, "link")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("big.bin", p)
		}, `link: symlink target "big.bin"`},
		{"type", func(d string) error {
			p := filepath.Join(d, "sub/up")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.WriteFile(p, nil, 0o644)
		}, "sub/up: file type"},
		{"replaced", func(d string) error {
			p := filepath.Join(d, "sub/deeper/leaf.txt")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tmp := p + ".new"
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		}, "sub/deeper/leaf.txt: inode"},
		{"hardlink broken", func(d string) error {
			p := filepath.Join(d, "hard2")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
			return nil
		}, "hard2: nlink 1, want 2"},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			seeds, err := CreateSeeds(dir)
			if err != nil {
				t.Fatalf("CreateSeeds: %v", err)
			}
			base := filepath.Join(dir, SeedDir)
			if err := m.mutate(base); err != nil {
				t.Fatal(err)
			}
			err = Verify(base, seeds)
			switch {
			case m.want == "" && err != nil:
				t.Fatalf("Verify(fresh seeds) = %v, want nil", err)
			case m.want != "" && err == nil:
				t.Fatalf("Verify after %s mutation = nil, want an error containing %q", m.name, m.want)
			case m.want != "" && !strings.Contains(err.Error(), m.want):
				t.Fatalf("Verify after %s mutation = %v, want an error containing %q", m.name, err, m.want)
			}
		})
	}
}

func TestExpectedIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Expected() {
		if seen[e.Path] {
			t.Errorf("Expected() lists %s twice", e.Path)
		}
		seen[e.Path] = true
		if dir := filepath.Dir(e.Path); dir != "." && !seen[dir] {
			t.Errorf("Expected() lists %s before its directory", e.Path)
		}
		if e.LinkedTo != "" && !seen[e.LinkedTo] {
			t.Errorf("Expected() links %s to unknown %s", e.Path, e.LinkedTo)
		}
	}
	if n := len(Expected()); n < GuestManyCount {
		t.Errorf("Expected() has %d entries, want at least %d", n, GuestManyCount)
	}
}

func TestParseConsole(t *testing.T) {
	var all strings.Builder
	all.WriteString("[    1.0] kernel noise\r\n")
	for _, c := range Checks {
		all.WriteString(FormatResult(c, nil) + "\r\n")
	}
	good := all.String() + FormatSummary(len(Checks), 0) + "\r\n"
	if errs := ParseConsole(good).Errors(); len(errs) != 0 {
		t.Fatalf("ParseConsole(all passed).Errors() = %q, want none", errs)
	}

	tests := []struct {
		name string
		log  string
		want string
	}{
		{"no summary", all.String(), "no summary line"},
		{"nothing", "[    1.0] kernel panic\n", "no check results"},
		{"failed", strings.Replace(good, FormatResult("rename", nil),
			FormatResult("rename", errors.New("rename x: EXDEV\nmore")), 1), "check rename failed: rename x: EXDEV; more"},
		{"missing", strings.Replace(good, FormatResult("chmod", nil)+"\r\n", "", 1), "check chmod not reported"},
		{"duplicate", good + FormatResult("chown", nil) + "\n", "check chown reported 2 times"},
		{"unknown", good + FormatResult("bogus", nil) + "\n", `unknown check "bogus"`},
		{"summary mismatch", all.String() + FormatSummary(len(Checks)+1, 0), "summary says"},
		{"bad line", good + "GUESTTEST maybe\n", "unknown result line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := ParseConsole(tc.log).Errors()
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("Errors() = %q, want one containing %q", errs, tc.want)
			}
		})
	}
}
