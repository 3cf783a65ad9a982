package passthrough

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// FS is the passthrough file system. It is safe for concurrent use.
type FS struct {
	cfg Config
	log *slog.Logger

	// procFD is an O_PATH descriptor on /proc/self/fd.
	procFD int
	// rootFD is the descriptor on the shared directory opened once at
	// start-up (Config.RootFD or Config.Root). Every INIT builds the root
	// record from it, so that replacing a component of Root afterwards
	// cannot change what is served. It stays open until Close.
	rootFD int

	// initMu serialises Init, Destroy and Close: two INITs at once (one on
	// each queue) must not both install a root record, and a DESTROY must
	// not interleave with an INIT rebuilding the tables.
	initMu sync.Mutex
	// useOpenat2 is the result of the start-up openat2 probe.
	useOpenat2 bool
	// timeout is the entry and attribute validity (§3.6), split for
	// the wire.
	timeoutSec  uint64
	timeoutNsec uint32

	// fdUsed counts the guest-fd slots in use, against fdBudget. The
	// budget is the process's, not a session's: a record of a retired
	// session keeps its slot until the last request using it is done.
	fdUsed       atomic.Int64
	fdBudget     int64
	enfileLogged atomic.Bool

	// sess is the current session (see session); never nil.
	sess atomic.Pointer[session]

	// handleMode is --inode-file-handles after the start-up self-test
	// (which may turn prefer into never).
	handleMode FileHandleMode
	// mountinfoFD is /proc/self/mountinfo, read afresh for each new
	// mount descriptor; -1 in never mode unless Config.MountinfoFD was
	// given.
	mountinfoFD int
	// mmu guards the mount descriptor table and the once-per-mount log
	// bookkeeping.
	mmu            sync.Mutex
	mounts         map[uint64]*mountFD
	noHandleLogged map[uint64]bool
	mountErrLogged map[uint64]bool
	// handleHook, if set (tests only), runs before name_to_handle_at; a
	// non-zero result is taken as that call's error.
	handleHook func(fd int) unix.Errno
	// privHook, if set (tests only), runs inside every operation that may
	// change the thread's credentials or capabilities (MKNOD, MKDIR,
	// SYMLINK, CREATE, OPEN, SETATTR size, WRITE), after the change and
	// before the system call; a non-zero result is returned as the
	// operation's error without making the call.
	privHook func() unix.Errno

	// mig is the state of an outgoing migration (migrate_save.go).
	mig migSource
}

var _ fuse.FileSystem = (*FS)(nil)

// New prepares a file system serving cfg.Root. It sets the process umask
// to 0 so that the modes the guest asks for are applied verbatim (the guest
// kernel has already applied its own umask).
//
// Preconditions: called before any worker thread unshares its fs context
// (those threads would keep their own umask).
//
// The descriptors handed over in cfg (RootFD, ProcSelfFD, MountinfoFD) are
// owned by the FS from the start: they are closed by Close, or by New itself
// when it fails.
func New(cfg Config) (*FS, error) {
	fs := &FS{
		cfg:      cfg,
		log:      cfg.Log,
		procFD:   -1,
		rootFD:   -1,
		fdBudget: int64(cfg.FDBudget),

		handleMode:     cfg.InodeFileHandles,
		mountinfoFD:    -1,
		mounts:         make(map[uint64]*mountFD),
		noHandleLogged: make(map[uint64]bool),
		mountErrLogged: make(map[uint64]bool),
	}
	if fs.log == nil {
		fs.log = slog.Default()
	}
	fs.sess.Store(newSession(nil))
	if cfg.RootFD > 0 {
		fs.rootFD = cfg.RootFD
	}
	if cfg.ProcSelfFD > 0 {
		fs.procFD = cfg.ProcSelfFD
	}
	if cfg.MountinfoFD > 0 {
		fs.mountinfoFD = cfg.MountinfoFD
	}
	if err := fs.setup(); err != nil {
		fs.Close()
		return nil, err
	}
	return fs, nil
}

