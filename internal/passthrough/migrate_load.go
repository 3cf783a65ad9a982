package passthrough

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/migration"
)

// This file is the destination side of a live migration: it rebuilds a
// session from a decoded device-state stream (docs/migration.md). The
// stream is untrusted input: every name and path in it is resolved beneath
// the shared directory without following symbolic links, every file handle
// is checked to name an object inside the shared directory, and a
// malformed stream fails cleanly.
//
// The session is built off-line and installed only when the whole load
// succeeded; on failure every descriptor opened meanwhile is closed and the
// current session stays as it was.
//
// Where this differs from the Rust virtiofsd's destination:
//   - Path names must be one component (not empty, no '/', no NUL, not "."
//     or ".."); FullPath and mount paths are resolved beneath the shared
//     directory without "..", symbolic links or absolute paths. Violations
//     are per-inode failures (on-error policy).
//   - An object opened from a FileHandle location must lie inside the
//     shared directory (see checkInside).
//   - FullPath inodes are checked against their verification handle too.
//   - The order of the inodes does not matter and the parents' lookups
//     for their Path children are given back after every inode is
//     restored; under guest-error, inodes whose parent is missing or part
//     of a cycle fail alone instead of failing the load.
//   - Duplicate node or handle IDs, node ID 0, and a root whose count does
//     not cover its children fail the load cleanly.
//   - next_inode and next_handle are raised above every restored ID.
//   - Handles are reopened with the adjustments of a normal OPEN
//     (writeback O_WRONLY→O_RDWR, O_DIRECT, O_NOATIME, close-on-exec), and
//     never with O_CREAT, O_EXCL, O_TRUNC, O_PATH or O_TMPFILE.
//   - POSIX ACLs are not supported: a source that negotiated them is
//     refused.

// errNoErrno is recorded for a failure that has no system-call error of
// its own (a lost inode, a name the stream should not contain, an object
// outside the shared directory).
const errNoErrno = unix.EIO

// loadState replaces the current session with the one st describes.
func (fs *FS) loadState(st *migration.State) error {
	fs.initMu.Lock()
	defer fs.initMu.Unlock()
	l := &loader{
		fs:      fs,
		st:      st,
		s:       newSession(fs.cur()),
		abort:   fs.cfg.MigrationOnError != OnErrorGuestError,
		mounts:  make(map[uint64]*loadMount),
		byDest:  make(map[uint64]*loadMount),
		recOf:   make(map[uint64]int),
		handled: make(map[uint64]bool),
	}
	defer l.closeMounts()
	if err := l.run(); err != nil {
		l.release()
		return err
	}
	fs.replaceSession(l.s)
	return nil
}

// loader holds one load attempt.
type loader struct {
	fs    *FS
	st    *migration.State
	s     *session // the session being built; not yet visible
	abort bool     // --migration-on-error=abort

	// mounts are the descriptors opened for the stream's mount IDs (nil
	// entry values never; a failed open is recorded in the entry), byDest
	// the same by destination mount ID, so that several source IDs for
	// one mount share a descriptor.
	mounts map[uint64]*loadMount
	byDest map[uint64]*loadMount
	paths  map[uint64]string // the stream's mount_paths

	// mmu guards mounts and byDest: FileHandle locations are opened by
	// several goroutines (restoreBatch).
	mmu sync.Mutex

	sharePath    string // the shared directory's path, for handle checks
	sharePathErr error
	shareOnce    sync.Once

	// recOf maps a node ID to its index in st.Inodes; handled marks the
	// node IDs already restored or failed.
	recOf   map[uint64]int
	handled map[uint64]bool
}

// opener is the state of one goroutine opening inodes: the last parent
// record whose descriptor openPath used, kept open (pfd, from pathFD) while
// that parent's children are restored one after the other, since a record
// held as a file handle would otherwise be opened by handle again for
// every child. parent is nil when none is held.
type opener struct {
	parent *inode
	pfd    int
}

// loadMount is the descriptor (O_RDONLY, usable for open_by_handle_at) on
// the mount that a source mount ID stands for, or the reason there is none.
type loadMount struct {
	fd  int
	err error
	e   unix.Errno
}

