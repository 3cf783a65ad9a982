package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

// dscript is one scripted request sequence.
type dscript struct {
	name string
	// initFlags is what the automatic INIT offers (0: dLinuxInitFlags).
	initFlags uint64
	// noInit: the script sends INIT itself.
	noInit bool
	// defaultOnly: run only with the default options (scripts whose
	// reference behaviour is a stall, which costs a timeout).
	defaultOnly bool
	// onlyIn, if set, names the only option sets the script runs under
	// (scripts that need an option to be meaningful), and keeps the
	// script out of every other set.
	onlyIn []string
	seed   []seedEntry
	steps  []dstep
}

// drecord is the normalised outcome of one step.
type drecord struct {
	label string
	req   string
	reply string
}

// bogusRef is sent where a step names the result of an earlier step that
// failed; both daemons answer EBADF for it.
const bogusRef = 0xdead_0000_0000

// drun executes one script against one daemon and normalises the
// replies.
type drun struct {
	d  *daemon
	tw *twin

	nodes map[string]uint64 // node ID returned by each labelled step
	fhs   map[string]uint64 // file handle returned by each labelled step

	// Canonical names: node IDs and handles by first appearance, inode
	// numbers by the twin path they had when first seen (or by first
	// appearance when the host no longer has them).
	nodeNames map[uint64]string
	fhNames   map[uint64]string
	inoNames  map[uint64]string
	unknown   int

	host map[uint64]hostInode // walk of the twin after the current reply
	// initFlags are the flags of the last successful INIT reply.
	initFlags uint64
	broken    error // transport failure: the rest is not run
}

func newDrun(d *daemon, tw *twin) *drun {
	return &drun{d: d, tw: tw, nodes: map[string]uint64{}, fhs: map[string]uint64{},
		nodeNames: map[uint64]string{0: "0", fe.FUSE_ROOT_ID: "root"}, fhNames: map[uint64]string{},
		inoNames: map[uint64]string{}}
}

func (r *drun) resolve(x dref) (uint64, string) {
	switch x.kind {
	case drefNode:
		if v, ok := r.nodes[x.label]; ok {
			return v, ""
		}
		return bogusRef, x.String() + " unresolved"
	case drefFh:
		if v, ok := r.fhs[x.label]; ok {
			return v, ""
		}
		return bogusRef, x.String() + " unresolved"
	}
	return x.lit, ""
}

func (r *drun) run(sc *dscript) []drecord {
	steps := sc.steps
	if !sc.noInit {
		flags := sc.initFlags
		if flags == 0 {
			flags = dLinuxInitFlags
		}
		steps = append([]dstep{dsl{}.initReq("init", 7, 38, flags)}, steps...)
	}
	out := make([]drecord, 0, len(steps))
	for i := range steps {
		s := &steps[i]
		label := s.label
		if label == "" {
			label = fmt.Sprintf("#%d", i)
		}
		rec := drecord{label: label, req: dOpName(s.op) + " " + s.node.String()}
		if r.broken != nil {
			rec.reply = "not run: " + r.broken.Error()
			out = append(out, rec)
			continue
		}
		rec.reply = r.step(s, label)
		out = append(out, rec)
	}
	return out
}

func (r *drun) step(s *dstep, label string) string {
	r.host = nil
	var notes []string
	if s.host != nil {
		if err := s.host(r.tw); err != nil {
			return "host action: " + err.Error()
		}
	}
	node, note := r.resolve(s.node)
	if note != "" {
		notes = append(notes, note)
	}
	var body [][]byte
	for _, p := range s.body {
		if p.setxattr != nil {
			b := le32(p.setxattr[0], p.setxattr[1])
			if r.initFlags&dInitSetxattrExt != 0 {
				b = append(b, le32(0, 0)...)
			}
			body = append(body, b)
			continue
		}
		if p.ref == nil {
			body = append(body, p.b)
			continue
		}
		v, note := r.resolve(*p.ref)
		if note != "" {
			notes = append(notes, note)
		}
		body = append(body, binary.LittleEndian.AppendUint64(nil, v))
	}
	prefix := ""
	if len(notes) > 0 {
		prefix = "(" + strings.Join(notes, ", ") + ") "
	}
	f := r.d.FE
	f.UID, f.GID = s.uid, s.gid
	defer func() { f.UID, f.GID = 0, 0 }()
	// A shortened wait is for a reference that is expected to stall; our
	// daemon keeps the full bound so that a loaded machine cannot fail it.
	if s.timeout > 0 && !r.d.spec.hardened {
		f.SetTimeout(s.timeout)
		defer f.SetTimeout(10 * time.Second)
	}
	if s.noReply {
		used, err := f.SendNoReply(s.queue, s.op, node, s.out, body...)
		if err != nil {
			return prefix + r.transport(err)
		}
		return prefix + fmt.Sprintf("no reply (used length %d)", used)
	}
	oh, p, err := f.RawCall(s.queue, s.op, node, body, s.out)
	if err != nil {
		return prefix + r.transport(err)
	}
	if oh.Error != 0 {
		return prefix + dErrnoText(unix.Errno(-oh.Error))
	}
	return prefix + r.decode(s, label, p)
}

