package fuse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"golang.org/x/sys/unix"
)

// fakeFS is a FileSystem that records every call as a line of text and
// answers from its fields.
type fakeFS struct {
	calls []string

	errno    unix.Errno // returned by every method that can fail
	want     uint64     // Init result
	entry    EntryOut   // filled into EntryOut replies (NodeID is per call)
	attr     AttrOut
	open     OpenOut
	statfs   StatfsOut
	link     string // Readlink target
	readData []byte // Read source (at offset 0 of the file)
	readRet  int    // if >= 0 (and set), overrides Read's count
	writeRet int    // if >= 0 (and set), overrides Write's count
	seekOff  uint64 // Lseek result
	copied   int    // CopyFileRange count
	dirents  []byte // Readdir data (raw linux_dirent64 records)
	xattr    []byte // GetXattr value and ListXattr list
	xattrRet int    // if useRet, overrides the GetXattr/ListXattr count
	panicMsg string // if set, every call panics with it

	useRet    bool                  // use readRet/writeRet
	lookupErr map[string]unix.Errno // per-name Lookup errors
	nextNode  uint64                // node IDs handed out by Lookup
	lookups   map[uint64]int64      // lookup count balance per node ID
}

func newFakeFS() *fakeFS {
	return &fakeFS{nextNode: 100, lookups: map[uint64]int64{}}
}

var _ FileSystem = (*fakeFS)(nil)

