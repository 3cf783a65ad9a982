package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Top-level directories of the share.
const (
	// SeedDir holds the files the host creates before the guest boots.
	SeedDir = "seed"
	// GuestDir holds everything the guest creates.
	GuestDir = "guest"
	// SubmountDir is, in the runs with a submount, where the host mounts
	// a tmpfs before the daemon starts.
	SubmountDir = "submount"
)

// Names of the files in the tmpfs on SubmountDir.
const (
	// SubmountSeedFile is the file the host creates in the tmpfs.
	SubmountSeedFile = "inside.txt"
	// SubmountGuestFile is the file the guest creates in the tmpfs.
	SubmountGuestFile = "from-guest.txt"
	// SubmountMoveFile is created by the guest in the tmpfs, fails to be
	// renamed out of it, and is removed.
	SubmountMoveFile = "move-me"
)

// Submount contents.
var (
	SeedSubmount  = []byte("on a tmpfs inside the share\n")
	GuestSubmount = []byte("written by the guest into the submount\n")
)

// SubmountSeeds returns the entries the host creates in the tmpfs mounted on
// [SubmountDir].
func SubmountSeeds() []Entry {
	return []Entry{file(SubmountSeedFile, 0o644, SeedSubmount)}
}

// TopLevel returns the names the share's top directory holds once the guest
// of run r is done, sorted.
func TopLevel(r Run) []string {
	var names []string
	if !r.ReadOnly {
		names = append(names, GuestDir)
	}
	names = append(names, SeedDir)
	if r.Submount != nil {
		names = append(names, SubmountDir)
	}
	return names
}

// ManifestPath is where the manifest lies inside the initramfs.
const ManifestPath = "/manifest.json"

// Manifest is what the host tells the guest: the mount tag, the host's view of
// the shared file system's size, the seeded entries, and what this run does.
type Manifest struct {
	Tag string
	// Run names the entry of [Runs] the guest performs: its checks and
	// stressors.
	Run string
	// Blocks, Bsize and Namelen are the host's statfs(2) values for the
	// shared directory; the guest must see the same numbers.
	Blocks  uint64
	Bsize   int64
	Namelen int64
	// Seeds are the entries the host created: below SeedDir for a run,
	// below MigrateTreeDir for a migration boot.
	Seeds []Entry
	// Mode is empty for a run of checks, [ModeMigrate] for a migration
	// boot (Run is then ignored).
	Mode string
}

// Kind is the type of a directory entry.
type Kind string

// Entry kinds.
const (
	File    Kind = "file"
	Dir     Kind = "dir"
	Symlink Kind = "symlink"
	FIFO    Kind = "fifo"
)

// Entry describes one file, directory or symbolic link, by its path relative
// to the directory given to [Verify].
type Entry struct {
	Path string
	Kind Kind
	// Perm is the permission bits (mode & 07777). Not checked for symlinks.
	Perm uint32
	UID  uint32
	GID  uint32
	// Size and SHA256 (hex) describe a file's content.
	Size   int64
	SHA256 string
	// Target is a symlink's target.
	Target string
	// Nlink, when not zero, is the expected link count.
	Nlink uint32
	// LinkedTo, when set, names an entry that must have the same inode.
	LinkedTo string
	// Ino, when not zero, is the expected inode number: the host fills it in
	// for the seeds, and the guest must see the host's inode numbers.
	Ino uint64
	// AtimeNs and MtimeNs, when not zero, are the expected timestamps in
	// nanoseconds since the epoch.
	AtimeNs int64
	MtimeNs int64
	// Pieces, for a file too large to read whole, replaces SHA256: the
	// file reads as zeros except for these pieces.
	Pieces []Piece
}

// Piece is data at an offset of a sparse file.
type Piece struct {
	Off  int64
	Data []byte
}