func (r *drun) transport(err error) string {
	var re *fe.ReplyError
	if errors.As(err, &re) {
		return "malformed reply: " + re.Reason
	}
	r.broken = err
	if errors.Is(err, fe.ErrTimeout) {
		return "no reply (timeout)"
	}
	return "transport error: " + err.Error()
}

func (r *drun) decode(s *dstep, label string, p []byte) string {
	le := binary.LittleEndian
	short := func(n int) string {
		return fmt.Sprintf("short reply: %d bytes, want %d: %x", len(p), n, p)
	}
	switch s.kind {
	case rkEmpty:
		if len(p) != 0 {
			return fmt.Sprintf("ok with %d unexpected bytes %x", len(p), p)
		}
		return "ok"
	case rkEntry:
		if len(p) != fe.EntryOutSize {
			return short(fe.EntryOutSize)
		}
		e := fe.DecodeEntryOut(p)
		r.nodes[label] = e.NodeID
		return r.entry(e)
	case rkCreate:
		if len(p) != fe.EntryOutSize+fe.OpenOutSize {
			return short(fe.EntryOutSize + fe.OpenOutSize)
		}
		e, o := fe.DecodeEntryOut(p), fe.DecodeOpenOut(p[fe.EntryOutSize:])
		r.nodes[label], r.fhs[label] = e.NodeID, o.Fh
		return r.entry(e) + " " + r.open(p[fe.EntryOutSize:])
	case rkAttr:
		if len(p) != fe.AttrOutSize {
			return short(fe.AttrOutSize)
		}
		return fmt.Sprintf("valid=%d.%09d pad=%d %s", le.Uint64(p), le.Uint32(p[8:]), le.Uint32(p[12:]), r.attr(fe.DecodeAttr(p[16:])))
	case rkOpen:
		if len(p) != fe.OpenOutSize {
			return short(fe.OpenOutSize)
		}
		r.fhs[label] = fe.DecodeOpenOut(p).Fh
		return r.open(p)
	case rkData:
		sum := sha256.Sum256(p)
		if len(p) <= 48 {
			return fmt.Sprintf("%d bytes %q", len(p), p)
		}
		return fmt.Sprintf("%d bytes sha=%x", len(p), sum[:8])
	case rkString:
		return fmt.Sprintf("%q", p)
	case rkWrite:
		if len(p) != fe.WriteOutSize {
			return short(fe.WriteOutSize)
		}
		return fmt.Sprintf("size=%d pad=%d", le.Uint32(p), le.Uint32(p[4:]))
	case rkLseek:
		if len(p) != 8 {
			return short(8)
		}
		return fmt.Sprintf("offset=%d", le.Uint64(p))
	case rkStatfs:
		if len(p) != fe.StatfsOutSize {
			return short(fe.StatfsOutSize)
		}
		return fmt.Sprintf("blocks=%d bfree=%d bavail=%d files=%d ffree=%d bsize=%d namelen=%d frsize=%d rest=%x",
			le.Uint64(p), le.Uint64(p[8:]), le.Uint64(p[16:]), le.Uint64(p[24:]), le.Uint64(p[32:]),
			le.Uint32(p[40:]), le.Uint32(p[44:]), le.Uint32(p[48:]), p[52:])
	case rkDirents, rkDirentsPlus:
		ds, err := fe.ParseDirents(p, s.kind == rkDirentsPlus)
		var b strings.Builder
		fmt.Fprintf(&b, "%d entries", len(ds))
		for _, d := range ds {
			fmt.Fprintf(&b, "\n    %q type=%d off=%d ino=%s", d.Name, d.Type, d.Off, r.ino(d.Ino))
			if d.Entry != nil {
				b.WriteString(" " + r.entry(*d.Entry))
			}
		}
		if err != nil {
			fmt.Fprintf(&b, "\n    %v", err)
		}
		return b.String()
	case rkInit:
		if len(p) != fe.InitOutSize {
			return short(fe.InitOutSize)
		}
		flags := uint64(le.Uint32(p[12:])) | uint64(le.Uint32(p[32:]))<<32
		r.initFlags = flags
		return fmt.Sprintf("%d.%d max_readahead=%d max_background=%d congestion=%d max_write=%d time_gran=%d max_pages=%d map_alignment=%d unused=%x flags=%s",
			le.Uint32(p), le.Uint32(p[4:]), le.Uint32(p[8:]), le.Uint16(p[16:]), le.Uint16(p[18:]), le.Uint32(p[20:]),
			le.Uint32(p[24:]), le.Uint16(p[28:]), le.Uint16(p[30:]), p[36:], initFlagsText(flags))
	}
	if len(p) > 64 {
		return fmt.Sprintf("%d bytes %x...", len(p), p[:64])
	}
	return fmt.Sprintf("%d bytes %x", len(p), p)
}

