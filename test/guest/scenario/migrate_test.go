package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckMigrateLog(t *testing.T) {
	lines := func(ns ...int) []byte {
		var b []byte
		for _, n := range ns {
			b = append(b, MigrateLine(n)...)
		}
		return b
	}
	tests := []struct {
		name string
		log  []byte
		n    int
		want string // "" for success
	}{
		{"empty", nil, 0, ""},
		{"one", lines(1), 1, ""},
		{"several", lines(1, 2, 3, 4), 4, ""},
		{"gap", lines(1, 2, 4), 0, "line 3 holds number 4 (gap)"},
		{"duplicate", lines(1, 2, 2, 3), 0, "line 3 holds number 2 (duplicate)"},
		{"not from one", lines(2, 3), 0, "line 1 holds number 2"},
		{"torn", append(lines(1, 2), "line 000"...), 0, "not complete"},
		{"garbage", append(lines(1), "line 0000000x\n"...), 0, "line 2 is"},
		{"zeros", append(lines(1), make([]byte, 14)...), 0, "not complete"},
		{"short number", append(lines(1), "line 2\n"...), 0, "line 2 is"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := CheckMigrateLog(tc.log)
			switch {
			case tc.want == "" && (err != nil || n != tc.n):
				t.Errorf("CheckMigrateLog = %d, %v; want %d, nil", n, err, tc.n)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckMigrateLog = %d, %v; want an error with %q", n, err, tc.want)
			}
		})
	}
}

func TestParseMigrateReport(t *testing.T) {
	rep := MigrateReport{Iterations: 7, Lines: 8, Entries: 9, Errors: []string{"a\nb"}}
	line := FormatMigrateReport(rep)
	if strings.Contains(line, "\n") {
		t.Fatalf("report line %q spans lines", line)
	}
	got, err := ParseMigrateReport("[ 1.0] kernel\r\n" + MigrateAlive + "3\r\n" + line + "\r\nguest: done\n")
	if err != nil || got.Iterations != 7 || got.Lines != 8 || got.Entries != 9 || len(got.Errors) != 1 || got.Errors[0] != "a\nb" {
		t.Errorf("ParseMigrateReport = %+v, %v; want %+v", got, err, rep)
	}
	for name, log := range map[string]string{
		"none":  "guest: nothing\n",
		"two":   line + "\n" + line + "\n",
		"cut":   line[:len(line)-3] + "\n",
		"alive": MigrateAlive + "12\n",
	} {
		if _, err := ParseMigrateReport(log); err == nil {
			t.Errorf("%s: ParseMigrateReport accepted %q", name, log)
		}
	}
}

// TestMigrateTree checks the tree's shape, and that Verify accepts it as
// created and notices a change.
func TestMigrateTree(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	es, err := CreateMigrateTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range es {
		if e.Kind == File {
			files++
		}
		if e.Ino == 0 {
			t.Errorf("%s: no inode number", e.Path)
		}
	}
	if want := MigrateDirs * (MigrateFilesPerDir + MigrateSubdirs*MigrateFilesPerSub); files < want || files < 2000 {
		t.Errorf("tree has %d files, want at least %d and a few thousand", files, want)
	}
	base := filepath.Join(dir, MigrateTreeDir)
	for _, p := range []string{MigrateKnownFile, MigrateHeldDir} {
		if _, err := os.Stat(filepath.Join(base, p)); err != nil {
			t.Error(err)
		}
	}
	if err := Verify(base, es); err != nil {
		t.Fatalf("Verify of the fresh tree: %v", err)
	}
	if err := os.WriteFile(filepath.Join(base, "d09/s1/g007"), []byte("changed"), 0); err != nil {
		t.Fatal(err)
	}
	if err := Verify(base, es); err == nil || !strings.Contains(err.Error(), "d09/s1/g007") {
		t.Errorf("Verify after changing a file: %v", err)
	}
}