// Pattern returns n deterministic pseudo-random bytes for seed.
func Pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 0x2545f4914f6cdd1d
	for i := 0; i < n; i += 8 {
		// xorshift64*
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		v := x * 0x2545f4914f6cdd1d
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Digest returns the hex SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func file(path string, perm uint32, content []byte) Entry {
	return Entry{Path: path, Kind: File, Perm: perm, Size: int64(len(content)), SHA256: Digest(content), Nlink: 1}
}

func dir(path string, perm uint32) Entry {
	return Entry{Path: path, Kind: Dir, Perm: perm}
}

func owned(e Entry, uid, gid uint32) Entry {
	e.UID, e.GID = uid, gid
	return e
}

// timed sets the expected modification time only: reading a directory or a
// symlink later may move its access time.
func timed(e Entry, ns int64) Entry {
	e.MtimeNs = ns
	return e
}

func symlink(path, target string) Entry {
	return Entry{Path: path, Kind: Symlink, Target: target, Nlink: 1}
}

// Sizes of the large files.
const (
	SeedBigSize  = 5<<20 + 7
	GuestBigSize = 12<<20 + 4099
)

// Seed contents that tests refer to by name.
var (
	SeedHello = []byte("hello, virtio-fs\n")
	// SeedOwnedMtimeNs is the modification time of seed/owned.txt.
	SeedOwnedMtimeNs int64 = 1600000000_500000000
)

// Seeds returns the entries the host creates below [SeedDir], in creation
// order (parents first).
func Seeds() []Entry {
	c := seedContents()
	owned := file("owned.txt", 0o640, c["owned.txt"])
	owned.UID, owned.GID = 1001, 2002
	owned.MtimeNs = SeedOwnedMtimeNs
	hard1 := file("hard1", 0o644, c["hard1"])
	hard1.Nlink = 2
	hard2 := hard1
	hard2.Path = "hard2"
	hard2.LinkedTo = "hard1"
	return []Entry{
		file("hello.txt", 0o644, c["hello.txt"]),
		file("big.bin", 0o600, c["big.bin"]),
		file("empty", 0o444, c["empty"]),
		file("exec.sh", 0o755, c["exec.sh"]),
		owned,
		hard1,
		hard2,
		dir("sub", 0o755),
		dir("sub/deeper", 0o700),
		file("sub/deeper/leaf.txt", 0o644, c["sub/deeper/leaf.txt"]),
		symlink("link", "hello.txt"),
		symlink("sub/up", "../hello.txt"),
	}
}

// Checks lists the conformance checks of the default run, in order. Every
// check of a run must be reported exactly once, as passed, for the run to
// pass.
var Checks = []string{
	"mount",
	"statfs",
	"seed-tree",
	"create-small",
	"create-big",
	"append",
	"sparse",
	"mmap",
	"fallocate",
	"copy-range",
	"readdir-1000",
	"mkdir",
	"rename",
	"hardlink",
	"symlink",
	"mkfifo",
	"chmod",
	"chown",
	"truncate",
	"utimens",
	"unlink-rmdir",
	"credentials",
	"errors",
	"open-flags",
	"seek-hole",
	"punch-hole",
	"huge-sparse",
	"readdir-10000",
	"sticky",
	"permissions",
	"locks",
	"groups",
	"times-ns",
	"submount",
	"guest-tree",
	"umount",
}

// Contents the guest writes.
var (
	GuestSmall  = []byte("written by the guest\nsecond line\n")
	GuestAppend = []byte("first\nsecond\n")
	// GuestSparseOffset is where the guest writes GuestSparseTail into an
	// empty file.
	GuestSparseOffset       = 1<<20 + 123
	GuestSparseTail         = []byte("end")
	GuestManyCount          = 1000
	GuestTruncPattern       = Pattern(3, 10000)
	GuestTruncShort         = 3000
	GuestTruncLong          = 5000
	GuestAtimeNs      int64 = 1000000000_123456789
	GuestMtimeNs1     int64 = 1234567890_987654321
	GuestMtimeNs2     int64 = 1300000000_500000000
	GuestMmapSize           = 70000
	GuestFallocSize         = 1 << 20
	// guest/copy.bin is GuestCopyLen bytes of guest/big.bin from
	// GuestCopyOffset, copied with copy_file_range(2).
	GuestCopyOffset = 4096
	GuestCopyLen    = 3<<20 + 5
	GuestOTrunc     = []byte("x\n")
	// GuestUser is the uid and gid of the unprivileged guest process that
	// creates the entries below guest/user.
	GuestUser    uint32 = 1000
	GuestUserTxt        = []byte("written by uid 1000\n")
)

// Contents and sizes of the conformance checks added for POSIX behaviour.
var (
	// guest/oflags.txt: written with O_EXCL, then appended to with
	// O_APPEND after seeking to 0 and with pwrite at offset 0.
	GuestOflags = []byte("0123456789ABCD")
	// guest/holes.bin: GuestHoleChunk bytes of data at 0 and at
	// GuestHoleAt, a hole between.
	GuestHoleChunk       = 64 << 10
	GuestHoleAt    int64 = 1 << 20
	// guest/punch.bin: GuestPunchSize bytes of Pattern(7) with
	// [GuestPunchOff, GuestPunchOff+GuestPunchLen) punched out.
	GuestPunchSize       = 256 << 10
	GuestPunchOff  int64 = 64 << 10
	GuestPunchLen  int64 = 128 << 10
	// guest/large holds GuestLargeCount empty files.
	GuestLargeCount = 10000
	// guest/sticky is a sticky world-writable directory; root's file in it
	// is world-writable, and the unprivileged user appends to it.
	GuestStickyRoot = []byte("root's file\n")
	GuestStickyUser = []byte("user's file\n")
	// guest/perm/mine.txt belongs to the unprivileged user, who writes it
	// after making it writable again.
	GuestPermMine = []byte("owned by the user\n")
	GuestLocks    = []byte("lock me\n")
	// GuestGroup is the group owning guest/grp and guest/grp-sgid, and
	// the unprivileged user's supplementary group in the groups check.
	GuestGroup uint32 = 2000
	// Times the times-ns check sets on a directory and a symlink.
	GuestDirMtimeNs  int64 = 1500000000_000000001
	GuestLinkMtimeNs int64 = 1500000001_999999999
)

// GuestHoles is the content of guest/holes.bin.
func GuestHoles() []byte {
	b := make([]byte, GuestHoleAt+int64(GuestHoleChunk))
	copy(b, Pattern(5, GuestHoleChunk))
	copy(b[GuestHoleAt:], Pattern(6, GuestHoleChunk))
	return b
}

// GuestPunch is the content of guest/punch.bin after the punch.
func GuestPunch() []byte {
	b := Pattern(7, GuestPunchSize)
	clear(b[GuestPunchOff : GuestPunchOff+GuestPunchLen])
	return b
}

// LargeName returns the name of the i-th file in guest/large.
func LargeName(i int) string { return fmt.Sprintf("e%05d", i) }

// GuestHuge describes guest/huge.bin, a sparse file over 4 GiB: one piece
// across the 4 GiB boundary and one at the end.
func GuestHuge() Entry {
	e := Entry{Path: "huge.bin", Kind: File, Perm: 0o644, Nlink: 1, Pieces: []Piece{
		{Off: 4<<30 - 4, Data: []byte("ACROSS4G")},
		{Off: 5<<30 + 3, Data: []byte("tail\n")},
	}}
	last := e.Pieces[len(e.Pieces)-1]
	e.Size = last.Off + int64(len(last.Data))
	return e
}

// GuestMmap is the content of guest/mmap.bin, written through a shared
// mapping.
func GuestMmap() []byte { return Pattern(4, GuestMmapSize) }

// GuestCopy is the content of guest/copy.bin.
func GuestCopy() []byte { return GuestBig()[GuestCopyOffset : GuestCopyOffset+GuestCopyLen] }

// ManyName returns the name of the i-th file in guest/many.
func ManyName(i int) string { return fmt.Sprintf("f%04d", i) }

// ManyContent returns the content of the i-th file in guest/many.
func ManyContent(i int) []byte { return []byte(fmt.Sprintf("entry %04d\n", i)) }

// GuestBig is the content of guest/big.bin.
func GuestBig() []byte { return Pattern(2, GuestBigSize) }

// GuestSparse is the content of guest/sparse.bin.
func GuestSparse() []byte {
	b := make([]byte, GuestSparseOffset+len(GuestSparseTail))
	copy(b[GuestSparseOffset:], GuestSparseTail)
	return b
}

// GuestTrunc is the content of guest/trunc.bin after both truncations.
func GuestTrunc() []byte {
	b := make([]byte, GuestTruncLong)
	copy(b, GuestTruncPattern[:GuestTruncShort])
	return b
}

// Expected returns every entry below [GuestDir] once the guest is done,
// relative to GuestDir. Guest-created entries belong to root (uid 0, gid 0),
// and the guest runs with umask 022.
func Expected() []Entry {
	e := []Entry{
		file("small.txt", 0o644, GuestSmall),
		file("big.bin", 0o644, GuestBig()),
		file("append.txt", 0o644, GuestAppend),
		file("sparse.bin", 0o644, GuestSparse()),
		file("mmap.bin", 0o644, GuestMmap()),
		file("falloc.bin", 0o644, make([]byte, GuestFallocSize)),
		file("copy.bin", 0o644, GuestCopy()),
		dir("many", 0o755),
	}
	for i := 0; i < GuestManyCount; i++ {
		e = append(e, file("many/"+ManyName(i), 0o644, ManyContent(i)))
	}
	hlA := file("hl-a", 0o644, []byte("linked content\nappended via b\n"))
	hlA.Nlink = 2
	hlB := hlA
	hlB.Path, hlB.LinkedTo = "hl-b", "hl-a"
	symRel := symlink("sym-rel", "small.txt")
	symRel.UID, symRel.GID = 1111, 2222
	chown := file("chown.txt", 0o640, []byte("chown me\n"))
	chown.UID, chown.GID = 4321, 8765
	times := file("times.txt", 0o644, nil)
	times.AtimeNs, times.MtimeNs = GuestAtimeNs, GuestMtimeNs2
	e = append(e,
		dir("dir", 0o755),
		dir("dir/a", 0o750),
		dir("dir/a/b", 0o750),
		dir("dir/a/b/c", 0o700),
		file("dir/renamed", 0o644, []byte("rename me\n")),
		file("ren-over-dst", 0o644, []byte("new\n")),
		file("noreplace-a", 0o644, []byte("a\n")),
		file("noreplace-b", 0o644, []byte("b\n")),
		file("xa", 0o644, []byte("B\n")),
		file("xb", 0o644, []byte("A\n")),
		dir("dir-new", 0o755),
		file("dir-new/inside.txt", 0o644, []byte("moved with its directory\n")),
		hlA, hlB,
		symRel,
		symlink("sym-abs", "/etc/hostname"),
		symlink("sym-dangling", "nowhere/at/all"),
		Entry{Path: "fifo", Kind: FIFO, Perm: 0o644, Nlink: 1},
		file("chmod.txt", 0o711, []byte("chmod me\n")),
		chown,
		file("trunc.bin", 0o644, GuestTrunc()),
		file("otrunc.txt", 0o644, GuestOTrunc),
		dir("user", 0o777),
		owned(file("user/u.txt", 0o644, GuestUserTxt), GuestUser, GuestUser),
		owned(dir("user/ud", 0o755), GuestUser, GuestUser),
		owned(symlink("user/ul", "u.txt"), GuestUser, GuestUser),
		times,
		file("oflags.txt", 0o644, GuestOflags),
		symlink("oflags-link", "oflags-missing"),
		file("holes.bin", 0o644, GuestHoles()),
		file("punch.bin", 0o644, GuestPunch()),
		GuestHuge(),
		dir("large", 0o755),
	)
	for i := 0; i < GuestLargeCount; i++ {
		e = append(e, file("large/"+LargeName(i), 0o644, nil))
	}
	stickyRoot := file("sticky/root.txt", 0o666, GuestStickyRoot)
	e = append(e,
		dir("sticky", 0o1777),
		stickyRoot,
		owned(file("sticky/user.txt", 0o644, GuestStickyUser), GuestUser, GuestUser),
		dir("perm", 0o755),
		file("perm/secret", 0o600, []byte("secret\n")),
		dir("perm/closed", 0o700),
		file("perm/closed/inner", 0o644, []byte("inner\n")),
		file("perm/noexec.sh", 0o644, []byte("#!/bin/sh\nexit 0\n")),
		file("perm/root-rw", 0o644, []byte("root's\n")),
		owned(file("perm/mine.txt", 0o644, GuestPermMine), GuestUser, GuestUser),
		file("locks.txt", 0o644, GuestLocks),
		owned(dir("grp", 0o770), 0, GuestGroup),
		owned(file("grp/f.txt", 0o644, []byte("group member\n")), GuestUser, GuestUser),
		owned(dir("grp/d", 0o755), GuestUser, GuestUser),
		owned(dir("grp-sgid", 0o2770), 0, GuestGroup),
		owned(file("grp-sgid/f.txt", 0o644, []byte("inherits the group\n")), GuestUser, GuestGroup),
		owned(dir("grp-sgid/d", 0o2755), GuestUser, GuestGroup),
		timed(dir("times-dir", 0o755), GuestDirMtimeNs),
		timed(symlink("times-link", "times-dir"), GuestLinkMtimeNs),
	)
	return e
}

// result-line grammar, one per line on the guest console.
const (
	linePrefix = "GUESTTEST "
	okWord     = "ok"
	failWord   = "FAIL"
	summary    = "SUMMARY"
	stressWord = "stress"
)

// FormatResult returns the console line for one check; err nil means passed.
func FormatResult(check string, err error) string {
	if err == nil {
		return linePrefix + okWord + " " + check
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return linePrefix + failWord + " " + check + ": " + msg
}

// FormatSummary returns the final console line.
func FormatSummary(passed, failed int) string {
	return fmt.Sprintf("%s%s passed=%d failed=%d", linePrefix, summary, passed, failed)
}

// Report is the parsed outcome of a guest run.
type Report struct {
	Passed   []string
	Failed   map[string]string
	Summary  bool
	NPassed  int
	NFailed  int
	Problems []string
	// Stress holds the stressors' outcomes by name.
	Stress map[string]StressResult
}

// ParseConsole extracts the result lines from a console log. Other lines
// (kernel messages) are ignored; a carriage return before the newline, as the
// serial console emits, is tolerated.
func ParseConsole(log string) Report {
	r := Report{Failed: map[string]string{}, Stress: map[string]StressResult{}}
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimRight(line, "\r")
		i := strings.Index(line, linePrefix)
		if i < 0 {
			continue
		}
		rest := line[i+len(linePrefix):]
		word, arg, _ := strings.Cut(rest, " ")
		switch word {
		case okWord:
			r.Passed = append(r.Passed, arg)
		case failWord:
			name, msg, _ := strings.Cut(arg, ": ")
			r.Failed[name] = msg
		case stressWord:
			name, rest, _ := strings.Cut(arg, " ")
			outcome, detail, _ := strings.Cut(rest, ": ")
			if _, dup := r.Stress[name]; dup || name == "" ||
				(outcome != StressPass && outcome != StressFail && outcome != StressSkip) {
				r.Problems = append(r.Problems, fmt.Sprintf("bad or repeated stress line %q", line))
				continue
			}
			r.Stress[name] = StressResult{Outcome: outcome, Detail: detail}
		case summary:
			if _, err := fmt.Sscanf(arg, "passed=%d failed=%d", &r.NPassed, &r.NFailed); err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("bad summary line %q", line))
				continue
			}
			r.Summary = true
		default:
			r.Problems = append(r.Problems, fmt.Sprintf("unknown result line %q", line))
		}
	}
	return r
}

