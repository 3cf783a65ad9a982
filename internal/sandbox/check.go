package sandbox

import "errors"

// Mode is the --sandbox mode.
type Mode int

// Sandbox modes.
const (
	ModeNamespace Mode = iota
	ModeChroot
	ModeNone
)

// Errors of Check, worded as the reference daemon words them.
var (
	ErrChrootNotRoot = errors.New("sandbox mode 'chroot' can only be used by root (Use '--sandbox namespace' instead)")
	ErrUIDMap        = errors.New("uid_map can only be used by unprivileged user where sandbox mod is namespace (Use '--sandbox namespace' instead)")
	ErrGIDMap        = errors.New("gid_map can only be used by unprivileged user where sandbox mod is namespace (Use '--sandbox namespace' instead)")
)

// Check applies the rules that hold for every mode: chroot needs root, and
// ID maps are only for an unprivileged user in namespace mode.
func Check(mode Mode, euid int, uidMaps, gidMaps bool) error {
	if mode == ModeChroot && euid != 0 {
		return ErrChrootNotRoot
	}
	if uidMaps && (euid == 0 || mode != ModeNamespace) {
		return ErrUIDMap
	}
	if gidMaps && (euid == 0 || mode != ModeNamespace) {
		return ErrGIDMap
	}
	return nil
}

// FDs are what the file system is built from after entering the sandbox.
// Descriptors are -1 when the file system is to open them itself.
type FDs struct {
	// Root is the path of the shared directory as the daemon now sees it.
	Root string
	// RootFD is an O_PATH descriptor on the shared directory.
	RootFD int
	// ProcSelfFD is an O_PATH descriptor on the daemon's /proc/self/fd.
	ProcSelfFD int
	// MountinfoFD is a read-only descriptor on /proc/self/mountinfo.
	MountinfoFD int
	// MountinfoPrefix is the host path of the new root, which mount
	// points read from mountinfo start with (chroot mode); "" otherwise.
	MountinfoPrefix string
}

// Close closes the descriptors that are open.
func (f *FDs) Close() {
	for _, p := range []*int{&f.RootFD, &f.ProcSelfFD, &f.MountinfoFD} {
		closeFD(p)
	}
}
