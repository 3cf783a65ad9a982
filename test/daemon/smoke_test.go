package daemon

import (
	"testing"
)

func TestSmoke(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		t.Logf("init: %+v", d.Init)
		d.serves()
		d.disconnect()
	})
}
