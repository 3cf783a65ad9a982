package passthrough

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStripMountPrefix(t *testing.T) {
	tests := []struct {
		mp, prefix, want string
	}{
		{"/srv/share/sub", "", "/srv/share/sub"},
		{"/srv/share/sub", "/", "/srv/share/sub"},
		{"/srv/share/sub", "/srv/share", "/sub"},
		{"/srv/share/sub", "/srv/share/", "/sub"},
		{"/srv/share/a/b", "/srv/share", "/a/b"},
		{"/srv/share", "/srv/share", "/"},
		{"/srv/share", "/srv/share/", "/"},
		// Not whole-component prefixes: outside the share.
		{"/srv/shared", "/srv/share", "/"},
		{"/srv/share2/x", "/srv/share", "/"},
		// Above or beside the share.
		{"/", "/srv/share", "/"},
		{"/srv", "/srv/share", "/"},
		{"/proc", "/srv/share", "/"},
	}
	for _, tt := range tests {
		if got := stripMountPrefix(tt.mp, tt.prefix); got != tt.want {
			t.Errorf("stripMountPrefix(%q, %q) = %q, want %q", tt.mp, tt.prefix, got, tt.want)
		}
	}
}

// mountinfoFS returns an FS reading the mountinfo text data, with prefix
// as Config.MountinfoPrefix; only the mount descriptor code may be used.
func mountinfoFS(t *testing.T, data, prefix string) *FS {
	t.Helper()
	path := join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	mi, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(mi) })
	proc, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(proc) })
	return &FS{cfg: Config{MountinfoPrefix: prefix}, procFD: proc, mountinfoFD: mi}
}

func TestMountPointPrefix(t *testing.T) {
	const mountinfo = `21 1 8:1 / /srv/host rw,relatime shared:1 - ext4 /dev/sda1 rw
22 21 0:30 / /srv/host/sub rw shared:2 - tmpfs tmpfs rw
23 21 0:31 / /srv/hostile rw - tmpfs tmpfs rw
24 1 0:32 / /proc rw - proc proc rw
25 21 0:33 / /srv/host/with\040space rw - tmpfs tmpfs rw
26 1 0:34 / / rw - ext4 /dev/sda2 rw
`
	want := map[string]map[uint64]string{
		"": {21: "/srv/host", 22: "/srv/host/sub", 23: "/srv/hostile", 24: "/proc",
			25: "/srv/host/with space", 26: "/"},
		"/srv/host": {21: "/", 22: "/sub", 23: "/", 24: "/", 25: "/with space", 26: "/"},
	}
	want["/srv/host/"] = want["/srv/host"]
	for prefix, mounts := range want {
		fs := mountinfoFS(t, mountinfo, prefix)
		for id, w := range mounts {
			got, err := fs.mountPoint(id)
			if err != nil || got != w {
				t.Errorf("prefix %q: mountPoint(%d) = %q, %v; want %q", prefix, id, got, err, w)
			}
		}
		if _, err := fs.mountPoint(99); !errors.Is(err, unix.EINVAL) {
			t.Errorf("prefix %q: mountPoint(unknown) error = %v, want EINVAL", prefix, err)
		}
	}
}

// TestOpenMountPrefix opens the mount of a temporary directory through a
// mountinfo that shows its mount point below a host prefix, as mountinfo
// does in the chroot sandbox.
func TestOpenMountPrefix(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, 0, unix.STATX_MNT_ID, &stx); err != nil {
		t.Fatal(err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		t.Skip("statx reports no mount ID")
	}
	real, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(stx.Mnt_id, 10)
	var line []string
	for l := range bytes.SplitSeq(real, []byte{'\n'}) {
		if f := strings.Fields(string(l)); len(f) >= 5 && f[0] == id {
			line = f
		}
	}
	if line == nil {
		t.Fatalf("mount %s not in mountinfo", id)
	}
	const prefix = "/no/such/host/prefix"
	line[4] = strings.TrimRight(prefix+line[4], "/")
	crafted := strings.Join(line, " ") + "\n"

	fs := mountinfoFS(t, crafted, prefix)
	fd, err := fs.openMount(stx.Mnt_id)
	if err != nil {
		t.Fatalf("openMount with prefix %q = %v", prefix, err)
	}
	defer unix.Close(fd)
	var got unix.Statx_t
	if e := statxFD(fd, &got); e != 0 || got.Mnt_id != stx.Mnt_id {
		t.Errorf("mount descriptor: statx = %v, mount ID %d, want %d", e, got.Mnt_id, stx.Mnt_id)
	}

	// Without the prefix the host path does not exist here.
	fs = mountinfoFS(t, crafted, "")
	if fd, err := fs.openMount(stx.Mnt_id); err == nil {
		unix.Close(fd)
		t.Errorf("openMount of %q without the prefix succeeded", line[4])
	}
}
