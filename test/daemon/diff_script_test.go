package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// This file holds the vocabulary of the differential scripts: a script is
// a list of steps, each one FUSE request whose node IDs and file handles
// may name the results of earlier steps by label. The same script runs
// against both daemons; diff_run_test.go executes and normalises it.

// dsl holds the constructors of script steps; scripts use a value of it
// (d := dsl{}) so that the constructors stay out of the package namespace.
type dsl struct{}

// drefKind says which table a dref is resolved in.
type drefKind int

const (
	drefLit  drefKind = iota // a literal value
	drefNode                 // the node ID returned by the labelled step
	drefFh                   // the file handle returned by the labelled step
)

// dref is a node ID or file handle, literal or the result of an earlier
// step.
type dref struct {
	kind  drefKind
	label string
	lit   uint64
}

var dRoot = dref{kind: drefLit, lit: fe.FUSE_ROOT_ID}

// n names the node ID returned by step label (LOOKUP, MKDIR, CREATE...).
func (dsl) n(label string) dref { return dref{kind: drefNode, label: label} }

// h names the file handle returned by step label (OPEN, OPENDIR, CREATE).
func (dsl) h(label string) dref { return dref{kind: drefFh, label: label} }

// lit is a literal node ID or file handle (e.g. one that does not exist).
func (dsl) lit(v uint64) dref { return dref{kind: drefLit, lit: v} }

func (r dref) String() string {
	switch r.kind {
	case drefNode:
		return "node(" + r.label + ")"
	case drefFh:
		return "fh(" + r.label + ")"
	}
	if r.lit == fe.FUSE_ROOT_ID {
		return "root"
	}
	return fmt.Sprintf("%#x", r.lit)
}

// dpart is one piece of a request body.
type dpart struct {
	b   []byte
	ref *dref // 8 bytes, resolved at run time
	// setxattr, if set, is the fixed part of a SETXATTR request {size,
	// flags}, 16 bytes when FUSE_SETXATTR_EXT was negotiated, else 8.
	setxattr *[2]uint32
}

// dSetxattrIn is the fixed part of SETXATTR for a value of size bytes.
func dSetxattrIn(size, flags uint32) dpart { return dpart{setxattr: &[2]uint32{size, flags}} }

func dU32(v ...uint32) dpart { return dpart{b: le32(v...)} }

func dU64(v ...uint64) dpart {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return dpart{b: b}
}

func dRefPart(r dref) dpart { return dpart{ref: &r} }

// cname is a NUL-terminated name.
func dName(s string) dpart { return dpart{b: append([]byte(s), 0)} }

func dRaw(b []byte) dpart { return dpart{b: b} }

// dreply selects how a successful reply is decoded.
type dreply int

const (
	rkEmpty dreply = iota
	rkEntry
	rkCreate
	rkAttr
	rkOpen
	rkData
	rkString
	rkWrite
	rkStatfs
	rkDirents
	rkDirentsPlus
	rkLseek
	rkInit
	rkRaw
)

// dstep is one step of a script: one request.
type dstep struct {
	label string
	op    uint32
	node  dref
	body  []dpart
	// out is the size of the writable reply buffer after the 16-byte
	// header buffer.
	out   int
	kind  dreply
	queue int
	// noReply: a request the daemon must not answer (FORGET, DESTROY...);
	// the used length is recorded instead.
	noReply bool
	// uid and gid go into the request header.
	uid, gid uint32
	// timeout bounds the wait for a reply from the reference (default
	// 10 s), for steps it is expected not to answer.
	timeout time.Duration
	// host, if set, runs on the twin before the request (a change made
	// behind the daemon's back).
	host func(tw *twin) error
}

// as sends the request as guest user uid:gid.
func (s dstep) as(uid, gid uint32) dstep { s.uid, s.gid = uid, gid; return s }