// inodeError is a failure to restore one inode or handle, which the
// on-error policy turns into a hard error or a failed entry.
type inodeError struct {
	msg string
	e   unix.Errno
}

func failf(e unix.Errno, format string, a ...any) *inodeError {
	return &inodeError{msg: fmt.Sprintf(format, a...), e: e}
}

// run builds l.s.
func (l *loader) run() error {
	st, fs, s := l.st, l.fs, l.s
	if err := l.checkOpts(); err != nil {
		return err
	}
	s.writeback.Store(st.Opts.Writeback)
	s.announce.Store(st.Opts.AnnounceSubmounts)
	s.suppGroups.Store(st.Opts.SupGroupExtension)

	l.paths = make(map[uint64]string, len(st.MountPaths))
	for _, mp := range st.MountPaths {
		l.paths[mp.MntID] = mp.Path
	}

	// Node IDs: unique, not 0, not the largest value (the allocator must
	// be able to go above every restored ID), RootNode exactly for ID 1.
	maxID := RootID
	for i := range st.Inodes {
		in := &st.Inodes[i]
		switch {
		case in.ID == 0 || in.ID == math.MaxUint64:
			return fmt.Errorf("invalid node id %d in the migration stream", in.ID)
		case in.Location.Kind > migration.LocFileHandle:
			return fmt.Errorf("node %d: unknown location kind %d", in.ID, in.Location.Kind)
		case in.Location.Kind == migration.LocRoot && in.ID != RootID:
			return fmt.Errorf("node %d: only node %d can be the root node", in.ID, RootID)
		case in.Location.Kind != migration.LocRoot && in.ID == RootID:
			return fmt.Errorf("node %d (the root) has a location other than the root node", RootID)
		}
		if _, dup := l.recOf[in.ID]; dup {
			return fmt.Errorf("double use of node id %d in the migration stream", in.ID)
		}
		l.recOf[in.ID] = i
		maxID = max(maxID, in.ID)
	}

	if len(st.Inodes) > 0 {
		ri, ok := l.recOf[RootID]
		if !ok {
			return fmt.Errorf("the migration stream has inodes but no root node")
		}
		if err := l.restoreRoot(&st.Inodes[ri]); err != nil {
			return err
		}
		if err := l.restoreOthers(); err != nil {
			return err
		}
		if err := l.giveBackParents(); err != nil {
			return err
		}
	}

	maxFH := uint64(0)
	for i := range st.Handles {
		h := &st.Handles[i]
		if h.ID == math.MaxUint64 {
			return fmt.Errorf("invalid handle id %d in the migration stream", h.ID)
		}
		if err := l.restoreHandle(h); err != nil {
			return err
		}
		maxFH = max(maxFH, h.ID+1)
	}

	prev := fs.cur()
	s.nextNode.Store(max(st.NextInode, maxID+1, prev.nextNode.Load()))
	s.nextHandle.Store(max(st.NextHandle, maxFH, prev.nextHandle.Load()))
	return nil
}

// checkOpts compares the source's negotiated options with what this
// daemon is configured to do.
func (l *loader) checkOpts() error {
	o, cfg := &l.st.Opts, &l.fs.cfg
	if o.Writeback && !cfg.Writeback {
		return errors.New("source wants writeback enabled but it is disabled on the destination")
	}
	if o.AnnounceSubmounts && !cfg.AnnounceSubmounts {
		return errors.New("source wants announce_submounts enabled but it is disabled on the destination")
	}
	// POSIX ACLs are not supported by this daemon.
	if o.PosixACL {
		return errors.New("source wants posix_acl enabled but it is disabled on the destination")
	}
	return nil
}

// restoreRoot builds the root record from the shared directory, as INIT
// does. A verification handle that does not match is a hard error
// whatever the on-error policy: the destination serves another directory.
func (l *loader) restoreRoot(ri *migration.Inode) error {
	root, e := l.fs.newRoot()
	if e != 0 {
		return fmt.Errorf("open the shared directory: %w", e)
	}
	root.lookups = ri.Refcount
	l.insert(root)
	l.handled[RootID] = true
	if ri.FileHandle != nil {
		fd, e := l.fs.pathFD(root)
		if e != 0 {
			return fmt.Errorf("open the shared directory: %w", e)
		}
		defer l.fs.donePath(root, fd)
		if ie := verifyHandle(fd, ri.FileHandle); ie != nil {
			return fmt.Errorf("root node: %s", ie.msg)
		}
	}
	return nil
}