func initFlagsText(f uint64) string {
	var names []string
	for i := 0; i < 64; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if i < len(dInitFlagNames) && dInitFlagNames[i] != "" {
			names = append(names, dInitFlagNames[i])
		} else {
			names = append(names, fmt.Sprintf("bit%d", i))
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

func (r *drun) open(p []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("fh=%s open_flags=%#x backing=%d", r.fh(le.Uint64(p)), le.Uint32(p[8:]), le.Uint32(p[12:]))
}

func (r *drun) node(v uint64) string {
	if s, ok := r.nodeNames[v]; ok {
		return s
	}
	s := fmt.Sprintf("N%d", len(r.nodeNames)-1)
	r.nodeNames[v] = s
	return s
}

func (r *drun) fh(v uint64) string {
	if s, ok := r.fhNames[v]; ok {
		return s
	}
	s := fmt.Sprintf("F%d", len(r.fhNames)+1)
	r.fhNames[v] = s
	return s
}

func (r *drun) hostInodes() map[uint64]hostInode {
	if r.host == nil {
		r.host = r.tw.inodes()
	}
	return r.host
}

// ino names an inode number by the twin path it had when first seen.
func (r *drun) ino(v uint64) string {
	if s, ok := r.inoNames[v]; ok {
		return s
	}
	var s string
	if hi, ok := r.hostInodes()[v]; ok {
		s = "i:" + hi.path
	} else {
		r.unknown++
		s = fmt.Sprintf("i?%d", r.unknown)
	}
	r.inoNames[v] = s
	return s
}

func (r *drun) entry(e fe.EntryOut) string {
	return fmt.Sprintf("node=%s gen=%d entry_valid=%d.%09d attr_valid=%d.%09d %s",
		r.node(e.NodeID), e.Generation, e.EntryValid, e.EntryValidNsec, e.AttrValid, e.AttrValidNsec, r.attr(e.Attr))
}

// attr renders a fuse_attr. Times equal to the twin's host values are
// shown as "=host"; others literally when they are old (set by the seed
// or a script), as "now" when the host no longer has the inode.
func (r *drun) attr(a fe.Attr) string {
	return fmt.Sprintf("attr{ino=%s mode=%#o nlink=%d uid=%d gid=%d size=%d blocks=%d rdev=%#x blksize=%d flags=%#x times=%s}",
		r.ino(a.Ino), a.Mode, a.Nlink, a.UID, a.GID, a.Size, a.Blocks, a.Rdev, a.Blksize, a.Flags, r.times(a))
}

func (r *drun) times(a fe.Attr) string {
	if a.Atime|a.Mtime|a.Ctime == 0 && a.Atimensec|a.Mtimensec|a.Ctimensec == 0 {
		return "0"
	}
	hi, onHost := r.hostInodes()[a.Ino]
	one := func(sec uint64, nsec uint32, ts unix.Timespec) string {
		switch {
		case onHost && int64(sec) == ts.Sec && int64(nsec) == ts.Nsec:
			return "=host"
		case sec < recentTime:
			return fmt.Sprintf("%d.%09d", sec, nsec)
		case onHost:
			// A time taken before the request changed it (both daemons
			// build some replies from a stat made earlier).
			return "recent!=host"
		}
		return "recent"
	}
	return one(a.Atime, a.Atimensec, hi.st.Atim) + "," + one(a.Mtime, a.Mtimensec, hi.st.Mtim) + "," +
		one(a.Ctime, a.Ctimensec, hi.st.Ctim)
}

// diffLines returns a readable line diff of two sorted lists.
func diffLines(a, b []string) []string {
	inA := map[string]bool{}
	for _, l := range a {
		inA[l] = true
	}
	inB := map[string]bool{}
	for _, l := range b {
		inB[l] = true
	}
	var out []string
	for _, l := range a {
		if !inB[l] {
			out = append(out, "  ours only:      "+l)
		}
	}
	for _, l := range b {
		if !inA[l] {
			out = append(out, "  reference only: "+l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i][18:] < out[j][18:] })
	return out
}

// probeAccepts reports whether our binary accepts args, or the reason it
// refuses them ("... is not supported yet").
func probeAccepts(bin string, args []string) (bool, string) {
	dir, err := os.MkdirTemp("", "vfsd-probe")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	full := append([]string{"--shared-dir", filepath.Join(dir, "missing"), "--socket-path", filepath.Join(dir, "s"),
		"--sandbox=none", "--seccomp=none"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, _ := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	out := string(b)
	if i := strings.Index(out, "not supported yet"); i >= 0 {
		start := strings.LastIndex(out[:i], "\n") + 1
		return false, strings.TrimSpace(out[start : i+len("not supported yet")])
	}
	return true, ""
}
