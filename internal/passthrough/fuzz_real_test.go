package passthrough

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/fuse"
)

// FuzzRealFS feeds sequences of FUSE requests, decoded from the fuzzer's
// bytes, through the fuse.Server into the real passthrough file system. The
// shared directory ("scratch") lives inside a sentinel directory that also
// holds a secret file and a sibling directory, and scratch holds symbolic
// links that point out of it. After each input it checks that:
//
//   - nothing outside scratch changed (names, types, modes, owners, sizes,
//     link counts, mtimes and ctimes of the sentinel tree and its parent);
//   - every object the guest was handed a node for lies inside scratch;
//   - every handle the guest opened is a regular file or a directory (no
//     FIFO, device or socket is ever opened for real), inside scratch;
//   - a guest user's new set-gid, group-executable file belongs to one of
//     that user's groups, although the process is a member of the set-gid
//     directory's group (CVE-2022-0358);
//   - after DESTROY the process holds exactly the descriptors it held
//     before INIT;
//   - the server recovered no panic.
//
// Input format: a sequence of operations. One byte selects the operation
// (fuzzOps), the following bytes fill its fields; node IDs, handles and
// names are picked by one byte each from the IDs seen in earlier replies and
// from a small dictionary (fuzzNames) that includes "..", "/", "", "." and
// over-long names, so that most inputs are valid-ish requests. Missing bytes
// read as zero. As root, requests come from uid/gid 0, 1000, 65534 or
// 5000, so that creations run with switched credentials, and may carry a
// supplementary-group extension; otherwise from the test's own IDs.
func FuzzRealFS(f *testing.F) {
	for _, seed := range fuzzRealSeeds() {
		f.Add(seed)
	}
	box := newFuzzBox(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		box.run(t, data)
	})
}

// fuzzBox is the sentinel tree shared by all inputs of one process.
type fuzzBox struct {
	top      string // parent of sentinel; only sentinel lives there
	sentinel string
	scratch  string // sentinel/scratch, the shared directory
	root     bool
	uid, gid uint32
	// before is the snapshot of everything outside scratch.
	before string

	// One file system, server and worker serve every input, each input
	// being a session from INIT to DESTROY (a Worker holds 2 MiB of
	// buffers, too much to allocate per input).
	fs     *FS
	w      *fuse.Worker
	panics fuzzPanics
	out    []byte
}

func newFuzzBox(f *testing.F) *fuzzBox {
	top := fuzzTempDir(f)
	b := &fuzzBox{
		top:      top,
		sentinel: filepath.Join(top, "sentinel"),
		root:     os.Geteuid() == 0,
		uid:      uint32(os.Geteuid()),
		gid:      uint32(os.Getegid()),
	}
	b.scratch = filepath.Join(b.sentinel, "scratch")
	for _, d := range []string{b.sentinel, b.scratch, filepath.Join(b.sentinel, "sibling")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for p, data := range map[string]string{
		filepath.Join(b.sentinel, "secret"):           "secret",
		filepath.Join(b.sentinel, "sibling", "inner"): "inner",
	} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Symlink("scratch/file", filepath.Join(b.sentinel, "inlink")); err != nil {
		f.Fatal(err)
	}
	b.before = b.snapshot(f)
	if b.root {
		// The daemon process is a member of the set-gid directory's
		// group, as in CVE-2022-0358: guest users' creations must still
		// not keep S_ISGID there (fuzzRun.created). setgroups applies to
		// every thread of the process (syscall.Setgroups); no test of this
		// package runs in parallel with a fuzz target.
		old, err := syscall.Getgroups()
		if err != nil {
			f.Fatal(err)
		}
		if err := syscall.Setgroups(append(old, 5000)); err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() {
			if err := syscall.Setgroups(old); err != nil {
				panic(err)
			}
		})
	}
	fsys, err := New(testConfig(b.scratch))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(fsys.Close)
	b.fs = fsys
	b.w = fuse.NewServerWithOptions(fsys, fuse.Options{Log: slog.New(&b.panics)}).NewWorker()
	b.out = make([]byte, 1<<17)
	return b
}

// fuzzTempDir returns a new temporary directory, on the tmpfs at /dev/shm
// when there is one: the inputs create, write and sync files by the
// thousand, which should not cost disk writes (SYNCFS and FSYNC flush the
// whole file system).
func fuzzTempDir(f *testing.F) string {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		if dir, err := os.MkdirTemp("/dev/shm", "FuzzRealFS"); err == nil {
			f.Cleanup(func() {
				emptyDir(dir)
				os.Remove(dir)
			})
			return dir
		}
	}
	return f.TempDir()
}

