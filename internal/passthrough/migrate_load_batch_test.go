package passthrough

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/migration"
)

// TestLoadLargeBatch loads a directory with more children than
// parallelBatch, so that they are opened by several goroutines, with a few
// bad entries among them: under guest-error exactly those fail and every
// other child is restored at its own ID; under abort the load fails and
// leaves no descriptor or guest-fd slot behind.
func TestLoadLargeBatch(t *testing.T) {
	requireRoot(t)
	const n = 3*parallelBatch + 7
	bad := map[uint64]bool{100: true, 2 + parallelBatch: true, n: true}
	for _, mode := range loadModes() {
		for pname, policy := range map[string]MigrationOnError{"guest-error": OnErrorGuestError, "abort": OnErrorAbort} {
			t.Run(fmt.Sprintf("%v/%s", mode, pname), func(t *testing.T) {
				env := newLoadEnv(t)
				big := join(env.share, "big")
				if err := os.Mkdir(big, 0o755); err != nil {
					t.Fatal(err)
				}
				st := &migration.State{Version: migration.V2, NextInode: n + 10}
				addInode(st, RootID, migration.Location{Kind: migration.LocRoot})
				st.Inodes[0].Refcount = 2 // INIT's, plus one per Path child below
				addInode(st, 2, pathLoc(RootID, "big"))
				for i := uint64(3); i < n+3; i++ {
					name := fmt.Sprintf("f%d", i)
					if !bad[i] {
						writeFile(t, join(big, name), name)
					}
					addInode(st, i, pathLoc(2, name))
				}
				before := openFDs(t)
				fs := env.newFS(t, mode, func(c *Config) { c.MigrationOnError = policy; c.FDBudget = 1 << 16 })
				used := fs.fdUsed.Load()
				err := fs.loadState(st)
				if policy == OnErrorAbort {
					if err == nil {
						t.Fatal("load with missing files succeeded under abort")
					}
					if got := fs.fdUsed.Load(); got != used {
						t.Errorf("guest-fd slots after a failed load = %d, want %d", got, used)
					}
					fs.Close()
					if got := openFDs(t); got != before {
						t.Errorf("open descriptors after a failed load = %d, want %d", got, before)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				for i := uint64(3); i < n+3; i++ {
					a, e := getattr(fs, i)
					switch {
					case bad[i] && e != unix.ENOENT:
						t.Errorf("node %d (missing file) = %v, want ENOENT", i, e)
					case !bad[i] && (e != 0 || a.Attr.Ino != inoOf(t, join(big, fmt.Sprintf("f%d", i)))):
						t.Errorf("node %d = ino %d, %v; want its file", i, a.Attr.Ino, e)
					}
				}
			})
		}
	}
}
