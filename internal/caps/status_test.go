package caps

import (
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStatus(t *testing.T) {
	const text = "Name:\tvirtiofsd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1234\nNgid:\t0\nPid:\t1234\n" +
		"PPid:\t1200\nTracerPid:\t0\nNSpid:\t1234\t1\nCapInh:\t0000000000000000\nCapPrm:\t00000000880000db\n" +
		"CapEff:\t00000000880000db\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n" +
		"NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n"
	got, err := parseStatus([]byte(text))
	want := Status{PPid: 1200, NSpid: []int{1234, 1}, CapPrm: 0x880000db, CapEff: 0x880000db, NoNewPrivs: true, Seccomp: 2}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseStatus = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{
		strings.Replace(text, "CapAmb:\t0000000000000000\n", "", 1),
		strings.Replace(text, "NoNewPrivs:\t1\n", "", 1),
		strings.Replace(text, "CapEff:\t00000000880000db", "CapEff:\tzz", 1),
		strings.Replace(text, "NSpid:\t1234\t1", "NSpid:\t1234 x", 1),
	} {
		if st, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) = %+v, want an error", bad, st)
		}
	}
}

func TestParseNSLink(t *testing.T) {
	if ino, err := parseNSLink("mnt:[4026531841]"); err != nil || ino != 4026531841 {
		t.Errorf("parseNSLink = %d, %v", ino, err)
	}
	for _, bad := range []string{"mnt:4026531841", "mnt:[x]", "mnt:[12", ""} {
		if ino, err := parseNSLink(bad); err == nil {
			t.Errorf("parseNSLink(%q) = %d, want an error", bad, ino)
		}
	}
}

// TestReadThreadStatus compares what ReadThreadStatus reports about the
// calling thread with what the kernel answers that thread directly.
func TestReadThreadStatus(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	st, err := ReadThreadStatus(0, tid)
	if err != nil {
		t.Fatal(err)
	}

	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	join := func(lo, hi uint32) Set { return Set(uint64(hi)<<32 | uint64(lo)) }
	if want := join(data[0].Effective, data[1].Effective); st.CapEff != want {
		t.Errorf("CapEff = %#x, capget says %#x", uint64(st.CapEff), uint64(want))
	}
	if want := join(data[0].Permitted, data[1].Permitted); st.CapPrm != want {
		t.Errorf("CapPrm = %#x, capget says %#x", uint64(st.CapPrm), uint64(want))
	}
	if want := join(data[0].Inheritable, data[1].Inheritable); st.CapInh != want {
		t.Errorf("CapInh = %#x, capget says %#x", uint64(st.CapInh), uint64(want))
	}
	last, err := LastCap()
	if err != nil {
		t.Fatal(err)
	}
	var bnd, amb Set
	for c := 0; c <= last; c++ {
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			t.Fatal(err)
		} else if in == 1 {
			bnd |= 1 << uint(c)
		}
		if in, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0); err != nil {
			t.Fatal(err)
		} else if in == 1 {
			amb |= 1 << uint(c)
		}
	}
	if st.CapBnd != bnd || st.CapAmb != amb {
		t.Errorf("CapBnd, CapAmb = %#x, %#x; prctl says %#x, %#x", uint64(st.CapBnd), uint64(st.CapAmb), uint64(bnd), uint64(amb))
	}
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.NoNewPrivs != (nnp == 1) {
		t.Errorf("NoNewPrivs = %v, prctl says %d", st.NoNewPrivs, nnp)
	}
	if mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		t.Fatal(err)
	} else if st.Seccomp != mode {
		t.Errorf("Seccomp = %d, prctl says %d", st.Seccomp, mode)
	}
	if st.PPid != os.Getppid() {
		t.Errorf("PPid = %d, want %d", st.PPid, os.Getppid())
	}
	if n := len(st.NSpid); n == 0 || st.NSpid[n-1] != tid {
		t.Errorf("NSpid = %v, want it to end with the thread ID %d", st.NSpid, tid)
	}
	for _, name := range []string{"mnt", "pid", "net", "user", "uts", "ipc"} {
		var s unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/"+name, &s); err != nil {
			t.Fatal(err)
		}
		if st.NS[name] != s.Ino {
			t.Errorf("NS[%q] = %d, want %d", name, st.NS[name], s.Ino)
		}
	}
}

func TestReadStatus(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.NSpid); n == 0 || st.NSpid[n-1] != os.Getpid() {
		t.Errorf("NSpid = %v, want it to end with %d", st.NSpid, os.Getpid())
	}
	self, err := ReadStatus(0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.NS, self.NS) || st.PPid != self.PPid {
		t.Errorf("ReadStatus(%d) = %+v, ReadStatus(0) = %+v", os.Getpid(), st, self)
	}
	if _, err := ReadStatus(-5); err == nil {
		t.Errorf("ReadStatus(-5) succeeded")
	}
}

func TestReadThreads(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	threads, err := ReadThreads(0)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := threads[unix.Gettid()]
	if !ok {
		t.Fatalf("ReadThreads(0) = %v, lacks the calling thread %d", threads, unix.Gettid())
	}
	if n := len(st.NSpid); n == 0 || st.NSpid[n-1] != unix.Gettid() {
		t.Errorf("NSpid = %v, want it to end with %d", st.NSpid, unix.Gettid())
	}
}

func TestLastCap(t *testing.T) {
	text, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Skipf("no /proc/sys/kernel/cap_last_cap: %v", err)
	}
	got, err := LastCap()
	if err != nil || got == 0 || strings.TrimSpace(string(text)) != strconv.Itoa(got) {
		t.Errorf("LastCap() = %d, %v; /proc/sys/kernel/cap_last_cap reads %q", got, err, text)
	}
}
