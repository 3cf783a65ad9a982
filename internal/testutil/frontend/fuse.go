package frontend

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// ReplyError describes a malformed FUSE reply (as opposed to an error
// reply, which the helpers return as a unix.Errno).
type ReplyError struct {
	Op     uint32
	Reason string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("decode reply to opcode %d: %s", e.Op, e.Reason)
}

func badReply(op uint32, format string, args ...any) error {
	return &ReplyError{Op: op, Reason: fmt.Sprintf(format, args...)}
}

// EncodeInHeader returns a 40-byte fuse_in_header.
func EncodeInHeader(h InHeader) []byte {
	b := make([]byte, InHeaderSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Len)
	le.PutUint32(b[4:], h.Opcode)
	le.PutUint64(b[8:], h.Unique)
	le.PutUint64(b[16:], h.NodeID)
	le.PutUint32(b[24:], h.UID)
	le.PutUint32(b[28:], h.GID)
	le.PutUint32(b[32:], h.PID)
	le.PutUint16(b[36:], h.TotalExtlen)
	le.PutUint16(b[38:], h.Padding)
	return b
}

// DecodeOutHeader decodes a fuse_out_header.
func DecodeOutHeader(b []byte) OutHeader {
	le := binary.LittleEndian
	return OutHeader{Len: le.Uint32(b[0:]), Error: int32(le.Uint32(b[4:])), Unique: le.Uint64(b[8:])}
}

// NextUnique returns a fresh request ID.
func (fe *Frontend) NextUnique() uint64 {
	fe.unique += 2
	return fe.unique
}

// Header builds an in-header for op on nodeid whose body is bodyLen bytes.
func (fe *Frontend) Header(op uint32, nodeid uint64, bodyLen int) InHeader {
	return InHeader{
		Len: uint32(InHeaderSize + bodyLen), Opcode: op, Unique: fe.NextUnique(),
		NodeID: nodeid, UID: fe.UID, GID: fe.GID, PID: fe.PID,
	}
}

// RawCall sends op on queue q with body as separate device-readable
// descriptors after the header, and a 16-byte header buffer plus, if
// outSize > 0, one payload buffer of outSize bytes as device-writable
// descriptors. It validates the reply framing and returns the header and
// a view of the payload (valid until the next submission). A FUSE error
// reply is returned as a header with Error != 0 and a nil error.
func (fe *Frontend) RawCall(q int, op uint32, nodeid uint64, body [][]byte, outSize int) (OutHeader, []byte, error) {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	h := fe.Header(op, nodeid, n)
	in := make([][]byte, 0, 1+len(body))
	in = append(in, EncodeInHeader(h))
	in = append(in, body...)
	sizes := []int{OutHeaderSize}
	if outSize > 0 {
		sizes = append(sizes, outSize)
	}
	views, used, err := fe.DoView(q, in, sizes)
	if err != nil {
		return OutHeader{}, nil, fmt.Errorf("opcode %d: %w", op, err)
	}
	return checkReply(op, h.Unique, views, used)
}

func checkReply(op uint32, unique uint64, views [][]byte, used uint32) (OutHeader, []byte, error) {
	if used < OutHeaderSize {
		return OutHeader{}, nil, badReply(op, "used length %d < 16", used)
	}
	oh := DecodeOutHeader(views[0])
	if oh.Len != used {
		return oh, nil, badReply(op, "header len %d != used length %d", oh.Len, used)
	}
	if oh.Unique != unique {
		return oh, nil, badReply(op, "unique %d, want %d", oh.Unique, unique)
	}
	if oh.Error != 0 {
		if oh.Error > 0 || oh.Error < -4095 {
			return oh, nil, badReply(op, "error %d out of range", oh.Error)
		}
		if oh.Len != OutHeaderSize {
			return oh, nil, badReply(op, "error reply with len %d", oh.Len)
		}
		return oh, nil, nil
	}
	var payload []byte
	if used > OutHeaderSize {
		payload = views[1][:used-OutHeaderSize]
	}
	return oh, payload, nil
}

// CallView is RawCall on the request queue returning a unix.Errno for an
// error reply; the payload is a view into guest memory.
func (fe *Frontend) CallView(op uint32, nodeid uint64, outSize int, body ...[]byte) ([]byte, error) {
	oh, p, err := fe.RawCall(QueueRequest, op, nodeid, body, outSize)
	if err != nil {
		return nil, err
	}
	if oh.Error != 0 {
		return nil, unix.Errno(-oh.Error)
	}
	return p, nil
}