// snapshot describes the listing of top and the sentinel tree, scratch
// excluded (the guest may change scratch's own attributes and contents),
// with file contents. Access times are left out (reads update them).
func (b *fuzzBox) snapshot(t testing.TB) string {
	t.Helper()
	var sb strings.Builder
	ents, err := os.ReadDir(b.top)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fmt.Fprintf(&sb, "top: %s\n", e.Name())
	}
	err = filepath.WalkDir(b.sentinel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == b.scratch {
			return fs.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&sb, "%s ino=%d mode=%#o uid=%d gid=%d size=%d nlink=%d mtime=%d.%d ctime=%d.%d",
			p, st.Ino, st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " data=%q", data)
		}
		sb.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// reset empties scratch and fills it with the fixed starting content. Its
// own attributes are reset too (the guest may have changed them).
func (b *fuzzBox) reset(t testing.TB) {
	t.Helper()
	if err := os.Chmod(b.scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	if b.root {
		os.Lchown(b.scratch, 0, 0)
	}
	if err := emptyDir(b.scratch); err != nil {
		t.Fatalf("empty scratch: %v", err)
	}
	mk := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	s := b.scratch
	mk(os.WriteFile(filepath.Join(s, "file"), []byte("0123456789"), 0o644))
	mk(os.MkdirAll(filepath.Join(s, "dir", "sub"), 0o755))
	mk(os.WriteFile(filepath.Join(s, "dir", "inner"), []byte("in"), 0o600))
	mk(unix.Mkfifo(filepath.Join(s, "fifo"), 0o666))
	mk(os.Symlink("..", filepath.Join(s, "up")))
	mk(os.Symlink("../secret", filepath.Join(s, "secretlink")))
	mk(os.Symlink(b.sentinel, filepath.Join(s, "abs")))
	mk(os.Symlink("../../sibling", filepath.Join(s, "dir", "out")))
	mk(os.Symlink("/proc/self/fd/3", filepath.Join(s, "procfd")))
	if b.root {
		// A guest-visible directory owned by another user, set-gid.
		g := filepath.Join(s, "sgid")
		mk(os.Mkdir(g, 0o777))
		mk(os.Chown(g, 0, 5000))
		mk(unix.Chmod(g, 0o2777))
	}
}

// emptyDir removes everything inside dir, first making directories
// writable and searchable (the guest may have chmodded them).
func emptyDir(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.Type().IsDir() {
			if err := emptyDir(p); err != nil {
				return err
			}
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// fuzzNames is the name dictionary; a name byte beyond it takes a raw name
// from the input.
var fuzzNames = []string{
	"file", "dir", "sub", "inner", "fifo", "up", "secretlink", "abs", "out", "procfd", "sgid",
	"new", "x", "y", "..", ".", "/", "", "secret", "sibling", "scratch", "sentinel", "inlink",
	"../secret", "dir/sub", "../../sibling/inner", "/etc/passwd", "self", "3", "0",
	strings.Repeat("a", 255), strings.Repeat("b", 256), "dev", "tmp",
}

// fuzzTargets are symlink targets.
var fuzzTargets = []string{"..", "../secret", "/", "/proc/self/fd/3", "file", "dir/sub", "", strings.Repeat("c", 4096), "abs/secret"}

// fuzzRdevs are the device numbers MKNOD may ask for: harmless devices
// (null, zero, full) and a loop device number that is not expected to
// exist, so that a failure of the property under test cannot harm the
// host.
var fuzzRdevs = []uint32{0, uint32(unix.Mkdev(1, 3)), uint32(unix.Mkdev(1, 5)), uint32(unix.Mkdev(1, 7)), uint32(unix.Mkdev(7, 250))}

var fuzzTypes = []uint32{unix.S_IFREG, unix.S_IFDIR, unix.S_IFIFO, unix.S_IFLNK, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK, 0}

// fuzzPanics counts the panics the server recovered and keeps the first.
type fuzzPanics struct {
	mu    sync.Mutex
	n     int
	first string
}

func (h *fuzzPanics) Enabled(context.Context, slog.Level) bool { return true }
func (h *fuzzPanics) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "recover panic") {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	if h.first == "" {
		var sb strings.Builder
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&sb, "%s=%v\n", a.Key, a.Value)
			return true
		})
		h.first = sb.String()
	}
	return nil
}
func (h *fuzzPanics) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n, h.first = 0, ""
}