// insert indexes the restored record in. Another record may already
// stand for the same object (two node IDs for one file: hard links found
// under two names, or a stream that names an object twice): both are kept
// under their own node IDs with their own lookup counts, so that every ID
// the guest holds keeps working, and the first one stays the object's entry
// in the key and handle indexes, which later LOOKUPs return.
func (l *loader) insert(in *inode) {
	s := l.s
	s.inodes[in.nodeid] = in
	if _, ok := s.byKey[in.key]; !ok {
		s.byKey[in.key] = in
	}
	if in.fh != nil {
		if _, ok := s.byHandle[*in.fh]; !ok {
			s.byHandle[*in.fh] = in
		}
	}
}

// restoreOthers restores every inode but the root. The stream's order does
// not matter: an inode described by Path is processed once its parent is
// done, the others (Invalid, FullPath, FileHandle) at once. What is left
// afterwards has a missing parent or is part of a parent cycle.
func (l *loader) restoreOthers() error {
	st := l.st
	children := make(map[uint64][]int)
	var queue []int
	for i := range st.Inodes {
		in := &st.Inodes[i]
		switch in.Location.Kind {
		case migration.LocRoot:
		case migration.LocPath:
			children[in.Location.Parent] = append(children[in.Location.Parent], i)
		default:
			queue = append(queue, i)
		}
	}
	queue = append(queue, children[RootID]...)
	// Level by level: every inode of a batch has its parent restored
	// already, so the batch can be opened in parallel; the records are
	// placed in the session in order afterwards, and the next batch holds
	// their children.
	for len(queue) > 0 {
		batch := queue
		queue = nil
		res := l.openBatch(batch)
		for k, i := range batch {
			in := &st.Inodes[i]
			if err := l.place(in, res[k].rec, res[k].ie); err != nil {
				for _, r := range res[k+1:] {
					if r.rec != nil {
						l.fs.closeInode(r.rec)
					}
				}
				return err
			}
			queue = append(queue, children[in.ID]...)
		}
	}
	for i := range st.Inodes {
		in := &st.Inodes[i]
		if l.handled[in.ID] {
			continue
		}
		ie := failf(errNoErrno, "parent node %d missing or part of a cycle", in.Location.Parent)
		if l.abort {
			return fmt.Errorf("unresolved references: node %d: %s", in.ID, ie.msg)
		}
		l.fail(in, ie)
	}
	return nil
}

// openResult is what opening one inode of a batch gave.
type openResult struct {
	rec *inode
	ie  *inodeError
}

// parallelBatch is the batch size from which openBatch spreads the work
// over several goroutines.
const parallelBatch = 256

// openBatch opens the inodes st.Inodes[i] for i in batch, on up to
// GOMAXPROCS goroutines for a large batch. Each goroutine takes a
// contiguous run of the batch, where siblings sit together, so that its
// opener keeps serving one parent descriptor. Nothing is placed in the
// session here.
func (l *loader) openBatch(batch []int) []openResult {
	res := make([]openResult, len(batch))
	work := func(lo, hi int) {
		op := opener{pfd: -1}
		defer l.dropParent(&op)
		for k := lo; k < hi; k++ {
			res[k].rec, res[k].ie = l.open(&op, &l.st.Inodes[batch[k]])
		}
	}
	n := min(runtime.GOMAXPROCS(0), len(batch)/parallelBatch+1)
	if n <= 1 {
		work(0, len(batch))
		return res
	}
	var wg sync.WaitGroup
	for w := range n {
		lo, hi := len(batch)*w/n, len(batch)*(w+1)/n
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(lo, hi)
		}()
	}
	wg.Wait()
	return res
}

