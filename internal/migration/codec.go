package migration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// The codec below is written by hand for the one schema of the stream
// (docs/migration.md, "Schema"), in postcard's wire format
// (https://postcard.jamesmunns.com/wire-format): unsigned integers are
// LEB128 varints, i32 is zigzag-encoded first, strings and byte vectors are
// a varint length and the bytes, Option and bool are one 0/1 byte, enum
// variants are a varint index followed by their fields, structs are their
// fields in order.

// trailerMagic starts the trailer this daemon appends after the postcard
// value (docs/migration.md, "Our trailer"). The Rust decoder never looks at
// bytes after the value, so the trailer is invisible to it.
var trailerMagic = [4]byte{0xF0, 'G', 'O', 0x01}

// Minimum encoded sizes, used to refuse a count that the remaining input
// cannot possibly hold before anything is allocated for it.
const (
	minInodeSize    = 4 // id, refcount, location tag, option tag
	minHandleSize   = 4 // id, inode, source tag, flags
	minMountPathLen = 2 // key, string length
)

// maxPrealloc bounds the capacity reserved for a list before its elements
// are read. A count that passed the size check still costs far more memory
// as Go values than as input (an Inode is about 100 bytes, its minimal
// encoding 4), so a stream that claims many elements and then breaks off
// must not get them all reserved up front; longer lists grow as they are
// read.
const maxPrealloc = 1 << 16

// varint limits of postcard: the maximum number of bytes of a varint of
// each width, and the largest value its last permitted byte may hold.
const (
	u32MaxBytes = 5
	u32LastMax  = 0x0F
	u64MaxBytes = 10
	u64LastMax  = 0x01
)

// DecodeError is the error Decode returns: what went wrong and at which
// byte offset of the stream.
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("device state: offset %d: %s", e.Offset, e.Msg)
}

// Encode returns the stream for st: the canonical postcard encoding of the
// Rust virtiofsd's PassthroughFs value (shortest varints), V1 or V2 as
// st.Version says, mount paths in ascending MntID order, then the trailer
// when st.Ext is not nil.
//
// It fails for what the schema cannot carry or a Rust destination would
// refuse: an unknown version or location kind, mount paths in a V1 state,
// two mount paths with the same MntID, or a string that is not valid UTF-8.
func Encode(st *State) ([]byte, error) {
	if st.Version != V1 && st.Version != V2 {
		return nil, fmt.Errorf("device state: unknown version %d", st.Version)
	}
	if st.Version == V1 && len(st.MountPaths) > 0 {
		return nil, errors.New("device state: version 1 cannot carry mount paths")
	}
	// A Path inode usually takes about 16 bytes; the estimate only saves
	// reallocations.
	b := make([]byte, 0, 32+len(st.Inodes)*16+len(st.Handles)*8)
	b = appendUvarint(b, uint64(st.Version))
	b = appendUvarint(b, uint64(len(st.Inodes)))
	for i := range st.Inodes {
		var err error
		if b, err = appendInode(b, &st.Inodes[i]); err != nil {
			return nil, err
		}
	}
	b = appendUvarint(b, st.NextInode)
	b = appendUvarint(b, uint64(len(st.Handles)))
	for _, h := range st.Handles {
		b = appendUvarint(b, h.ID)
		b = appendUvarint(b, h.Inode)
		b = appendUvarint(b, 0) // HandleSource::OpenInode
		b = appendI32(b, h.Flags)
	}
	b = appendUvarint(b, st.NextHandle)
	b = appendBool(b, st.Opts.Writeback)
	b = appendBool(b, st.Opts.AnnounceSubmounts)
	b = appendBool(b, st.Opts.PosixACL)
	b = appendBool(b, st.Opts.SupGroupExtension)
	if st.Version == V2 {
		mps := slices.Clone(st.MountPaths)
		slices.SortFunc(mps, func(x, y MountPath) int {
			switch {
			case x.MntID < y.MntID:
				return -1
			case x.MntID > y.MntID:
				return 1
			}
			return 0
		})
		b = appendUvarint(b, uint64(len(mps)))
		for i, mp := range mps {
			if i > 0 && mps[i-1].MntID == mp.MntID {
				return nil, fmt.Errorf("device state: mount ID %d listed twice", mp.MntID)
			}
			if !utf8.ValidString(mp.Path) {
				return nil, fmt.Errorf("device state: path of mount ID %d is not valid UTF-8", mp.MntID)
			}
			b = appendUvarint(b, mp.MntID)
			b = appendString(b, mp.Path)
		}
	}
	if st.Ext != nil {
		var payload []byte
		payload = appendUvarint(payload, st.Ext.FUSEFlags)
		b = append(b, trailerMagic[:]...)
		b = appendUvarint(b, uint64(len(payload)))
		b = append(b, payload...)
	}
	return b, nil
}