func (h *fuzzPanics) get() (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n, h.first
}

func (h *fuzzPanics) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *fuzzPanics) WithGroup(string) slog.Handler      { return h }

// fuzzMaxOps bounds the operations decoded from one input.
const fuzzMaxOps = 64

// fuzzRun is the state of one input.
type fuzzRun struct {
	t      *testing.T
	box    *fuzzBox
	fs     *FS
	w      *fuse.Worker
	data   []byte
	nodes  []uint64
	fhs    []uint64
	unique uint64
	out    []byte
	failed string
}

func (b *fuzzBox) run(t *testing.T, data []byte) {
	b.reset(t)
	b.panics.reset()
	r := &fuzzRun{t: t, box: b, fs: b.fs, w: b.w, data: data, nodes: []uint64{RootID}, out: b.out}
	fdsBefore := openFDList(t)
	onLockedThread(t, func() {
		r.init()
		for i := 0; i < fuzzMaxOps && len(r.data) > 0 && r.failed == ""; i++ {
			r.step()
		}
		r.serve(fuse.FUSE_DESTROY, 0, nil)
	})
	if r.failed != "" {
		t.Fatal(r.failed)
	}
	if n, first := b.panics.get(); n != 0 {
		t.Fatalf("server recovered %d panics; first:\n%s", n, first)
	}
	if after := openFDList(t); after != fdsBefore {
		t.Fatalf("descriptors before INIT:\n%s\nafter DESTROY:\n%s", fdsBefore, after)
	}
	if now := b.snapshot(t); now != b.before {
		t.Fatalf("the tree outside the shared directory changed:\nbefore:\n%s\nafter:\n%s", b.before, now)
	}
}

// openFDList lists the process's descriptors and what they point to.
func openFDList(t testing.TB) string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		lines = append(lines, e.Name()+" -> "+l)
	}
	sort.Strings(lines)
	return fmt.Sprintf("%d descriptors\n%s", len(lines), strings.Join(lines, "\n"))
}

func (r *fuzzRun) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	c := r.data[0]
	r.data = r.data[1:]
	return c
}

func (r *fuzzRun) u16() uint16 { return uint16(r.byte()) | uint16(r.byte())<<8 }
func (r *fuzzRun) u32() uint32 { return uint32(r.u16()) | uint32(r.u16())<<16 }
func (r *fuzzRun) u64() uint64 { return uint64(r.u32()) | uint64(r.u32())<<32 }

// node picks a node ID: mostly one seen in a reply, sometimes a bogus one.
func (r *fuzzRun) node() uint64 {
	c := r.byte()
	switch c {
	case 0xff:
		return 0
	case 0xfe:
		return 1 << 40
	case 0xfd:
		return r.fs.cur().nextNode.Load() // the next one to be handed out
	}
	return r.nodes[int(c)%len(r.nodes)]
}

func (r *fuzzRun) fh() uint64 {
	c := r.byte()
	if c == 0xff || len(r.fhs) == 0 {
		return uint64(c)
	}
	return r.fhs[int(c)%len(r.fhs)]
}

// name returns a NUL-terminated name.
func (r *fuzzRun) name() []byte {
	c := int(r.byte())
	var s []byte
	if c < len(fuzzNames) {
		s = []byte(fuzzNames[c])
	} else {
		n := int(r.byte()) % 16
		s = append(s, r.data[:min(n, len(r.data))]...)
		r.data = r.data[min(n, len(r.data)):]
	}
	return append(s, 0)
}

func (r *fuzzRun) mode() uint32 {
	return fuzzTypes[int(r.byte())%len(fuzzTypes)] | uint32(r.u16())&0o7777
}

// id picks a guest uid or gid.
func (r *fuzzRun) id(own uint32) uint32 {
	c := r.byte()
	if !r.box.root {
		return own
	}
	return []uint32{0, 1000, 65534, 5000}[c%4]
}

func le(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		switch v := v.(type) {
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("le: %T", v))
		}
	}
	return b
}

