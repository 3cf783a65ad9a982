//go:build !amd64 && !arm64

package seccomp

// auditArch and checkX32 are unused: without a table, Program fails with
// ErrUnsupported.
const (
	auditArch = 0
	checkX32  = false
)

// table is empty: no allow-list has been derived for this architecture.
var table []entry