// with appends raw bytes (request extensions) to the body.
func (s dstep) with(b []byte) dstep {
	s.body = append(append([]dpart(nil), s.body...), dRaw(b))
	return s
}

// wait sets the step's timeout.
func (s dstep) wait(d time.Duration) dstep { s.timeout = d; return s }

// named sets the step's label.
func (s dstep) named(label string) dstep { s.label = label; return s }

// before makes fn change the twin before the request.
func (s dstep) before(fn func(tw *twin) error) dstep { s.host = fn; return s }

func (dsl) lookup(l string, parent dref, name string) dstep {
	return dstep{label: l, op: fe.FUSE_LOOKUP, node: parent, body: []dpart{dName(name)}, out: fe.EntryOutSize, kind: rkEntry}
}

func (dsl) getattr(l string, node dref) dstep {
	return dstep{label: l, op: fe.FUSE_GETATTR, node: node, body: []dpart{dU32(0, 0, 0, 0)}, out: fe.AttrOutSize, kind: rkAttr}
}

// getattrFh sends GETATTR with FUSE_GETATTR_FH.
func (dsl) getattrFh(l string, node, fh dref) dstep {
	return dstep{label: l, op: fe.FUSE_GETATTR, node: node, body: []dpart{dU32(1, 0), dRefPart(fh)}, out: fe.AttrOutSize, kind: rkAttr}
}

// dsattr is the content of a SETATTR; fh is used when valid has FATTR_FH.
type dsattr struct {
	valid                           uint32
	fh                              dref
	size, lockOwner                 uint64
	atime, mtime, ctime             uint64
	atimensec, mtimensec, ctimensec uint32
	mode, uid, gid                  uint32
}

func (dsl) setattr(l string, node dref, a dsattr) dstep {
	fh := a.fh
	if fh.kind == drefLit && fh.label == "" && a.valid&fe.FATTR_FH == 0 {
		fh = dref{kind: drefLit}
	}
	return dstep{label: l, op: fe.FUSE_SETATTR, node: node, out: fe.AttrOutSize, kind: rkAttr, body: []dpart{
		dU32(a.valid, 0), dRefPart(fh), dU64(a.size, a.lockOwner, a.atime, a.mtime, a.ctime),
		dU32(a.atimensec, a.mtimensec, a.ctimensec, a.mode, 0, a.uid, a.gid, 0)}}
}

func (dsl) open(l string, node dref, flags, openFlags uint32) dstep {
	return dstep{label: l, op: fe.FUSE_OPEN, node: node, body: []dpart{dU32(flags, openFlags)}, out: fe.OpenOutSize, kind: rkOpen}
}

func (dsl) opendir(l string, node dref, flags uint32) dstep {
	return dstep{label: l, op: fe.FUSE_OPENDIR, node: node, body: []dpart{dU32(flags, 0)}, out: fe.OpenOutSize, kind: rkOpen}
}

func dReadIO(op uint32, l string, node, fh dref, off uint64, size uint32, kind dreply) dstep {
	return dstep{label: l, op: op, node: node, out: int(size), kind: kind, body: []dpart{
		dRefPart(fh), dU64(off), dU32(size, 0), dU64(0), dU32(0, 0)}}
}

func (dsl) read(l string, node, fh dref, off uint64, size uint32) dstep {
	return dReadIO(fe.FUSE_READ, l, node, fh, off, size, rkData)
}

func (dsl) readdir(l string, node, fh dref, off uint64, size uint32) dstep {
	return dReadIO(fe.FUSE_READDIR, l, node, fh, off, size, rkDirents)
}

func (dsl) readdirplus(l string, node, fh dref, off uint64, size uint32) dstep {
	return dReadIO(fe.FUSE_READDIRPLUS, l, node, fh, off, size, rkDirentsPlus)
}