// place puts the record opened for in into the session, or applies the
// on-error policy to its failure.
func (l *loader) place(in *migration.Inode, rec *inode, ie *inodeError) error {
	l.handled[in.ID] = true
	if ie != nil {
		if l.abort {
			return fmt.Errorf("restore node %d: %s", in.ID, ie.msg)
		}
		l.fail(in, ie)
		return nil
	}
	rec.nodeid = in.ID
	rec.lookups = in.Refcount
	rec.refs.Store(1) // the table's
	l.insert(rec)
	return nil
}

// fail records in as an inode the guest gets an error for.
func (l *loader) fail(in *migration.Inode, ie *inodeError) {
	e := ie.e
	if e == 0 {
		e = errNoErrno
	}
	l.fs.log.Warn(fmt.Sprintf("Failed to restore inode %d: %s", in.ID, ie.msg))
	l.s.failed[in.ID] = &failedInode{nodeid: in.ID, lookups: in.Refcount, err: e}
	l.handled[in.ID] = true
}

// open opens the object in describes and builds its record (no node ID,
// counts zero) the way a LOOKUP would, per this daemon's
// --inode-file-handles mode.
func (l *loader) open(op *opener, in *migration.Inode) (*inode, *inodeError) {
	loc := &in.Location
	var fd int
	switch loc.Kind {
	case migration.LocInvalid:
		return nil, failf(errNoErrno, "source has lost inode %d", in.ID)
	case migration.LocPath:
		var ie *inodeError
		if fd, ie = l.openPath(op, loc); ie != nil {
			return nil, ie
		}
	case migration.LocFullPath:
		var e unix.Errno
		if fd, e = l.fs.openBeneath(l.fs.rootFD, loc.Name); e != 0 {
			return nil, failf(e, "open %q in the shared directory: %v", loc.Name, e)
		}
	case migration.LocFileHandle:
		var ie *inodeError
		if fd, ie = l.openHandle(&loc.Handle); ie != nil {
			return nil, ie
		}
	default:
		return nil, failf(errNoErrno, "unexpected location kind %d", loc.Kind)
	}
	// fd is consumed below on every path.
	if in.FileHandle != nil && loc.Kind != migration.LocFileHandle {
		if ie := verifyHandle(fd, in.FileHandle); ie != nil {
			unix.Close(fd)
			return nil, ie
		}
	}
	var stx unix.Statx_t
	if e := statxFD(fd, &stx); e != 0 {
		unix.Close(fd)
		return nil, failf(e, "stat: %v", e)
	}
	if loc.Kind == migration.LocFileHandle {
		if ie := l.checkInside(fd, &stx); ie != nil {
			unix.Close(fd)
			return nil, ie
		}
	}
	var fh fileHandle
	hasFH, e := l.fs.handleFor(fd, &stx, &fh)
	if e != 0 {
		unix.Close(fd)
		return nil, failf(e, "generate a file handle: %v", e)
	}
	fhp := &fh
	if !hasFH {
		fhp = nil
	}
	rec, e := l.fs.newInode(fd, keyOf(&stx), uint32(stx.Mode), fhp)
	if e != 0 {
		return nil, failf(e, "create the inode: %v", e)
	}
	return rec, nil
}

// openPath opens Name (one path component) under the restored parent.
func (l *loader) openPath(op *opener, loc *migration.Location) (int, *inodeError) {
	if !validComponent(loc.Name) {
		return -1, failf(errNoErrno, "invalid file name %q (not a single path component)", loc.Name)
	}
	p := l.s.inodes[loc.Parent]
	if p == nil {
		e := errNoErrno
		if f := l.s.failed[loc.Parent]; f != nil {
			e = f.err
		}
		return -1, failf(e, "parent node %d could not be restored", loc.Parent)
	}
	if !p.isDir() {
		return -1, failf(unix.ENOTDIR, "parent node %d is not a directory", loc.Parent)
	}
	if op.parent != p {
		l.dropParent(op)
		pfd, e := l.fs.pathFD(p)
		if e != 0 {
			return -1, failf(e, "open parent node %d: %v", loc.Parent, e)
		}
		op.parent, op.pfd = p, pfd
	}
	fd, e := l.fs.openName(op.pfd, []byte(loc.Name+"\x00"), unix.O_PATH, 0)
	if e != 0 {
		return -1, failf(e, "open %q in node %d: %v", loc.Name, loc.Parent, e)
	}
	return fd, nil
}