func appendInode(b []byte, in *Inode) ([]byte, error) {
	b = appendUvarint(b, in.ID)
	b = appendUvarint(b, in.Refcount)
	loc := &in.Location
	switch loc.Kind {
	case LocRoot, LocInvalid:
		b = appendUvarint(b, uint64(loc.Kind))
	case LocPath:
		if !utf8.ValidString(loc.Name) {
			return nil, fmt.Errorf("device state: name of inode %d is not valid UTF-8", in.ID)
		}
		b = appendUvarint(b, uint64(loc.Kind))
		b = appendUvarint(b, loc.Parent)
		b = appendString(b, loc.Name)
	case LocFullPath:
		if !utf8.ValidString(loc.Name) {
			return nil, fmt.Errorf("device state: path of inode %d is not valid UTF-8", in.ID)
		}
		b = appendUvarint(b, uint64(loc.Kind))
		b = appendString(b, loc.Name)
	case LocFileHandle:
		b = appendUvarint(b, uint64(loc.Kind))
		b = appendFileHandle(b, &loc.Handle)
	default:
		return nil, fmt.Errorf("device state: inode %d: unknown location %d", in.ID, loc.Kind)
	}
	if in.FileHandle == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	return appendFileHandle(b, in.FileHandle), nil
}

func appendFileHandle(b []byte, fh *FileHandle) []byte {
	b = appendUvarint(b, fh.MntID)
	b = appendI32(b, fh.Type)
	b = appendUvarint(b, uint64(len(fh.Bytes)))
	return append(b, fh.Bytes...)
}

