package caps

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Status is what /proc/PID/status (or /proc/PID/task/TID/status) and
// /proc/PID/ns tell about a process or thread's privileges and isolation,
// for tests that check a running daemon (proc(5)).
type Status struct {
	PPid  int
	NSpid []int // the PID in each PID namespace, outermost first
	// CapInh, CapPrm, CapEff, CapBnd and CapAmb are the inheritable,
	// permitted, effective, bounding and ambient sets.
	CapInh, CapPrm, CapEff, CapBnd, CapAmb Set
	NoNewPrivs                             bool
	Seccomp                                int // 0 none, 1 strict, 2 filter
	// NS maps each namespace name of /proc/PID/ns ("mnt", "pid", "net",
	// "user", ...) to its inode number, the identity namespaces are
	// compared by. Entries that cannot be read are absent.
	NS map[string]uint64
}

// ReadStatus reads the status of process pid (0: the calling process).
// The Cap* lines are those of its main thread.
func ReadStatus(pid int) (Status, error) {
	return readStatus(procDir(pid))
}

// ReadThreadStatus reads the status of thread tid of process pid (0: the
// calling process).
func ReadThreadStatus(pid, tid int) (Status, error) {
	return readStatus(fmt.Sprintf("%s/task/%d", procDir(pid), tid))
}

// ReadThreads reads the status of every thread of process pid (0: the
// calling process), keyed by thread ID. Threads that exit while they are
// being read are left out.
func ReadThreads(pid int) (map[int]Status, error) {
	dir := procDir(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[int]Status, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStatus(dir + "/" + e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[tid] = st
	}
	return out, nil
}

func procDir(pid int) string {
	if pid == 0 {
		return "/proc/self"
	}
	return "/proc/" + strconv.Itoa(pid)
}

func readStatus(dir string) (Status, error) {
	text, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Status{}, err
	}
	st, err := parseStatus(text)
	if err != nil {
		return Status{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	st.NS, err = readNamespaces(dir + "/ns")
	if err != nil {
		return Status{}, err
	}
	return st, nil
}

// parseStatus extracts Status's fields from the text of a status file.
// Every Cap* line, NoNewPrivs, Seccomp and PPid must be present (Linux
// 4.10 and later have them all).
func parseStatus(text []byte) (Status, error) {
	var st Status
	caps := map[string]*Set{
		"CapInh": &st.CapInh, "CapPrm": &st.CapPrm, "CapEff": &st.CapEff,
		"CapBnd": &st.CapBnd, "CapAmb": &st.CapAmb,
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			var v uint64
			v, err = strconv.ParseUint(val, 16, 64)
			*caps[key] = Set(v)
		case "NoNewPrivs":
			var v int
			v, err = strconv.Atoi(val)
			st.NoNewPrivs = v != 0
		case "Seccomp":
			st.Seccomp, err = strconv.Atoi(val)
		case "PPid":
			st.PPid, err = strconv.Atoi(val)
		case "NSpid":
			for _, f := range strings.Fields(val) {
				var p int
				if p, err = strconv.Atoi(f); err != nil {
					break
				}
				st.NSpid = append(st.NSpid, p)
			}
		default:
			continue
		}
		if err != nil {
			return Status{}, fmt.Errorf("bad %s line %q: %w", key, val, err)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return Status{}, err
	}
	for _, key := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "PPid"} {
		if !seen[key] {
			return Status{}, fmt.Errorf("no %s line", key)
		}
	}
	return st, nil
}

// readNamespaces reads the links of an ns directory; each reads
// "TYPE:[INODE]" (namespaces(7)).
func readNamespaces(dir string) (map[string]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(ents))
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		ino, err := parseNSLink(target)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, e.Name(), err)
		}
		out[e.Name()] = ino
	}
	return out, nil
}

func parseNSLink(target string) (uint64, error) {
	_, rest, ok := strings.Cut(target, ":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, fmt.Errorf("unexpected namespace link %q", target)
	}
	return strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
}