// serve sends one request and returns the reply's error and payload.
func (r *fuzzRun) serveAs(op fuse.Opcode, nodeid uint64, uid, gid uint32, body []byte) (int32, []byte) {
	r.unique++
	req := le(uint32(40+len(body)), uint32(op), r.unique, nodeid, uid, gid, uint32(4242), uint32(0))
	req = append(req, body...)
	n := r.w.Serve([][]byte{req}, [][]byte{r.out})
	if n == 0 {
		return 0, nil
	}
	if n < 16 {
		r.failed = fmt.Sprintf("opcode %d: reply of %d bytes", op, n)
		return 0, nil
	}
	return int32(binary.LittleEndian.Uint32(r.out[4:])), r.out[16:n]
}

func (r *fuzzRun) serve(op fuse.Opcode, nodeid uint64, body []byte) (int32, []byte) {
	return r.serveAs(op, nodeid, r.box.uid, r.box.gid, body)
}

func (r *fuzzRun) init() {
	flags := uint32(fuse.FUSE_INIT_EXT | fuse.FUSE_DO_READDIRPLUS | fuse.FUSE_READDIRPLUS_AUTO | fuse.FUSE_SUBMOUNTS)
	flags2 := uint32(fuse.FUSE_CREATE_SUPP_GROUP >> 32)
	if e, _ := r.serve(fuse.FUSE_INIT, 0, le(uint32(7), uint32(38), uint32(1<<17), flags, flags2, make([]byte, 44))); e != 0 {
		r.failed = fmt.Sprintf("INIT = %d", e)
	}
}

// groups returns, as root and when the next byte says so, a
// supplementary-group request extension and its groups.
func (r *fuzzRun) groups() ([]byte, []uint32) {
	c := r.byte()
	if !r.box.root || c&1 == 0 {
		return nil, nil
	}
	set := []uint32{1000, 5000, 65534, 0}
	gids := []uint32{set[(c>>1)%4]}
	if c&8 != 0 {
		gids = append(gids, set[(c>>4)%4])
	}
	b := le(uint32(8+8+4*len(gids)+4*(len(gids)%2)), uint32(fuse.FUSE_EXT_GROUPS), uint32(len(gids)))
	for _, g := range gids {
		b = le(b, g)
	}
	if len(gids)%2 == 0 {
		b = le(b, uint32(0)) // pad to 8 bytes
	}
	return b, gids
}

// created checks a successful MKNOD, MKDIR, SYMLINK or CREATE reply made
// for guest uid:gid with supplementary groups gids; fresh tells that the
// reply is for a new object (not CREATE opening an existing file). A new
// non-directory that is set-gid and group-executable must belong to one of
// the requester's groups (CVE-2022-0358; without group execute permission
// S_ISGID grants nothing and the kernel keeps it). Requests from guest
// uid 0 run unswitched, with the daemon's privileges, and are not checked.
func (r *fuzzRun) created(uid, gid uint32, gids []uint32, fresh bool, e int32, p []byte) {
	r.entry(e, p)
	if e != 0 || len(p) < 116 || uid == 0 || !fresh || r.failed != "" {
		return
	}
	mode := binary.LittleEndian.Uint32(p[100:])
	fgid := binary.LittleEndian.Uint32(p[112:])
	if mode&(unix.S_ISGID|unix.S_IXGRP) != unix.S_ISGID|unix.S_IXGRP || mode&unix.S_IFMT == unix.S_IFDIR || fgid == gid {
		return
	}
	for _, g := range gids {
		if g == fgid {
			return
		}
	}
	r.failed = fmt.Sprintf("uid %d gid %d groups %v created a set-gid object of group %d (mode %#o)", uid, gid, gids, fgid, mode)
}

// entry records the node of a successful LOOKUP-like reply and checks that
// its object lies inside the shared directory.
func (r *fuzzRun) entry(e int32, p []byte) {
	if e != 0 || len(p) < 8 {
		return
	}
	id := binary.LittleEndian.Uint64(p)
	r.checkNode(id)
	if len(r.nodes) < 64 {
		r.nodes = append(r.nodes, id)
	}
}

// checkNode fails the run if nodeid's object is outside scratch.
func (r *fuzzRun) checkNode(nodeid uint64) {
	in, _ := r.fs.getInode(nodeid)
	if in == nil {
		r.failed = fmt.Sprintf("node %d from a reply is unknown", nodeid)
		return
	}
	defer r.fs.putInode(in)
	p, err := r.fs.inodePath(in)
	if err != nil {
		return // e.g. a file handle whose object is gone
	}
	if !r.inside(p) {
		r.failed = fmt.Sprintf("node %d is %q, outside the shared directory %q", nodeid, p, r.box.scratch)
	}
}