// appendUvarint appends v as an unsigned LEB128 varint of the fewest bytes,
// which is what postcard writes for u32 and u64.
func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// appendI32 appends v zigzag-encoded as a u32 varint.
func appendI32(b []byte, v int32) []byte {
	return appendUvarint(b, uint64(uint32(v<<1)^uint32(v>>31)))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendString(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode parses a stream: one postcard PassthroughFs value (V1 or V2),
// accepting exactly what the Rust virtiofsd's decoder accepts
// (docs/migration.md, "Encoding rules"). Bytes after the value are ignored,
// except this daemon's trailer, which fills Ext. A trailer that starts with
// the magic but is malformed is ignored like any other trailing bytes: the
// value before it is complete, and a Rust destination would accept it too.
//
// Errors are *DecodeError values. Every count is checked against the
// remaining input before anything is allocated for it.
//
// The decoded state does not alias b, but its names share one copy of b
// and its handle bytes another: keeping any of them keeps that whole copy
// alive, so clone (strings.Clone, slices.Clone) what is stored for long.
func Decode(b []byte) (*State, error) {
	d := decoder{b: b, s: string(b)}
	st, err := d.state()
	if err != nil {
		return nil, err
	}
	st.Ext = decodeTrailer(b[d.off:])
	return st, nil
}

type decoder struct {
	b []byte
	// s is a copy of b as a string: the decoded names are substrings of
	// it, one allocation for all of them instead of one per name.
	s string
	// bc is a copy of b made at the first byte vector, which is a slice
	// of it (capacity limited to its own bytes), for the same reason.
	bc  []byte
	off int
}

func (d *decoder) fail(off int, format string, args ...any) error {
	return &DecodeError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) rest() int { return len(d.b) - d.off }

// varint reads an unsigned LEB128 varint of at most maxBytes bytes whose
// last permitted byte holds at most lastMax (postcard's limits: a longer
// or overflowing encoding is "bad varint", redundant zero groups within
// the limit are accepted).
func (d *decoder) varint(maxBytes int, lastMax byte) (uint64, error) {
	start := d.off
	var v uint64
	for i := 0; i < maxBytes; i++ {
		if d.off >= len(d.b) {
			return 0, d.fail(start, "unexpected end")
		}
		c := d.b[d.off]
		d.off++
		if i == maxBytes-1 && c > lastMax {
			return 0, d.fail(start, "bad varint")
		}
		v |= uint64(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	// Unreachable: the last permitted byte has its continuation bit clear.
	return 0, d.fail(start, "bad varint")
}

func (d *decoder) u64() (uint64, error) { return d.varint(u64MaxBytes, u64LastMax) }

func (d *decoder) u32() (uint32, error) {
	v, err := d.varint(u32MaxBytes, u32LastMax)
	return uint32(v), err
}

func (d *decoder) i32() (int32, error) {
	u, err := d.u32()
	return int32(u>>1) ^ -int32(u&1), err
}

// tag reads a bool or an Option tag: one byte, 0 or 1.
func (d *decoder) tag(what string) (bool, error) {
	if d.off >= len(d.b) {
		return false, d.fail(d.off, "unexpected end")
	}
	c := d.b[d.off]
	if c > 1 {
		return false, d.fail(d.off, "bad %s %d", what, c)
	}
	d.off++
	return c == 1, nil
}

// count reads a length (a usize, 64 bits wide on the Rust side) and checks
// that the remaining input can hold that many items of at least minSize
// bytes each.
func (d *decoder) count(what string, minSize int) (int, error) {
	start := d.off
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.rest()/minSize) {
		return 0, d.fail(start, "unexpected end: %d %s claimed, %d bytes left", n, what, d.rest())
	}
	return int(n), nil
}

func (d *decoder) bytes() ([]byte, error) {
	n, err := d.count("bytes", 1)
	if err != nil || n == 0 {
		return nil, err
	}
	if d.bc == nil {
		d.bc = slices.Clone(d.b)
	}
	v := d.bc[d.off : d.off+n : d.off+n]
	d.off += n
	return v, nil
}

func (d *decoder) string() (string, error) {
	start := d.off
	n, err := d.count("bytes", 1)
	if err != nil {
		return "", err
	}
	s := d.b[d.off : d.off+n]
	if !utf8.Valid(s) {
		return "", d.fail(start, "string is not valid UTF-8")
	}
	var v string
	if len(d.s) == len(d.b) {
		v = d.s[d.off : d.off+n]
	} else {
		v = string(s)
	}
	d.off += n
	return v, nil
}

func (d *decoder) state() (*State, error) {
	start := d.off
	ver, err := d.u32()
	if err != nil {
		return nil, err
	}
	if ver != uint32(V1) && ver != uint32(V2) {
		return nil, d.fail(start, "unknown version %d", ver)
	}
	st := &State{Version: Version(ver)}
	n, err := d.count("inodes", minInodeSize)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		st.Inodes = make([]Inode, 0, min(n, maxPrealloc))
		for range n {
			st.Inodes = append(st.Inodes, Inode{})
			if err := d.inode(&st.Inodes[len(st.Inodes)-1]); err != nil {
				return nil, err
			}
		}
	}
	if st.NextInode, err = d.u64(); err != nil {
		return nil, err
	}
	if n, err = d.count("handles", minHandleSize); err != nil {
		return nil, err
	}
	if n > 0 {
		st.Handles = make([]Handle, 0, min(n, maxPrealloc))
		for range n {
			var h Handle
			if err := d.handle(&h); err != nil {
				return nil, err
			}
			st.Handles = append(st.Handles, h)
		}
	}
	if st.NextHandle, err = d.u64(); err != nil {
		return nil, err
	}
	for _, f := range []*bool{&st.Opts.Writeback, &st.Opts.AnnounceSubmounts, &st.Opts.PosixACL, &st.Opts.SupGroupExtension} {
		if *f, err = d.tag("bool"); err != nil {
			return nil, err
		}
	}
	if st.Version == V2 {
		if st.MountPaths, err = d.mountPaths(); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (d *decoder) inode(in *Inode) error {
	var err error
	if in.ID, err = d.u64(); err != nil {
		return err
	}
	if in.Refcount, err = d.u64(); err != nil {
		return err
	}
	start := d.off
	kind, err := d.u32()
	if err != nil {
		return err
	}
	loc := &in.Location
	loc.Kind = LocationKind(kind)
	switch loc.Kind {
	case LocRoot, LocInvalid:
	case LocPath:
		if loc.Parent, err = d.u64(); err != nil {
			return err
		}
		if loc.Name, err = d.string(); err != nil {
			return err
		}
	case LocFullPath:
		if loc.Name, err = d.string(); err != nil {
			return err
		}
	case LocFileHandle:
		if err := d.fileHandle(&loc.Handle); err != nil {
			return err
		}
	default:
		return d.fail(start, "unknown location %d", kind)
	}
	some, err := d.tag("option tag")
	if err != nil || !some {
		return err
	}
	in.FileHandle = new(FileHandle)
	return d.fileHandle(in.FileHandle)
}

func (d *decoder) fileHandle(fh *FileHandle) error {
	var err error
	if fh.MntID, err = d.u64(); err != nil {
		return err
	}
	if fh.Type, err = d.i32(); err != nil {
		return err
	}
	fh.Bytes, err = d.bytes()
	return err
}

func (d *decoder) handle(h *Handle) error {
	var err error
	if h.ID, err = d.u64(); err != nil {
		return err
	}
	if h.Inode, err = d.u64(); err != nil {
		return err
	}
	start := d.off
	src, err := d.u32()
	if err != nil {
		return err
	}
	if src != 0 {
		return d.fail(start, "unknown handle source %d", src)
	}
	h.Flags, err = d.i32()
	return err
}

// mountPaths reads the HashMap<u64, String>. As in the Rust decoder a key
// given twice keeps its last value; the result is sorted by MntID.
func (d *decoder) mountPaths() ([]MountPath, error) {
	n, err := d.count("mount paths", minMountPathLen)
	if err != nil || n == 0 {
		return nil, err
	}
	mps := make([]MountPath, 0, min(n, maxPrealloc))
	for range n {
		var mp MountPath
		if mp.MntID, err = d.u64(); err != nil {
			return nil, err
		}
		if mp.Path, err = d.string(); err != nil {
			return nil, err
		}
		mps = append(mps, mp)
	}
	// A stable sort keeps the entries of one key in stream order, so the
	// last of each run is the value that wins.
	slices.SortStableFunc(mps, func(x, y MountPath) int {
		switch {
		case x.MntID < y.MntID:
			return -1
		case x.MntID > y.MntID:
			return 1
		}
		return 0
	})
	out := mps[:0]
	for i, mp := range mps {
		if i+1 < len(mps) && mps[i+1].MntID == mp.MntID {
			continue
		}
		out = append(out, mp)
	}
	return out, nil
}

// decodeTrailer returns the Extension carried by this daemon's trailer at
// the start of b, or nil when b does not start with a well-formed one.
// Payload bytes after the fields known here are ignored, so that a later
// version may append fields.
func decodeTrailer(b []byte) *Extension {
	if len(b) < len(trailerMagic) || [4]byte(b[:4]) != trailerMagic {
		return nil
	}
	d := decoder{b: b, off: len(trailerMagic)}
	n, err := d.u64()
	if err != nil || n > uint64(d.rest()) {
		return nil
	}
	p := decoder{b: b[d.off : d.off+int(n)]}
	flags, err := p.u64()
	if err != nil {
		return nil
	}
	return &Extension{FUSEFlags: flags}
}
