package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// IDMap is one --uid-map or --gid-map range: Count IDs from Inside in the
// daemon's user namespace are Outside and up on the host (user_namespaces(7),
// "User and group ID mappings").
type IDMap struct {
	Inside, Outside, Count uint32
}

// ParseIDMap parses ":inside:outside:count:", where the last character is
// the delimiter and the value also starts with it.
func ParseIDMap(s string) (IDMap, error) {
	bad := fmt.Errorf("invalid ID map %q", s)
	if s == "" {
		return IDMap{}, bad
	}
	r := []rune(s)
	d := string(r[len(r)-1])
	inner, ok := strings.CutPrefix(s, d)
	if ok {
		inner, ok = strings.CutSuffix(inner, d)
	}
	if !ok {
		return IDMap{}, bad
	}
	f := strings.Split(inner, d)
	if len(f) != 3 {
		return IDMap{}, bad
	}
	var v [3]uint32
	for i, x := range f {
		n, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			return IDMap{}, bad
		}
		v[i] = uint32(n)
	}
	return IDMap{Inside: v[0], Outside: v[1], Count: v[2]}, nil
}

// ParseIDMaps parses every value with ParseIDMap.
func ParseIDMaps(values []string) ([]IDMap, error) {
	var maps []IDMap
	for _, s := range values {
		m, err := ParseIDMap(s)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	return maps, nil
}

// mapsOrDefault returns maps, or the mapping of id to itself when there
// are none.
func mapsOrDefault(maps []IDMap, id int) []IDMap {
	if len(maps) > 0 {
		return maps
	}
	return []IDMap{{Inside: uint32(id), Outside: uint32(id), Count: 1}}
}

// directMapping returns the mapping a process with ID id may write into
// the user namespace of its child itself: a single range that maps only id
// (a count of 0 is taken as 1, as the reference does). ok is false when
// the setuid helper newuidmap or newgidmap has to write maps instead.
func directMapping(maps []IDMap, id int) (m syscall.SysProcIDMap, ok bool) {
	if len(maps) != 1 || maps[0].Outside != uint32(id) || maps[0].Count > 1 {
		return syscall.SysProcIDMap{}, false
	}
	return syscall.SysProcIDMap{ContainerID: int(maps[0].Inside), HostID: id, Size: 1}, true
}

// newIDMapArgs returns the arguments of newuidmap(1)/newgidmap(1) for
// process pid: the pid, then inside, outside and count of each range.
func newIDMapArgs(pid int, maps []IDMap) []string {
	args := []string{strconv.Itoa(pid)}
	for _, m := range maps {
		args = append(args, strconv.FormatUint(uint64(m.Inside), 10),
			strconv.FormatUint(uint64(m.Outside), 10), strconv.FormatUint(uint64(m.Count), 10))
	}
	return args
}

// runNewIDMap runs tool (newuidmap or newgidmap, looked up in PATH) to
// write maps for process pid. kind is "uid" or "gid", for the messages.
func runNewIDMap(tool, kind string, pid int, maps []IDMap) error {
	cmd := exec.Command(tool, newIDMapArgs(pid, maps)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		return fmt.Errorf("write to %s map failed: %s", kind, strings.TrimSpace(stderr.String()))
	default:
		return fmt.Errorf("failed to execute %s: %w", tool, err)
	}
}
