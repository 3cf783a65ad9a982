package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
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
	if errs := ParseConsole(good).Errors(Checks); len(errs) != 0 {
		t.Fatalf("ParseConsole(all passed).Errors(Checks) = %q, want none", errs)
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
			errs := ParseConsole(tc.log).Errors(Checks)
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("Errors() = %q, want one containing %q", errs, tc.want)
			}
		})
	}
}

func TestCheckPieces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	pieces := []Piece{{Off: 10, Data: []byte("ab")}, {Off: 1 << 20, Data: []byte("end")}}
	for _, pc := range pieces {
		if _, err := f.WriteAt(pc.Data, pc.Off); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckPieces(p, pieces); err != nil {
		t.Fatalf("CheckPieces(matching file) = %v", err)
	}
	if _, err := f.WriteAt([]byte{1}, 1<<20-100); err != nil {
		t.Fatal(err)
	}
	if err := CheckPieces(p, pieces); err == nil || !strings.Contains(err.Error(), "want 0") {
		t.Errorf("CheckPieces(stray byte before a piece) = %v, want a non-zero byte error", err)
	}
	if err := CheckPieces(p, []Piece{{Off: 10, Data: []byte("xy")}}); err == nil {
		t.Error("CheckPieces(wrong data) = nil")
	}
	f.Close()
}

func TestParseStress(t *testing.T) {
	log := FormatStress("hdd", StressPass, "3s; exit 0") + "\r\n" +
		FormatStress("fiemap", StressSkip, "exit 0\nnot supported") + "\n" +
		FormatStress("link", StressFail, "exit 2; fail: verification") + "\n"
	r := ParseConsole(log)
	want := map[string]string{"hdd": StressPass, "fiemap": StressSkip, "link": StressFail}
	for name, outcome := range want {
		if got := r.Stress[name].Outcome; got != outcome {
			t.Errorf("stress %s: outcome %q, want %q", name, got, outcome)
		}
	}
	if d := r.Stress["fiemap"].Detail; d != "exit 0; not supported" {
		t.Errorf("fiemap detail %q", d)
	}
	if bad := ParseConsole(log + FormatStress("hdd", StressPass, "again")).Problems; len(bad) != 1 {
		t.Errorf("repeated stress line: problems %q, want one", bad)
	}
	if bad := ParseConsole("GUESTTEST stress hdd maybe: x\n").Problems; len(bad) != 1 {
		t.Errorf("bad outcome: problems %q, want one", bad)
	}
}

func TestRuns(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Runs {
		if seen[r.Name] {
			t.Errorf("run %s listed twice", r.Name)
		}
		seen[r.Name] = true
		if len(r.Checks) == 0 || r.Checks[0] != "mount" || r.Checks[len(r.Checks)-1] != "umount" {
			t.Errorf("run %s: checks %q must start with mount and end with umount", r.Name, r.Checks)
		}
		if r.ReadOnly != (r.Expected == nil) {
			t.Errorf("run %s: a run has an expected guest tree exactly when it is not read-only", r.Name)
		}
		if (len(r.Stressors) > 0) != slices.Contains(r.Checks, "stress") {
			t.Errorf("run %s: stressors %q without the stress check, or the reverse", r.Name, r.Stressors)
		}
		if got, err := RunByName(r.Name); err != nil || got.Name != r.Name {
			t.Errorf("RunByName(%s) = %v, %v", r.Name, got.Name, err)
		}
	}
	if _, err := RunByName("nope"); err == nil {
		t.Error("RunByName(nope) = nil error")
	}
}