// write sends WRITE with write_flags wflags and the file's open flags.
func (dsl) write(l string, node, fh dref, off uint64, data string, wflags, flags uint32) dstep {
	return dstep{label: l, op: fe.FUSE_WRITE, node: node, out: fe.WriteOutSize, kind: rkWrite, body: []dpart{
		dRefPart(fh), dU64(off), dU32(uint32(len(data)), wflags), dU64(0), dU32(flags, 0), dRaw([]byte(data))}}
}

func (dsl) create(l string, parent dref, name string, flags, mode, umask uint32) dstep {
	return dstep{label: l, op: fe.FUSE_CREATE, node: parent, out: fe.EntryOutSize + fe.OpenOutSize, kind: rkCreate,
		body: []dpart{dU32(flags, mode, umask, 0), dName(name)}}
}

func (dsl) mkdir(l string, parent dref, name string, mode uint32) dstep {
	return dstep{label: l, op: fe.FUSE_MKDIR, node: parent, out: fe.EntryOutSize, kind: rkEntry,
		body: []dpart{dU32(mode, 0), dName(name)}}
}

func (dsl) mknod(l string, parent dref, name string, mode, rdev uint32) dstep {
	return dstep{label: l, op: fe.FUSE_MKNOD, node: parent, out: fe.EntryOutSize, kind: rkEntry,
		body: []dpart{dU32(mode, rdev, 0, 0), dName(name)}}
}

func (dsl) symlink(l string, parent dref, name, target string) dstep {
	return dstep{label: l, op: fe.FUSE_SYMLINK, node: parent, out: fe.EntryOutSize, kind: rkEntry,
		body: []dpart{dName(name), dName(target)}}
}

func (dsl) link(l string, old, newParent dref, name string) dstep {
	return dstep{label: l, op: fe.FUSE_LINK, node: newParent, out: fe.EntryOutSize, kind: rkEntry,
		body: []dpart{dRefPart(old), dName(name)}}
}

func (dsl) unlink(l string, parent dref, name string) dstep {
	return dstep{label: l, op: fe.FUSE_UNLINK, node: parent, body: []dpart{dName(name)}}
}

func (dsl) rmdir(l string, parent dref, name string) dstep {
	return dstep{label: l, op: fe.FUSE_RMDIR, node: parent, body: []dpart{dName(name)}}
}

func (dsl) rename(l string, olddir dref, oldname string, newdir dref, newname string) dstep {
	return dstep{label: l, op: fe.FUSE_RENAME, node: olddir, body: []dpart{dRefPart(newdir), dName(oldname), dName(newname)}}
}

func (dsl) rename2(l string, olddir dref, oldname string, newdir dref, newname string, flags uint32) dstep {
	return dstep{label: l, op: fe.FUSE_RENAME2, node: olddir, body: []dpart{dRefPart(newdir), dU32(flags, 0), dName(oldname), dName(newname)}}
}

func (dsl) readlink(l string, node dref) dstep {
	return dstep{label: l, op: fe.FUSE_READLINK, node: node, out: 4096, kind: rkString}
}

func (dsl) statfs(l string, node dref) dstep {
	return dstep{label: l, op: fe.FUSE_STATFS, node: node, out: fe.StatfsOutSize, kind: rkStatfs}
}

func dReleaseOp(op uint32, l string, node, fh dref) dstep {
	return dstep{label: l, op: op, node: node, body: []dpart{dRefPart(fh), dU32(0, 0), dU64(0)}}
}

func (dsl) release(l string, node, fh dref) dstep { return dReleaseOp(fe.FUSE_RELEASE, l, node, fh) }
func (dsl) releasedir(l string, node, fh dref) dstep {
	return dReleaseOp(fe.FUSE_RELEASEDIR, l, node, fh)
}

func (dsl) fsync(l string, node, fh dref, flags uint32) dstep {
	return dstep{label: l, op: fe.FUSE_FSYNC, node: node, body: []dpart{dRefPart(fh), dU32(flags, 0)}}
}

