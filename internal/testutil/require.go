package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips the test with a message unless it runs as root, or
// fails it when CI=true (CI runs these tests in a VM as root).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("test needs root, and CI=true")
	}
	tb.Skip("test needs root")
}