// Call is CallView returning a copy of the payload.
func (fe *Frontend) Call(op uint32, nodeid uint64, outSize int, body ...[]byte) ([]byte, error) {
	p, err := fe.CallView(op, nodeid, outSize, body...)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), p...), nil
}

// SendNoReply sends a request that takes no reply (FORGET, BATCH_FORGET,
// DESTROY...) on queue q, with outSize bytes of writable buffer (0 for
// none), and returns the used length, which must be 0 for such requests.
func (fe *Frontend) SendNoReply(q int, op uint32, nodeid uint64, outSize int, body ...[]byte) (uint32, error) {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	in := append([][]byte{EncodeInHeader(fe.Header(op, nodeid, n))}, body...)
	var sizes []int
	if outSize > 0 {
		sizes = []int{outSize}
	}
	_, used, err := fe.DoView(q, in, sizes)
	if err != nil {
		return 0, fmt.Errorf("opcode %d: %w", op, err)
	}
	return used, nil
}

func expectLen(op uint32, p []byte, n int) error {
	if len(p) != n {
		return badReply(op, "payload %d bytes, want %d", len(p), n)
	}
	return nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func le32s(v ...uint32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func le64s(v ...uint64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

// DecodeAttr decodes a fuse_attr.
func DecodeAttr(b []byte) Attr {
	le := binary.LittleEndian
	return Attr{
		Ino: le.Uint64(b[0:]), Size: le.Uint64(b[8:]), Blocks: le.Uint64(b[16:]),
		Atime: le.Uint64(b[24:]), Mtime: le.Uint64(b[32:]), Ctime: le.Uint64(b[40:]),
		Atimensec: le.Uint32(b[48:]), Mtimensec: le.Uint32(b[52:]), Ctimensec: le.Uint32(b[56:]),
		Mode: le.Uint32(b[60:]), Nlink: le.Uint32(b[64:]), UID: le.Uint32(b[68:]),
		GID: le.Uint32(b[72:]), Rdev: le.Uint32(b[76:]), Blksize: le.Uint32(b[80:]),
		Flags: le.Uint32(b[84:]),
	}
}

// DecodeEntryOut decodes a fuse_entry_out.
func DecodeEntryOut(b []byte) EntryOut {
	le := binary.LittleEndian
	return EntryOut{
		NodeID: le.Uint64(b[0:]), Generation: le.Uint64(b[8:]),
		EntryValid: le.Uint64(b[16:]), AttrValid: le.Uint64(b[24:]),
		EntryValidNsec: le.Uint32(b[32:]), AttrValidNsec: le.Uint32(b[36:]),
		Attr: DecodeAttr(b[40:]),
	}
}

// DecodeOpenOut decodes a fuse_open_out.
func DecodeOpenOut(b []byte) OpenOut {
	return OpenOut{Fh: binary.LittleEndian.Uint64(b[0:]), OpenFlags: binary.LittleEndian.Uint32(b[8:])}
}

// Init sends FUSE_INIT offering flags (bits ≥ 32 go to flags2 with
// INIT_EXT).
func (fe *Frontend) Init(flags uint64) (InitOut, error) {
	body := le32s(FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR, 128<<10, uint32(flags))
	if flags&FUSE_INIT_EXT != 0 {
		body = append(body, le32s(uint32(flags>>32))...)
		body = append(body, make([]byte, 44)...)
	}
	p, err := fe.Call(FUSE_INIT, 0, InitOutSize, body)
	if err != nil {
		return InitOut{}, err
	}
	if err := expectLen(FUSE_INIT, p, InitOutSize); err != nil {
		return InitOut{}, err
	}
	le := binary.LittleEndian
	return InitOut{
		Major: le.Uint32(p[0:]), Minor: le.Uint32(p[4:]), MaxReadahead: le.Uint32(p[8:]),
		Flags:         uint64(le.Uint32(p[12:])) | uint64(le.Uint32(p[32:]))<<32,
		MaxBackground: le.Uint16(p[16:]), CongestionThreshold: le.Uint16(p[18:]),
		MaxWrite: le.Uint32(p[20:]), TimeGran: le.Uint32(p[24:]),
		MaxPages: le.Uint16(p[28:]), MapAlignment: le.Uint16(p[30:]),
	}, nil
}

// DefaultInitFlags are the flags a recent Linux guest offers.
const DefaultInitFlags = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES |
	FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
	FUSE_INIT_EXT

func (fe *Frontend) entry(op uint32, nodeid uint64, body ...[]byte) (EntryOut, error) {
	p, err := fe.CallView(op, nodeid, EntryOutSize, body...)
	if err != nil {
		return EntryOut{}, err
	}
	if err := expectLen(op, p, EntryOutSize); err != nil {
		return EntryOut{}, err
	}
	return DecodeEntryOut(p), nil
}

func (fe *Frontend) empty(op uint32, nodeid uint64, body ...[]byte) error {
	p, err := fe.CallView(op, nodeid, 0, body...)
	if err != nil {
		return err
	}
	return expectLen(op, p, 0)
}

// Lookup sends FUSE_LOOKUP.
func (fe *Frontend) Lookup(parent uint64, name string) (EntryOut, error) {
	return fe.entry(FUSE_LOOKUP, parent, cstr(name))
}

// Forget sends FUSE_FORGET on the hiprio queue and checks used length 0.
func (fe *Frontend) Forget(nodeid, nlookup uint64) error {
	used, err := fe.SendNoReply(QueueHiprio, FUSE_FORGET, nodeid, 0, le64s(nlookup))
	if err == nil && used != 0 {
		err = badReply(FUSE_FORGET, "used length %d, want 0", used)
	}
	return err
}

// Forget1 is one entry of a BATCH_FORGET.
type Forget1 struct{ NodeID, Nlookup uint64 }

// BatchForget sends FUSE_BATCH_FORGET on the hiprio queue.
func (fe *Frontend) BatchForget(items []Forget1) error {
	body := le32s(uint32(len(items)), 0)
	for _, it := range items {
		body = append(body, le64s(it.NodeID, it.Nlookup)...)
	}
	used, err := fe.SendNoReply(QueueHiprio, FUSE_BATCH_FORGET, 0, 0, body)
	if err == nil && used != 0 {
		err = badReply(FUSE_BATCH_FORGET, "used length %d, want 0", used)
	}
	return err
}

func (fe *Frontend) attr(op uint32, nodeid uint64, body ...[]byte) (AttrOut, error) {
	p, err := fe.CallView(op, nodeid, AttrOutSize, body...)
	if err != nil {
		return AttrOut{}, err
	}
	if err := expectLen(op, p, AttrOutSize); err != nil {
		return AttrOut{}, err
	}
	le := binary.LittleEndian
	return AttrOut{AttrValid: le.Uint64(p[0:]), AttrValidNsec: le.Uint32(p[8:]), Attr: DecodeAttr(p[16:])}, nil
}

// Getattr sends FUSE_GETATTR without a file handle.
func (fe *Frontend) Getattr(nodeid uint64) (AttrOut, error) {
	return fe.attr(FUSE_GETATTR, nodeid, le32s(0, 0, 0, 0))
}

// Setattr sends FUSE_SETATTR.
func (fe *Frontend) Setattr(nodeid uint64, in SetattrIn) (AttrOut, error) {
	b := le32s(in.Valid, 0)
	b = append(b, le64s(in.Fh, in.Size, 0, in.Atime, in.Mtime, in.Ctime)...)
	b = append(b, le32s(in.Atimensec, in.Mtimensec, in.Ctimensec, in.Mode, 0, in.UID, in.GID, 0)...)
	return fe.attr(FUSE_SETATTR, nodeid, b)
}

func (fe *Frontend) open(op uint32, nodeid uint64, flags uint32) (OpenOut, error) {
	p, err := fe.CallView(op, nodeid, OpenOutSize, le32s(flags, 0))
	if err != nil {
		return OpenOut{}, err
	}
	if err := expectLen(op, p, OpenOutSize); err != nil {
		return OpenOut{}, err
	}
	return DecodeOpenOut(p), nil
}

// Open sends FUSE_OPEN.
func (fe *Frontend) Open(nodeid uint64, flags uint32) (OpenOut, error) {
	return fe.open(FUSE_OPEN, nodeid, flags)
}

// Opendir sends FUSE_OPENDIR.
func (fe *Frontend) Opendir(nodeid uint64, flags uint32) (OpenOut, error) {
	return fe.open(FUSE_OPENDIR, nodeid, flags)
}

func readIn(fh, off uint64, size, flags uint32) []byte {
	b := le64s(fh, off)
	b = append(b, le32s(size, 0)...)
	b = append(b, le64s(0)...)
	return append(b, le32s(flags, 0)...)
}

// ReadView sends FUSE_READ and returns a view of the data in guest memory
// (valid until the next submission).
func (fe *Frontend) ReadView(nodeid, fh, off uint64, size uint32) ([]byte, error) {
	p, err := fe.CallView(FUSE_READ, nodeid, int(size), readIn(fh, off, size, 0))
	if err != nil {
		return nil, err
	}
	if len(p) > int(size) {
		return nil, badReply(FUSE_READ, "%d bytes for a %d-byte read", len(p), size)
	}
	return p, nil
}

// Read sends FUSE_READ.
func (fe *Frontend) Read(nodeid, fh, off uint64, size uint32) ([]byte, error) {
	p, err := fe.ReadView(nodeid, fh, off, size)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), p...), nil
}

// Write sends FUSE_WRITE with data as a separate descriptor.
func (fe *Frontend) Write(nodeid, fh, off uint64, data []byte, openFlags uint32) (uint32, error) {
	b := le64s(fh, off)
	b = append(b, le32s(uint32(len(data)), 0)...)
	b = append(b, le64s(0)...)
	b = append(b, le32s(openFlags, 0)...)
	p, err := fe.CallView(FUSE_WRITE, nodeid, WriteOutSize, b, data)
	if err != nil {
		return 0, err
	}
	if err := expectLen(FUSE_WRITE, p, WriteOutSize); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

// Readdir sends FUSE_READDIR and decodes the entries.
func (fe *Frontend) Readdir(nodeid, fh, off uint64, size uint32) ([]Dirent, error) {
	p, err := fe.CallView(FUSE_READDIR, nodeid, int(size), readIn(fh, off, size, 0))
	if err != nil {
		return nil, err
	}
	return ParseDirents(p, false)
}

// Readdirplus sends FUSE_READDIRPLUS and decodes the entries.
func (fe *Frontend) Readdirplus(nodeid, fh, off uint64, size uint32) ([]Dirent, error) {
	p, err := fe.CallView(FUSE_READDIRPLUS, nodeid, int(size), readIn(fh, off, size, 0))
	if err != nil {
		return nil, err
	}
	return ParseDirents(p, true)
}

// ParseDirents decodes a READDIR (plus=false) or READDIRPLUS reply.
func ParseDirents(p []byte, plus bool) ([]Dirent, error) {
	op := uint32(FUSE_READDIR)
	if plus {
		op = FUSE_READDIRPLUS
	}
	var out []Dirent
	for len(p) > 0 {
		var d Dirent
		if plus {
			if len(p) < EntryOutSize {
				return out, badReply(op, "truncated entry_out")
			}
			e := DecodeEntryOut(p)
			d.Entry = &e
			p = p[EntryOutSize:]
		}
		if len(p) < DirentSize {
			return out, badReply(op, "truncated dirent")
		}
		le := binary.LittleEndian
		d.Ino, d.Off = le.Uint64(p[0:]), le.Uint64(p[8:])
		namelen := le.Uint32(p[16:])
		d.Type = le.Uint32(p[20:])
		rec := (uint64(DirentSize) + uint64(namelen) + 7) &^ 7
		if namelen == 0 || uint64(len(p)) < rec {
			return out, badReply(op, "dirent name length %d does not fit %d bytes", namelen, len(p))
		}
		d.Name = string(p[DirentSize : DirentSize+namelen])
		out = append(out, d)
		p = p[rec:]
	}
	return out, nil
}

func releaseIn(fh uint64, flags uint32) []byte {
	b := le64s(fh)
	b = append(b, le32s(flags, 0)...)
	return append(b, le64s(0)...)
}

// Release sends FUSE_RELEASE.
func (fe *Frontend) Release(nodeid, fh uint64) error {
	return fe.empty(FUSE_RELEASE, nodeid, releaseIn(fh, 0))
}

// Releasedir sends FUSE_RELEASEDIR.
func (fe *Frontend) Releasedir(nodeid, fh uint64) error {
	return fe.empty(FUSE_RELEASEDIR, nodeid, releaseIn(fh, 0))
}

func fsyncIn(fh uint64, datasync bool) []byte {
	var f uint32
	if datasync {
		f = 1
	}
	return append(le64s(fh), le32s(f, 0)...)
}

// Fsync sends FUSE_FSYNC.
func (fe *Frontend) Fsync(nodeid, fh uint64, datasync bool) error {
	return fe.empty(FUSE_FSYNC, nodeid, fsyncIn(fh, datasync))
}

// Fsyncdir sends FUSE_FSYNCDIR.
func (fe *Frontend) Fsyncdir(nodeid, fh uint64, datasync bool) error {
	return fe.empty(FUSE_FSYNCDIR, nodeid, fsyncIn(fh, datasync))
}

// Flush sends FUSE_FLUSH.
func (fe *Frontend) Flush(nodeid, fh uint64) error {
	return fe.empty(FUSE_FLUSH, nodeid, append(le64s(fh), le32s(0, 0)...), le64s(0))
}

// Create sends FUSE_CREATE.
func (fe *Frontend) Create(parent uint64, name string, flags, mode, umask uint32) (EntryOut, OpenOut, error) {
	p, err := fe.CallView(FUSE_CREATE, parent, EntryOutSize+OpenOutSize, le32s(flags, mode, umask, 0), cstr(name))
	if err != nil {
		return EntryOut{}, OpenOut{}, err
	}
	if err := expectLen(FUSE_CREATE, p, EntryOutSize+OpenOutSize); err != nil {
		return EntryOut{}, OpenOut{}, err
	}
	return DecodeEntryOut(p), DecodeOpenOut(p[EntryOutSize:]), nil
}

// Mkdir sends FUSE_MKDIR.
func (fe *Frontend) Mkdir(parent uint64, name string, mode, umask uint32) (EntryOut, error) {
	return fe.entry(FUSE_MKDIR, parent, le32s(mode, umask), cstr(name))
}

// Mknod sends FUSE_MKNOD.
func (fe *Frontend) Mknod(parent uint64, name string, mode, rdev, umask uint32) (EntryOut, error) {
	return fe.entry(FUSE_MKNOD, parent, le32s(mode, rdev, umask, 0), cstr(name))
}

// Symlink sends FUSE_SYMLINK creating name -> target.
func (fe *Frontend) Symlink(parent uint64, name, target string) (EntryOut, error) {
	return fe.entry(FUSE_SYMLINK, parent, append(cstr(name), cstr(target)...))
}

// Readlink sends FUSE_READLINK.
func (fe *Frontend) Readlink(nodeid uint64) (string, error) {
	p, err := fe.CallView(FUSE_READLINK, nodeid, 4096)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// Link sends FUSE_LINK creating newparent/name for oldnode.
func (fe *Frontend) Link(oldnode, newparent uint64, name string) (EntryOut, error) {
	return fe.entry(FUSE_LINK, newparent, le64s(oldnode), cstr(name))
}

// Unlink sends FUSE_UNLINK.
func (fe *Frontend) Unlink(parent uint64, name string) error {
	return fe.empty(FUSE_UNLINK, parent, cstr(name))
}

// Rmdir sends FUSE_RMDIR.
func (fe *Frontend) Rmdir(parent uint64, name string) error {
	return fe.empty(FUSE_RMDIR, parent, cstr(name))
}

// Rename sends FUSE_RENAME.
func (fe *Frontend) Rename(olddir uint64, oldname string, newdir uint64, newname string) error {
	return fe.empty(FUSE_RENAME, olddir, le64s(newdir), append(cstr(oldname), cstr(newname)...))
}

// Rename2 sends FUSE_RENAME2.
func (fe *Frontend) Rename2(olddir uint64, oldname string, newdir uint64, newname string, flags uint32) error {
	return fe.empty(FUSE_RENAME2, olddir, append(le64s(newdir), le32s(flags, 0)...), append(cstr(oldname), cstr(newname)...))
}

// Statfs sends FUSE_STATFS.
func (fe *Frontend) Statfs(nodeid uint64) (StatfsOut, error) {
	p, err := fe.CallView(FUSE_STATFS, nodeid, StatfsOutSize)
	if err != nil {
		return StatfsOut{}, err
	}
	if err := expectLen(FUSE_STATFS, p, StatfsOutSize); err != nil {
		return StatfsOut{}, err
	}
	le := binary.LittleEndian
	return StatfsOut{
		Blocks: le.Uint64(p[0:]), Bfree: le.Uint64(p[8:]), Bavail: le.Uint64(p[16:]),
		Files: le.Uint64(p[24:]), Ffree: le.Uint64(p[32:]), Bsize: le.Uint32(p[40:]),
		Namelen: le.Uint32(p[44:]), Frsize: le.Uint32(p[48:]),
	}, nil
}

// Access sends FUSE_ACCESS.
func (fe *Frontend) Access(nodeid uint64, mask uint32) error {
	return fe.empty(FUSE_ACCESS, nodeid, le32s(mask, 0))
}

// Destroy sends FUSE_DESTROY with a 16-byte writable buffer (as Linux
// does) and returns the used length.
func (fe *Frontend) Destroy() (uint32, error) {
	return fe.SendNoReply(QueueRequest, FUSE_DESTROY, 0, OutHeaderSize)
}