// dropParent releases the parent descriptor op keeps, if any.
func (l *loader) dropParent(op *opener) {
	if op.parent != nil {
		l.fs.donePath(op.parent, op.pfd)
		op.parent, op.pfd = nil, -1
	}
}

// openHandle opens a FileHandle location on the mount the stream's
// mount_paths give for its mount ID.
func (l *loader) openHandle(h *migration.FileHandle) (int, *inodeError) {
	if len(h.Bytes) > maxHandleSize {
		return -1, failf(errNoErrno, "file handle of %d bytes (at most %d)", len(h.Bytes), maxHandleSize)
	}
	m := l.mount(h.MntID)
	if m.err != nil {
		return -1, failf(m.e, "mount id %d: %v", h.MntID, m.err)
	}
	var raw rawHandle
	raw.bytes = uint32(len(h.Bytes))
	raw.typ = h.Type
	copy(raw.data[:], h.Bytes)
	fd, e := sysOpenByHandleAt(m.fd, &raw, unix.O_PATH|unix.O_CLOEXEC)
	if e != 0 {
		return -1, failf(e, "open file handle: %v", e)
	}
	return fd, nil
}

// mount returns the descriptor for the stream's mount ID srcID, opening
// it on first use from the stream's mount path (resolved beneath the
// shared directory).
func (l *loader) mount(srcID uint64) *loadMount {
	l.mmu.Lock()
	defer l.mmu.Unlock()
	if m := l.mounts[srcID]; m != nil {
		return m
	}
	m := &loadMount{fd: -1}
	l.mounts[srcID] = m
	p, ok := l.paths[srcID]
	if !ok {
		m.err, m.e = errors.New("unknown mount id"), errNoErrno
		return m
	}
	pfd, e := l.fs.openBeneath(l.fs.rootFD, p)
	if e != 0 {
		m.err, m.e = fmt.Errorf("open mount path %q: %w", p, e), e
		return m
	}
	defer unix.Close(pfd)
	var stx unix.Statx_t
	if e := statxFD(pfd, &stx); e != 0 {
		m.err, m.e = fmt.Errorf("stat mount path %q: %w", p, e), e
		return m
	}
	if t := uint32(stx.Mode) & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
		m.err, m.e = fmt.Errorf("mount path %q is not a directory or regular file", p), errNoErrno
		return m
	}
	dest := keyOf(&stx).mntID
	if d := l.byDest[dest]; d != nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		l.mounts[srcID] = d
		return d
	}
	// open_by_handle_at does not take O_PATH descriptors.
	var pn procName
	fd, e := sysOpenat(l.fs.procFD, pn.set(pfd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if e != 0 {
		m.err, m.e = fmt.Errorf("open mount path %q: %w", p, e), e
		return m
	}
	m.fd = fd
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		l.byDest[dest] = m
	}
	return m
}

// closeMounts closes the mount descriptors of the load.
func (l *loader) closeMounts() {
	seen := make(map[*loadMount]bool)
	for _, m := range l.mounts {
		if !seen[m] && m.fd >= 0 {
			unix.Close(m.fd)
		}
		seen[m] = true
	}
}