func (r *fuzzRun) inside(p string) bool {
	p = strings.TrimSuffix(p, " (deleted)")
	return p == r.box.scratch || strings.HasPrefix(p, r.box.scratch+"/")
}

// handle records the handle of a successful OPEN-like reply and checks that
// it is a regular file or directory inside scratch.
func (r *fuzzRun) handle(nodeid uint64, e int32, p []byte) {
	if e != 0 || len(p) < 8 {
		return
	}
	fh := binary.LittleEndian.Uint64(p)
	h, _ := r.fs.getHandle(nodeid, fh)
	if h == nil {
		r.failed = fmt.Sprintf("handle %d of node %d from a reply is unknown", fh, nodeid)
		return
	}
	defer r.fs.putHandle(h)
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		r.failed = fmt.Sprintf("fstat handle %d: %v", fh, err)
		return
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		r.failed = fmt.Sprintf("handle %d of node %d opened a file of type %#o", fh, nodeid, t)
		return
	}
	if p, err := r.fs.fdPath(h.fd); err == nil && !r.inside(p) {
		r.failed = fmt.Sprintf("handle %d of node %d is %q, outside the shared directory", fh, nodeid, p)
	}
	if len(r.fhs) < 64 {
		r.fhs = append(r.fhs, fh)
	}
}

