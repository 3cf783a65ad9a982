package passthrough

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/migration"
)

// The source side of a migration (docs/migration.md):
//
//   - prepareMigration (dirty logging turned on) starts a background
//     preparation that attaches a migration info to every record: the
//     parent record and name it can be found under (find-paths mode) or
//     its file handle (file-handles mode). While prepared, the session's
//     track flag makes requests keep the infos current.
//   - saveState (device stopped) joins the preparation, re-checks every
//     path against the host (the host may have renamed or deleted files
//     meanwhile), builds the State and clears the infos again, so that the
//     session is exactly as before and the source can go on serving if the
//     migration fails.
//
// A Path info holds one lookup on its parent record, which keeps the parent
// indexed while the child needs it (directories the guest never looked up
// get records for that purpose, and lose them when the infos are cleared).
// The serialized refcount of a record is therefore its lookup count,
// corrected for infos that are not sent as Path.

// migInfo is a record's migration info. Immutable once attached (a change
// replaces it).
type migInfo struct {
	// parent and name: a Path location. parent holds one lookup for the
	// info.
	parent *inode
	name   string
	// fh: a FileHandle location (file-handles mode); parent is nil.
	fh *migration.FileHandle
	// verify is the record's handle for --migration-verify-handles; nil
	// if none could be made (the record is then sent as Invalid).
	verify *migration.FileHandle
}

// migSource is the FS's outgoing migration state.
type migSource struct {
	// mu serialises prepareMigration, cancelMigration and saveState.
	mu   sync.Mutex
	prep *migPrep
	// perRecord, if set (tests only), runs before each record of a
	// parallel pass.
	perRecord func()
}

// migPrep is one background preparation.
type migPrep struct {
	s    *session
	stop atomic.Bool
	done chan struct{}
	ok   bool // finished without being stopped; read after done
}

// prepareMigration starts preparing the current session in the
// background, stopping any earlier preparation first.
func (fs *FS) prepareMigration() {
	fs.mig.mu.Lock()
	defer fs.mig.mu.Unlock()
	fs.stopPrepLocked()
	p := &migPrep{s: fs.cur(), done: make(chan struct{})}
	fs.mig.prep = p
	go func() {
		defer close(p.done)
		p.ok = fs.prepare(p.s, &p.stop)
	}()
}

// cancelMigration stops and joins the preparation, and clears what it
// attached.
func (fs *FS) cancelMigration() {
	fs.mig.mu.Lock()
	defer fs.mig.mu.Unlock()
	fs.stopPrepLocked()
}

// stopPrepLocked stops and joins the running preparation, if any, and
// ends tracking in its session.
//
// Preconditions: fs.mig.mu is held.
func (fs *FS) stopPrepLocked() {
	p := fs.mig.prep
	if p == nil {
		return
	}
	fs.mig.prep = nil
	p.stop.Store(true)
	<-p.done
	fs.endMigration(p.s)
}

// endMigration turns tracking off in s and clears every migration info,
// giving back the lookups the Path infos held.
func (fs *FS) endMigration(s *session) {
	s.mu.Lock()
	s.track.Store(false)
	chain := s.clearInfosLocked()
	s.mu.Unlock()
	fs.putChain(chain)
}

// startTracking clears every info of s and turns tracking on.
func (fs *FS) startTracking(s *session) {
	s.mu.Lock()
	chain := s.clearInfosLocked()
	s.track.Store(!s.dead)
	s.mu.Unlock()
	fs.putChain(chain)
}

// clearInfosLocked drops every info and returns the chain of records that
// left the table.
//
// Preconditions: s.mu is held.
func (s *session) clearInfosLocked() *inode {
	var chain *inode
	for _, in := range s.inodes {
		if in.mig != nil {
			chain = s.dropInfoLocked(in, chain)
		}
	}
	return chain
}

// dropInfoLocked removes in's info and gives back the lookup a Path info
// held on its parent; a parent left without lookups is unindexed, its own
// info dropped in turn, and it is pushed on chain (through dropNext) for
// the caller to release after unlocking. It returns the new chain.
//
// Preconditions: s.mu is held.
func (s *session) dropInfoLocked(in *inode, chain *inode) *inode {
	for in != nil {
		info := in.mig
		in.mig = nil
		if info == nil || info.parent == nil {
			break
		}
		p := info.parent
		if s.inodes[p.nodeid] != p || p.lookups == 0 {
			break
		}
		if p.lookups--; p.lookups > 0 {
			break
		}
		s.unindexLocked(p)
		p.dropNext = chain
		chain = p
		in = p
	}
	return chain
}

