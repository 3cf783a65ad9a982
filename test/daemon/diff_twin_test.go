package daemon

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A twin is one copy of the seeded folder that one daemon serves. Each twin
// is its own tmpfs (so that STATFS, inode numbering and directory offsets
// do not depend on the rest of the host), with a ramfs mounted inside as a
// submount. The two twins of a run hold the same names, contents, modes,
// owners and times; their inode numbers differ (the second twin burns a
// few before seeding), which the normalisation must absorb.
type twin struct {
	top    string // holds only share; anything else there escaped
	share  string // the served directory (tmpfs root)
	mounts []string
}

// seedEntry is one object of the seeded tree.
type seedEntry struct {
	path     string
	kind     byte // 'f' file, 'd' dir, 'l' symlink, 'p' fifo, 'c' char device, 'h' hard link, 'm' ramfs mount
	mode     uint32
	uid, gid int
	data     string // file content, symlink target, hard-link source
	size     int64  // sparse size for files (0: len(data))
	rdev     uint64
	xattr    [2]string // name and value of an extended attribute to set
}

// seedTime is the atime/mtime of every seeded object (plus its index in
// nanoseconds, so that ordering mistakes show).
const seedTime = 1_000_000_000

// diffSeed is the folder every script starts from.
var diffSeed = func() []seedEntry {
	s := []seedEntry{
		{path: "file", kind: 'f', mode: 0o644, data: "hello world\n", xattr: [2]string{"user.seed", "seeded"}},
		{path: "empty", kind: 'f', mode: 0o644},
		{path: "ro", kind: 'f', mode: 0o444, data: "read only\n"},
		{path: "exec", kind: 'f', mode: 0o755, data: "#!/bin/sh\n"},
		{path: "suid", kind: 'f', mode: 0o6755, uid: 1000, gid: 1000, data: "set-id bits\n"},
		{path: "sparse", kind: 'f', mode: 0o644, data: "data at the start", size: 4 << 20},
		{path: "dir", kind: 'd', mode: 0o755, xattr: [2]string{"trusted.seed", "dir"}},
		{path: "dir/a", kind: 'f', mode: 0o644, data: "a"},
		{path: "dir/b", kind: 'f', mode: 0o644, data: "bb"},
		{path: "dir/sub", kind: 'd', mode: 0o755},
		{path: "dir/sub/c", kind: 'f', mode: 0o600, data: "ccc"},
		{path: "emptydir", kind: 'd', mode: 0o755},
		{path: "full", kind: 'd', mode: 0o755},
		{path: "link", kind: 'l', data: "file"},
		{path: "dangling", kind: 'l', data: "nowhere"},
		{path: "loop", kind: 'l', data: "loop"},
		{path: "dirlink", kind: 'l', data: "dir"},
		{path: "abslink", kind: 'l', data: "/etc"},
		{path: "fifo", kind: 'p', mode: 0o644},
		{path: "null", kind: 'c', mode: 0o666, rdev: unix.Mkdev(1, 3)},
		{path: "private", kind: 'd', mode: 0o700},
		{path: "private/f", kind: 'f', mode: 0o600, data: "private"},
		{path: "open", kind: 'd', mode: 0o777},
		{path: "sticky", kind: 'd', mode: 0o1777},
		{path: "sticky/mine", kind: 'f', mode: 0o644, uid: 1000, gid: 1000, data: "mine"},
		{path: "sticky/other", kind: 'f', mode: 0o644, uid: 2000, gid: 2000, data: "other"},
		{path: "owned", kind: 'd', mode: 0o755, uid: 1000, gid: 1000},
		{path: "owned/f", kind: 'f', mode: 0o640, uid: 1000, gid: 1000, data: "owned"},
		{path: "sgid", kind: 'd', mode: 0o2775, gid: 3000},
		{path: "hard", kind: 'f', mode: 0o644, data: "linked"},
		{path: "hard2", kind: 'h', data: "hard"},
		{path: "victim", kind: 'f', mode: 0o644, data: "victim"},
		{path: "mnt", kind: 'm', mode: 0o755},
		{path: "mnt/m", kind: 'f', mode: 0o644, data: "on the submount"},
		{path: "mnt/d", kind: 'd', mode: 0o755},
	}
	for i := 0; i < 40; i++ {
		s = append(s, seedEntry{path: fmt.Sprintf("full/entry-%02d", i), kind: 'f', mode: 0o644, data: strings.Repeat("x", i)})
	}
	return s
}()

