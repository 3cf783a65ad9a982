package passthrough

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/migration"
)

// TestSaveLoadRoundTrip saves a source session, sends it through the codec
// and loads it into a second FS over the same directory: every record comes
// back under its node ID with the guest's lookup count and at the same
// path, the records that only anchored paths are gone again, and the open
// handles work.
func TestSaveLoadRoundTrip(t *testing.T) {
	type mode struct {
		name    string
		handles FileHandleMode
		mig     MigrationMode
	}
	for _, m := range []mode{
		{"find-paths/never", FileHandlesNever, MigrateFindPaths},
		{"find-paths/prefer", FileHandlesPrefer, MigrateFindPaths},
		{"file-handles/never", FileHandlesNever, MigrateFileHandles},
	} {
		t.Run(m.name, func(t *testing.T) {
			if m.handles != FileHandlesNever || m.mig == MigrateFileHandles {
				requireRoot(t) // file handles need CAP_DAC_READ_SEARCH to open
			}
			mod := func(c *Config) { c.InodeFileHandles = m.handles; c.MigrationMode = m.mig }
			src, dir := newTestFS(t, mod)
			os.MkdirAll(join(dir, "a/b"), 0o755)
			os.Mkdir(join(dir, "d"), 0o755)
			writeFile(t, join(dir, "a/b/f"), "hello")
			writeFile(t, join(dir, "x"), "xx")
			a := mustLookup(t, src, RootID, "a").NodeID
			b := mustLookup(t, src, a, "b").NodeID
			f := mustLookup(t, src, b, "f").NodeID
			x := mustLookup(t, src, RootID, "x").NodeID
			d := mustLookup(t, src, RootID, "d").NodeID
			var eo fuse.EntryOut
			if e := src.Link(root, x, d, nm("y"), &eo); e != 0 {
				t.Fatal(e)
			}
			src.Forget(a, 1)
			src.Forget(b, 1)
			fh := mustOpen(t, src, f, unix.O_RDWR|unix.O_APPEND)
			var oo fuse.OpenOut
			if e := src.Opendir(root, d, &fuse.OpenIn{Flags: unix.O_RDONLY}, &oo); e != 0 {
				t.Fatal(e)
			}
			guest, _ := sessionSnapshot(t, src)
			paths := map[uint64]string{}
			for id := range guest {
				p, err := src.Path(id)
				if err != nil {
					t.Fatal(err)
				}
				paths[id] = p
			}

			st := saveUnchanged(t, src, false, nil)
			b1, err := migration.Encode(st)
			if err != nil {
				t.Fatal(err)
			}
			st2, err := migration.Decode(b1)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(dir)
			mod(&cfg)
			dst, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if err := dst.loadState(st2); err != nil {
				t.Fatalf("loadState: %v", err)
			}
			got, _ := sessionSnapshot(t, dst)
			if !mapsEqual(got, guest) {
				t.Errorf("destination lookups %v, want %v", got, guest)
			}
			for id, p := range paths {
				if q, err := dst.Path(id); err != nil || q != p && !(id == x && (q == "x" || q == "d/y")) {
					t.Errorf("node %d at %q (%v) on the destination, %q on the source", id, q, err, p)
				}
			}
			buf := make([]byte, 16)
			n, e := dst.Read(root, f, &fuse.ReadIn{Fh: fh, Size: 16}, [][]byte{buf})
			if e != 0 || string(buf[:n]) != "hello" {
				t.Errorf("Read on the destination = %q, %v", buf[:n], e)
			}
			if fl := handleFlags(t, dst, f, fh); fl&unix.O_ACCMODE != unix.O_RDWR {
				t.Errorf("restored handle flags %#x", fl)
			}
			if n, e := dst.Readdir(root, d, &fuse.ReadIn{Fh: oo.Fh, Size: 4096}, make([]byte, 4096)); e != 0 || n == 0 {
				t.Errorf("Readdir on the destination = %d, %v", n, e)
			}
		})
	}
}