func (f *fakeFS) rec(format string, args ...any) {
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func ctxString(c *Context) string {
	s := fmt.Sprintf("uid=%d gid=%d pid=%d", c.UID, c.GID, c.PID)
	if c.HasSuppGID {
		s += fmt.Sprintf(" supp=%d groups=%v", c.SuppGID, c.SuppGIDs)
	}
	if c.HasSecctx {
		s += fmt.Sprintf(" secctx=%q:%q", c.SecctxName, c.SecctxValue)
	}
	return s
}

func (f *fakeFS) fillEntry(out *EntryOut) {
	*out = f.entry
	out.NodeID = f.nextNode
	out.Attr.Ino = f.nextNode
	f.lookups[f.nextNode]++
	f.nextNode++
}

func (f *fakeFS) Init(capable uint64) (uint64, unix.Errno) {
	f.rec("Init capable=%#x", capable)
	return f.want, f.errno
}

func (f *fakeFS) Destroy() { f.rec("Destroy") }

func (f *fakeFS) Lookup(c *Context, parent uint64, name Name, out *EntryOut) unix.Errno {
	f.rec("Lookup %s parent=%d name=%q", ctxString(c), parent, name.String())
	if e := f.lookupErr[name.String()]; e != 0 {
		return e
	}
	if f.errno != 0 {
		return f.errno
	}
	f.fillEntry(out)
	return 0
}

func (f *fakeFS) Forget(nodeid, nlookup uint64) {
	f.rec("Forget node=%d n=%d", nodeid, nlookup)
	f.lookups[nodeid] -= int64(nlookup)
}

func (f *fakeFS) Getattr(c *Context, nodeid uint64, out *AttrOut) unix.Errno {
	f.rec("Getattr %s node=%d", ctxString(c), nodeid)
	*out = f.attr
	return f.errno
}

func (f *fakeFS) Setattr(c *Context, nodeid uint64, in *SetattrIn, out *AttrOut) unix.Errno {
	f.rec("Setattr %s node=%d in=%+v", ctxString(c), nodeid, *in)
	*out = f.attr
	return f.errno
}

func (f *fakeFS) Readlink(c *Context, nodeid uint64, buf []byte) (int, unix.Errno) {
	f.rec("Readlink %s node=%d buf=%d", ctxString(c), nodeid, len(buf))
	return copy(buf, f.link), f.errno
}

func (f *fakeFS) Symlink(c *Context, parent uint64, name Name, target []byte, out *EntryOut) unix.Errno {
	f.rec("Symlink %s parent=%d name=%q target=%q", ctxString(c), parent, name.String(), target)
	if f.errno == 0 {
		f.fillEntry(out)
	}
	return f.errno
}

func (f *fakeFS) Mknod(c *Context, parent uint64, name Name, in *MknodIn, out *EntryOut) unix.Errno {
	f.rec("Mknod %s parent=%d name=%q in=%+v", ctxString(c), parent, name.String(), *in)
	if f.errno == 0 {
		f.fillEntry(out)
	}
	return f.errno
}

func (f *fakeFS) Mkdir(c *Context, parent uint64, name Name, in *MkdirIn, out *EntryOut) unix.Errno {
	f.rec("Mkdir %s parent=%d name=%q in=%+v", ctxString(c), parent, name.String(), *in)
	if f.errno == 0 {
		f.fillEntry(out)
	}
	return f.errno
}

func (f *fakeFS) Unlink(c *Context, parent uint64, name Name) unix.Errno {
	f.rec("Unlink %s parent=%d name=%q", ctxString(c), parent, name.String())
	return f.errno
}

func (f *fakeFS) Rmdir(c *Context, parent uint64, name Name) unix.Errno {
	f.rec("Rmdir %s parent=%d name=%q", ctxString(c), parent, name.String())
	return f.errno
}

func (f *fakeFS) Rename(c *Context, olddir uint64, oldname Name, newdir uint64, newname Name, flags uint32) unix.Errno {
	f.rec("Rename %s olddir=%d old=%q newdir=%d new=%q flags=%d", ctxString(c), olddir, oldname.String(), newdir, newname.String(), flags)
	return f.errno
}

func (f *fakeFS) Link(c *Context, nodeid, newparent uint64, newname Name, out *EntryOut) unix.Errno {
	f.rec("Link %s node=%d newparent=%d new=%q", ctxString(c), nodeid, newparent, newname.String())
	if f.errno == 0 {
		f.fillEntry(out)
	}
	return f.errno
}

func (f *fakeFS) Open(c *Context, nodeid uint64, in *OpenIn, out *OpenOut) unix.Errno {
	f.rec("Open %s node=%d in=%+v", ctxString(c), nodeid, *in)
	*out = f.open
	return f.errno
}

func (f *fakeFS) Create(c *Context, parent uint64, name Name, in *CreateIn, entry *EntryOut, open *OpenOut) unix.Errno {
	f.rec("Create %s parent=%d name=%q in=%+v", ctxString(c), parent, name.String(), *in)
	if f.errno == 0 {
		f.fillEntry(entry)
		*open = f.open
	}
	return f.errno
}

func (f *fakeFS) Read(c *Context, nodeid uint64, in *ReadIn, dst [][]byte) (int, unix.Errno) {
	// The view must cover exactly in.Size bytes without empty slices;
	// "iov=*" records that it does.
	total, empty := 0, false
	for _, b := range dst {
		total += len(b)
		empty = empty || len(b) == 0
	}
	iov := "*"
	if total != int(in.Size) || empty {
		iov = fmt.Sprintf("bad(total=%d, slices=%d)", total, len(dst))
	}
	f.rec("Read %s node=%d fh=%d off=%d size=%d iov=%s", ctxString(c), nodeid, in.Fh, in.Offset, in.Size, iov)
	n := 0
	if int(in.Offset) < len(f.readData) {
		src := f.readData[in.Offset:]
		for _, b := range dst {
			k := copy(b, src)
			src = src[k:]
			n += k
		}
	}
	if f.useRet {
		n = f.readRet
	}
	return n, f.errno
}

func (f *fakeFS) Write(c *Context, nodeid uint64, in *WriteIn, src [][]byte) (int, unix.Errno) {
	var data []byte
	for _, b := range src {
		if len(b) == 0 {
			data = append(data, "<empty slice>"...)
		}
		data = append(data, b...)
	}
	f.rec("Write %s node=%d fh=%d off=%d size=%d flags=%#x wflags=%d data=%q", ctxString(c), nodeid, in.Fh, in.Offset, in.Size, in.Flags, in.WriteFlags, data)
	n := len(data)
	if f.useRet {
		n = f.writeRet
	}
	return n, f.errno
}

func (f *fakeFS) Statfs(c *Context, nodeid uint64, out *StatfsOut) unix.Errno {
	f.rec("Statfs %s node=%d", ctxString(c), nodeid)
	*out = f.statfs
	return f.errno
}

func (f *fakeFS) Release(c *Context, nodeid uint64, in *ReleaseIn) unix.Errno {
	f.rec("Release %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.errno
}

func (f *fakeFS) Flush(c *Context, nodeid uint64, in *FlushIn) unix.Errno {
	f.rec("Flush %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.errno
}

func (f *fakeFS) Fsync(c *Context, nodeid uint64, in *FsyncIn) unix.Errno {
	f.rec("Fsync %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.errno
}

func (f *fakeFS) Opendir(c *Context, nodeid uint64, in *OpenIn, out *OpenOut) unix.Errno {
	f.rec("Opendir %s node=%d in=%+v", ctxString(c), nodeid, *in)
	*out = f.open
	return f.errno
}

func (f *fakeFS) Readdir(c *Context, nodeid uint64, in *ReadIn, buf []byte) (int, unix.Errno) {
	f.rec("Readdir %s node=%d fh=%d off=%d size=%d buf=%d", ctxString(c), nodeid, in.Fh, in.Offset, in.Size, len(buf))
	return copy(buf, f.dirents), f.errno
}

func (f *fakeFS) Releasedir(c *Context, nodeid uint64, in *ReleaseIn) unix.Errno {
	f.rec("Releasedir %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.errno
}

func (f *fakeFS) Fsyncdir(c *Context, nodeid uint64, in *FsyncIn) unix.Errno {
	f.rec("Fsyncdir %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.errno
}

func (f *fakeFS) Access(c *Context, nodeid uint64, mask uint32) unix.Errno {
	f.rec("Access %s node=%d mask=%d", ctxString(c), nodeid, mask)
	return f.errno
}

func (f *fakeFS) Fallocate(c *Context, nodeid uint64, in *FallocateIn) unix.Errno {
	f.rec("Fallocate %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.errno
}

func (f *fakeFS) Lseek(c *Context, nodeid uint64, in *LseekIn, out *LseekOut) unix.Errno {
	f.rec("Lseek %s node=%d in=%+v", ctxString(c), nodeid, *in)
	out.Offset = f.seekOff
	return f.errno
}

func (f *fakeFS) CopyFileRange(c *Context, nodeid uint64, in *CopyFileRangeIn) (int, unix.Errno) {
	f.rec("CopyFileRange %s node=%d in=%+v", ctxString(c), nodeid, *in)
	return f.copied, f.errno
}

func (f *fakeFS) Syncfs(c *Context, nodeid uint64) unix.Errno {
	f.rec("Syncfs %s node=%d", ctxString(c), nodeid)
	return f.errno
}

// xattrCopy answers GetXattr and ListXattr like the system calls do.
func (f *fakeFS) xattrCopy(buf []byte) (int, unix.Errno) {
	if f.errno != 0 {
		return 0, f.errno
	}
	if f.useRet {
		return f.xattrRet, 0
	}
	if len(buf) == 0 {
		return len(f.xattr), 0
	}
	if len(f.xattr) > len(buf) {
		return 0, unix.ERANGE
	}
	return copy(buf, f.xattr), 0
}

func (f *fakeFS) GetXattr(c *Context, nodeid uint64, name, buf []byte) (int, unix.Errno) {
	f.rec("GetXattr %s node=%d name=%q size=%d", ctxString(c), nodeid, name, len(buf))
	return f.xattrCopy(buf)
}

func (f *fakeFS) ListXattr(c *Context, nodeid uint64, buf []byte) (int, unix.Errno) {
	f.rec("ListXattr %s node=%d size=%d", ctxString(c), nodeid, len(buf))
	return f.xattrCopy(buf)
}

func (f *fakeFS) SetXattr(c *Context, nodeid uint64, name, value []byte, in *SetxattrIn) unix.Errno {
	f.rec("SetXattr %s node=%d name=%q value=%q in=%+v", ctxString(c), nodeid, name, value, *in)
	return f.errno
}

func (f *fakeFS) RemoveXattr(c *Context, nodeid uint64, name []byte) unix.Errno {
	f.rec("RemoveXattr %s node=%d name=%q", ctxString(c), nodeid, name)
	return f.errno
}

// Helpers to build requests and expected replies. Structures are encoded
// with encoding/binary (reflection, field by field), independently of the
// unsafe conversions the package uses.

// enc returns the little-endian encoding of each value, concatenated.
func enc(vs ...any) []byte {
	var b bytes.Buffer
	for _, v := range vs {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case []byte:
			b.Write(v)
		default:
			if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
				panic(err)
			}
		}
	}
	return b.Bytes()
}

const (
	testUID    = 1000
	testGID    = 1001
	testPID    = 4242
	testUnique = 0x1122334455667788
)

// request builds a FUSE request with a correct len field.
func request(opc Opcode, nodeid uint64, body ...any) []byte {
	b := enc(body...)
	h := InHeader{Len: uint32(40 + len(b)), Opcode: opc, Unique: testUnique, NodeID: nodeid, UID: testUID, GID: testGID, PID: testPID}
	return append(enc(h), b...)
}

// reply builds a success reply with the given payload.
func reply(payload ...any) []byte {
	b := enc(payload...)
	return append(enc(OutHeader{Len: uint32(16 + len(b)), Unique: testUnique}), b...)
}

// errReply builds an error reply.
func errReply(e unix.Errno) []byte {
	return enc(OutHeader{Len: 16, Error: -int32(e), Unique: testUnique})
}

// chunk splits b into buffers of n bytes (n <= 0: one buffer). Every buffer
// has its capacity clipped to its length, so writes beyond are impossible
// through append.
func chunk(b []byte, n int) [][]byte {
	if n <= 0 || n >= len(b) {
		return [][]byte{b[:len(b):len(b)]}
	}
	var bufs [][]byte
	for len(b) > 0 {
		k := min(n, len(b))
		bufs = append(bufs, b[:k:k])
		b = b[k:]
	}
	return bufs
}

// chunkWithEmpties splits b into buffers of n bytes with an empty buffer
// before, between and after them, as a guest may supply zero-length
// descriptors.
func chunkWithEmpties(b []byte, n int) [][]byte {
	bufs := [][]byte{b[:0:0]}
	for _, c := range chunk(b, n) {
		bufs = append(bufs, c, c[len(c):len(c):len(c)])
	}
	return bufs
}

// split splits b by chunk (n >= 0) or chunkWithEmpties (n < 0).
func split(b []byte, n int) [][]byte {
	if n < 0 {
		return chunkWithEmpties(b, -n)
	}
	return chunk(b, n)
}

// dirent64 encodes one linux_dirent64 record.
func dirent64(ino uint64, off int64, typ uint8, name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], ino)
	binary.NativeEndian.PutUint64(b[8:], uint64(off))
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	copy(b[19:], name)
	return b
}

// quietLog discards log output; logs captures it.
func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

type logBuf struct{ strings.Builder }

func captureLog() (*slog.Logger, *logBuf) {
	var b logBuf
	return slog.New(slog.NewTextHandler(io.Writer(&b), &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}