// checkInside makes sure that the object open at fd (statx result stx),
// which open_by_handle_at found, lies inside the shared directory: a
// handle can name any object of the file system, and a mount path of "."
// gives the shared directory's whole file system. The check asks the
// kernel for the object's path (the /proc/self/fd link), which must lie
// under the shared directory's own path, and then resolves that path
// again beneath the shared directory (no "..", no symbolic links) and
// requires the same object. The second step makes the check independent
// of how the kernel prints paths it cannot connect to the process's root
// (inside a chroot, an object outside it can print like one inside).
// Hard-linked files pass when the kernel reports a name inside the shared
// directory. A file whose name the kernel does not know (a disconnected
// dentry, as open_by_handle_at can return for a file not in the dentry
// cache) or knows only outside the shared directory fails the check.
func (l *loader) checkInside(fd int, stx *unix.Statx_t) *inodeError {
	l.shareOnce.Do(func() {
		if l.sharePath == "" {
			l.sharePath, l.sharePathErr = l.fs.fdPath(l.fs.rootFD)
		}
	})
	if l.sharePathErr != nil {
		return failf(errNoErrno, "find the shared directory's path: %v", l.sharePathErr)
	}
	p, err := l.fs.fdPath(fd)
	if err != nil {
		return failf(errNoErrno, "find the object's path: %v", err)
	}
	rel, ok := pathUnder(l.sharePath, p)
	if !ok {
		return failf(errNoErrno, "file handle names %q, outside the shared directory", p)
	}
	cfd, e := l.fs.openBeneath(l.fs.rootFD, rel)
	if e != 0 {
		return failf(errNoErrno, "file handle names %q, which is not reachable in the shared directory: %v", p, e)
	}
	defer unix.Close(cfd)
	var cstx unix.Statx_t
	if e := statxFD(cfd, &cstx); e != 0 {
		return failf(e, "stat %q: %v", p, e)
	}
	if keyOf(&cstx) != keyOf(stx) {
		return failf(errNoErrno, "file handle names an object outside the shared directory (%q is another object)", p)
	}
	return nil
}

// pathUnder returns p relative to dir ("." for dir itself) when p is dir
// or below it, comparing whole path components.
func pathUnder(dir, p string) (string, bool) {
	if p == dir {
		return ".", true
	}
	prefix := dir
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok || rel == "" {
		return "", false
	}
	return rel, true
}

// verifyHandle compares the handle of the object open at fd with the
// stream's verification handle (type and bytes; the mount ID is the
// source's and is ignored).
func verifyHandle(fd int, want *migration.FileHandle) *inodeError {
	var raw rawHandle
	raw.bytes = maxHandleSize
	var mnt int32
	if e := sysNameToHandleAt(fd, &emptyPath[0], &raw, &mnt, unix.AT_EMPTY_PATH); e != 0 {
		return failf(e, "generate a file handle to verify: %v", e)
	}
	if raw.typ != want.Type || string(raw.data[:raw.bytes]) != string(want.Bytes) {
		return failf(errNoErrno, "file handle mismatch (found another object than the source had)")
	}
	return nil
}

// validComponent reports whether name is one path component: not empty,
// no '/', no NUL, not "." or "..".
func validComponent(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// openBeneath opens the relative path p beneath the directory dirfd as an
// O_PATH descriptor without leaving it: absolute paths, ".." components,
// NUL bytes and symbolic links anywhere in p (a final symbolic link is
// opened itself, not followed) are refused. Empty and "." components are
// skipped; a path of only those names dirfd itself. With openat2 the kernel
// enforces this (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS); otherwise the path
// is walked one component at a time with O_NOFOLLOW.
func (fs *FS) openBeneath(dirfd int, p string) (int, unix.Errno) {
	if p == "" || p[0] == '/' || strings.IndexByte(p, 0) >= 0 {
		return -1, unix.EINVAL
	}
	var comps []string
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "..":
			return -1, unix.EXDEV
		case "", ".":
			continue
		}
		comps = append(comps, c)
	}
	const flags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if len(comps) == 0 {
		return sysOpenat(dirfd, &[]byte(".\x00")[0], flags, 0)
	}
	if fs.useOpenat2 {
		name := []byte(strings.Join(comps, "/") + "\x00")
		return sysOpenat2(dirfd, &name[0], flags, 0,
			unix.RESOLVE_BENEATH|unix.RESOLVE_NO_MAGICLINKS|unix.RESOLVE_NO_SYMLINKS)
	}
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for i, c := range comps {
		name := []byte(c + "\x00")
		fd, e := sysOpenat(cur, &name[0], flags, 0)
		if e != 0 {
			return -1, e
		}
		if i < len(comps)-1 {
			// Only a directory may be walked through: a symbolic link
			// opened with O_NOFOLLOW would fail below with ENOTDIR
			// anyway, but say it like openat2 does.
			var stx unix.Statx_t
			if e := statxFD(fd, &stx); e != 0 {
				unix.Close(fd)
				return -1, e
			}
			switch uint32(stx.Mode) & unix.S_IFMT {
			case unix.S_IFDIR:
			case unix.S_IFLNK:
				unix.Close(fd)
				return -1, unix.ELOOP
			default:
				unix.Close(fd)
				return -1, unix.ENOTDIR
			}
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
	}
	fd := cur
	cur = dirfd
	return fd, 0
}