// setup is New after the descriptors from the configuration are owned by
// fs; on error the caller closes everything.
func (fs *FS) setup() error {
	cfg := &fs.cfg
	if cfg.Root == "" {
		return fmt.Errorf("create passthrough fs: empty shared directory path")
	}
	if cfg.FDBudget < 0 {
		return fmt.Errorf("create passthrough fs: negative fd budget %d", cfg.FDBudget)
	}
	switch cfg.Cache {
	case CacheAuto:
		fs.timeoutSec = 1
	case CacheAlways, CacheMetadata:
		fs.timeoutSec = 86400
	case CacheNever:
	default:
		return fmt.Errorf("create passthrough fs: unknown cache policy %d", cfg.Cache)
	}
	if fs.procFD < 0 {
		fd, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("open /proc/self/fd: %w", err)
		}
		fs.procFD = fd
	}
	if fs.rootFD < 0 {
		fd, err := unix.Open(cfg.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open shared directory %s: %w", cfg.Root, err)
		}
		fs.rootFD = fd
	}
	var st unix.Stat_t
	if err := unix.Fstat(fs.rootFD, &st); err != nil {
		return fmt.Errorf("stat shared directory %s: %w", cfg.Root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("shared directory %s: %w", cfg.Root, unix.ENOTDIR)
	}
	switch cfg.InodeFileHandles {
	case FileHandlesNever:
	case FileHandlesPrefer, FileHandlesMandatory:
		if fs.mountinfoFD < 0 {
			fd, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open /proc/self/mountinfo: %w", err)
			}
			fs.mountinfoFD = fd
		}
		fs.handleHook = cfg.handleHook
		if err := fs.selfTestHandles(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("create passthrough fs: unknown file handle mode %d", cfg.InodeFileHandles)
	}
	if cfg.MigrationMode == MigrateFileHandles && fs.mountinfoFD < 0 {
		// The mount paths of a file-handles migration come from mountinfo.
		fd, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /proc/self/mountinfo: %w", err)
		}
		fs.mountinfoFD = fd
	}
	unix.Umask(0)
	fs.useOpenat2 = probeOpenat2()
	return nil
}

// FileHandleMode returns the file handle mode in force: the configured one,
// or never when the start-up self-test turned prefer off.
func (fs *FS) FileHandleMode() FileHandleMode { return fs.handleMode }

// probeOpenat2 reports whether openat2 works, by opening "." with it.
func probeOpenat2() bool {
	dot := [2]byte{'.', 0}
	fd, e := sysOpenat2(unix.AT_FDCWD, &dot[0], unix.O_PATH|unix.O_CLOEXEC, 0, 0)
	if e != 0 {
		return false
	}
	unix.Close(fd)
	return true
}

