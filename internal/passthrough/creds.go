package passthrough

import (
	"os"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// credGuard records the per-thread credential changes made for one
// request so that restore can undo exactly those.
type credGuard struct {
	fs        *FS
	oldUID    uint32
	oldGID    uint32
	switchUID bool
	switchGID bool
	// groups is the thread's supplementary group list before the
	// request's group was installed; valid if setGroups.
	groups    []uint32
	setGroups bool
}

// switchCreds gives the calling OS thread the requesting guest user's
// effective uid and gid, and its supplementary groups if the request
// carries the FUSE_EXT_GROUPS extension, the way the reference daemon does
// it:
//
//   - uid 0 and the daemon's own euid are not switched (likewise for gids);
//   - the request's supplementary groups replace the thread's list even
//     when no switch happens (all of them: the reference accepts only one);
//   - without them, a uid or gid switch runs with no supplementary group
//     (the reference has none left after start-up);
//   - a uid switch clears the effective capabilities (the saved uid stays
//     0, so the permitted set is kept); unless the guest negotiated
//     FUSE_CREATE_SUPP_GROUP, CAP_DAC_OVERRIDE is raised again because the
//     guest cannot tell which supplementary group would have granted
//     access.
//
// On failure every change already made is undone and the errno returned.
//
// Preconditions: the calling goroutine is locked to its OS thread, and the
// caller has deferred g.restore before the call (restore undoes only what
// was recorded, so it is safe whatever switchCreds did), so that it runs on
// the same thread on every path; mkAsGuest and createAsGuest do that.
func (fs *FS) switchCreds(c *fuse.Context, g *credGuard) unix.Errno {
	*g = credGuard{fs: fs, oldUID: uint32(unix.Geteuid()), oldGID: uint32(unix.Getegid())}
	switching := (c.GID != 0 && c.GID != g.oldGID) || (c.UID != 0 && c.UID != g.oldUID)
	if c.HasSuppGID || switching {
		n, e := sysGetgroups(nil)
		if e != 0 {
			return e
		}
		if n > 0 {
			g.groups = make([]uint32, n)
			if n, e = sysGetgroups(g.groups); e != 0 {
				return e
			}
			g.groups = g.groups[:n]
		}
		// Without the extension the guest user gets no supplementary
		// group at all: the daemon's own groups must not count for it.
		// Otherwise a file it creates with S_ISGID in a set-group-ID
		// directory of one of the daemon's groups would keep the bit
		// (CVE-2022-0358). The reference drops the process's groups at
		// start-up; this also covers a daemon that was started with some.
		var gids []uint32
		if c.HasSuppGID {
			one := [1]uint32{c.SuppGID}
			gids = c.SuppGIDs
			if len(gids) == 0 {
				gids = one[:]
			}
		}
		if c.HasSuppGID || n > 0 {
			if e := sysSetgroups(gids); e != 0 {
				return e
			}
			g.setGroups = true
		}
	}
	if c.GID != 0 && c.GID != g.oldGID {
		if e := sysSetresgid(c.GID); e != 0 {
			g.restore()
			return e
		}
		g.switchGID = true
	}
	if c.UID != 0 && c.UID != g.oldUID {
		if e := sysSetresuid(c.UID); e != 0 {
			g.restore()
			return e
		}
		g.switchUID = true
		if !fs.cur().suppGroups.Load() {
			if err := raiseEffectiveCap(unix.CAP_DAC_OVERRIDE); err != nil {
				fs.log.Warn("cannot raise CAP_DAC_OVERRIDE", "err", err)
			}
		}
	}
	return 0
}

// restore undoes the changes recorded in g. A thread whose identity cannot
// be restored must never serve another request (it would do so with a
// guest user's identity), and the Go runtime offers no way to retire a
// locked thread from inside a call whose caller goes on using it, so the
// process exits. This practically cannot happen: the saved uid stays 0, so
// setresuid back to 0 is always permitted, and with euid 0 the other calls
// are permitted as well.
func (g *credGuard) restore() {
	if g.switchUID {
		if e := sysSetresuid(g.oldUID); e != 0 {
			g.fatal("restore effective uid", e)
		}
		g.switchUID = false
	}
	if g.switchGID {
		if e := sysSetresgid(g.oldGID); e != 0 {
			g.fatal("restore effective gid", e)
		}
		g.switchGID = false
	}
	if g.setGroups {
		if e := sysSetgroups(g.groups); e != 0 {
			g.fatal("restore supplementary groups", e)
		}
		g.setGroups = false
	}
}

func (g *credGuard) fatal(what string, e unix.Errno) {
	g.fs.log.Error("thread credentials tainted, exiting", "op", what, "err", e)
	os.Exit(1)
}

// raiseEffectiveCap adds capability cap to the calling thread's effective
// set (it must be in the permitted set).
func raiseEffectiveCap(cp int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[cp/32].Effective |= 1 << (uint(cp) % 32)
	return unix.Capset(&hdr, &data[0])
}

// dropFsetid removes CAP_FSETID from the calling thread's effective set if
// it is there, saving the sets in cs, and reports whether it did; the
// caller then defers restoreCaps on the same thread (see withoutFsetid). Without
// CAP_FSETID the host kernel clears the set-user-ID and set-group-ID bits
// on a write or truncation as it would for an unprivileged writer.
//
// Preconditions: the calling goroutine is locked to its OS thread.
func (fs *FS) dropFsetid(cs *capState) bool {
	if e := sysCapget(cs); e != 0 {
		fs.log.Warn("cannot read thread capabilities", "err", e)
		return false
	}
	const bit = uint32(1) << (unix.CAP_FSETID % 32)
	if cs.data[unix.CAP_FSETID/32].Effective&bit == 0 {
		return false
	}
	cs.data[unix.CAP_FSETID/32].Effective &^= bit
	if e := sysCapset(cs); e != 0 {
		fs.log.Warn("cannot drop CAP_FSETID", "err", e)
		return false
	}
	cs.data[unix.CAP_FSETID/32].Effective |= bit
	return true
}

// restoreCaps puts back the capability sets saved by dropFsetid. A thread
// that cannot get its capabilities back would serve later requests
// without them, so, like the reference, the process exits.
func (fs *FS) restoreCaps(cs *capState) {
	if e := sysCapset(cs); e != 0 {
		fs.log.Error("cannot restore CAP_FSETID, exiting", "err", e)
		os.Exit(1)
	}
}
