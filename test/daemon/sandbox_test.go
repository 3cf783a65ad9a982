package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/caps"
	fe "virtiofsd/internal/testutil/frontend"
)

// The capability sets of the serving process as root (fs.md §4.5): the
// default set, plus CAP_DAC_READ_SEARCH whenever file handles may be used.
const (
	capsDefault     = caps.Set(0x880000db)
	capsFileHandles = caps.Set(0x880000df)
	// --modcaps=-mknod:+sys_admin
	capsModified = caps.Set(0x802000db)
)

// TestSandboxStatus checks, for each sandbox mode, that the daemon serves
// and that its serving process is confined as the mode says: namespaces,
// seccomp, no_new_privs and capability sets, read from /proc/PID/status.
func TestSandboxStatus(t *testing.T) {
	self, err := caps.ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		// unsandboxed passes --sandbox=none --seccomp=none.
		unsandboxed bool
		// newNS: the serving process is in new mount, PID and network
		// namespaces (and PID 1 there).
		newNS   bool
		seccomp bool
		// wantCaps per daemon; zero means "not checked" (unsandboxed).
		oursCaps, refCaps caps.Set
	}{
		// The reference 1.13.2 defaults to --inode-file-handles=never,
		// ours (1.13.3) to prefer.
		{name: "default", newNS: true, seccomp: true, oursCaps: capsFileHandles, refCaps: capsDefault},
		{name: "never", args: []string{"--inode-file-handles=never"}, newNS: true, seccomp: true, oursCaps: capsDefault, refCaps: capsDefault},
		{name: "modcaps", args: []string{"--inode-file-handles=never", "--modcaps=-mknod:+sys_admin"}, newNS: true, seccomp: true, oursCaps: capsModified, refCaps: capsModified},
		{name: "mandatory", args: []string{"--inode-file-handles=mandatory"}, newNS: true, seccomp: true, oursCaps: capsFileHandles, refCaps: capsFileHandles},
		{name: "chroot", args: []string{"--sandbox=chroot"}, seccomp: true, oursCaps: capsFileHandles, refCaps: capsDefault},
		{name: "seccomp-log", args: []string{"--seccomp=log"}, newNS: true, seccomp: true, oursCaps: capsFileHandles, refCaps: capsDefault},
		{name: "none", unsandboxed: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
				d := startDaemon(t, spec, startOpts{args: c.args, unsandboxed: c.unsandboxed})
				writeHost(t, filepath.Join(d.Shared, "f"), []byte("sandboxed"), 0o644)
				e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"))
				o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDONLY))
				if b := must[[]byte](t, "READ")(d.FE.Read(e.NodeID, o.Fh, 0, 100)); string(b) != "sandboxed" {
					t.Errorf("READ = %q", b)
				}
				roundTrip(t, d, "w", 65536)

				pid := d.ServingPid()
				st, err := caps.ReadStatus(pid)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("serving process %d: NSpid %v Seccomp %d NoNewPrivs %v CapEff %#x CapBnd %#x",
					pid, st.NSpid, st.Seccomp, st.NoNewPrivs, uint64(st.CapEff), uint64(st.CapBnd))
				for _, ns := range []string{"mnt", "pid", "net"} {
					if differs := st.NS[ns] != self.NS[ns]; differs != c.newNS {
						t.Errorf("%s namespace differs from the test's: %v, want %v", ns, differs, c.newNS)
					}
				}
				if c.newNS {
					if pid == d.Pid() {
						t.Errorf("the started process %d serves itself; want a sandboxed child", pid)
					}
					if n := len(st.NSpid); n != 2 || st.NSpid[1] != 1 {
						t.Errorf("NSpid = %v, want the serving process to be PID 1 of a new PID namespace", st.NSpid)
					}
					parent, err := caps.ReadStatus(d.Pid())
					if err != nil {
						t.Fatal(err)
					}
					if parent.CapEff|parent.CapPrm|parent.CapInh|parent.CapBnd|parent.CapAmb != 0 {
						t.Errorf("waiting parent keeps capabilities: eff %#x prm %#x inh %#x bnd %#x amb %#x",
							uint64(parent.CapEff), uint64(parent.CapPrm), uint64(parent.CapInh), uint64(parent.CapBnd), uint64(parent.CapAmb))
					}
				}
				if c.newNS || c.name == "chroot" {
					// The serving process's root is the shared directory.
					var a, b unix.Stat_t
					if err := unix.Stat(fmt.Sprintf("/proc/%d/root", pid), &a); err != nil {
						t.Fatal(err)
					}
					if err := unix.Stat(d.Shared, &b); err != nil {
						t.Fatal(err)
					}
					if a.Dev != b.Dev || a.Ino != b.Ino {
						t.Errorf("root of the serving process is not the shared directory")
					}
				}
				if c.seccomp {
					if st.Seccomp != 2 || !st.NoNewPrivs {
						t.Errorf("Seccomp %d NoNewPrivs %v, want 2 and true", st.Seccomp, st.NoNewPrivs)
					}
				} else if st.Seccomp != 0 {
					t.Errorf("Seccomp %d without a filter", st.Seccomp)
				}
				want := c.oursCaps
				if spec == reference {
					want = c.refCaps
				}
				if want != 0 {
					if st.CapEff != want || st.CapPrm != want {
						t.Errorf("CapEff %#x CapPrm %#x, want %#x", uint64(st.CapEff), uint64(st.CapPrm), uint64(want))
					}
					if st.CapBnd != 0 || st.CapInh != 0 || st.CapAmb != 0 {
						t.Errorf("CapBnd %#x CapInh %#x CapAmb %#x, want all empty", uint64(st.CapBnd), uint64(st.CapInh), uint64(st.CapAmb))
					}
				}
				d.disconnect()
			})
		})
	}
}
