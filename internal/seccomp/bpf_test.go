package seccomp

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data (linux/seccomp.h).
type seccompData struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

// bytes lays d out as the kernel does, in native (little-endian) order.
func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], uint32(d.nr))
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// run interprets prog on d the way the kernel's seccomp checker and
// interpreter would, restricted to the instructions a filter of this
// package may use. It fails on anything else: an unknown opcode, a jump
// outside the program, a load outside seccomp_data or unaligned, or
// falling off the end.
func run(prog []unix.SockFilter, d seccompData) (uint32, error) {
	if len(prog) == 0 || len(prog) > maxInsns {
		return 0, fmt.Errorf("program length %d", len(prog))
	}
	data := d.bytes()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		next := func(off uint32) error {
			if uint64(pc)+1+uint64(off) >= uint64(len(prog)) {
				return fmt.Errorf("pc %d: jump by %d leaves the program", pc, off)
			}
			pc += int(off)
			return nil
		}
		cond := func(taken bool) error {
			if taken {
				return next(uint32(in.Jt))
			}
			return next(uint32(in.Jf))
		}
		var err error
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K+4 > uint32(len(data)) {
				return 0, fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_JMP | unix.BPF_JA:
			err = next(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			err = cond(acc == in.K)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			err = cond(acc >= in.K)
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			err = cond(acc > in.K)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			err = cond(acc&in.K != 0)
		case unix.BPF_RET | unix.BPF_K:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("fell off the end of the program")
}

func mustRun(t *testing.T, prog []unix.SockFilter, d seccompData) uint32 {
	t.Helper()
	r, err := run(prog, d)
	if err != nil {
		t.Fatalf("run(nr %d, arch %#x): %v", d.nr, d.arch, err)
	}
	return r
}

func mustProgram(t *testing.T, o Options) []unix.SockFilter {
	t.Helper()
	prog, err := Program(o)
	if err != nil {
		t.Fatalf("Program(%+v): %v", o, err)
	}
	return prog
}

var actions = []struct {
	a   Action
	ret uint32
}{
	{ActionKill, unix.SECCOMP_RET_KILL_PROCESS},
	{ActionLog, unix.SECCOMP_RET_LOG},
	{ActionTrap, unix.SECCOMP_RET_TRAP},
}

// TestProgramAllowList runs the real filters on every number from 0 to
// 1023 (past the last system call of either architecture) and on a few
// far values: exactly the table's entries pass, the rest get the action.
func TestProgramAllowList(t *testing.T) {
	for _, syslog := range []bool{false, true} {
		for _, act := range actions {
			o := Options{Action: act.a, Syslog: syslog}
			prog := mustProgram(t, o)
			want := map[uint32]bool{}
			for _, s := range selected(o) {
				want[s.nr] = true
			}
			nrs := []uint32{0xffff, 0x3fffffff}
			for nr := range uint32(1024) {
				nrs = append(nrs, nr)
			}
			for _, nr := range nrs {
				got := mustRun(t, prog, seccompData{nr: int32(nr), arch: auditArch, args: [6]uint64{1, 2, 3}})
				exp := act.ret
				if want[nr] {
					exp = unix.SECCOMP_RET_ALLOW
				}
				if got != exp {
					t.Errorf("%+v: syscall %d = %#x, want %#x", o, nr, got, exp)
				}
			}
		}
	}
}

func TestProgramSyslog(t *testing.T) {
	for _, syslog := range []bool{false, true} {
		o := Options{Action: ActionKill, Syslog: syslog}
		got := mustRun(t, mustProgram(t, o), seccompData{nr: unix.SYS_SENDTO, arch: auditArch})
		want := uint32(unix.SECCOMP_RET_KILL_PROCESS)
		if syslog {
			want = unix.SECCOMP_RET_ALLOW
		}
		if got != want {
			t.Errorf("Syslog %v: sendto = %#x, want %#x", syslog, got, want)
		}
		if slices.Contains(Allowed(o), "sendto") != syslog {
			t.Errorf("Syslog %v: Allowed has sendto = %v", syslog, !syslog)
		}
	}
}

// TestProgramForeignArch: whatever the number and the action, a call with
// another AUDIT_ARCH kills the process, even an allowed number (the
// numbers mean different calls there).
func TestProgramForeignArch(t *testing.T) {
	foreign := []uint32{unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_ARM, unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_AARCH64, 0, 0xffffffff}
	for _, act := range actions {
		prog := mustProgram(t, Options{Action: act.a})
		for _, arch := range foreign {
			if arch == auditArch {
				continue
			}
			for _, nr := range []int32{unix.SYS_READ, unix.SYS_FUTEX, 0, 5000} {
				if got := mustRun(t, prog, seccompData{nr: nr, arch: arch}); got != unix.SECCOMP_RET_KILL_PROCESS {
					t.Errorf("%v: arch %#x nr %d = %#x, want KILL_PROCESS", act.a, arch, nr, got)
				}
			}
		}
	}
}

// TestProgramX32 checks that on amd64 an allowed number with the x32 bit
// set kills the process instead of being allowed or getting the action.
func TestProgramX32(t *testing.T) {
	for _, act := range actions {
		prog := mustProgram(t, Options{Action: act.a})
		for _, s := range table {
			got := mustRun(t, prog, seccompData{nr: int32(s.nr | x32Bit), arch: auditArch})
			want := act.ret
			if checkX32 {
				want = unix.SECCOMP_RET_KILL_PROCESS
			}
			if got != want {
				t.Errorf("%v: %s|x32 = %#x, want %#x", act.a, s.name, got, want)
			}
		}
	}
}

// TestCompileFarJumps compiles lists long and sparse enough that the
// search tree needs jumps beyond the 8-bit range, and checks every member
// and the numbers around each of them.
func TestCompileFarJumps(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5, 255, 256, 600, 1000} {
		var nrs []uint32
		for i := range n {
			nrs = append(nrs, uint32(3*i+1))
		}
		// Duplicates and disorder are allowed in the input.
		in := slices.Clone(nrs)
		slices.Reverse(in)
		if n > 0 {
			in = append(in, nrs[0])
		}
		const fallback = 0x00050001
		prog, err := compile(filter{arch: 0xc000003e, x32: true, allowed: in, fallback: fallback})
		if err != nil {
			t.Fatalf("compile(%d numbers): %v", n, err)
		}
		far := 0
		for _, in := range prog {
			if in.Code == unix.BPF_JMP|unix.BPF_JA && in.K > maxJump {
				far++
			}
		}
		if n >= 600 && far == 0 {
			t.Errorf("compile(%d numbers) made no far jump; the test does not test them", n)
		}
		member := map[uint32]bool{}
		for _, nr := range nrs {
			member[nr] = true
		}
		for nr := range uint32(3*n + 3) {
			got := mustRun(t, prog, seccompData{nr: int32(nr), arch: 0xc000003e})
			want := uint32(fallback)
			if member[nr] {
				want = unix.SECCOMP_RET_ALLOW
			}
			if got != want {
				t.Fatalf("compile(%d numbers): nr %d = %#x, want %#x", n, nr, got, want)
			}
		}
	}
}

func TestCompileTooLong(t *testing.T) {
	var nrs []uint32
	for i := range uint32(5000) {
		nrs = append(nrs, i)
	}
	if _, err := compile(filter{allowed: nrs}); err == nil {
		t.Errorf("compile(5000 numbers) succeeded, want an error")
	}
}

func TestProgramInvalidAction(t *testing.T) {
	for _, a := range []Action{0, ActionTrap + 1, -1} {
		if _, err := Program(Options{Action: a}); err == nil {
			t.Errorf("Program(Action %d) succeeded, want an error", a)
		}
	}
}

// TestTable checks the table itself: no number twice, names unique, and
// every call of the reference's list for this architecture present.
func TestTable(t *testing.T) {
	nrs := map[uint32]string{}
	names := map[string]bool{}
	for _, s := range table {
		if prev, ok := nrs[s.nr]; ok {
			t.Errorf("syscall %d listed as %s and %s", s.nr, prev, s.name)
		}
		nrs[s.nr] = s.name
		if names[s.name] {
			t.Errorf("%s listed twice", s.name)
		}
		names[s.name] = true
	}
	for _, name := range referenceList() {
		if !names[name] {
			t.Errorf("%s from the reference's list is missing", name)
		}
	}
}

// referenceList is the reference daemon's allow-list (virtiofsd 1.13) for
// the architecture the test runs on, sendto (--syslog only) included.
func referenceList() []string {
	all := strings.Fields(`
		brk clone clone3 exit exit_group futex getpid gettid getegid geteuid
		membarrier madvise mmap mprotect mremap munmap prctl rseq rt_sigaction
		rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield
		set_robust_list sigaltstack tgkill tkill getrandom clock_gettime
		gettimeofday time
		capget capset setresuid setresgid setgroups umask unshare fchdir
		accept4 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_wait
		eventfd2 recvmsg sendmsg read write writev close dup fcntl flock
		open openat openat2 open_by_handle_at name_to_handle_at fstat
		newfstatat statx fstatfs lseek getdents getdents64 pread64 preadv
		pwrite64 pwritev2 fallocate ftruncate fsync fdatasync syncfs
		copy_file_range fchmod fchmodat fchownat utimensat linkat mkdirat
		mknodat symlinkat readlinkat renameat renameat2 unlink unlinkat
		fgetxattr flistxattr fremovexattr fsetxattr getxattr listxattr
		removexattr setxattr
		sendto`)
	if runtime.GOARCH != "arm64" {
		return all
	}
	// Calls the generic system-call table of arm64 does not have.
	missing := []string{"time", "epoll_create", "epoll_wait", "open", "getdents", "unlink"}
	return slices.DeleteFunc(all, func(s string) bool { return slices.Contains(missing, s) })
}

// FuzzCompile compiles arbitrary number lists (two bytes per number, so
// that lists are dense enough to collide and long enough to need far
// jumps) and checks each member, its neighbours and a chosen number.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0}, uint32(1), true)
	long := make([]byte, 2*1200)
	for i := range 1200 {
		binary.LittleEndian.PutUint16(long[2*i:], uint16(7*i))
	}
	f.Add(long, uint32(700), false)
	f.Fuzz(func(t *testing.T, raw []byte, query uint32, x32 bool) {
		if len(raw) > 2*1500 {
			raw = raw[:2*1500]
		}
		var nrs []uint32
		member := map[uint32]bool{}
		for i := 0; i+1 < len(raw); i += 2 {
			nr := uint32(binary.LittleEndian.Uint16(raw[i:]))
			nrs = append(nrs, nr)
			member[nr] = true
		}
		const arch, fallback = 0xc00000b7, 0x7ffc0000
		prog, err := compile(filter{arch: arch, x32: x32, allowed: nrs, fallback: fallback})
		if err != nil {
			t.Fatalf("compile(%d numbers): %v", len(nrs), err)
		}
		check := func(nr uint32) {
			got := mustRun(t, prog, seccompData{nr: int32(nr), arch: arch})
			var want uint32
			switch {
			case x32 && nr&x32Bit != 0:
				want = unix.SECCOMP_RET_KILL_PROCESS
			case member[nr]:
				want = unix.SECCOMP_RET_ALLOW
			default:
				want = fallback
			}
			if got != want {
				t.Fatalf("nr %#x = %#x, want %#x", nr, got, want)
			}
		}
		check(query)
		for nr := range member {
			check(nr)
			check(nr + 1)
			check(nr - 1)
		}
		if got := mustRun(t, prog, seccompData{nr: int32(query), arch: arch + 1}); got != unix.SECCOMP_RET_KILL_PROCESS {
			t.Fatalf("foreign arch: %#x", got)
		}
	})
}