func (dsl) fsyncdir(l string, node, fh dref, flags uint32) dstep {
	return dstep{label: l, op: fe.FUSE_FSYNCDIR, node: node, body: []dpart{dRefPart(fh), dU32(flags, 0)}}
}

func (dsl) flush(l string, node, fh dref) dstep {
	return dstep{label: l, op: fe.FUSE_FLUSH, node: node, body: []dpart{dRefPart(fh), dU32(0, 0), dU64(0)}}
}

func (dsl) access(l string, node dref, mask uint32) dstep {
	return dstep{label: l, op: fe.FUSE_ACCESS, node: node, body: []dpart{dU32(mask, 0)}}
}

const (
	dOpFallocate     = 43
	dOpLseek         = 46
	dOpCopyFileRange = 47
	dOpSyncfs        = 50
	dOpInterrupt     = fe.FUSE_INTERRUPT
)

func (dsl) fallocate(l string, node, fh dref, off, length uint64, mode uint32) dstep {
	return dstep{label: l, op: dOpFallocate, node: node, body: []dpart{dRefPart(fh), dU64(off, length), dU32(mode, 0)}}
}

func (dsl) lseek(l string, node, fh dref, off uint64, whence uint32) dstep {
	return dstep{label: l, op: dOpLseek, node: node, out: 8, kind: rkLseek, body: []dpart{dRefPart(fh), dU64(off), dU32(whence, 0)}}
}

func (dsl) copyRange(l string, nodeIn, fhIn dref, offIn uint64, nodeOut, fhOut dref, offOut, length, flags uint64) dstep {
	return dstep{label: l, op: dOpCopyFileRange, node: nodeIn, out: fe.WriteOutSize, kind: rkWrite, body: []dpart{
		dRefPart(fhIn), dU64(offIn), dRefPart(nodeOut), dRefPart(fhOut), dU64(offOut, length, flags)}}
}

func (dsl) syncfs(l string, node dref) dstep {
	return dstep{label: l, op: dOpSyncfs, node: node, body: []dpart{dU64(0)}}
}

func (dsl) forget(l string, node dref, nlookup uint64) dstep {
	return dstep{label: l, op: fe.FUSE_FORGET, node: node, body: []dpart{dU64(nlookup)}, queue: fe.QueueHiprio, noReply: true}
}

// batchForget forgets nlookup[i] lookups of nodes[i].
func (dsl) batchForget(l string, nodes []dref, nlookup []uint64) dstep {
	body := []dpart{dU32(uint32(len(nodes)), 0)}
	for i, r := range nodes {
		body = append(body, dRefPart(r), dU64(nlookup[i]))
	}
	return dstep{label: l, op: fe.FUSE_BATCH_FORGET, body: body, queue: fe.QueueHiprio, noReply: true}
}

func (dsl) destroy(l string) dstep {
	return dstep{label: l, op: fe.FUSE_DESTROY, out: fe.OutHeaderSize, noReply: true}
}

func (dsl) interrupt(l string, unique uint64) dstep {
	return dstep{label: l, op: dOpInterrupt, body: []dpart{dU64(unique)}, out: fe.OutHeaderSize, noReply: true}
}

// dInitReq sends FUSE_INIT major.minor offering flags (flags2 with
// INIT_EXT).
func (dsl) initReq(l string, major, minor uint32, flags uint64) dstep {
	body := []dpart{dU32(major, minor, 128<<10, uint32(flags))}
	if flags&fe.FUSE_INIT_EXT != 0 {
		body = append(body, dU32(uint32(flags>>32)), dRaw(make([]byte, 44)))
	}
	return dstep{label: l, op: fe.FUSE_INIT, body: body, out: fe.InitOutSize, kind: rkInit}
}

// rawOp sends op with the given body and records the raw reply.
func (dsl) rawOp(l string, op uint32, node dref, out int, body ...dpart) dstep {
	return dstep{label: l, op: op, node: node, out: out, kind: rkRaw, body: body}
}