// giveBackParents gives back, for every Path inode, the lookup its
// parent's serialized count holds for it, and drops the records (and
// failed inodes) that reach zero: directories that were only needed to
// find their children. Under --migration-on-error=abort a count that would
// go below zero is a hard error (the stream is inconsistent); under
// guest-error it stops at zero. The root must keep at least one lookup.
func (l *loader) giveBackParents() error {
	s := l.s
	for i := range l.st.Inodes {
		in := &l.st.Inodes[i]
		if in.Location.Kind != migration.LocPath {
			continue
		}
		pid := in.Location.Parent
		var n *uint64
		if p := s.inodes[pid]; p != nil {
			n = &p.lookups
		} else if f := s.failed[pid]; f != nil {
			n = &f.lookups
		} else {
			continue
		}
		if *n == 0 {
			if l.abort {
				return fmt.Errorf("node %d: refcount smaller than its number of children", pid)
			}
			continue
		}
		*n--
	}
	for id, in := range s.inodes {
		if in.lookups > 0 {
			continue
		}
		if id == RootID {
			return fmt.Errorf("root node: refcount smaller than its number of children")
		}
		s.unindexLocked(in)
		l.fs.putInode(in)
	}
	for id, f := range s.failed {
		if f.lookups == 0 {
			delete(s.failed, id)
		}
	}
	return nil
}

// restoreHandle reopens one handle through its inode's record, with the
// flags of a normal OPEN (the source stores the guest's flags before the
// writeback and O_DIRECT adjustments); handle.flags keeps the stream's
// flags so that a later migration forwards them unchanged.
func (l *loader) restoreHandle(h *migration.Handle) error {
	s := l.s
	if s.handles[h.ID] != nil || s.failedHandles[h.ID] != nil {
		return fmt.Errorf("double use of handle id %d in the migration stream", h.ID)
	}
	ie := l.openHandleFD(h)
	if ie == nil {
		return nil
	}
	if l.abort {
		return fmt.Errorf("restore handle %d (node %d): %s", h.ID, h.Inode, ie.msg)
	}
	e := ie.e
	if e == 0 {
		e = errNoErrno
	}
	l.fs.log.Warn(fmt.Sprintf("Failed to restore handle %d of inode %d: %s", h.ID, h.Inode, ie.msg))
	s.failedHandles[h.ID] = &failedHandle{id: h.ID, nodeid: h.Inode, flags: h.Flags, err: e}
	return nil
}

// openHandleFD opens and indexes handle h.
func (l *loader) openHandleFD(h *migration.Handle) *inodeError {
	s := l.s
	in := s.inodes[h.Inode]
	if in == nil {
		if f := s.failed[h.Inode]; f != nil {
			return failf(f.err, "inode %d could not be restored", h.Inode)
		}
		return failf(unix.EBADF, "unknown inode %d", h.Inode)
	}
	flags := l.fs.openFlagsFor(uint32(h.Flags), s.writeback.Load())
	flags &^= unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_PATH | (unix.O_TMPFILE &^ unix.O_DIRECTORY)
	if !l.fs.charge() {
		return failf(unix.ENFILE, "no file descriptor left for the guest")
	}
	fd, e := l.fs.reopen(in, flags)
	if e != 0 {
		l.fs.uncharge()
		return failf(e, "open with flags %#x: %v", flags, e)
	}
	nh := &handle{id: h.ID, nodeid: h.Inode, fd: fd, flags: h.Flags}
	nh.refs.Store(1)
	s.handles[h.ID] = nh
	return nil
}

// release drops everything a failed load built.
func (l *loader) release() {
	s := l.s
	for _, h := range s.handles {
		l.fs.putHandle(h)
	}
	for _, in := range s.inodes {
		l.fs.putInode(in)
	}
	s.handles, s.inodes = nil, nil
}
