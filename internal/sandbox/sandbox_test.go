package sandbox

import (
	"errors"
	"os"
	"reflect"
	"syscall"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		mode       Mode
		euid       int
		uids, gids bool
		want       error
	}{
		{ModeNamespace, 0, false, false, nil},
		{ModeNamespace, 1000, false, false, nil},
		{ModeChroot, 0, false, false, nil},
		{ModeChroot, 1000, false, false, ErrChrootNotRoot},
		{ModeChroot, 1000, true, true, ErrChrootNotRoot},
		{ModeNone, 1000, false, false, nil},
		{ModeNamespace, 1000, true, true, nil},
		{ModeNamespace, 0, true, false, ErrUIDMap},
		{ModeNamespace, 0, false, true, ErrGIDMap},
		{ModeNamespace, 0, true, true, ErrUIDMap},
		{ModeNone, 1000, true, false, ErrUIDMap},
		{ModeNone, 1000, false, true, ErrGIDMap},
	} {
		if got := Check(tt.mode, tt.euid, tt.uids, tt.gids); got != tt.want {
			t.Errorf("Check(%d, %d, %v, %v) = %v, want %v", tt.mode, tt.euid, tt.uids, tt.gids, got, tt.want)
		}
	}
}

func TestMustDropGroups(t *testing.T) {
	const (
		identity = "         0          0 4294967295\n"
		single   = "         0       1000          1\n"
		two      = "         0       1000          1\n         1     100000      65536\n"
		range10  = "         0     100000         10\n"
	)
	errRead := errors.New("read failed")
	for _, tt := range []struct {
		name                    string
		euid                    int
		noNS                    bool
		uidMap, gidMap, setgrps string
		readErr                 bool
		drop, warn              bool
	}{
		{"unprivileged", 1000, false, identity, identity, "allow\n", false, false, false},
		{"no user namespaces", 0, true, "", "", "", false, true, false},
		{"initial namespace", 0, false, identity, identity, "allow\n", false, true, false},
		{"single ID, setgroups denied", 0, false, single, single, "deny\n", false, false, false},
		{"single ID, setgroups allowed", 0, false, single, single, "allow\n", false, true, false},
		{"single UID, ranged GID", 0, false, single, range10, "deny\n", false, true, false},
		{"ranged UID, single GID", 0, false, range10, single, "deny\n", false, true, false},
		{"two UID ranges", 0, false, two, single, "deny\n", false, true, false},
		{"unreadable", 0, false, "", "", "", true, true, true},
	} {
		files := map[string]string{groupFiles.uidMap: tt.uidMap, groupFiles.gidMap: tt.gidMap, groupFiles.setgroups: tt.setgrps}
		read := func(name string) ([]byte, error) {
			if tt.readErr {
				return nil, errRead
			}
			c, ok := files[name]
			if !ok {
				t.Fatalf("%s: read of unexpected file %s", tt.name, name)
			}
			return []byte(c), nil
		}
		exists := func(name string) bool {
			if name != groupFiles.ns {
				t.Fatalf("%s: existence of unexpected file %s", tt.name, name)
			}
			return !tt.noNS
		}
		drop, warn := mustDropGroups(tt.euid, read, exists)
		if drop != tt.drop || (warn != nil) != tt.warn {
			t.Errorf("%s: drop %v, warning %v; want drop %v, warning %v", tt.name, drop, warn, tt.drop, tt.warn)
		}
	}
}

