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
	// io is taken shared by READ and WRITE and exclusively by READDIR,
	// which moves the directory's file offset.
	io sync.RWMutex
	// refs counts the table's reference plus one per request using fd.
	refs atomic.Int32
}

// getHandle returns handle fh if it exists and belongs to nodeid, with a
// reference the caller drops with putHandle; nil otherwise (EBADF).
func (fs *FS) getHandle(nodeid, fh uint64) *handle {
	fs.hmu.Lock()
	h := fs.handles[fh]
	if h != nil && h.nodeid == nodeid {
		h.refs.Add(1)
	} else {
		h = nil
	}
	fs.hmu.Unlock()
	return h
}

func (fs *FS) putHandle(h *handle) {
	if h.refs.Add(-1) == 0 {
		unix.Close(h.fd)
		fs.uncharge()
	}
}

// addHandle registers the open descriptor fd (which it consumes) for
// nodeid and returns the new handle ID. ENFILE past the guest-fd budget.
func (fs *FS) addHandle(nodeid uint64, fd int) (uint64, unix.Errno) {
	if !fs.charge() {
		unix.Close(fd)
		return 0, unix.ENFILE
	}
	h := &handle{id: fs.nextHandle.Add(1) - 1, nodeid: nodeid, fd: fd}
	h.refs.Store(1)
	fs.hmu.Lock()
	fs.handles[h.id] = h
	fs.hmu.Unlock()
	return h.id, 0
}

// removeHandle unindexes handle fh if it belongs to nodeid; its descriptor
// closes once no request uses it any more.
func (fs *FS) removeHandle(nodeid, fh uint64) unix.Errno {
	fs.hmu.Lock()
	h := fs.handles[fh]
	if h == nil || h.nodeid != nodeid {
		fs.hmu.Unlock()
		return unix.EBADF
	}
	delete(fs.handles, fh)
	fs.hmu.Unlock()
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
