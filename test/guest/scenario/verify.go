package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// maxErrors bounds the number of differences Verify reports.
const maxErrors = 20

// Verify checks that the tree below root holds exactly entries: no entry
// missing, none extra, and each with the expected type, permissions, owner,
// size, content digest, symlink target, link count, inode sharing and
// timestamps. All metadata is collected before any file is read, so that the
// reads cannot disturb access times being checked; empty files are not read
// at all.
func Verify(root string, entries []Entry) error {
	var errs []error
	add := func(format string, args ...any) {
		if len(errs) < maxErrors {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}

	want := map[string]bool{}
	stats := map[string]*syscall.Stat_t{}
	for _, e := range entries {
		want[e.Path] = true
		var st syscall.Stat_t
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		if err := syscall.Lstat(p, &st); err != nil {
			add("%s: lstat: %v", e.Path, err)
			continue
		}
		stats[e.Path] = &st
	}

	// Extra entries.
	var extra []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			add("walk %s: %v", p, err)
			return nil
		}
		if p == root {
			return nil
		}
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if !want[rel] {
			extra = append(extra, rel)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		add("walk %s: %v", root, err)
	}
	sort.Strings(extra)
	for _, x := range extra {
		add("%s: unexpected entry", x)
	}

	for _, e := range entries {
		st := stats[e.Path]
		if st == nil {
			continue
		}
		checkMeta(e, st, stats, add, root)
	}
	for _, e := range entries {
		if e.Kind != File || e.Size == 0 || stats[e.Path] == nil {
			continue
		}
		if st := stats[e.Path]; st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		if len(e.Pieces) > 0 {
			if err := CheckPieces(filepath.Join(root, filepath.FromSlash(e.Path)), e.Pieces); err != nil {
				add("%s: %v", e.Path, err)
			}
			continue
		}
		sum, n, err := digestFile(filepath.Join(root, filepath.FromSlash(e.Path)))
		switch {
		case err != nil:
			add("%s: read: %v", e.Path, err)
		case n != e.Size:
			add("%s: read %d bytes, want %d", e.Path, n, e.Size)
		case sum != e.SHA256:
			add("%s: content sha256 %s, want %s", e.Path, sum, e.SHA256)
		}
	}
	return errors.Join(errs...)
}

func checkMeta(e Entry, st *syscall.Stat_t, stats map[string]*syscall.Stat_t, add func(string, ...any), root string) {
	typ := st.Mode & syscall.S_IFMT
	var wantTyp uint32
	switch e.Kind {
	case File:
		wantTyp = syscall.S_IFREG
	case Dir:
		wantTyp = syscall.S_IFDIR
	case Symlink:
		wantTyp = syscall.S_IFLNK
	case FIFO:
		wantTyp = syscall.S_IFIFO
	default:
		add("%s: unknown kind %q", e.Path, e.Kind)
		return
	}
	if typ != wantTyp {
		add("%s: file type %#o, want %#o (%s)", e.Path, typ, wantTyp, e.Kind)
		return
	}
	if e.Kind != Symlink && st.Mode&0o7777 != e.Perm {
		add("%s: mode %#o, want %#o", e.Path, st.Mode&0o7777, e.Perm)
	}
	if st.Uid != e.UID || st.Gid != e.GID {
		add("%s: owner %d:%d, want %d:%d", e.Path, st.Uid, st.Gid, e.UID, e.GID)
	}
	if e.Kind == File && st.Size != e.Size {
		add("%s: size %d, want %d", e.Path, st.Size, e.Size)
	}
	if e.Kind == Symlink {
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(e.Path)))
		if err != nil {
			add("%s: readlink: %v", e.Path, err)
		} else if target != e.Target {
			add("%s: symlink target %q, want %q", e.Path, target, e.Target)
		}
		if st.Size != int64(len(e.Target)) {
			add("%s: symlink size %d, want %d", e.Path, st.Size, len(e.Target))
		}
	}
	if e.Nlink != 0 && uint64(st.Nlink) != uint64(e.Nlink) {
		add("%s: nlink %d, want %d", e.Path, st.Nlink, e.Nlink)
	}
	if e.LinkedTo != "" {
		if o := stats[e.LinkedTo]; o == nil {
			add("%s: cannot compare inode with missing %s", e.Path, e.LinkedTo)
		} else if o.Ino != st.Ino || o.Dev != st.Dev {
			add("%s: inode %d, want the inode of %s (%d)", e.Path, st.Ino, e.LinkedTo, o.Ino)
		}
	}
	if e.Ino != 0 && st.Ino != e.Ino {
		add("%s: inode %d, want %d", e.Path, st.Ino, e.Ino)
	}
	if e.AtimeNs != 0 {
		if got := st.Atim.Nano(); got != e.AtimeNs {
			add("%s: atime %d ns, want %d ns", e.Path, got, e.AtimeNs)
		}
	}
	if e.MtimeNs != 0 {
		if got := st.Mtim.Nano(); got != e.MtimeNs {
			add("%s: mtime %d ns, want %d ns", e.Path, got, e.MtimeNs)
		}
	}
}