// Errors lists everything that makes the report of a run performing checks a
// failure: failed, missing, duplicated or unknown checks, and a missing or
// inconsistent summary.
func (r Report) Errors(checks []string) []string {
	errs := append([]string(nil), r.Problems...)
	if len(r.Passed) == 0 && len(r.Failed) == 0 {
		return append(errs, "no check results on the console (the guest program did not run)")
	}
	seen := map[string]int{}
	for _, c := range r.Passed {
		seen[c]++
	}
	for c := range r.Failed {
		seen[c]++
	}
	known := map[string]bool{}
	for _, c := range checks {
		known[c] = true
		if msg, ok := r.Failed[c]; ok {
			errs = append(errs, fmt.Sprintf("check %s failed: %s", c, msg))
		}
		switch n := seen[c]; {
		case n == 0:
			errs = append(errs, fmt.Sprintf("check %s not reported", c))
		case n > 1:
			errs = append(errs, fmt.Sprintf("check %s reported %d times", c, n))
		}
	}
	for c := range seen {
		if !known[c] {
			errs = append(errs, fmt.Sprintf("unknown check %q reported", c))
		}
	}
	if !r.Summary {
		errs = append(errs, "no summary line")
	} else if r.NPassed != len(r.Passed) || r.NFailed != len(r.Failed) {
		errs = append(errs, fmt.Sprintf("summary says passed=%d failed=%d, lines say passed=%d failed=%d",
			r.NPassed, r.NFailed, len(r.Passed), len(r.Failed)))
	}
	return errs
}
