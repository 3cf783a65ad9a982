// Package layering checks that the daemon's packages import each other only
// downwards, as the architecture requires: the transport knows nothing of
// FUSE, the FUSE engine knows nothing of queues, and nothing but the command
// imports the device.
package layering

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "virtiofsd/"

// allowed lists, for each internal package, the internal packages it may
// import directly. A package missing from this table fails the test, so a
// new package has to be placed in the layering on purpose.
var allowed = map[string][]string{
	"cmd/virtiofsd":        {"internal/cli", "internal/logging", "internal/virtiofs", "internal/fuse", "internal/passthrough", "internal/linux", "internal/sandbox", "internal/seccomp", "internal/caps"},
	"internal/cli":         {"internal/passthrough", "internal/logging"},
	"internal/logging":     {},
	"internal/virtiofs":    {"internal/vhostuser", "internal/virtqueue", "internal/guestmem", "internal/fuse", "internal/linux", "internal/migration"},
	"internal/vhostuser":   {"internal/virtqueue", "internal/guestmem", "internal/linux"},
	"internal/virtqueue":   {"internal/guestmem", "internal/linux"},
	"internal/guestmem":    {"internal/linux"},
	"internal/linux":       {},
	"internal/fuse":        {},
	"internal/passthrough": {"internal/fuse", "internal/linux", "internal/migration"},
	"internal/sandbox":     {"internal/linux", "internal/caps"},
	"internal/seccomp":     {"internal/linux"},
	"internal/caps":        {},
	"internal/migration":   {},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "virtiofsd/cmd/...", "virtiofsd/internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		if strings.HasPrefix(name, "internal/testutil") {
			continue // test support may use anything
		}
		ok, known := allowed[name]
		if !known {
			t.Errorf("package %s has no place in the layering table", name)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			permitted := false
			for _, a := range ok {
				if a == dep {
					permitted = true
				}
			}
			if !permitted {
				t.Errorf("%s imports %s, which the layering does not allow", name, dep)
			}
		}
	}
	if seen < 6 {
		t.Fatalf("checked only %d packages; go list found too little", seen)
	}
}