// zeroProbe is how many bytes before each piece CheckPieces expects to read
// as zeros.
const zeroProbe = 4096

// CheckPieces reads, at each piece's offset, the piece's data, and before
// it (where no other piece lies) zeros. It reads only those ranges, so it
// suits files of any size.
func CheckPieces(path string, pieces []Piece) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var end int64
	for _, p := range pieces {
		got := make([]byte, len(p.Data))
		if _, err := f.ReadAt(got, p.Off); err != nil {
			return fmt.Errorf("pread %d bytes at %d: %w", len(got), p.Off, err)
		}
		if string(got) != string(p.Data) {
			return fmt.Errorf("pread at %d: %q, want %q", p.Off, got, p.Data)
		}
		if start := max(end, p.Off-zeroProbe); start < p.Off {
			z := make([]byte, p.Off-start)
			if _, err := f.ReadAt(z, start); err != nil {
				return fmt.Errorf("pread %d bytes at %d: %w", len(z), start, err)
			}
			for i, c := range z {
				if c != 0 {
					return fmt.Errorf("byte at %d is %#x, want 0", start+int64(i), c)
				}
			}
		}
		end = p.Off + int64(len(p.Data))
	}
	return nil
}

func digestFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// CreateSeeds creates the entries of [Seeds] below dir/[SeedDir] (as root, for
// the owners) and returns them with their inode numbers filled in.
func CreateSeeds(dir string) ([]Entry, error) {
	base := filepath.Join(dir, SeedDir)
	if err := os.Mkdir(base, 0o755); err != nil {
		return nil, err
	}
	seeds := Seeds()
	contents := seedContents()
	for _, e := range seeds {
		p := filepath.Join(base, filepath.FromSlash(e.Path))
		switch {
		case e.Kind == Dir:
			if err := os.Mkdir(p, 0o700); err != nil {
				return nil, err
			}
		case e.Kind == Symlink:
			if err := os.Symlink(e.Target, p); err != nil {
				return nil, err
			}
		case e.LinkedTo != "":
			if err := os.Link(filepath.Join(base, filepath.FromSlash(e.LinkedTo)), p); err != nil {
				return nil, err
			}
			continue
		default:
			c, ok := contents[e.Path]
			if !ok {
				return nil, fmt.Errorf("create seed %s: no content", e.Path)
			}
			if err := os.WriteFile(p, c, 0o600); err != nil {
				return nil, err
			}
		}
		if err := os.Lchown(p, int(e.UID), int(e.GID)); err != nil {
			return nil, err
		}
		if e.Kind != Symlink {
			if err := os.Chmod(p, fs.FileMode(e.Perm)); err != nil {
				return nil, err
			}
		}
		if e.MtimeNs != 0 {
			ts := []syscall.Timespec{syscall.NsecToTimespec(e.MtimeNs), syscall.NsecToTimespec(e.MtimeNs)}
			if err := syscall.UtimesNano(p, ts); err != nil {
				return nil, err
			}
		}
	}
	for i := range seeds {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(base, filepath.FromSlash(seeds[i].Path)), &st); err != nil {
			return nil, err
		}
		seeds[i].Ino = st.Ino
	}
	return seeds, nil
}

// seedContents returns the content of each seeded regular file by path.
func seedContents() map[string][]byte {
	return map[string][]byte{
		"hello.txt":           SeedHello,
		"big.bin":             Pattern(1, SeedBigSize),
		"empty":               nil,
		"exec.sh":             []byte("#!/bin/sh\necho hi\n"),
		"owned.txt":           []byte("owned by 1001:2002\n"),
		"hard1":               []byte("two names, one inode\n"),
		"sub/deeper/leaf.txt": []byte("leaf\n"),
	}
}
