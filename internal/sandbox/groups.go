package sandbox

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// groupFiles are the files mustDropGroups reads: in a user namespace whose
// setgroups file reads "deny", setgroups(2) fails (user_namespaces(7)).
var groupFiles = struct{ ns, uidMap, gidMap, setgroups string }{
	"/proc/self/ns/user", "/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/setgroups",
}

// mustDropGroups decides whether a process with effective UID euid drops
// its supplementary groups. An unprivileged process keeps them (it could
// not drop them anyway); root drops them unless it runs in a user namespace
// that maps exactly one UID and one GID and denies setgroups(2), where the
// call would fail. warn is set when the namespace files could not be read;
// the groups are then dropped.
func mustDropGroups(euid int, readFile func(string) ([]byte, error), exists func(string) bool) (drop bool, warn error) {
	if euid != 0 {
		return false, nil
	}
	if !exists(groupFiles.ns) {
		return true, nil
	}
	var contents [3]string
	for i, name := range []string{groupFiles.uidMap, groupFiles.gidMap, groupFiles.setgroups} {
		b, err := readFile(name)
		if err != nil {
			return true, err
		}
		contents[i] = string(b)
	}
	if strings.TrimSpace(contents[2]) != "deny" {
		return true, nil
	}
	return !(singleIDMapped(contents[0]) && singleIDMapped(contents[1])), nil
}

// singleIDMapped reports whether an ID map file (uid_map or gid_map, lines
// of "inside outside count") has exactly one line, with a count of 1.
func singleIDMapped(m string) bool {
	lines := strings.Split(strings.TrimRight(m, "\n"), "\n")
	if len(lines) != 1 {
		return false
	}
	f := strings.Fields(lines[0])
	return len(f) == 3 && f[2] == "1"
}

// DropGroups empties the supplementary group list of the whole process
// when mustDropGroups says so. warn receives a message when the decision
// had to be made without the user namespace files.
func DropGroups(warn func(string)) error {
	drop, err := mustDropGroups(os.Geteuid(), os.ReadFile, func(name string) bool {
		_, err := os.Lstat(name)
		return err == nil
	})
	if err != nil {
		warn(fmt.Sprintf("Couldn't read the user namespace ID maps, dropping supplementary groups: %v", err))
	}
	if !drop {
		return nil
	}
	groups, err := syscall.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	if len(groups) == 0 {
		return nil
	}
	// syscall.Setgroups applies to every thread of the process, which is
	// what is wanted here: no thread may keep the groups.
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	return nil
}