func TestParseIDMap(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want IDMap
		ok   bool
	}{
		{":0:100000:65536:", IDMap{0, 100000, 65536}, true},
		{"/1/2/3/", IDMap{1, 2, 3}, true},
		{":0:4294967295:1:", IDMap{0, 4294967295, 1}, true},
		{":0:4294967296:1:", IDMap{}, false},
		{"0:1:1", IDMap{}, false},
		{":0:1:", IDMap{}, false},
		{":0:1:2:3:", IDMap{}, false},
		{"", IDMap{}, false},
		{":a:1:2:", IDMap{}, false},
	} {
		got, err := ParseIDMap(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseIDMap(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	maps, err := ParseIDMaps([]string{":0:1000:1:", ":1:100000:10:"})
	if err != nil || !reflect.DeepEqual(maps, []IDMap{{0, 1000, 1}, {1, 100000, 10}}) {
		t.Errorf("ParseIDMaps = %v, %v", maps, err)
	}
}

func TestDirectMapping(t *testing.T) {
	for _, tt := range []struct {
		maps []IDMap
		id   int
		want syscall.SysProcIDMap
		ok   bool
	}{
		{mapsOrDefault(nil, 1000), 1000, syscall.SysProcIDMap{ContainerID: 1000, HostID: 1000, Size: 1}, true},
		{[]IDMap{{0, 1000, 1}}, 1000, syscall.SysProcIDMap{ContainerID: 0, HostID: 1000, Size: 1}, true},
		{[]IDMap{{5, 1000, 0}}, 1000, syscall.SysProcIDMap{ContainerID: 5, HostID: 1000, Size: 1}, true},
		{[]IDMap{{0, 1000, 2}}, 1000, syscall.SysProcIDMap{}, false},
		{[]IDMap{{0, 1001, 1}}, 1000, syscall.SysProcIDMap{}, false},
		{[]IDMap{{0, 1000, 1}, {1, 100000, 10}}, 1000, syscall.SysProcIDMap{}, false},
	} {
		got, ok := directMapping(tt.maps, tt.id)
		if ok != tt.ok || got != tt.want {
			t.Errorf("directMapping(%v, %d) = %v, %v; want %v, %v", tt.maps, tt.id, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNewIDMapArgs(t *testing.T) {
	got := newIDMapArgs(42, []IDMap{{0, 1000, 1}, {1, 100000, 65536}})
	want := []string{"42", "0", "1000", "1", "1", "100000", "65536"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("newIDMapArgs = %q, want %q", got, want)
	}
}

func TestRunNewIDMapErrors(t *testing.T) {
	err := runNewIDMap("/nonexistent/newuidmap", "uid", 1, []IDMap{{0, 1, 1}})
	if err == nil || err.Error() != "failed to execute /nonexistent/newuidmap: fork/exec /nonexistent/newuidmap: no such file or directory" {
		t.Errorf("missing tool: %v", err)
	}
	// A tool that fails: its standard error becomes the message.
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	tool := dir + "/fake-newgidmap"
	if err := os.WriteFile(tool, []byte("#!/bin/sh\necho \"fake: $*\" >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = runNewIDMap(tool, "gid", 7, []IDMap{{0, 5, 2}})
	if err == nil || err.Error() != "write to gid map failed: fake: 7 0 5 2" {
		t.Errorf("failing tool: %v", err)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tt := range []struct {
		ws   syscall.WaitStatus
		code int
		sig  syscall.Signal
	}{
		{0, 0, 0},
		{1 << 8, 1, 0},
		{101 << 8, 101, 0},
		{syscall.WaitStatus(syscall.SIGKILL), 247, syscall.SIGKILL},
		{syscall.WaitStatus(syscall.SIGTERM), 241, syscall.SIGTERM},
		{syscall.WaitStatus(syscall.SIGSEGV) | 0x80, 245, syscall.SIGSEGV}, // core dumped
	} {
		code, sig := ExitStatus(tt.ws)
		if code != tt.code || sig != tt.sig {
			t.Errorf("ExitStatus(%#x) = %d, %v; want %d, %v", uint32(tt.ws), code, sig, tt.code, tt.sig)
		}
	}
}

func TestTakeStage(t *testing.T) {
	t.Setenv(stageEnv, "")
	os.Unsetenv(stageEnv)
	if s, err := TakeStage(); s != nil || err != nil {
		t.Errorf("without the variable: %v, %v", s, err)
	}
	// Only the first process of a PID namespace is a sandbox stage.
	t.Setenv(stageEnv, `{"Listen":3,"Sync":4,"Exe":5,"Budget":10,"Root":"/x"}`)
	if s, err := TakeStage(); s != nil || err == nil {
		t.Errorf("outside a new PID namespace: %v, %v; want an error", s, err)
	}
	if _, ok := os.LookupEnv(stageEnv); ok {
		t.Errorf("TakeStage left %s in the environment", stageEnv)
	}
}

func TestOpenNone(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenNone(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Root != dir || f.ProcSelfFD != -1 || f.MountinfoFD != -1 || f.MountinfoPrefix != "" {
		t.Errorf("OpenNone = %+v", f)
	}
	var a, b syscall.Stat_t
	if err := syscall.Fstat(f.RootFD, &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(dir, &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		t.Errorf("RootFD is not %s", dir)
	}
	if _, err := OpenNone(dir + "/missing"); err == nil {
		t.Errorf("OpenNone of a missing directory succeeded")
	}
}