// Linux FUSE_INIT flags beyond those the front-end package names.
const (
	dInitPosixLocks        = 1 << 1
	dInitExportSupport     = 1 << 4
	dInitDontMask          = 1 << 6
	dInitSpliceWrite       = 1 << 7
	dInitSpliceMove        = 1 << 8
	dInitSpliceRead        = 1 << 9
	dInitFlockLocks        = 1 << 10
	dInitHasIoctlDir       = 1 << 11
	dInitAutoInvalData     = 1 << 12
	dInitAsyncDio          = 1 << 15
	dInitWritebackCache    = 1 << 16
	dInitNoOpenSupport     = 1 << 17
	dInitHandleKillpriv    = 1 << 19
	dInitPosixACL          = 1 << 20
	dInitAbortError        = 1 << 21
	dInitCacheSymlinks     = 1 << 23
	dInitNoOpendirSupport  = 1 << 24
	dInitExplicitInvalData = 1 << 25
	dInitMapAlignment      = 1 << 26
	dInitSubmounts         = 1 << 27
	dInitHandleKillprivV2  = 1 << 28
	dInitSetxattrExt       = 1 << 29
	dInitSecurityCtx       = 1 << 32
	dInitHasInodeDax       = 1 << 33
	dInitHasExpireOnly     = 1 << 35
	dInitDirectIOAllowMmap = 1 << 36
	dInitPassthrough       = 1 << 37
	dInitNoExportSupport   = 1 << 38
	dInitHasResend         = 1 << 39
	dInitAllowIdmap        = 1 << 40
)

// dLinuxInitFlags is what a Linux 6.x virtio-fs guest offers (without DAX
// and security contexts, which need a guest LSM).
const dLinuxInitFlags = fe.FUSE_ASYNC_READ | dInitPosixLocks | fe.FUSE_ATOMIC_O_TRUNC | dInitExportSupport |
	fe.FUSE_BIG_WRITES | dInitDontMask | dInitSpliceWrite | dInitSpliceMove | dInitSpliceRead | dInitFlockLocks |
	dInitHasIoctlDir | dInitAutoInvalData | fe.FUSE_DO_READDIRPLUS | fe.FUSE_READDIRPLUS_AUTO | dInitAsyncDio |
	dInitWritebackCache | dInitNoOpenSupport | fe.FUSE_PARALLEL_DIROPS | dInitHandleKillpriv | dInitPosixACL |
	dInitAbortError | fe.FUSE_MAX_PAGES | dInitCacheSymlinks | dInitNoOpendirSupport | dInitExplicitInvalData |
	dInitMapAlignment | dInitSubmounts | dInitHandleKillprivV2 | dInitSetxattrExt | fe.FUSE_INIT_EXT |
	fe.FUSE_CREATE_SUPP_GROUP | dInitHasExpireOnly | dInitDirectIOAllowMmap | dInitNoExportSupport |
	dInitHasResend | dInitAllowIdmap

var dInitFlagNames = [...]string{
	0: "ASYNC_READ", 1: "POSIX_LOCKS", 2: "FILE_OPS", 3: "ATOMIC_O_TRUNC", 4: "EXPORT_SUPPORT",
	5: "BIG_WRITES", 6: "DONT_MASK", 7: "SPLICE_WRITE", 8: "SPLICE_MOVE", 9: "SPLICE_READ",
	10: "FLOCK_LOCKS", 11: "HAS_IOCTL_DIR", 12: "AUTO_INVAL_DATA", 13: "DO_READDIRPLUS",
	14: "READDIRPLUS_AUTO", 15: "ASYNC_DIO", 16: "WRITEBACK_CACHE", 17: "NO_OPEN_SUPPORT",
	18: "PARALLEL_DIROPS", 19: "HANDLE_KILLPRIV", 20: "POSIX_ACL", 21: "ABORT_ERROR", 22: "MAX_PAGES",
	23: "CACHE_SYMLINKS", 24: "NO_OPENDIR_SUPPORT", 25: "EXPLICIT_INVAL_DATA", 26: "MAP_ALIGNMENT",
	27: "SUBMOUNTS", 28: "HANDLE_KILLPRIV_V2", 29: "SETXATTR_EXT", 30: "INIT_EXT", 31: "INIT_RESERVED",
	32: "SECURITY_CTX", 33: "HAS_INODE_DAX", 34: "CREATE_SUPP_GROUP", 35: "HAS_EXPIRE_ONLY",
	36: "DIRECT_IO_ALLOW_MMAP", 37: "PASSTHROUGH", 38: "NO_EXPORT_SUPPORT", 39: "HAS_RESEND",
	40: "ALLOW_IDMAP", 41: "OVER_IO_URING", 42: "REQUEST_TIMEOUT",
}

