package daemon

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiffTables checks the differential test's own tables: step labels
// are unique within a script (the known-difference table names steps by
// label), and every known difference names a script and steps that exist.
func TestDiffTables(t *testing.T) {
	labels := map[string]map[string]bool{}
	for _, sc := range diffScripts() {
		if labels[sc.name] != nil {
			t.Errorf("two scripts named %q", sc.name)
		}
		seen := map[string]bool{"host-state": true}
		if !sc.noInit {
			seen["init"] = true
		}
		for _, s := range sc.steps {
			if s.label == "" {
				continue
			}
			if seen[s.label] {
				t.Errorf("script %s: step label %q used twice", sc.name, s.label)
			}
			seen[s.label] = true
		}
		labels[sc.name] = seen
	}
	sets := map[string]bool{}
	for _, o := range diffOptionSets {
		if sets[o.name] {
			t.Errorf("two option sets named %q", o.name)
		}
		sets[o.name] = true
	}
	for _, k := range knownDiffs {
		if k.reason == "" {
			t.Errorf("known difference %s/%s has no reason", k.script, k.steps)
		}
		for _, o := range strings.Fields(k.opts) {
			if !sets[o] {
				t.Errorf("known difference %s/%s names unknown option set %q", k.script, k.steps, o)
			}
		}
		if k.script == "" || k.steps == "*" {
			if k.script != "" || k.steps != "*" || k.opts == "" {
				t.Errorf("known difference %q/%q/%q: a wildcard entry needs all scripts, all steps and named option sets",
					k.script, k.steps, k.opts)
			}
			continue
		}
		seen, ok := labels[k.script]
		if !ok {
			t.Errorf("known difference names unknown script %q", k.script)
			continue
		}
		for _, s := range strings.Fields(k.steps) {
			if !seen[s] {
				t.Errorf("known difference names unknown step %s/%s", k.script, s)
			}
		}
	}
}

// TestDiffLines checks the host-state comparison.
func TestDiffLines(t *testing.T) {
	got := diffLines([]string{"a x", "b y", "c z"}, []string{"a x", "b w", "c z", "d"})
	want := []string{"  reference only: b w", "  ours only:      b y", "  reference only: d"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diffLines = %q, want %q", got, want)
	}
	if d := diffLines([]string{"a"}, []string{"a"}); len(d) != 0 {
		t.Errorf("diffLines of equal lists = %q", d)
	}
}

// TestDiffDetects runs a script against our daemon on both sides, on
// twins that differ in one file's mode and another's content: exactly the
// steps that show them must differ, everything else (node IDs, handles,
// inode numbers, which differ between the twins, and times) must
// normalise to the same text.
func TestDiffDetects(t *testing.T) {
	requireDaemon(t, ours)
	other := append([]seedEntry(nil), diffSeed...)
	for i, e := range other {
		switch e.path {
		case "ro":
			other[i].mode = 0o440
		case "dir/a":
			other[i].data = "A"
		}
	}
	d := dsl{}
	sc := &dscript{name: "detect", steps: []dstep{
		d.lookup("ro", dRoot, "ro"),
		d.lookup("dir", dRoot, "dir"),
		d.lookup("a", d.n("dir"), "a"),
		d.open("open-a", d.n("a"), unix.O_RDONLY, 0),
		d.read("read-a", d.n("a"), d.h("open-a"), 0, 10),
		d.mkdir("mkdir", dRoot, "new", 0o755),
		d.create("create", d.n("mkdir"), "f", unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o600, 0),
		d.opendir("od", d.n("dir"), 0),
		d.readdirplus("readdirplus", d.n("dir"), d.h("od"), 0, 4096),
		d.getattr("getattr-root", dRoot),
	}}
	p := runPair(t, [2]*daemonSpec{ours, ours}, [2][]seedEntry{diffSeed, other}, diffOptionSets[0], sc)
	var got []string
	for _, d := range p.diffs {
		got = append(got, d.label)
	}
	want := []string{"ro", "read-a", "host-state"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("steps that differ = %q, want %q\n%s", got, want, p.transcript())
	}
}

func TestShortDirents(t *testing.T) {
	full := "3 entries\n    \".\" type=4 off=1\n    \"a\" type=8 off=2\n    \"b\" type=8 off=3"
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{full, "2 entries\n    \".\" type=4 off=1\n    \"a\" type=8 off=2", true},
		{"1 entries\n    \".\" type=4 off=1", full, true},
		{full, "2 entries\n    \".\" type=4 off=1\n    \"b\" type=8 off=3", false},
		{full, "0 entries", false},
		{full, full, false},
		{"ENOENT", "EIO", false},
	} {
		if got := shortDirents(c.a, c.b); got != c.want {
			t.Errorf("shortDirents(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