// fuzzOps are the operations the first byte of a step selects.
var fuzzOps = []func(r *fuzzRun){
	func(r *fuzzRun) { // LOOKUP
		e, p := r.serve(fuse.FUSE_LOOKUP, r.node(), r.name())
		r.entry(e, p)
	},
	func(r *fuzzRun) { // FORGET
		r.serve(fuse.FUSE_FORGET, r.node(), le(uint64(r.byte()%4)))
	},
	func(r *fuzzRun) { // BATCH_FORGET
		a, b := r.node(), r.node()
		r.serve(fuse.FUSE_BATCH_FORGET, 0, le(uint32(2), uint32(0), a, uint64(r.byte()%4), b, uint64(r.byte()%4)))
	},
	func(r *fuzzRun) { // GETATTR
		n := r.node()
		r.serve(fuse.FUSE_GETATTR, n, le(uint32(r.byte()&1), uint32(0), r.fh()))
	},
	func(r *fuzzRun) { // SETATTR
		n := r.node()
		valid := r.u32() & (fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_GID | fuse.FATTR_SIZE | fuse.FATTR_ATIME |
			fuse.FATTR_MTIME | fuse.FATTR_FH | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_CTIME | fuse.FATTR_KILL_SUIDGID)
		fh, size := r.fh(), uint64(r.u16())
		at, mt := uint64(r.u32()), uint64(r.u32())
		mode := r.mode()
		uid, gid := r.id(r.box.uid), r.id(r.box.gid)
		r.serve(fuse.FUSE_SETATTR, n, le(valid, uint32(0), fh, size, uint64(0), at, mt, uint64(0),
			uint32(0), uint32(0), uint32(0), mode, uint32(0), uid, gid, uint32(0)))
	},
	func(r *fuzzRun) { // READLINK
		r.serve(fuse.FUSE_READLINK, r.node(), nil)
	},
	func(r *fuzzRun) { // SYMLINK
		n, name := r.node(), r.name()
		target := fuzzTargets[int(r.byte())%len(fuzzTargets)]
		uid, gid := r.id(r.box.uid), r.id(r.box.gid)
		ext, gids := r.groups()
		e, p := r.serveAs(fuse.FUSE_SYMLINK, n, uid, gid, le(name, []byte(target+"\x00"), ext))
		r.created(uid, gid, gids, true, e, p)
	},
	func(r *fuzzRun) { // MKNOD
		n, name, mode := r.node(), r.name(), r.mode()
		rdev := fuzzRdevs[int(r.byte())%len(fuzzRdevs)]
		uid, gid := r.id(r.box.uid), r.id(r.box.gid)
		ext, gids := r.groups()
		e, p := r.serveAs(fuse.FUSE_MKNOD, n, uid, gid, le(mode, rdev, uint32(0o022), uint32(0), name, ext))
		r.created(uid, gid, gids, true, e, p)
	},
	func(r *fuzzRun) { // MKDIR
		n, name, mode := r.node(), r.name(), r.mode()
		uid, gid := r.id(r.box.uid), r.id(r.box.gid)
		ext, gids := r.groups()
		e, p := r.serveAs(fuse.FUSE_MKDIR, n, uid, gid, le(mode, uint32(0o022), name, ext))
		r.created(uid, gid, gids, true, e, p)
	},
	func(r *fuzzRun) { // UNLINK
		r.serve(fuse.FUSE_UNLINK, r.node(), r.name())
	},
	func(r *fuzzRun) { // RMDIR
		r.serve(fuse.FUSE_RMDIR, r.node(), r.name())
	},
	func(r *fuzzRun) { // RENAME
		a, an, b, bn := r.node(), r.name(), r.node(), r.name()
		r.serve(fuse.FUSE_RENAME, a, le(b, an, bn))
	},
	func(r *fuzzRun) { // RENAME2
		a, an, b, bn := r.node(), r.name(), r.node(), r.name()
		r.serve(fuse.FUSE_RENAME2, a, le(b, uint32(r.byte()&7), uint32(0), an, bn))
	},
	func(r *fuzzRun) { // LINK
		old, np, name := r.node(), r.node(), r.name()
		e, p := r.serve(fuse.FUSE_LINK, np, le(old, name))
		r.entry(e, p)
	},
	func(r *fuzzRun) { // OPEN
		n := r.node()
		e, p := r.serve(fuse.FUSE_OPEN, n, le(r.u32(), uint32(r.byte()&1)))
		r.handle(n, e, p)
	},
	func(r *fuzzRun) { // READ
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_READ, n, le(fh, uint64(r.u16()), uint32(r.u16()), uint32(0), uint64(0), uint32(0), uint32(0)))
	},
	func(r *fuzzRun) { // WRITE
		n, fh, off := r.node(), r.fh(), uint64(r.u16())
		k := int(r.byte()) % 32
		data := r.data[:min(k, len(r.data))]
		r.data = r.data[len(data):]
		r.serve(fuse.FUSE_WRITE, n, le(fh, off, uint32(len(data)), uint32(r.byte()&7), uint64(0), r.u32(), uint32(0), data))
	},
	func(r *fuzzRun) { // STATFS
		r.serve(fuse.FUSE_STATFS, r.node(), nil)
	},
	func(r *fuzzRun) { // RELEASE
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_RELEASE, n, le(fh, uint32(0), uint32(0), uint64(0)))
	},
	func(r *fuzzRun) { // FSYNC
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_FSYNC, n, le(fh, uint32(r.byte()&1), uint32(0)))
	},
	func(r *fuzzRun) { // FLUSH
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_FLUSH, n, le(fh, uint32(0), uint32(0), uint64(0)))
	},
	func(r *fuzzRun) { // OPENDIR
		n := r.node()
		e, p := r.serve(fuse.FUSE_OPENDIR, n, le(r.u32(), uint32(0)))
		r.handle(n, e, p)
	},
	func(r *fuzzRun) { // READDIR
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_READDIR, n, le(fh, uint64(r.byte()), uint32(4096), uint32(0), uint64(0), uint32(0), uint32(0)))
	},
	func(r *fuzzRun) { // READDIRPLUS: every entry is a lookup
		n, fh := r.node(), r.fh()
		e, p := r.serve(fuse.FUSE_READDIRPLUS, n, le(fh, uint64(r.byte()), uint32(4096), uint32(0), uint64(0), uint32(0), uint32(0)))
		if e != 0 {
			return
		}
		for len(p) >= 152 && r.failed == "" {
			id := binary.LittleEndian.Uint64(p)
			namelen := binary.LittleEndian.Uint32(p[128+16:])
			if id != 0 {
				r.entry(0, p)
			}
			rec := (128 + 24 + int(namelen) + 7) &^ 7
			if rec > len(p) {
				break
			}
			p = p[rec:]
		}
	},
	func(r *fuzzRun) { // RELEASEDIR
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_RELEASEDIR, n, le(fh, uint32(0), uint32(0), uint64(0)))
	},
	func(r *fuzzRun) { // FSYNCDIR
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_FSYNCDIR, n, le(fh, uint32(r.byte()&1), uint32(0)))
	},
	func(r *fuzzRun) { // ACCESS
		n := r.node()
		r.serve(fuse.FUSE_ACCESS, n, le(uint32(r.byte()&7), uint32(0)))
	},
	func(r *fuzzRun) { // CREATE
		n, name := r.node(), r.name()
		flags, mode := r.u32(), r.mode()
		uid, gid := r.id(r.box.uid), r.id(r.box.gid)
		openFlags := uint32(r.byte() & 1)
		ext, gids := r.groups()
		e, p := r.serveAs(fuse.FUSE_CREATE, n, uid, gid, le(flags, mode, uint32(0o022), openFlags, name, ext))
		if e == 0 && len(p) >= 128+16 {
			r.created(uid, gid, gids, flags&unix.O_EXCL != 0, e, p)
			r.handle(binary.LittleEndian.Uint64(p), e, p[128:])
		}
	},
	func(r *fuzzRun) { // FALLOCATE
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_FALLOCATE, n, le(fh, uint64(r.u16()), uint64(r.u16()), uint32(r.byte()&0x7f), uint32(0)))
	},
	func(r *fuzzRun) { // LSEEK
		n, fh := r.node(), r.fh()
		r.serve(fuse.FUSE_LSEEK, n, le(fh, uint64(r.u16()), uint32(r.byte()%5), uint32(0)))
	},
	func(r *fuzzRun) { // COPY_FILE_RANGE
		n, fhIn, offIn := r.node(), r.fh(), uint64(r.u16())
		out, fhOut, offOut := r.node(), r.fh(), uint64(r.u16())
		r.serve(fuse.FUSE_COPY_FILE_RANGE, n, le(fhIn, offIn, out, fhOut, offOut, uint64(r.u16()), uint64(r.byte()&1)))
	},
	func(r *fuzzRun) { // SYNCFS
		r.serve(fuse.FUSE_SYNCFS, r.node(), le(uint64(0)))
	},
	func(r *fuzzRun) { // GETXATTR / LISTXATTR (answered ENOSYS while unsupported)
		n := r.node()
		if r.byte()&1 == 0 {
			r.serve(fuse.FUSE_GETXATTR, n, le(uint32(64), uint32(0), []byte("user.x\x00")))
		} else {
			r.serve(fuse.FUSE_LISTXATTR, n, le(uint32(64), uint32(0)))
		}
	},
	func(r *fuzzRun) { // DESTROY and a new INIT: nothing may survive
		// The IDs of the old session stay candidates: they must all be
		// stale now (node and handle IDs are never reused).
		r.serve(fuse.FUSE_DESTROY, 0, nil)
		r.init()
	},
}