var dOpNames = map[uint32]string{
	fe.FUSE_LOOKUP: "LOOKUP", fe.FUSE_FORGET: "FORGET", fe.FUSE_GETATTR: "GETATTR", fe.FUSE_SETATTR: "SETATTR",
	fe.FUSE_READLINK: "READLINK", fe.FUSE_SYMLINK: "SYMLINK", fe.FUSE_MKNOD: "MKNOD", fe.FUSE_MKDIR: "MKDIR",
	fe.FUSE_UNLINK: "UNLINK", fe.FUSE_RMDIR: "RMDIR", fe.FUSE_RENAME: "RENAME", fe.FUSE_LINK: "LINK",
	fe.FUSE_OPEN: "OPEN", fe.FUSE_READ: "READ", fe.FUSE_WRITE: "WRITE", fe.FUSE_STATFS: "STATFS",
	fe.FUSE_RELEASE: "RELEASE", fe.FUSE_FSYNC: "FSYNC", fe.FUSE_SETXATTR: "SETXATTR",
	fe.FUSE_GETXATTR: "GETXATTR", fe.FUSE_LISTXATTR: "LISTXATTR", fe.FUSE_REMOVEXATTR: "REMOVEXATTR",
	fe.FUSE_FLUSH: "FLUSH", fe.FUSE_INIT: "INIT", fe.FUSE_OPENDIR: "OPENDIR", fe.FUSE_READDIR: "READDIR",
	fe.FUSE_RELEASEDIR: "RELEASEDIR", fe.FUSE_FSYNCDIR: "FSYNCDIR", fe.FUSE_GETLK: "GETLK", 32: "SETLK",
	33: "SETLKW", fe.FUSE_ACCESS: "ACCESS", fe.FUSE_CREATE: "CREATE", fe.FUSE_INTERRUPT: "INTERRUPT",
	fe.FUSE_BMAP: "BMAP", fe.FUSE_DESTROY: "DESTROY", fe.FUSE_IOCTL: "IOCTL", 40: "POLL",
	41: "NOTIFY_REPLY", fe.FUSE_BATCH_FORGET: "BATCH_FORGET", dOpFallocate: "FALLOCATE",
	fe.FUSE_READDIRPLUS: "READDIRPLUS", fe.FUSE_RENAME2: "RENAME2", dOpLseek: "LSEEK",
	dOpCopyFileRange: "COPY_FILE_RANGE", fe.FUSE_SETUPMAPPING: "SETUPMAPPING", 49: "REMOVEMAPPING",
	dOpSyncfs: "SYNCFS", fe.FUSE_TMPFILE: "TMPFILE", 52: "STATX",
}

func dOpName(op uint32) string {
	if s, ok := dOpNames[op]; ok {
		return s
	}
	return fmt.Sprintf("opcode-%d", op)
}

// errnoText renders an errno by name.
func dErrnoText(e unix.Errno) string {
	if s := unix.ErrnoName(e); s != "" {
		return s
	}
	return fmt.Sprintf("errno %d", int(e))
}

var dErrStalled = errors.New("queue stalled")
