package daemon

import (
	"strings"
	"testing"
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
