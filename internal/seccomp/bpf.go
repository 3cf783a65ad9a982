package seccomp

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data (linux/seccomp.h): the system-call number
// (int), the AUDIT_ARCH_* value of the calling convention (__u32), then the
// instruction pointer and the six arguments.
const (
	offNr   = 0
	offArch = 4
)

// x32Bit is __X32_SYSCALL_BIT (arch/x86/include/uapi/asm/unistd.h): x32-ABI
// calls enter through the x86-64 entry point, with the same AUDIT_ARCH, and
// differ only by this bit in the number.
const x32Bit = 0x40000000

// maxInsns is BPF_MAXINSNS (linux/bpf_common.h), the longest classic BPF
// program the kernel accepts.
const maxInsns = 4096

// leafSize is the largest group of numbers tested one after the other at
// the bottom of the search tree.
const leafSize = 4

// maxJump is the longest conditional jump: jt and jf are 8-bit offsets.
const maxJump = 255

// filter describes one program: the architecture it admits, whether x32
// numbers are refused, the allowed numbers and the return value for all
// other calls.
type filter struct {
	arch     uint32
	x32      bool
	allowed  []uint32
	fallback uint32
}

func stmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// compile assembles f into classic BPF. The layout is libseccomp's
// prologue (a call from a foreign architecture, or an x32 call when f.x32
// is set, kills the process) followed by a binary search over the sorted
// allowed numbers. Every jump goes forward; a conditional jump that would
// have to reach further than 255 instructions goes through an
// unconditional BPF_JA, whose offset is 32 bits wide.
func compile(f filter) ([]unix.SockFilter, error) {
	nrs := slices.Clone(f.allowed)
	slices.Sort(nrs)
	nrs = slices.Compact(nrs)

	prog := []unix.SockFilter{
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, f.arch, 1, 0),
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_KILL_PROCESS),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr),
	}
	if f.x32 {
		prog = append(prog,
			jump(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, x32Bit, 0, 1),
			stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_KILL_PROCESS),
		)
	}
	prog = append(prog, search(nrs, f.fallback)...)
	if len(prog) > maxInsns {
		return nil, fmt.Errorf("seccomp program of %d instructions exceeds the kernel's limit of %d", len(prog), maxInsns)
	}
	return prog, nil
}

// search returns code that, with the call number in the accumulator,
// returns SECCOMP_RET_ALLOW if it is one of nrs (sorted, distinct) and
// fallback otherwise.
func search(nrs []uint32, fallback uint32) []unix.SockFilter {
	if len(nrs) <= leafSize {
		// JEQ n_i jumps over the remaining tests and the fallback return.
		code := make([]unix.SockFilter, 0, len(nrs)+2)
		for i, nr := range nrs {
			code = append(code, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, nr, uint8(len(nrs)-i), 0))
		}
		return append(code,
			stmt(unix.BPF_RET|unix.BPF_K, fallback),
			stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW))
	}
	mid := len(nrs) / 2
	below := search(nrs[:mid], fallback)
	above := search(nrs[mid:], fallback)
	// nr >= nrs[mid] continues in above, which follows below.
	var code []unix.SockFilter
	if len(below) <= maxJump {
		code = append(code, jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, nrs[mid], uint8(len(below)), 0))
	} else {
		code = append(code,
			jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, nrs[mid], 0, 1),
			stmt(unix.BPF_JMP|unix.BPF_JA, uint32(len(below))))
	}
	code = append(code, below...)
	return append(code, above...)
}