func mountFS(fstype, target, opts string) error {
	if err := unix.Mount("none", target, fstype, 0, opts); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

// newTwin builds a seeded twin under dir. burn inode numbers are used up
// first.
func newTwin(t *testing.T, dir string, seed []seedEntry, burn int) *twin {
	t.Helper()
	tw := &twin{top: dir, share: filepath.Join(dir, "share")}
	if err := os.MkdirAll(tw.share, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mountFS("tmpfs", tw.share, "size=64m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	tw.mounts = append(tw.mounts, tw.share)
	t.Cleanup(tw.unmount)
	// Use up inode numbers in a scratch directory, which costs the root
	// directory one offset in either twin.
	scratch := filepath.Join(tw.share, ".burn")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < burn; i++ {
		p := filepath.Join(scratch, fmt.Sprintf("%d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
	}
	os.Remove(scratch)
	if err := tw.seed(seed); err != nil {
		t.Fatalf("seed twin: %v", err)
	}
	return tw
}

func (tw *twin) unmount() {
	for i := len(tw.mounts) - 1; i >= 0; i-- {
		unix.Unmount(tw.mounts[i], unix.MNT_DETACH)
	}
	tw.mounts = nil
}

func (tw *twin) path(rel string) string { return filepath.Join(tw.share, rel) }

func (tw *twin) seed(seed []seedEntry) error {
	for _, e := range seed {
		p := tw.path(e.path)
		var err error
		switch e.kind {
		case 'f':
			err = os.WriteFile(p, []byte(e.data), 0o600)
			if err == nil && e.size > 0 {
				err = os.Truncate(p, e.size)
				if err == nil {
					// A second data extent far from the first one, for SEEK_DATA.
					var f *os.File
					if f, err = os.OpenFile(p, os.O_WRONLY, 0); err == nil {
						_, err = f.WriteAt([]byte("tail"), e.size/2)
						f.Close()
					}
				}
			}
		case 'd':
			err = os.Mkdir(p, 0o700)
		case 'm':
			if err = os.Mkdir(p, 0o700); err == nil {
				if err = mountFS("ramfs", p, "mode=0755"); err == nil {
					tw.mounts = append(tw.mounts, p)
				}
			}
		case 'l':
			err = os.Symlink(e.data, p)
		case 'p':
			err = unix.Mkfifo(p, 0o600)
		case 'c':
			err = unix.Mknod(p, unix.S_IFCHR|0o600, int(e.rdev))
		case 'h':
			err = os.Link(tw.path(e.data), p)
		}
		if err != nil {
			return err
		}
		if e.kind == 'h' {
			continue
		}
		if e.xattr[0] != "" {
			if err := unix.Lsetxattr(p, e.xattr[0], []byte(e.xattr[1]), 0); err != nil {
				return err
			}
		}
		if err := unix.Lchown(p, e.uid, e.gid); err != nil {
			return err
		}
		if e.kind != 'l' {
			if err := unix.Chmod(p, e.mode); err != nil {
				return err
			}
		}
	}
	// Times last, children before parents, so that seeding does not
	// change them again.
	all := append([]seedEntry{{path: "."}}, seed...)
	for i := len(all) - 1; i >= 0; i-- {
		ts := []unix.Timespec{{Sec: seedTime, Nsec: int64(i)}, {Sec: seedTime + 1, Nsec: int64(i)}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, tw.path(all[i].path), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// hostInode is what the host says about one inode of the twin.
type hostInode struct {
	path string // relative to the share, "/" for the share itself
	st   unix.Stat_t
}

// inodes walks the twin and returns its inodes by number; hard links
// report their lexically first path. Inode numbers of the submount do not
// collide with the tmpfs ones (ramfs numbers come from a global counter,
// tmpfs ones from a per-mount counter); a collision is reported by
// keeping neither.
func (tw *twin) inodes() map[uint64]hostInode {
	m := make(map[uint64]hostInode)
	dup := make(map[uint64]bool)
	walkNoAtime(tw.share, func(rel string, st unix.Stat_t, err error) {
		if err != nil {
			return
		}
		if rel == "." {
			rel = "/"
		}
		if old, ok := m[st.Ino]; ok {
			if old.st.Dev != st.Dev {
				dup[st.Ino] = true
			}
			if old.st.Dev == st.Dev && old.path <= rel {
				return
			}
		}
		m[st.Ino] = hostInode{path: rel, st: st}
	})
	for ino := range dup {
		delete(m, ino)
	}
	return m
}

// walkNoAtime calls fn for root and everything below it, in lexical
// order, without touching access times (the walk must not change what
// the daemons report).
func walkNoAtime(root string, fn func(rel string, st unix.Stat_t, err error)) {
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			fn(rel, st, err)
			return
		}
		fn(rel, st, nil)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOATIME|unix.O_CLOEXEC, 0)
		if err != nil {
			fn(rel, st, err)
			return
		}
		f := os.NewFile(uintptr(fd), p)
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			fn(rel, st, err)
			return
		}
		sort.Strings(names)
		for _, n := range names {
			walk(filepath.Join(rel, n))
		}
	}
	walk(".")
}

// xattrs lists the extended attributes of p (not following symlinks) as
// sorted name=value pairs.
func xattrs(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		val := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			out = append(out, fmt.Sprintf("%s:%v", name, err))
			continue
		}
		out = append(out, fmt.Sprintf("%s=%q", name, val[:k]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// hashNoAtime hashes the data extents of a file (offset, length and
// bytes of each, found with SEEK_DATA/SEEK_HOLE, so that sparse files of
// several GiB cost only their data) without touching its access time. It
// also returns the first bytes of the file.
func hashNoAtime(p string) (sum []byte, head []byte, err error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(fd)
	hs := sha256.New()
	buf := make([]byte, 64<<10)
	var off int64
	for {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(hs, "[%d,%d)", data, hole)
		for pos := data; pos < hole; {
			k, err := unix.Pread(fd, buf[:min(int64(len(buf)), hole-pos)], pos)
			if err != nil {
				return nil, nil, err
			}
			if k == 0 {
				break
			}
			if pos < 32 {
				head = append(head, buf[:min(k, int(32-pos))]...)
			}
			hs.Write(buf[:k])
			pos += int64(k)
		}
		off = hole
	}
	return hs.Sum(nil), head, nil
}

// recentTime separates times set by the seed or by scripts (older) from
// times that record when a request ran.
const recentTime = 1_700_000_000

// state describes the twin after a script: every object with type, mode,
// owner, link count, size, device, content and (if not recent) mtime, and
// whatever appeared next to the share.
func (tw *twin) state() []string {
	var out []string
	walkNoAtime(tw.share, func(rel string, st unix.Stat_t, err error) {
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", rel, err))
			return
		}
		p := filepath.Join(tw.share, rel)
		line := fmt.Sprintf("%s mode=%#o uid=%d gid=%d nlink=%d", rel, st.Mode, st.Uid, st.Gid, st.Nlink)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			sum, head, err := hashNoAtime(p)
			if err != nil {
				line += fmt.Sprintf(" read: %v", err)
			} else {
				line += fmt.Sprintf(" size=%d blocks=%d sha=%x %q", st.Size, st.Blocks, sum[:12], head)
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += fmt.Sprintf(" -> %q", target)
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if x := xattrs(p); x != "" {
			line += " xattrs{" + x + "}"
		}
		if st.Mtim.Sec < recentTime {
			line += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		if st.Atim.Sec < recentTime {
			line += fmt.Sprintf(" atime=%d.%09d", st.Atim.Sec, st.Atim.Nsec)
		}
		out = append(out, line)
	})
	ents, _ := os.ReadDir(tw.top)
	for _, e := range ents {
		if e.Name() != "share" {
			out = append(out, "outside the share: "+e.Name())
		}
	}
	sort.Strings(out)
	return out
}
