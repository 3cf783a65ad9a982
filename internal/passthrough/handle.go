package passthrough

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// handle is one entry of the handle table: a descriptor opened for the
// guest by OPEN, OPENDIR or CREATE.
//
// Immutable after insertion: id, nodeid, fd. refs is atomic.
type handle struct {
	id     uint64
	nodeid uint64
	fd     int
	// flags are the open(2) flags a migration destination reopens the
	// handle with (docs/migration.md).
	flags int32
	// io is taken shared by READ and WRITE and exclusively by READDIR,
	// which moves the directory's file offset.
	io sync.RWMutex
	// refs counts the table's reference plus one per request using fd.
	refs atomic.Int32
}

// getHandle returns handle fh if it exists and belongs to nodeid, with a
// reference the caller drops with putHandle. Otherwise it returns the error
// to answer: the recorded one for a handle a migration could not reopen,
// EBADF for an unknown one.
func (fs *FS) getHandle(nodeid, fh uint64) (*handle, unix.Errno) {
	s := fs.cur()
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if h := s.handles[fh]; h != nil && h.nodeid == nodeid {
		h.refs.Add(1)
		return h, 0
	}
	if f := s.failedHandles[fh]; f != nil && f.nodeid == nodeid {
		return nil, f.err
	}
	return nil, unix.EBADF
}

func (fs *FS) putHandle(h *handle) {
	if h.refs.Add(-1) == 0 {
		unix.Close(h.fd)
		fs.uncharge()
	}
}

// addHandle registers the open descriptor fd (which it consumes) for
// nodeid, with the flags a migration destination reopens it with (see
// migrationOpenFlags), and returns the new handle ID. ENFILE past the
// guest-fd budget.
func (fs *FS) addHandle(nodeid uint64, fd int, flags int32) (uint64, unix.Errno) {
	if !fs.charge() {
		unix.Close(fd)
		return 0, unix.ENFILE
	}
	h := &handle{nodeid: nodeid, fd: fd, flags: flags}
	h.refs.Store(1)
	s := fs.cur()
	for {
		s.hmu.Lock()
		if !s.hdead {
			break
		}
		// Retired meanwhile: the handle goes to the current session.
		s.hmu.Unlock()
		s = fs.cur()
	}
	h.id = s.nextHandle.Add(1) - 1
	s.handles[h.id] = h
	s.hmu.Unlock()
	return h.id, 0
}

// migrationOpenFlags returns the flags a handle is reopened with on a
// migration destination, from the guest's flags of OPEN or OPENDIR (viaOpen,
// O_DIRECTORY already added for OPENDIR) or of a CREATE that made the file:
// the open path drops O_APPEND (emulated per write) and O_NOATIME unless
// --preserve-noatime, CREATE keeps both; O_CREAT, O_EXCL and O_TRUNC are
// always cleared, as the reopen must neither create nor truncate. The
// writeback and O_DIRECT adjustments of openFlags are not recorded: the
// destination applies its own. (docs/migration.md, Handle flags.)
func (fs *FS) migrationOpenFlags(guest uint32, viaOpen bool) int32 {
	f := int(guest)
	if viaOpen {
		f &^= unix.O_APPEND
		if !fs.cfg.PreserveNoatime {
			f &^= unix.O_NOATIME
		}
	}
	return int32(f &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC))
}

// removeHandle unindexes handle fh if it belongs to nodeid; its descriptor
// closes once no request uses it any more.
func (fs *FS) removeHandle(nodeid, fh uint64) unix.Errno {
	s := fs.cur()
	s.hmu.Lock()
	h := s.handles[fh]
	if h == nil || h.nodeid != nodeid {
		f := s.failedHandles[fh]
		if f != nil && f.nodeid == nodeid {
			delete(s.failedHandles, fh)
			s.hmu.Unlock()
			return 0
		}
		s.hmu.Unlock()
		return unix.EBADF
	}
	delete(s.handles, fh)
	s.hmu.Unlock()
	fs.putHandle(h)
	return 0
}

// charge takes one guest-fd slot; false when the budget is exhausted (the
// first time, with a log record).
func (fs *FS) charge() bool {
	for {
		n := fs.fdUsed.Load()
		if n >= fs.fdBudget {
			if fs.enfileLogged.CompareAndSwap(false, true) {
				fs.log.Warn("No more file descriptors available to the guest, consider increasing the --rlimit-nofile value",
					"budget", fs.fdBudget)
			}
			return false
		}
		if fs.fdUsed.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (fs *FS) uncharge() { fs.fdUsed.Add(-1) }