func (r *fuzzRun) step() {
	fuzzOps[int(r.byte())%len(fuzzOps)](r)
}

// Operation numbers in fuzzOps, for the seeds.
const (
	fzLookup = iota
	fzForget
	fzBatchForget
	fzGetattr
	fzSetattr
	fzReadlink
	fzSymlink
	fzMknod
	fzMkdir
	fzUnlink
	fzRmdir
	fzRename
	fzRename2
	fzLink
	fzOpen
	fzRead
	fzWrite
	fzStatfs
	fzRelease
	fzFsync
	fzFlush
	fzOpendir
	fzReaddir
	fzReaddirplus
	fzReleasedir
	fzFsyncdir
	fzAccess
	fzCreate
	fzFallocate
	fzLseek
	fzCopyFileRange
	fzSyncfs
	fzXattr
	fzReinit
	fzCount
)

// fuzzName returns the dictionary index of s.
func fuzzName(s string) byte {
	for i, n := range fuzzNames {
		if n == s {
			return byte(i)
		}
	}
	panic("fuzzName: " + s)
}

// fuzzRealSeeds are meaningful request sequences: walks through the
// escaping symlinks, creations with hostile names, a set-gid creation by
// another user, opens of the FIFO, renames and links across directories,
// and forgetting then reusing nodes. Node byte k names the k-th node seen
// (0 is the root).
func fuzzRealSeeds() [][]byte {
	if len(fuzzOps) != fzCount {
		panic("fuzzOps and the fz constants disagree")
	}
	n := fuzzName
	u16 := func(v uint16) []byte { return []byte{byte(v), byte(v >> 8)} }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	b := func(v ...byte) []byte { return v }
	// Creations; typ indexes fuzzTypes (0 regular, 1 directory, 5
	// character device), uid and gid index the IDs of fuzzRun.id (1 is
	// 1000), grp is the groups byte (0 none, 3 the group 5000).
	create := func(node byte, name string, flags uint32, typ byte, perm uint16, uid, gid, grp byte) []byte {
		return cat(b(fzCreate, node, n(name)), u32(flags), b(typ), u16(perm), b(uid, gid, 0, grp))
	}
	mkdir := func(node byte, name string, perm uint16, uid, gid, grp byte) []byte {
		return cat(b(fzMkdir, node, n(name), 1), u16(perm), b(uid, gid, grp))
	}
	mknod := func(node byte, name string, typ byte, perm uint16, rdev, uid, gid, grp byte) []byte {
		return cat(b(fzMknod, node, n(name), typ), u16(perm), b(rdev, uid, gid, grp))
	}
	open := func(node byte, flags uint32) []byte { return cat(b(fzOpen, node), u32(flags), b(0)) }
	setattr := func(node byte, valid uint32, size uint16, typ byte, perm uint16) []byte {
		return cat(b(fzSetattr, node), u32(valid), b(0), u16(size), make([]byte, 8), b(typ), u16(perm), b(0, 0))
	}
	return [][]byte{
		// LOOKUP every escaping symlink, then walk through them.
		cat(b(fzLookup, 0, n("up")), b(fzLookup, 1, n("secret")), b(fzLookup, 0, n("abs")), b(fzLookup, 2, n("secret")),
			b(fzLookup, 0, n("secretlink")), open(3, unix.O_RDWR|unix.O_TRUNC),
			b(fzReadlink, 2), setattr(3, fuse.FATTR_SIZE|fuse.FATTR_MODE, 0, 1, 0o7777)),
		// Hostile names in every name-taking operation.
		cat(b(fzLookup, 0, n("..")), mkdir(0, "../secret", 0o755, 0, 0, 0),
			mknod(0, "/", 0, 0o644, 0, 0, 0, 0), b(fzSymlink, 0, n(""), 0, 0, 0, 0),
			create(0, "../secret", unix.O_RDWR|unix.O_TRUNC, 0, 0o644, 0, 0, 0),
			b(fzRename, 0, n("file"), 0, n("../../sibling/inner")), b(fzLink, 0, 0, n("dir/sub")),
			b(fzUnlink, 0, n("../secret")), b(fzRmdir, 0, n("..")), b(fzLookup, 0, n(strings.Repeat("b", 256)))),
		// Set-gid creations as another user in a set-gid directory,
		// without and with the directory's group.
		cat(b(fzLookup, 0, n("sgid")), create(1, "new", unix.O_RDWR|unix.O_EXCL, 0, 0o2755, 1, 1, 0),
			mkdir(1, "x", 0o2755, 1, 1, 0), mknod(1, "y", 0, 0o2755, 0, 1, 1, 0),
			create(1, "dev", unix.O_RDWR|unix.O_EXCL, 0, 0o2755, 1, 1, 3), mknod(1, "tmp", 0, 0o2755, 0, 1, 1, 3)),
		// FIFO and device nodes are never opened for real.
		cat(b(fzLookup, 0, n("fifo")), open(1, unix.O_RDWR), open(1, unix.O_WRONLY|unix.O_NONBLOCK),
			setattr(1, fuse.FATTR_SIZE, 0, 0, 0),
			mknod(0, "x", 5, 0o666, 2, 0, 0, 0), open(2, unix.O_RDWR), b(fzSyncfs, 2),
			create(0, "fifo", unix.O_RDWR, 0, 0o644, 0, 0, 0)),
		// Open, write, read, copy, rename across directories, link.
		cat(b(fzLookup, 0, n("file")), open(1, unix.O_RDWR), b(fzWrite, 1, 0), u16(3), b(4), []byte("abcd"), b(0), u32(0),
			b(fzRead, 1, 0), u16(0), u16(64), b(fzLookup, 0, n("dir")), b(fzRename, 0, n("file"), 2, n("new")),
			b(fzLink, 1, 0, n("x")), b(fzCopyFileRange, 1, 0), u16(0), b(1, 0), u16(20), u16(5), b(0),
			b(fzOpendir, 2), u32(0), b(fzReaddirplus, 2, 1, 0), b(fzRelease, 1, 0)),
		// Forget a node, then use its old ID while new ones are handed out.
		cat(b(fzLookup, 0, n("file")), b(fzForget, 1, 1), b(fzGetattr, 1, 0, 0), b(fzLookup, 0, n("dir")),
			b(fzGetattr, 0xfd, 0, 0), open(1, unix.O_RDONLY), b(fzReinit), b(fzGetattr, 1, 0, 0), b(fzGetattr, 2, 0, 0)),
	}
}