// Close releases everything, including the descriptors on /proc/self/fd
// and on the shared directory. The FS must not be used afterwards.
func (fs *FS) Close() {
	fs.initMu.Lock()
	defer fs.initMu.Unlock()
	fs.replaceSession(newSession(fs.cur()))
	for _, fd := range []*int{&fs.procFD, &fs.rootFD, &fs.mountinfoFD} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// Init implements fuse.FileSystem.Init. It builds a new session holding
// the root record and the negotiated flags, and installs it in place of any
// earlier one (which is retired, as DESTROY does). When the root cannot be
// opened the earlier session is retired all the same and INIT fails.
func (fs *FS) Init(capable uint64) (uint64, unix.Errno) {
	fs.initMu.Lock()
	defer fs.initMu.Unlock()
	s := newSession(fs.cur())
	root, e := fs.newRoot()
	if e != 0 {
		fs.replaceSession(s)
		return 0, e
	}
	s.mu.Lock()
	s.insertLocked(root)
	s.mu.Unlock()

	want := fuse.FUSE_ASYNC_READ | fuse.FUSE_ATOMIC_O_TRUNC | fuse.FUSE_BIG_WRITES |
		fuse.FUSE_HAS_IOCTL_DIR | fuse.FUSE_AUTO_INVAL_DATA | fuse.FUSE_ASYNC_DIO |
		fuse.FUSE_PARALLEL_DIROPS | fuse.FUSE_MAX_PAGES | fuse.FUSE_SUBMOUNTS |
		fuse.FUSE_INIT_EXT | fuse.FUSE_CREATE_SUPP_GROUP | fuse.FUSE_ALLOW_IDMAP
	if fs.cfg.Readdirplus && fs.cfg.Cache != CacheNever {
		want |= fuse.FUSE_DO_READDIRPLUS | fuse.FUSE_READDIRPLUS_AUTO
	}
	if fs.cfg.Writeback {
		want |= fuse.FUSE_WRITEBACK_CACHE
		s.writeback.Store(capable&fuse.FUSE_WRITEBACK_CACHE != 0)
	}
	if fs.cfg.AllowMmap {
		want |= fuse.FUSE_DIRECT_IO_ALLOW_MMAP
	}
	if fs.cfg.AnnounceSubmounts {
		if capable&fuse.FUSE_SUBMOUNTS != 0 {
			s.announce.Store(true)
		} else {
			// Printed to stderr directly, like the reference.
			fmt.Fprintln(os.Stderr, "Warning: Cannot announce submounts, client does not support it")
		}
	}
	if fs.cfg.KillprivV2 {
		want |= fuse.FUSE_HANDLE_KILLPRIV_V2
		if capable&fuse.FUSE_HANDLE_KILLPRIV_V2 == 0 {
			fs.log.Warn("Cannot enable KILLPRIV_V2, client does not support it")
		}
	}
	s.suppGroups.Store(capable&fuse.FUSE_CREATE_SUPP_GROUP != 0)
	fs.replaceSession(s)
	return want, 0
}

// newRoot builds the root record (node 1, two lookups, the table's
// reference) from a fresh O_PATH descriptor on the shared directory,
// reopened from fs.rootFD through /proc/self/fd: the record owns and
// eventually closes its descriptor, fs.rootFD stays.
func (fs *FS) newRoot() (*inode, unix.Errno) {
	var pn procName
	fd, e := sysOpenat(fs.procFD, pn.set(fs.rootFD), unix.O_PATH|unix.O_CLOEXEC, 0)
	if e != 0 {
		fs.log.Error("cannot open the shared directory", "path", fs.cfg.Root, "err", e)
		return nil, e
	}
	var stx unix.Statx_t
	var fh fileHandle
	fhp, e := fs.describe(fd, &stx, &fh)
	if e != 0 {
		return nil, e
	}
	root, e := fs.newInode(fd, keyOf(&stx), uint32(stx.Mode), fhp)
	if e != 0 {
		return nil, e
	}
	root.nodeid = RootID
	root.lookups = 2
	root.refs.Store(1)
	return root, 0
}

// cur returns the current session.
func (fs *FS) cur() *session { return fs.sess.Load() }

// Destroy implements fuse.FileSystem.Destroy: the session is replaced by
// an empty one (which keeps the ID counters). Requests in flight keep the
// records they hold until they finish.
func (fs *FS) Destroy() {
	fs.initMu.Lock()
	defer fs.initMu.Unlock()
	fs.replaceSession(newSession(fs.cur()))
}

// replaceSession makes s the current session and retires the previous
// one, releasing the table's references on its records and handles.
//
// Preconditions: fs.initMu is held.
func (fs *FS) replaceSession(s *session) {
	old := fs.sess.Swap(s)
	if old == nil || old == s {
		return
	}
	inodes, handles := old.retire()
	for _, h := range handles {
		fs.putHandle(h)
	}
	for _, in := range inodes {
		fs.putInode(in)
	}
}

// statxFD fills stx for the object open at fd.
func statxFD(fd int, stx *unix.Statx_t) unix.Errno {
	e := sysStatx(fd, &emptyPath[0], unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW,
		unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, stx)
	if e == 0 && stx.Mask&unix.STATX_BASIC_STATS != unix.STATX_BASIC_STATS {
		return unix.ENOSYS
	}
	return e
}

// fillAttr converts a statx result to a fuse_attr (flags 0).
func fillAttr(a *fuse.Attr, stx *unix.Statx_t) {
	a.Ino = stx.Ino
	a.Size = stx.Size
	a.Blocks = stx.Blocks
	a.Atime = uint64(stx.Atime.Sec)
	a.Atimensec = stx.Atime.Nsec
	a.Mtime = uint64(stx.Mtime.Sec)
	a.Mtimensec = stx.Mtime.Nsec
	a.Ctime = uint64(stx.Ctime.Sec)
	a.Ctimensec = stx.Ctime.Nsec
	a.Mode = uint32(stx.Mode)
	a.Nlink = stx.Nlink
	a.UID = stx.Uid
	a.GID = stx.Gid
	a.Rdev = uint32(unix.Mkdev(stx.Rdev_major, stx.Rdev_minor))
	a.Blksize = stx.Blksize
	a.Flags = 0
}

// checkName re-validates a guest name: a NUL-terminated single path
// component other than "." and "..". The FUSE layer already guarantees
// this; the check is cheap and keeps every name handed to a system call
// safe on its own.
func checkName(n fuse.Name) bool {
	l := len(n)
	if l < 2 || n[l-1] != 0 {
		return false
	}
	b := n[:l-1]
	if (len(b) == 1 && b[0] == '.') || (len(b) == 2 && b[0] == '.' && b[1] == '.') {
		return false
	}
	for _, c := range b {
		if c == '/' || c == 0 {
			return false
		}
	}
	return true
}

// procName is the NUL-terminated decimal name of a descriptor in
// /proc/self/fd.
type procName [24]byte

// set formats fd and returns a pointer to the name.
func (p *procName) set(fd int) *byte {
	i := len(p) - 1
	p[i] = 0
	u := uint64(fd)
	for {
		i--
		p[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	return &p[i]
}
