package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ModeMigrate is the Manifest.Mode of a live-migration boot: instead of a
// run's checks, the guest program keeps using the share while the host
// migrates the guest between QEMU instances (see guestprog's migrate.go).
const ModeMigrate = "migrate"

// Paths of a migration boot, relative to the share's top directory.
const (
	// MigrateTreeDir holds the tree the host prepares; the guest works
	// with its current directory there and only reads it.
	MigrateTreeDir = "tree"
	// MigrateKnownFile is the host-written file, below MigrateTreeDir, that
	// the guest holds open for reading through every migration.
	MigrateKnownFile = "known.bin"
	// MigrateHeldDir is the directory, below MigrateTreeDir, the guest holds
	// open and reads again through the held descriptor at the end.
	MigrateHeldDir = "d07"
	// MigrateLogFile is the file, below [GuestDir], the guest creates and
	// appends numbered lines to through one descriptor it holds through
	// every migration.
	MigrateLogFile = "appended.log"
	// MigrateStopFile is the file the host creates in the top directory to
	// make the guest leave its loop.
	MigrateStopFile = "stop"
)

// Shape of the tree below MigrateTreeDir: MigrateDirs directories, each
// holding MigrateFilesPerDir files and MigrateSubdirs subdirectories of
// MigrateFilesPerSub files.
const (
	MigrateDirs        = 20
	MigrateFilesPerDir = 60
	MigrateSubdirs     = 2
	MigrateFilesPerSub = 40
)

// MigrateKnown is the content of the held file.
var MigrateKnown = Pattern(42, 3<<16+17)

// Console markers of a migration boot. The guest prints MigrateReady once it
// holds its descriptors, a MigrateAlive line with its iteration count about
// once a second while looping, and one MigrateReportPrefix line holding the
// JSON [MigrateReport] at the end.
const (
	MigrateReady        = "GUESTMIGRATE ready"
	MigrateAlive        = "GUESTMIGRATE alive "
	MigrateReportPrefix = "GUESTMIGRATE report "
)

// MigrateTree returns the entries the host creates below MigrateTreeDir, in
// creation order (parents first): a few thousand small files in two levels
// of directories, the held file, a hard-linked pair and two symlinks.
func MigrateTree() []Entry {
	var es []Entry
	add := func(path string) {
		es = append(es, file(path, 0o644, MigrateContent(path)))
	}
	for d := 0; d < MigrateDirs; d++ {
		dn := fmt.Sprintf("d%02d", d)
		es = append(es, dir(dn, 0o755))
		for f := 0; f < MigrateFilesPerDir; f++ {
			add(fmt.Sprintf("%s/f%03d", dn, f))
		}
		for s := 0; s < MigrateSubdirs; s++ {
			sn := fmt.Sprintf("%s/s%d", dn, s)
			es = append(es, dir(sn, 0o755))
			for f := 0; f < MigrateFilesPerSub; f++ {
				add(fmt.Sprintf("%s/g%03d", sn, f))
			}
		}
	}
	add(MigrateKnownFile)
	hard := file("d03/linked-a", 0o644, MigrateContent("d03/linked-a"))
	hard.Nlink = 2
	other := hard
	other.Path, other.LinkedTo = "d11/s1/linked-b", "d03/linked-a"
	return append(es,
		hard, other,
		symlink("to-known", MigrateKnownFile),
		symlink("d05/up", "../d06/f001"),
	)
}

// MigrateContent returns the content of the regular file at path (relative
// to MigrateTreeDir) of [MigrateTree]: for the held file MigrateKnown, for
// the others a few dozen bytes derived from the path.
func MigrateContent(path string) []byte {
	if path == MigrateKnownFile {
		return MigrateKnown
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	s := h.Sum64()
	return Pattern(s, int(s%97))
}

// CreateMigrateTree creates [MigrateTree] below dir/[MigrateTreeDir] and
// returns its entries with their inode numbers filled in.
func CreateMigrateTree(dir string) ([]Entry, error) {
	base := filepath.Join(dir, MigrateTreeDir)
	if err := os.Mkdir(base, 0o755); err != nil {
		return nil, err
	}
	es := MigrateTree()
	for _, e := range es {
		p := filepath.Join(base, filepath.FromSlash(e.Path))
		var err error
		switch {
		case e.Kind == Dir:
			if err = os.Mkdir(p, 0o700); err == nil {
				err = os.Chmod(p, fs.FileMode(e.Perm))
			}
		case e.Kind == Symlink:
			err = os.Symlink(e.Target, p)
		case e.LinkedTo != "":
			err = os.Link(filepath.Join(base, filepath.FromSlash(e.LinkedTo)), p)
		default:
			if err = os.WriteFile(p, MigrateContent(e.Path), 0o600); err == nil {
				err = os.Chmod(p, fs.FileMode(e.Perm))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for i := range es {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(base, filepath.FromSlash(es[i].Path)), &st); err != nil {
			return nil, err
		}
		es[i].Ino = st.Ino
	}
	return es, nil
}

// MigrateReport is what the guest of a migration boot reports at the end.
type MigrateReport struct {
	// Iterations is how many rounds the loop made; Lines is how many
	// numbered lines the guest appended (one per round, plus one written
	// after the loop through the same descriptor).
	Iterations int
	Lines      int
	// Entries is how many entries the first walk of the tree stat'ed.
	Entries int
	// Errors lists what went wrong, at most a few per kind; empty means
	// the guest saw nothing wrong.
	Errors []string
}

// FormatMigrateReport returns the console line reporting r.
func FormatMigrateReport(r MigrateReport) string {
	b, err := json.Marshal(r)
	if err != nil {
		// A struct of ints and strings always marshals.
		panic(err)
	}
	return MigrateReportPrefix + string(b)
}

// ParseMigrateReport returns the report found on the console log, failing
// when there is none, more than one, or it does not parse.
func ParseMigrateReport(log string) (MigrateReport, error) {
	var r MigrateReport
	found := 0
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimRight(line, "\r")
		i := strings.Index(line, MigrateReportPrefix)
		if i < 0 {
			continue
		}
		found++
		if err := json.Unmarshal([]byte(line[i+len(MigrateReportPrefix):]), &r); err != nil {
			return r, fmt.Errorf("parse migration report %q: %w", line, err)
		}
	}
	switch found {
	case 0:
		return r, fmt.Errorf("no migration report on the console")
	case 1:
		return r, nil
	}
	return r, fmt.Errorf("%d migration reports on the console, want 1", found)
}

// MigrateLine returns the i-th line (counting from 1) the guest appends.
func MigrateLine(i int) string { return fmt.Sprintf("line %08d\n", i) }

// CheckMigrateLog checks that b holds exactly the lines 1 to n in order,
// with no gap, duplicate or torn line, and returns n.
func CheckMigrateLog(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if b[len(b)-1] != '\n' {
		return 0, fmt.Errorf("last line %q is not complete", b[bytes.LastIndexByte(b, '\n')+1:])
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	for i, l := range lines {
		num, ok := strings.CutPrefix(l, "line ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 8 {
			return 0, fmt.Errorf("line %d is %q, want %q", i+1, l, strings.TrimSuffix(MigrateLine(i+1), "\n"))
		}
		if n != i+1 {
			what := "gap"
			if n <= i {
				what = "duplicate"
			}
			return 0, fmt.Errorf("line %d holds number %d (%s)", i+1, n, what)
		}
	}
	return len(lines), nil
}