// putChain drops the table's reference of every record on chain.
func (fs *FS) putChain(chain *inode) {
	for chain != nil {
		next := chain.dropNext
		chain.dropNext = nil
		fs.putInode(chain)
		chain = next
	}
}

// get returns the record nodeid of s with a reference, or nil.
func (s *session) get(nodeid uint64) *inode {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.inodes[nodeid]
	if in != nil {
		in.refs.Add(1)
	}
	return in
}

// ids returns the node IDs of s, ascending, without the root's; with
// pathsOnly, only those of records with a Path info, and with missingOnly,
// only those without an info.
func (s *session) ids(pathsOnly, missingOnly bool) []uint64 {
	s.mu.Lock()
	ids := make([]uint64, 0, len(s.inodes))
	for id, in := range s.inodes {
		switch {
		case id == RootID:
		case pathsOnly && (in.mig == nil || in.mig.parent == nil):
		case missingOnly && in.mig != nil:
		default:
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// prepare builds the migration infos of s; it reports false when stopped
// before the end.
func (fs *FS) prepare(s *session, stop *atomic.Bool) bool {
	fs.startTracking(s)
	if fs.cfg.MigrationMode == MigrateFileHandles {
		fs.prepFileHandles(s, stop, s.ids(false, true))
		return !stop.Load()
	}
	// The paths found are checked again when saving (finishInfos), which
	// also covers what tracking changed meanwhile, so no separate check
	// runs here.
	if fs.procPaths(s, stop, s.ids(false, true)) == walkFallBack && !stop.Load() {
		w := fs.newWalker(s, stop)
		w.findPaths()
		w.close()
	}
	return !stop.Load()
}

// prepFileHandles attaches a FileHandle info to each record of ids that
// has none.
func (fs *FS) prepFileHandles(s *session, stop *atomic.Bool, ids []uint64) {
	for _, id := range ids {
		if stop != nil && stop.Load() {
			return
		}
		if in := s.get(id); in != nil {
			fs.attachHandle(s, in)
			fs.putInode(in)
		}
	}
}

// attachHandle gives in a FileHandle info if it has none.
func (fs *FS) attachHandle(s *session, in *inode) {
	h, e := fs.migHandle(in)
	if e != 0 {
		fs.log.Warn(fmt.Sprintf("Failed to generate file handle for inode %d, it will not be migrated: %v", in.nodeid, e))
		return
	}
	info := &migInfo{fh: h}
	if fs.cfg.MigrationVerifyHandles {
		info.verify = h
	}
	s.mu.Lock()
	if s.track.Load() && s.inodes[in.nodeid] == in && in.mig == nil && in.nodeid != RootID {
		in.mig = info
	}
	s.mu.Unlock()
}

// attachPath gives in the info Path(parent, name), taking a lookup on
// parent. An info in already has is kept, unless replace is set and it is a
// Path info: then it is replaced. A name that is not UTF-8 cannot be sent:
// in is left without an info (replace drops the old one). It reports
// whether in has an info afterwards.
func (fs *FS) attachPath(s *session, in, parent *inode, name string, replace bool) bool {
	var verify *migration.FileHandle
	valid := utf8.ValidString(name) && name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
	if valid && fs.cfg.MigrationVerifyHandles {
		h, e := fs.migHandle(in)
		if e != 0 {
			fs.log.Warn(fmt.Sprintf("Failed to generate file handle for inode %d, it will not be migrated: %v", in.nodeid, e))
		}
		verify = h
	}
	var chain *inode
	defer func() { fs.putChain(chain) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.track.Load() || in.nodeid == RootID || in == parent || s.inodes[in.nodeid] != in {
		return false
	}
	if old := in.mig; old != nil {
		if old.parent == parent && old.name == name {
			return true
		}
		if !replace || old.parent == nil {
			return true
		}
	}
	if !valid {
		if in.mig != nil {
			chain = s.dropInfoLocked(in, nil)
		}
		return false
	}
	if s.inodes[parent.nodeid] != parent {
		return false
	}
	parent.lookups++ // before dropping the old info, which may hold parent's last lookup
	if in.mig != nil {
		chain = s.dropInfoLocked(in, nil)
	}
	in.mig = &migInfo{parent: parent, name: name, verify: verify}
	return true
}

// migHandle returns in's file handle in the stream's form: the record's
// own, or a new one from name_to_handle_at with the mount ID it reports.
func (fs *FS) migHandle(in *inode) (*migration.FileHandle, unix.Errno) {
	if in.fh != nil {
		return &migration.FileHandle{MntID: in.fh.mntID, Type: in.fh.raw.typ,
			Bytes: slices.Clone(in.fh.raw.data[:in.fh.raw.bytes])}, 0
	}
	return handleAt(in.fd, &emptyPath[0], unix.AT_EMPTY_PATH)
}

// handleAt makes the file handle of dirfd/name (never following a final
// symbolic link unless flags say so).
func handleAt(dirfd int, name *byte, flags int) (*migration.FileHandle, unix.Errno) {
	var raw rawHandle
	raw.bytes = maxHandleSize
	var mnt int32
	if e := sysNameToHandleAt(dirfd, name, &raw, &mnt, flags); e != 0 {
		return nil, e
	}
	return &migration.FileHandle{MntID: uint64(uint32(mnt)), Type: raw.typ,
		Bytes: slices.Clone(raw.data[:raw.bytes])}, 0
}

// sameHandle compares two handles as a destination does: type and bytes,
// not the mount ID.
func sameHandle(a, b *migration.FileHandle) bool {
	return a.Type == b.Type && string(a.Bytes) == string(b.Bytes)
}

// sameObject reports whether stx describes in's object.
func sameObject(stx *unix.Statx_t, in *inode) bool {
	k := keyOf(stx)
	if k.ino != in.key.ino || k.dev != in.key.dev {
		return false
	}
	return k.mntID == 0 || in.key.mntID == 0 || k.mntID == in.key.mntID
}

// walkResult is the outcome of finding one record's path.
type walkResult int

const (
	walkDone          walkResult = iota
	walkUnrecoverable            // this record cannot be found by path; go on with the next
	walkFallBack                 // the path of /proc/self/fd is not usable: traverse the tree
	walkMismatch                 // the path leads to another object
)

// walker finds paths for the records of one session.
type walker struct {
	fs   *FS
	s    *session
	stop *atomic.Bool
	// rootPath is the shared directory's path as /proc/self/fd shows it;
	// "" when it could not be read.
	rootPath string
	// dirs are descriptors on directory records, by their path relative
	// to the shared directory ("" for the root) where known, and by record.
	dirs   map[string]*walkDir
	byNode map[*inode]*walkDir
	link   []byte
	name   []byte
}

// walkDir is a directory record with a reference and an O_PATH descriptor
// (pathFD) held by the walker.
type walkDir struct {
	in *inode
	fd int
}

func (fs *FS) newWalker(s *session, stop *atomic.Bool) *walker {
	w := &walker{fs: fs, s: s, stop: stop, dirs: make(map[string]*walkDir),
		byNode: make(map[*inode]*walkDir), link: make([]byte, unix.PathMax)}
	if root := s.get(RootID); root != nil {
		d := w.dirOf(root)
		fs.putInode(root)
		if d != nil {
			w.dirs[""] = d
			if p, e := w.readLink(d.fd); e == nil && strings.HasPrefix(p, "/") && !strings.HasSuffix(p, " (deleted)") {
				w.rootPath = p
			} else {
				fs.log.Warn(fmt.Sprintf("Failed to get the shared directory's path: %v", e))
			}
		}
	}
	return w
}

func (w *walker) stopped() bool { return w.stop != nil && w.stop.Load() }

// close releases the walker's descriptors and references.
func (w *walker) close() {
	for in, d := range w.byNode {
		w.fs.donePath(in, d.fd)
		w.fs.putInode(in)
	}
	w.byNode, w.dirs = nil, nil
}

// dirOf returns the walker's descriptor on in (which the caller holds a
// reference on), opening it if needed; nil on failure.
func (w *walker) dirOf(in *inode) *walkDir {
	if d := w.byNode[in]; d != nil {
		return d
	}
	fd, e := w.fs.pathFD(in)
	if e != 0 {
		return nil
	}
	in.refs.Add(1)
	d := &walkDir{in: in, fd: fd}
	w.byNode[in] = d
	return d
}

func (w *walker) readLink(fd int) (string, error) {
	var pn procName
	n, e := sysReadlinkat(w.fs.procFD, pn.set(fd), w.link)
	if e != 0 {
		return "", e
	}
	if n == len(w.link) {
		return "", unix.ENAMETOOLONG
	}
	return string(w.link[:n]), nil
}

// indexed reports whether in is still in the walker's session.
func (w *walker) indexed(in *inode) bool {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.inodes[in.nodeid] == in
}

// release gives back one lookup the walker took on in and its reference.
func (w *walker) release(in *inode) {
	s := w.s
	s.mu.Lock()
	var chain *inode
	drop := s.inodes[in.nodeid] == in && s.forgetLocked(in, 1)
	if drop && in.mig != nil {
		chain = s.dropInfoLocked(in, nil)
	}
	s.mu.Unlock()
	if drop {
		w.fs.putInode(in)
	}
	w.fs.putChain(chain)
	w.fs.putInode(in)
}

// procPaths attaches Path infos to the records of ids that have none, from
// the paths /proc/self/fd shows for them, on several threads. It stops at
// the first record that needs the tree traversal and reports walkFallBack.
func (fs *FS) procPaths(s *session, stop *atomic.Bool, ids []uint64) walkResult {
	var fallBack atomic.Bool
	fs.eachID(s, stop, ids, func(w *walker, id uint64) bool {
		if w.rootPath == "" {
			fallBack.Store(true)
			return false
		}
		in := w.s.get(id)
		if in == nil {
			return true
		}
		r := w.derive(in)
		w.fs.putInode(in)
		if r == walkFallBack {
			fallBack.Store(true)
			return false
		}
		return true
	})
	if fallBack.Load() {
		return walkFallBack
	}
	return walkDone
}

// eachID runs f for every ID of ids, in chunks of ascending IDs, on up to
// GOMAXPROCS goroutines with a walker each (the work is one or two system
// calls per record, so with 100,000 records the threads pay off). It
// stops early when stop is set or f returns false.
func (fs *FS) eachID(s *session, stop *atomic.Bool, ids []uint64, f func(w *walker, id uint64) bool) {
	const chunk = 512
	workers := min(runtime.GOMAXPROCS(0), (len(ids)+chunk-1)/chunk)
	var next atomic.Int64
	var quit atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := fs.newWalker(s, stop)
			defer w.close()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(ids) {
					return
				}
				for _, id := range ids[lo:min(lo+chunk, len(ids))] {
					if fs.mig.perRecord != nil {
						fs.mig.perRecord()
					}
					if quit.Load() || w.stopped() {
						return
					}
					if !f(w, id) {
						quit.Store(true)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// derive attaches a Path info to in (held by the caller) if it has none,
// from its /proc/self/fd path.
func (w *walker) derive(in *inode) walkResult {
	w.s.mu.Lock()
	has := in.mig != nil
	w.s.mu.Unlock()
	if has || in.nodeid == RootID {
		return walkDone
	}
	if w.rootPath == "" {
		return walkFallBack
	}
	fd, e := w.fs.pathFD(in)
	if e != 0 {
		w.fs.log.Warn(fmt.Sprintf("Failed to find inode %d for migration: %v", in.nodeid, e))
		return walkUnrecoverable
	}
	defer w.fs.donePath(in, fd)
	r := walkUnrecoverable
	// A second try covers a rename between reading the link and walking.
	for try := 0; try < 2; try++ {
		p, err := w.readLink(fd)
		if err != nil {
			return walkFallBack
		}
		rel, cr := w.relPath(p, fd)
		if cr != walkDone {
			if cr == walkUnrecoverable {
				w.fs.log.Warn(fmt.Sprintf("Failed to find inode %d for migration: no usable path (%q)", in.nodeid, p))
			}
			return cr
		}
		if !utf8.ValidString(rel) {
			w.fs.log.Warn(fmt.Sprintf("Failed to find inode %d for migration: path %q is not UTF-8", in.nodeid, rel))
			return walkUnrecoverable
		}
		if r = w.walkTo(rel, in); r == walkDone {
			return walkDone
		}
	}
	if r == walkMismatch {
		return walkFallBack
	}
	w.fs.log.Warn(fmt.Sprintf("Failed to find inode %d for migration: its path cannot be walked", in.nodeid))
	return walkUnrecoverable
}

// relPath classifies the /proc/self/fd link p of the object open at fd and
// returns its path relative to the shared directory.
func (w *walker) relPath(p string, fd int) (string, walkResult) {
	if !strings.HasPrefix(p, "/") {
		return "", walkUnrecoverable // "pipe:[…]", "anon_inode:…": not a file
	}
	linked := func(min uint32) walkResult {
		var stx unix.Statx_t
		if statxFD(fd, &stx) == 0 && stx.Nlink > min {
			return walkFallBack // another name may still lead to it
		}
		return walkUnrecoverable
	}
	if strings.HasSuffix(p, " (deleted)") {
		return "", linked(0)
	}
	var rel string
	var ok bool
	if w.rootPath == "/" {
		rel, ok = p[1:], p != "/"
	} else {
		rel, ok = strings.CutPrefix(p, w.rootPath+"/")
	}
	if !ok || rel == "" {
		return "", linked(1)
	}
	return rel, walkDone
}

// walkTo walks rel from the deepest directory the walker already knows
// (the root at worst) with real lookups, attaching Path infos to the
// directories on the way that have none, and checks that the last
// component is target, which gets Path(last directory, last component).
func (w *walker) walkTo(rel string, target *inode) walkResult {
	// Find the deepest known ancestor.
	start := len(rel)
	var d *walkDir
	for {
		i := strings.LastIndexByte(rel[:start], '/')
		if i < 0 {
			start = 0
		} else {
			start = i
		}
		if d = w.dirs[rel[:start]]; d != nil && (start == 0 || w.indexed(d.in)) {
			break
		}
		if d != nil {
			delete(w.dirs, rel[:start])
		}
		if start == 0 {
			return walkUnrecoverable
		}
	}
	if start > 0 {
		start++ // past the '/'
	}
	var held *inode // the directory whose lookup the walk holds
	defer func() {
		if held != nil {
			w.release(held)
		}
	}()
	for {
		end := strings.IndexByte(rel[start:], '/')
		if end < 0 {
			break
		}
		comp := rel[start : start+end]
		child, e := w.lookupChild(d, comp)
		if e != 0 {
			return walkUnrecoverable
		}
		w.fs.attachPath(w.s, child, d.in, comp, false)
		if held != nil {
			w.release(held)
		}
		held = child
		if d = w.dirOf(child); d == nil {
			return walkUnrecoverable
		}
		w.dirs[rel[:start+end]] = d
		start += end + 1
	}
	comp := rel[start:]
	var stx unix.Statx_t
	if e := sysStatx(d.fd, w.cname(comp), unix.AT_SYMLINK_NOFOLLOW,
		unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &stx); e != 0 {
		return walkUnrecoverable
	}
	if !sameObject(&stx, target) {
		return walkMismatch
	}
	if !w.fs.attachPath(w.s, target, d.in, comp, false) {
		return walkUnrecoverable
	}
	if target.isDir() {
		if td := w.dirOf(target); td != nil {
			w.dirs[rel] = td
		}
	}
	return walkDone
}

// cname returns comp NUL-terminated in the walker's buffer.
func (w *walker) cname(comp string) *byte {
	w.name = append(append(w.name[:0], comp...), 0)
	return &w.name[0]
}

// lookupChild looks comp up in d like a guest LOOKUP: the record comes
// back with one more lookup and a reference (release gives both back).
func (w *walker) lookupChild(d *walkDir, comp string) (*inode, unix.Errno) {
	w.cname(comp)
	fd, e := w.fs.openName(d.fd, fuse.Name(w.name), unix.O_PATH, 0)
	if e != 0 {
		return nil, e
	}
	return w.fs.addEntryIn(w.s, fd)
}

// addEntryIn is addEntry for the object open at the O_PATH descriptor fd
// (consumed) in session s, failing with EBADF once s is retired.
func (fs *FS) addEntryIn(s *session, fd int) (*inode, unix.Errno) {
	var stx unix.Statx_t
	var fh fileHandle
	fhp, e := fs.describe(fd, &stx, &fh)
	if e != 0 {
		return nil, e
	}
	return fs.addEntryTo(s, false, fd, keyOf(&stx), uint32(stx.Mode), fhp)
}

// checkPaths verifies every Path info against the host: parent/name must
// still be the record's object (same device and inode number; with
// confirm, also the same file handle when one can be made). A stale info
// is dropped and derived again from /proc/self/fd. It reports whether a
// record needs the tree traversal.
func (fs *FS) checkPaths(s *session, stop *atomic.Bool, confirm bool) bool {
	var fallBack atomic.Bool
	fs.eachID(s, stop, s.ids(true, false), func(w *walker, id uint64) bool {
		if w.checkPath(id, confirm) {
			fallBack.Store(true)
		}
		return true
	})
	return fallBack.Load()
}

// checkPath is checkPaths for record id.
func (w *walker) checkPath(id uint64, confirm bool) (fallBack bool) {
	var stx unix.Statx_t
	s := w.s
	s.mu.Lock()
	in := s.inodes[id]
	var info *migInfo
	if in != nil && in.mig != nil && in.mig.parent != nil && s.inodes[in.mig.parent.nodeid] == in.mig.parent {
		info = in.mig
		in.refs.Add(1)
		info.parent.refs.Add(1)
	}
	s.mu.Unlock()
	if info == nil {
		return false
	}
	defer w.fs.putInode(in)
	defer w.fs.putInode(info.parent)
	ok := false
	if d := w.dirOf(info.parent); d != nil {
		name := w.cname(info.name)
		ok = sysStatx(d.fd, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &stx) == 0 &&
			sameObject(&stx, in)
		if ok && confirm {
			ref := info.verify
			if ref == nil {
				ref, _ = w.fs.migHandle(in)
			}
			if ref != nil {
				h, e := handleAt(d.fd, name, 0)
				ok = e == 0 && sameHandle(h, ref)
			}
		}
	}
	if ok {
		return false
	}
	s.mu.Lock()
	var chain *inode
	if in.mig == info {
		chain = s.dropInfoLocked(in, nil)
	}
	s.mu.Unlock()
	w.fs.putChain(chain)
	return w.derive(in) == walkFallBack
}

// findPaths traverses the shared directory depth first and gives every
// record met a Path info under the name it was met at (replacing Path
// infos); directories without a record get one for the traversal, which
// stays only while an info refers to it.
func (w *walker) findPaths() {
	rd := w.dirs[""]
	if rd == nil {
		return
	}
	w.fs.log.Info("Falling back to a traversal of the shared directory to find the paths of all inodes")
	type item struct {
		in   *inode
		held bool // the traversal holds a lookup (and a reference)
	}
	stack := []item{{in: rd.in}}
	visited := map[inodeKey]bool{rd.in.key: true}
	buf := make([]byte, 32<<10)
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !w.stopped() {
			for _, sub := range w.readDir(it.in, buf, visited) {
				stack = append(stack, item{in: sub, held: true})
			}
		}
		if it.held {
			w.release(it.in)
		}
	}
}

// readDir gives the records found in directory d a Path info and returns
// the subdirectories to descend into, each with a lookup and a reference
// the caller gives back with release.
func (w *walker) readDir(d *inode, buf []byte, visited map[inodeKey]bool) (subs []*inode) {
	fs, s := w.fs, w.s
	dfd, e := fs.reopen(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if e != 0 {
		fs.log.Warn(fmt.Sprintf("Failed to open directory (inode %d) for the migration traversal: %v", d.nodeid, e))
		return nil
	}
	defer unix.Close(dfd)
	var stx unix.Statx_t
	for {
		n, e := sysGetdents(dfd, buf)
		if e != 0 || n <= 0 {
			if e != 0 {
				fs.log.Warn(fmt.Sprintf("Failed to read directory (inode %d) for the migration traversal: %v", d.nodeid, e))
			}
			return subs
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				break
			}
			raw := b[19:reclen]
			b = b[reclen:]
			if i := slices.Index(raw, 0); i >= 0 {
				raw = raw[:i]
			}
			name := string(raw)
			if name == "." || name == ".." || name == "" {
				continue
			}
			if w.stopped() {
				return subs
			}
			if !utf8.ValidString(name) {
				fs.log.Error(fmt.Sprintf("Cannot migrate %q in directory inode %d: name is not UTF-8", name, d.nodeid))
				continue
			}
			cn := w.cname(name)
			if sysStatx(dfd, cn, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &stx) != 0 {
				continue
			}
			key := keyOf(&stx)
			isDir := uint32(stx.Mode)&unix.S_IFMT == unix.S_IFDIR
			if isDir {
				if visited[key] {
					continue
				}
				visited[key] = true
			}
			var fh fileHandle
			var fhp *fileHandle
			if fs.handleMode != FileHandlesNever {
				var mnt int32
				fh.raw.bytes = maxHandleSize
				if sysNameToHandleAt(dfd, cn, &fh.raw, &mnt, 0) == 0 {
					clear(fh.raw.data[fh.raw.bytes:])
					fh.mntID = key.mntID
					if stx.Mask&unix.STATX_MNT_ID == 0 {
						fh.mntID = uint64(uint32(mnt))
					}
					fhp = &fh
				}
			}
			s.mu.Lock()
			rec := s.findLocked(key, fhp)
			if rec != nil {
				rec.refs.Add(1)
				if isDir {
					rec.lookups++
				}
			}
			s.mu.Unlock()
			if rec == nil && isDir {
				fd, e := fs.openName(dfd, fuse.Name(w.name), unix.O_PATH, 0)
				if e == 0 {
					rec, e = fs.addEntryIn(s, fd)
				}
				if e != 0 {
					fs.log.Warn(fmt.Sprintf("Cannot look up %q in directory inode %d for migration: %v", name, d.nodeid, e))
					continue
				}
			}
			if rec == nil {
				continue
			}
			if rec.nodeid != RootID {
				fs.attachPath(s, rec, d, name, true)
			}
			if isDir {
				subs = append(subs, rec)
			} else {
				fs.putInode(rec)
			}
		}
	}
}

// saveState builds the device state of the current session (the device is
// stopped) and leaves the session as it was.
func (fs *FS) saveState() (*migration.State, error) {
	fs.mig.mu.Lock()
	defer fs.mig.mu.Unlock()
	s := fs.cur()
	p := fs.mig.prep
	fs.mig.prep = nil
	prepared := false
	if p != nil {
		<-p.done
		prepared = p.ok && p.s == s
		if p.s != s {
			fs.endMigration(p.s)
		}
	}
	defer fs.endMigration(s)
	if !prepared {
		fs.log.Warn("Migration state was not prepared while the guest ran (no dirty logging?), preparing it now")
		var never atomic.Bool
		if !fs.prepare(s, &never) {
			return nil, errors.New("prepare the migration state: session ended")
		}
	}
	if err := fs.finishInfos(s); err != nil {
		return nil, err
	}
	return fs.buildState(s)
}

// finishInfos is the save-time part of the preparation: every Path is
// checked against the host again (files may have been renamed or deleted
// by the host since) and records without an info get another chance.
func (fs *FS) finishInfos(s *session) error {
	if fs.cfg.MigrationMode == MigrateFileHandles {
		fs.prepFileHandles(s, nil, s.ids(false, true))
		return nil
	}
	w := fs.newWalker(s, nil)
	defer w.close()
	confirm := fs.cfg.MigrationConfirmPaths
	if confirm && w.rootPath == "" {
		s.mu.Lock()
		n := len(s.inodes)
		s.mu.Unlock()
		if n > 0 {
			return errors.New("confirm migration paths: cannot determine the shared directory's path")
		}
	}
	var never atomic.Bool
	fallBack := fs.checkPaths(s, &never, confirm)
	if fs.procPaths(s, &never, s.ids(false, true)) == walkFallBack {
		fallBack = true
	}
	if fallBack {
		w.findPaths()
	}
	return nil
}

// buildState serializes s with the infos attached to its records.
func (fs *FS) buildState(s *session) (*migration.State, error) {
	var rootVerify *migration.FileHandle
	if fs.cfg.MigrationVerifyHandles {
		if root := s.get(RootID); root != nil {
			h, e := fs.migHandle(root)
			fs.putInode(root)
			if e != 0 {
				fs.log.Warn(fmt.Sprintf("Failed to generate file handle for the root node: %v", e))
			}
			rootVerify = h
		}
	}
	st := &migration.State{
		Version:    migration.V2,
		NextInode:  s.nextNode.Load(),
		NextHandle: s.nextHandle.Load(),
		Opts: migration.NegotiatedOpts{
			Writeback:         s.writeback.Load(),
			AnnounceSubmounts: s.announce.Load(),
			PosixACL:          false, // POSIX ACLs are not supported
			SupGroupExtension: s.suppGroups.Load(),
		},
	}
	verify := fs.cfg.MigrationVerifyHandles
	mounts := map[uint64]bool{}

	s.mu.Lock()
	recs := make([]*inode, 0, len(s.inodes))
	for _, in := range s.inodes {
		recs = append(recs, in)
	}
	slices.SortFunc(recs, func(a, b *inode) int {
		if a.nodeid < b.nodeid {
			return -1
		}
		if a.nodeid > b.nodeid {
			return 1
		}
		return 0
	})
	// A Path location is sent only if its chain of parents reaches the
	// root through records that are sent as well; anything else could
	// never be resolved by the destination.
	const (
		unknown = iota
		busy
		good
		bad
	)
	state := make(map[*inode]uint8, len(recs))
	var resolve func(in *inode) bool
	resolve = func(in *inode) bool {
		var path []*inode
		for {
			if in.nodeid == RootID && s.inodes[RootID] == in {
				state[in] = good
				break
			}
			switch state[in] {
			case good:
			case busy, bad:
				state[in] = bad
			default:
				info := in.mig
				if info == nil || info.parent == nil || s.inodes[info.parent.nodeid] != info.parent ||
					(verify && info.verify == nil) || !utf8.ValidString(info.name) {
					state[in] = bad
				} else {
					state[in] = busy
					path = append(path, in)
					in = info.parent
					continue
				}
			}
			break
		}
		res := state[in]
		for _, p := range path {
			state[p] = res
		}
		return res == good
	}
	pinsAll := make(map[*inode]uint64)
	pinsSent := make(map[*inode]uint64)
	for _, in := range recs {
		if in.mig != nil && in.mig.parent != nil {
			pinsAll[in.mig.parent]++
			if resolve(in) {
				pinsSent[in.mig.parent]++
			}
		}
	}
	st.Inodes = make([]migration.Inode, 0, len(recs)+len(s.failed))
	for _, in := range recs {
		guest := uint64(0)
		if in.lookups > pinsAll[in] {
			guest = in.lookups - pinsAll[in]
		}
		mi := migration.Inode{ID: in.nodeid, Refcount: guest + pinsSent[in],
			Location: migration.Location{Kind: migration.LocInvalid}}
		info := in.mig
		switch {
		case in.nodeid == RootID:
			mi.Location.Kind = migration.LocRoot
			mi.FileHandle = rootVerify
		case info != nil && info.fh != nil && fs.cfg.MigrationMode == MigrateFileHandles:
			mi.Location = migration.Location{Kind: migration.LocFileHandle, Handle: *info.fh}
			mi.FileHandle = info.verify
			mounts[info.fh.MntID] = true
		case info != nil && info.parent != nil && resolve(in):
			mi.Location = migration.Location{Kind: migration.LocPath, Parent: info.parent.nodeid, Name: info.name}
			if verify {
				mi.FileHandle = info.verify
			}
		}
		st.Inodes = append(st.Inodes, mi)
	}
	for id, f := range s.failed {
		st.Inodes = append(st.Inodes, migration.Inode{ID: id, Refcount: f.lookups,
			Location: migration.Location{Kind: migration.LocInvalid}})
	}
	s.mu.Unlock()
	slices.SortFunc(st.Inodes, func(a, b migration.Inode) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})

	s.hmu.Lock()
	st.Handles = make([]migration.Handle, 0, len(s.handles)+len(s.failedHandles))
	for _, h := range s.handles {
		st.Handles = append(st.Handles, migration.Handle{ID: h.id, Inode: h.nodeid, Flags: h.flags})
	}
	for _, f := range s.failedHandles {
		st.Handles = append(st.Handles, migration.Handle{ID: f.id, Inode: f.nodeid, Flags: f.flags})
	}
	s.hmu.Unlock()
	slices.SortFunc(st.Handles, func(a, b migration.Handle) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})

	if len(mounts) > 0 {
		st.MountPaths = fs.mountPaths(mounts)
	}
	return st, nil
}

// mountPaths returns the mount point of each mount relative to the shared
// directory ("." for the share itself or a mount point outside it),
// ascending by mount ID; mounts whose point cannot be found are left out.
func (fs *FS) mountPaths(mounts map[uint64]bool) []migration.MountPath {
	var share string
	if fs.rootFD >= 0 {
		share, _ = fs.fdPath(fs.rootFD)
	}
	ids := make([]uint64, 0, len(mounts))
	for id := range mounts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []migration.MountPath
	for _, id := range ids {
		mp, err := fs.mountPoint(id)
		if err != nil || share == "" {
			fs.log.Warn(fmt.Sprintf("Cannot find the mount point of mount ID %d for migration: %v", id, err))
			continue
		}
		out = append(out, migration.MountPath{MntID: id, Path: relativeMount(mp, share)})
	}
	return out
}

// relativeMount expresses mount point mp relative to the shared directory
// share, comparing whole path components: "." for share itself, and for a
// mount point outside it (a mount the share lies in).
func relativeMount(mp, share string) string {
	share = strings.TrimRight(share, "/")
	mp = strings.TrimRight(mp, "/")
	if mp == share {
		return "."
	}
	rest, ok := strings.CutPrefix(mp, share+"/")
	if !ok || rest == "" || !utf8.ValidString(rest) {
		return "."
	}
	return rest
}
