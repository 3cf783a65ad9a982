package daemon

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	fe "virtiofsd/internal/testutil/frontend"
)

const root = fe.FUSE_ROOT_ID

func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	var got unix.Errno
	if !errors.As(err, &got) || got != want {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}

func must[T any](t *testing.T, what string) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func hostStat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

func checkAttr(t *testing.T, what string, a fe.Attr, st unix.Stat_t) {
	t.Helper()
	if a.Ino != st.Ino || a.Mode != st.Mode || a.Size != uint64(st.Size) || a.Nlink != uint32(st.Nlink) ||
		a.UID != st.Uid || a.GID != st.Gid {
		t.Fatalf("%s attr = ino %d mode %#o size %d nlink %d uid %d gid %d; host ino %d mode %#o size %d nlink %d uid %d gid %d",
			what, a.Ino, a.Mode, a.Size, a.Nlink, a.UID, a.GID, st.Ino, st.Mode, st.Size, st.Nlink, st.Uid, st.Gid)
	}
}

func writeHost(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestInit(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		in := d.Init
		if in.Major != 7 || in.Minor != 38 || in.MaxWrite != 1<<20 || in.MaxPages != 256 ||
			in.MaxBackground != 65535 || in.CongestionThreshold != 49149 || in.TimeGran != 1 ||
			in.MaxReadahead != 128<<10 || in.MapAlignment != 0 {
			t.Errorf("INIT reply = %+v", in)
		}
		if in.Flags&^uint64(fe.DefaultInitFlags) != 0 {
			t.Errorf("INIT flags %#x not a subset of offered %#x", in.Flags, uint64(fe.DefaultInitFlags))
		}
		for _, f := range []uint64{fe.FUSE_ASYNC_READ, fe.FUSE_BIG_WRITES, fe.FUSE_MAX_PAGES, fe.FUSE_INIT_EXT, fe.FUSE_DO_READDIRPLUS} {
			if in.Flags&f == 0 {
				t.Errorf("INIT flags %#x lack %#x", in.Flags, f)
			}
		}
		// Version handling: major < 7 and minor < 27 are EPROTO; major > 7
		// gets a bare 7.38 answer so that the kernel retries.
		send := func(major, minor uint32) ([]byte, error) {
			return d.FE.Call(fe.FUSE_INIT, 0, fe.InitOutSize, le32(major, minor, 0, 0))
		}
		_, err := send(6, 38)
		wantErrno(t, "INIT 6.38", err, unix.EPROTO)
		_, err = send(7, 26)
		wantErrno(t, "INIT 7.26", err, unix.EPROTO)
		p, err := send(8, 0)
		mustOK(t, "INIT 8.0", err)
		if len(p) != fe.InitOutSize || le32at(p, 0) != 7 || le32at(p, 4) != 38 || !bytes.Equal(p[8:], make([]byte, fe.InitOutSize-8)) {
			t.Errorf("INIT 8.0 reply = %x", p)
		}
		// A second INIT (without DESTROY) resets the session.
		if _, err := d.FE.Init(fe.DefaultInitFlags); err != nil {
			t.Fatalf("second INIT: %v", err)
		}
		d.serves()
	})
}

func TestLookupGetattr(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		p := filepath.Join(d.Shared, "file")
		writeHost(t, p, []byte("hello world"), 0o640)
		os.Mkdir(filepath.Join(d.Shared, "dir"), 0o751)
		e := must[fe.EntryOut](t, "LOOKUP file")(d.FE.Lookup(root, "file"))
		if e.NodeID <= root || e.Generation != 0 {
			t.Errorf("LOOKUP nodeid %d generation %d", e.NodeID, e.Generation)
		}
		checkAttr(t, "LOOKUP", e.Attr, hostStat(t, p))
		if e.EntryValid != 1 || e.AttrValid != 1 {
			t.Errorf("LOOKUP timeouts entry %d attr %d, want 1 s (cache=auto)", e.EntryValid, e.AttrValid)
		}
		e2 := must[fe.EntryOut](t, "LOOKUP file again")(d.FE.Lookup(root, "file"))
		if e2.NodeID != e.NodeID {
			t.Errorf("second LOOKUP nodeid %d, want %d", e2.NodeID, e.NodeID)
		}
		a := must[fe.AttrOut](t, "GETATTR")(d.FE.Getattr(e.NodeID))
		checkAttr(t, "GETATTR", a.Attr, hostStat(t, p))
		ra := must[fe.AttrOut](t, "GETATTR root")(d.FE.Getattr(root))
		checkAttr(t, "GETATTR root", ra.Attr, hostStat(t, d.Shared))
		de := must[fe.EntryOut](t, "LOOKUP dir")(d.FE.Lookup(root, "dir"))
		checkAttr(t, "LOOKUP dir", de.Attr, hostStat(t, filepath.Join(d.Shared, "dir")))

		_, err := d.FE.Lookup(root, "missing")
		wantErrno(t, "LOOKUP missing", err, unix.ENOENT)
		_, err = d.FE.Lookup(e.NodeID, "x")
		wantErrno(t, "LOOKUP under a file", err, unix.ENOTDIR)
		_, err = d.FE.Getattr(1 << 40)
		wantErrno(t, "GETATTR unknown nodeid", err, unix.EBADF)
		_, err = d.FE.Lookup(1<<40, "file")
		wantErrno(t, "LOOKUP unknown parent", err, unix.EBADF)
	})
}

func TestForget(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		for _, n := range []string{"a", "b", "c"} {
			writeHost(t, filepath.Join(d.Shared, n), nil, 0o644)
		}
		a := must[fe.EntryOut](t, "LOOKUP a")(d.FE.Lookup(root, "a"))
		must[fe.EntryOut](t, "LOOKUP a")(d.FE.Lookup(root, "a"))
		mustOK(t, "FORGET a 1", d.FE.Forget(a.NodeID, 1))
		must[fe.AttrOut](t, "GETATTR a after partial forget")(d.FE.Getattr(a.NodeID))
		mustOK(t, "FORGET a 1", d.FE.Forget(a.NodeID, 1))
		_, err := d.FE.Getattr(a.NodeID)
		wantErrno(t, "GETATTR a after full forget", err, unix.EBADF)
		a2 := must[fe.EntryOut](t, "LOOKUP a again")(d.FE.Lookup(root, "a"))
		if a2.NodeID == a.NodeID {
			t.Errorf("node ID %d reused after forget", a.NodeID)
		}
		// FORGET of an unknown node is ignored.
		mustOK(t, "FORGET unknown", d.FE.Forget(1<<40, 1))

		b := must[fe.EntryOut](t, "LOOKUP b")(d.FE.Lookup(root, "b"))
		c := must[fe.EntryOut](t, "LOOKUP c")(d.FE.Lookup(root, "c"))
		must[fe.EntryOut](t, "LOOKUP c")(d.FE.Lookup(root, "c"))
		mustOK(t, "BATCH_FORGET", d.FE.BatchForget([]fe.Forget1{{NodeID: b.NodeID, Nlookup: 1}, {NodeID: c.NodeID, Nlookup: 1}, {NodeID: a2.NodeID, Nlookup: 5}, {NodeID: 1 << 40, Nlookup: 1}}))
		_, err = d.FE.Getattr(b.NodeID)
		wantErrno(t, "GETATTR b after batch forget", err, unix.EBADF)
		_, err = d.FE.Getattr(a2.NodeID)
		wantErrno(t, "GETATTR a after saturating batch forget", err, unix.EBADF)
		must[fe.AttrOut](t, "GETATTR c (one lookup left)")(d.FE.Getattr(c.NodeID))
		d.serves()
	})
}

func TestSetattr(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		p := filepath.Join(d.Shared, "f")
		writeHost(t, p, []byte("0123456789"), 0o644)
		e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"))

		a := must[fe.AttrOut](t, "SETATTR mode")(d.FE.Setattr(e.NodeID, fe.SetattrIn{Valid: fe.FATTR_MODE, Mode: unix.S_IFREG | 0o600}))
		if st := hostStat(t, p); st.Mode&0o7777 != 0o600 || a.Attr.Mode != st.Mode {
			t.Errorf("after SETATTR mode: host %#o, reply %#o", st.Mode, a.Attr.Mode)
		}
		a = must[fe.AttrOut](t, "SETATTR uid/gid")(d.FE.Setattr(e.NodeID, fe.SetattrIn{Valid: fe.FATTR_UID | fe.FATTR_GID, UID: 1234, GID: 5678}))
		if st := hostStat(t, p); st.Uid != 1234 || st.Gid != 5678 || a.Attr.UID != 1234 || a.Attr.GID != 5678 {
			t.Errorf("after SETATTR uid/gid: host %d:%d, reply %d:%d", st.Uid, st.Gid, a.Attr.UID, a.Attr.GID)
		}
		a = must[fe.AttrOut](t, "SETATTR size")(d.FE.Setattr(e.NodeID, fe.SetattrIn{Valid: fe.FATTR_SIZE, Size: 4}))
		if b, _ := os.ReadFile(p); string(b) != "0123" || a.Attr.Size != 4 {
			t.Errorf("after SETATTR size 4: host %q, reply size %d", b, a.Attr.Size)
		}
		// Size through an open handle.
		o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDWR))
		must[fe.AttrOut](t, "SETATTR size fh")(d.FE.Setattr(e.NodeID, fe.SetattrIn{Valid: fe.FATTR_SIZE | fe.FATTR_FH, Fh: o.Fh, Size: 8192}))
		if st := hostStat(t, p); st.Size != 8192 {
			t.Errorf("after SETATTR size fh: host size %d", st.Size)
		}
		_, err := d.FE.Setattr(e.NodeID, fe.SetattrIn{Valid: fe.FATTR_SIZE | fe.FATTR_FH, Fh: o.Fh + 1000, Size: 1})
		wantErrno(t, "SETATTR with unknown fh", err, unix.EBADF)
		mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))

		a = must[fe.AttrOut](t, "SETATTR times")(d.FE.Setattr(e.NodeID, fe.SetattrIn{
			Valid: fe.FATTR_ATIME | fe.FATTR_MTIME, Atime: 1_000_000_000, Atimensec: 123, Mtime: 1_500_000_000, Mtimensec: 456}))
		st := hostStat(t, p)
		if st.Atim.Sec != 1_000_000_000 || st.Atim.Nsec != 123 || st.Mtim.Sec != 1_500_000_000 || st.Mtim.Nsec != 456 {
			t.Errorf("after SETATTR times: host atime %v mtime %v", st.Atim, st.Mtim)
		}
		if a.Attr.Atime != 1_000_000_000 || a.Attr.Atimensec != 123 || a.Attr.Mtime != 1_500_000_000 || a.Attr.Mtimensec != 456 {
			t.Errorf("SETATTR times reply %+v", a.Attr)
		}
		// Only mtime: atime is left alone.
		must[fe.AttrOut](t, "SETATTR mtime")(d.FE.Setattr(e.NodeID, fe.SetattrIn{Valid: fe.FATTR_MTIME, Mtime: 1_600_000_000}))
		if st := hostStat(t, p); st.Atim.Sec != 1_000_000_000 || st.Mtim.Sec != 1_600_000_000 {
			t.Errorf("after SETATTR mtime: host atime %v mtime %v", st.Atim, st.Mtim)
		}
		before := time.Now().Add(-2 * time.Second).Unix()
		must[fe.AttrOut](t, "SETATTR times NOW")(d.FE.Setattr(e.NodeID, fe.SetattrIn{
			Valid: fe.FATTR_ATIME | fe.FATTR_MTIME | fe.FATTR_ATIME_NOW | fe.FATTR_MTIME_NOW}))
		if st := hostStat(t, p); st.Atim.Sec < before || st.Mtim.Sec < before {
			t.Errorf("after SETATTR NOW: host atime %v mtime %v, want ≥ %d", st.Atim, st.Mtim, before)
		}
		_, err = d.FE.Setattr(1<<40, fe.SetattrIn{Valid: fe.FATTR_MODE, Mode: 0o644})
		wantErrno(t, "SETATTR unknown nodeid", err, unix.EBADF)
	})
}

func direntNames(ds []fe.Dirent) []string {
	var n []string
	for _, d := range ds {
		n = append(n, d.Name)
	}
	sort.Strings(n)
	return n
}

func TestDirectoryOps(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		dir := filepath.Join(d.Shared, "d")
		os.Mkdir(dir, 0o755)
		var want []string
		for i := 0; i < 40; i++ {
			n := "entry-with-a-longish-name-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			writeHost(t, filepath.Join(dir, n), nil, 0o644)
			want = append(want, n)
		}
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
		os.Symlink("target", filepath.Join(dir, "link"))
		want = append(want, ".", "..", "sub", "link")
		sort.Strings(want)

		de := must[fe.EntryOut](t, "LOOKUP d")(d.FE.Lookup(root, "d"))
		o := must[fe.OpenOut](t, "OPENDIR")(d.FE.Opendir(de.NodeID, unix.O_RDONLY))

		// READDIR in small pages, continuing from the last offset.
		var all []fe.Dirent
		off := uint64(0)
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("READDIR does not terminate")
			}
			ents := must[[]fe.Dirent](t, "READDIR")(d.FE.Readdir(de.NodeID, o.Fh, off, 512))
			if len(ents) == 0 {
				break
			}
			all = append(all, ents...)
			off = ents[len(ents)-1].Off
		}
		if got := direntNames(all); !equalStrings(got, want) {
			t.Fatalf("READDIR names = %v, want %v", got, want)
		}
		for _, e := range all {
			var wantType uint32 = unix.DT_REG
			switch e.Name {
			case ".", "..", "sub":
				wantType = unix.DT_DIR
			case "link":
				wantType = unix.DT_LNK
			}
			if e.Type != wantType {
				t.Errorf("READDIR %q type %d, want %d", e.Name, e.Type, wantType)
			}
			if e.Name == "sub" && e.Ino != hostStat(t, filepath.Join(dir, "sub")).Ino {
				t.Errorf("READDIR sub ino %d, want host ino", e.Ino)
			}
		}
		// READDIR size 0: empty reply.
		ents := must[[]fe.Dirent](t, "READDIR size 0")(d.FE.Readdir(de.NodeID, o.Fh, 0, 0))
		if len(ents) != 0 {
			t.Errorf("READDIR size 0 = %d entries", len(ents))
		}

		// READDIRPLUS from the start: entries carry lookups.
		var plus []fe.Dirent
		off = 0
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("READDIRPLUS does not terminate")
			}
			ents := must[[]fe.Dirent](t, "READDIRPLUS")(d.FE.Readdirplus(de.NodeID, o.Fh, off, 4096))
			if len(ents) == 0 {
				break
			}
			plus = append(plus, ents...)
			off = ents[len(ents)-1].Off
		}
		if got := direntNames(plus); !equalStrings(got, want) {
			t.Fatalf("READDIRPLUS names = %v, want %v", got, want)
		}
		for _, e := range plus {
			switch e.Name {
			case ".", "..":
				if e.Entry.NodeID != 0 {
					t.Errorf("READDIRPLUS %q nodeid %d, want 0", e.Name, e.Entry.NodeID)
				}
			default:
				checkAttr(t, "READDIRPLUS "+e.Name, e.Entry.Attr, hostStat(t, filepath.Join(dir, e.Name)))
				l := must[fe.EntryOut](t, "LOOKUP "+e.Name)(d.FE.Lookup(de.NodeID, e.Name))
				if l.NodeID != e.Entry.NodeID {
					t.Errorf("READDIRPLUS %q nodeid %d, LOOKUP says %d", e.Name, e.Entry.NodeID, l.NodeID)
				}
			}
		}
		mustOK(t, "FSYNCDIR", d.FE.Fsyncdir(de.NodeID, o.Fh, false))
		mustOK(t, "FSYNCDIR datasync", d.FE.Fsyncdir(de.NodeID, o.Fh, true))
		_, err := d.FE.Readdir(de.NodeID, o.Fh+1000, 0, 4096)
		wantErrno(t, "READDIR unknown fh", err, unix.EBADF)
		_, err = d.FE.Readdir(root, o.Fh, 0, 4096)
		wantErrno(t, "READDIR fh of another node", err, unix.EBADF)
		mustOK(t, "RELEASEDIR", d.FE.Releasedir(de.NodeID, o.Fh))
		err = d.FE.Releasedir(de.NodeID, o.Fh)
		wantErrno(t, "RELEASEDIR twice", err, unix.EBADF)
		_, err = d.FE.Readdir(de.NodeID, o.Fh, 0, 4096)
		wantErrno(t, "READDIR after RELEASEDIR", err, unix.EBADF)
		_, err = d.FE.Opendir(1<<40, unix.O_RDONLY)
		wantErrno(t, "OPENDIR unknown nodeid", err, unix.EBADF)
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFileIO(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		e, o, err := d.FE.Create(root, "new", unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o640, 0o022)
		mustOK(t, "CREATE", err)
		p := filepath.Join(d.Shared, "new")
		st := hostStat(t, p)
		checkAttr(t, "CREATE", e.Attr, st)
		if st.Mode&0o777 != 0o640 {
			t.Errorf("created mode %#o", st.Mode)
		}
		data := make([]byte, 300_000)
		for i := range data {
			data[i] = byte(i * 7)
		}
		n := must[uint32](t, "WRITE")(d.FE.Write(e.NodeID, o.Fh, 0, data, unix.O_RDWR))
		if n != uint32(len(data)) {
			t.Fatalf("WRITE = %d, want %d", n, len(data))
		}
		n = must[uint32](t, "WRITE at offset")(d.FE.Write(e.NodeID, o.Fh, 1_000_000, []byte("tail"), unix.O_RDWR))
		if n != 4 {
			t.Fatalf("WRITE at offset = %d", n)
		}
		host, _ := os.ReadFile(p)
		if len(host) != 1_000_004 || !bytes.Equal(host[:len(data)], data) || string(host[1_000_000:]) != "tail" {
			t.Fatalf("host file after WRITE: %d bytes", len(host))
		}
		got := must[[]byte](t, "READ")(d.FE.Read(e.NodeID, o.Fh, 0, uint32(len(data))))
		if !bytes.Equal(got, data) {
			t.Fatalf("READ back %d bytes differ", len(got))
		}
		got = must[[]byte](t, "READ at EOF")(d.FE.Read(e.NodeID, o.Fh, 999_998, 4096))
		if string(got) != "\x00\x00tail" {
			t.Fatalf("READ at EOF = %q", got)
		}
		got = must[[]byte](t, "READ past EOF")(d.FE.Read(e.NodeID, o.Fh, 5_000_000, 4096))
		if len(got) != 0 {
			t.Fatalf("READ past EOF = %d bytes", len(got))
		}
		mustOK(t, "FLUSH", d.FE.Flush(e.NodeID, o.Fh))
		mustOK(t, "FSYNC", d.FE.Fsync(e.NodeID, o.Fh, false))
		mustOK(t, "FSYNC datasync", d.FE.Fsync(e.NodeID, o.Fh, true))
		mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))
		_, err = d.FE.Read(e.NodeID, o.Fh, 0, 10)
		wantErrno(t, "READ after RELEASE", err, unix.EBADF)
		_, err = d.FE.Write(e.NodeID, o.Fh, 0, []byte("x"), 0)
		wantErrno(t, "WRITE after RELEASE", err, unix.EBADF)
		err = d.FE.Release(e.NodeID, o.Fh)
		wantErrno(t, "RELEASE twice", err, unix.EBADF)
		err = d.FE.Flush(e.NodeID, o.Fh)
		wantErrno(t, "FLUSH unknown fh", err, unix.EBADF)
		err = d.FE.Fsync(e.NodeID, o.Fh, false)
		wantErrno(t, "FSYNC unknown fh", err, unix.EBADF)

		// OPEN an existing host file read-only; writing through it fails.
		writeHost(t, filepath.Join(d.Shared, "ro"), []byte("read only data"), 0o644)
		re := must[fe.EntryOut](t, "LOOKUP ro")(d.FE.Lookup(root, "ro"))
		ro := must[fe.OpenOut](t, "OPEN ro")(d.FE.Open(re.NodeID, unix.O_RDONLY))
		got = must[[]byte](t, "READ ro")(d.FE.Read(re.NodeID, ro.Fh, 5, 4))
		if string(got) != "only" {
			t.Errorf("READ ro = %q", got)
		}
		_, err = d.FE.Write(re.NodeID, ro.Fh, 0, []byte("x"), 0)
		wantErrno(t, "WRITE on O_RDONLY handle", err, unix.EBADF)
		_, err = d.FE.Read(e.NodeID, ro.Fh, 0, 4)
		wantErrno(t, "READ with another node's fh", err, unix.EBADF)
		mustOK(t, "RELEASE ro", d.FE.Release(re.NodeID, ro.Fh))

		// O_TRUNC and O_APPEND.
		tr := must[fe.OpenOut](t, "OPEN O_TRUNC")(d.FE.Open(re.NodeID, unix.O_WRONLY|unix.O_TRUNC))
		if st := hostStat(t, filepath.Join(d.Shared, "ro")); st.Size != 0 {
			t.Errorf("size after O_TRUNC open = %d", st.Size)
		}
		mustOK(t, "RELEASE", d.FE.Release(re.NodeID, tr.Fh))
		writeHost(t, filepath.Join(d.Shared, "ap"), []byte("abc"), 0o644)
		ae := must[fe.EntryOut](t, "LOOKUP ap")(d.FE.Lookup(root, "ap"))
		ao := must[fe.OpenOut](t, "OPEN O_APPEND")(d.FE.Open(ae.NodeID, unix.O_WRONLY|unix.O_APPEND))
		must[uint32](t, "WRITE append")(d.FE.Write(ae.NodeID, ao.Fh, 0, []byte("def"), unix.O_WRONLY|unix.O_APPEND))
		if b, _ := os.ReadFile(filepath.Join(d.Shared, "ap")); string(b) != "abcdef" {
			t.Errorf("after append WRITE: %q", b)
		}
		mustOK(t, "RELEASE", d.FE.Release(ae.NodeID, ao.Fh))

		_, _, err = d.FE.Create(root, "new", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, unix.S_IFREG|0o644, 0)
		wantErrno(t, "CREATE O_EXCL existing", err, unix.EEXIST)
		// Without O_EXCL, CREATE of an existing file opens it.
		e2, o2, err := d.FE.Create(root, "new", unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
		mustOK(t, "CREATE existing", err)
		if e2.NodeID != e.NodeID {
			t.Errorf("CREATE existing nodeid %d, want %d", e2.NodeID, e.NodeID)
		}
		mustOK(t, "RELEASE", d.FE.Release(e2.NodeID, o2.Fh))
		_, _, err = d.FE.Create(1<<40, "x", unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
		wantErrno(t, "CREATE unknown parent", err, unix.EBADF)
		_, err = d.FE.Open(1<<40, unix.O_RDONLY)
		wantErrno(t, "OPEN unknown nodeid", err, unix.EBADF)
	})
}

func TestNamespaceOps(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		sh := d.Shared
		de := must[fe.EntryOut](t, "MKDIR")(d.FE.Mkdir(root, "dir", unix.S_IFDIR|0o750, 0))
		if st := hostStat(t, filepath.Join(sh, "dir")); st.Mode != unix.S_IFDIR|0o750 {
			t.Errorf("MKDIR host mode %#o", st.Mode)
		}
		checkAttr(t, "MKDIR", de.Attr, hostStat(t, filepath.Join(sh, "dir")))
		_, err := d.FE.Mkdir(root, "dir", unix.S_IFDIR|0o750, 0)
		wantErrno(t, "MKDIR existing", err, unix.EEXIST)

		fifo := must[fe.EntryOut](t, "MKNOD fifo")(d.FE.Mknod(de.NodeID, "fifo", unix.S_IFIFO|0o640, 0, 0))
		if st := hostStat(t, filepath.Join(sh, "dir", "fifo")); st.Mode != unix.S_IFIFO|0o640 {
			t.Errorf("MKNOD fifo host mode %#o", st.Mode)
		}
		checkAttr(t, "MKNOD fifo", fifo.Attr, hostStat(t, filepath.Join(sh, "dir", "fifo")))
		reg := must[fe.EntryOut](t, "MKNOD regular")(d.FE.Mknod(de.NodeID, "reg", unix.S_IFREG|0o600, 0, 0))
		if reg.Attr.Mode != unix.S_IFREG|0o600 {
			t.Errorf("MKNOD regular mode %#o", reg.Attr.Mode)
		}

		sl := must[fe.EntryOut](t, "SYMLINK")(d.FE.Symlink(de.NodeID, "sl", "../some/target"))
		if tgt, _ := os.Readlink(filepath.Join(sh, "dir", "sl")); tgt != "../some/target" {
			t.Errorf("host symlink target %q", tgt)
		}
		if sl.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("SYMLINK mode %#o", sl.Attr.Mode)
		}
		if tgt := must[string](t, "READLINK")(d.FE.Readlink(sl.NodeID)); tgt != "../some/target" {
			t.Errorf("READLINK = %q", tgt)
		}
		// readlinkat(fd, "") on an O_PATH fd of a non-symlink fails with
		// ENOENT (observed on the reference; fs.md §3.7 says EINVAL).
		_, err = d.FE.Readlink(reg.NodeID)
		wantErrno(t, "READLINK on a regular file", err, unix.ENOENT)

		ln := must[fe.EntryOut](t, "LINK")(d.FE.Link(reg.NodeID, root, "hard"))
		if ln.NodeID != reg.NodeID || ln.Attr.Nlink != 2 {
			t.Errorf("LINK nodeid %d (want %d) nlink %d", ln.NodeID, reg.NodeID, ln.Attr.Nlink)
		}
		if st := hostStat(t, filepath.Join(sh, "hard")); st.Ino != reg.Attr.Ino {
			t.Errorf("LINK host ino %d, want %d", st.Ino, reg.Attr.Ino)
		}
		_, err = d.FE.Link(reg.NodeID, root, "hard")
		wantErrno(t, "LINK existing", err, unix.EEXIST)

		mustOK(t, "RENAME", d.FE.Rename(root, "hard", de.NodeID, "moved"))
		if _, err := os.Lstat(filepath.Join(sh, "dir", "moved")); err != nil {
			t.Errorf("RENAME result: %v", err)
		}
		err = d.FE.Rename(root, "nonexistent", root, "x")
		wantErrno(t, "RENAME missing", err, unix.ENOENT)
		err = d.FE.Rename2(de.NodeID, "moved", de.NodeID, "fifo", fe.RENAME_NOREPLACE)
		wantErrno(t, "RENAME2 NOREPLACE onto existing", err, unix.EEXIST)
		writeHost(t, filepath.Join(sh, "x1"), []byte("one"), 0o644)
		writeHost(t, filepath.Join(sh, "x2"), []byte("two"), 0o644)
		mustOK(t, "RENAME2 EXCHANGE", d.FE.Rename2(root, "x1", root, "x2", fe.RENAME_EXCHANGE))
		if b, _ := os.ReadFile(filepath.Join(sh, "x1")); string(b) != "two" {
			t.Errorf("after EXCHANGE x1 = %q", b)
		}
		mustOK(t, "RENAME2 NOREPLACE", d.FE.Rename2(root, "x1", root, "x3", fe.RENAME_NOREPLACE))

		err = d.FE.Rmdir(root, "dir")
		wantErrno(t, "RMDIR non-empty", err, unix.ENOTEMPTY)
		err = d.FE.Unlink(root, "dir")
		wantErrno(t, "UNLINK directory", err, unix.EISDIR)
		for _, n := range []string{"fifo", "reg", "sl", "moved"} {
			mustOK(t, "UNLINK "+n, d.FE.Unlink(de.NodeID, n))
		}
		err = d.FE.Unlink(de.NodeID, "reg")
		wantErrno(t, "UNLINK missing", err, unix.ENOENT)
		err = d.FE.Rmdir(root, "x2")
		wantErrno(t, "RMDIR file", err, unix.ENOTDIR)
		mustOK(t, "RMDIR", d.FE.Rmdir(root, "dir"))
		if _, err := os.Lstat(filepath.Join(sh, "dir")); !os.IsNotExist(err) {
			t.Errorf("dir still exists after RMDIR: %v", err)
		}
		// The unlinked-but-known node still answers GETATTR through its
		// O_PATH descriptor (the reference 1.13.2 defaults to never). Our
		// default is prefer (1.13.3): the node's file handle is stale, as it
		// is for the reference in that mode (TestInodeFileHandlesUnlinked).
		if spec == ours {
			_, err = d.FE.Getattr(reg.NodeID)
			wantErrno(t, "GETATTR unlinked (file handle)", err, unix.ESTALE)
		} else {
			a := must[fe.AttrOut](t, "GETATTR unlinked")(d.FE.Getattr(reg.NodeID))
			if a.Attr.Nlink != 0 {
				t.Errorf("unlinked nlink = %d", a.Attr.Nlink)
			}
		}
		err = d.FE.Unlink(1<<40, "x")
		wantErrno(t, "UNLINK unknown parent", err, unix.EBADF)
	})
}

func TestStatfsAccess(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		s := must[fe.StatfsOut](t, "STATFS")(d.FE.Statfs(root))
		var hs unix.Statfs_t
		if err := unix.Statfs(d.Shared, &hs); err != nil {
			t.Fatal(err)
		}
		if s.Blocks != hs.Blocks || s.Bsize != uint32(hs.Bsize) || s.Namelen != uint32(hs.Namelen) || s.Files != hs.Files || s.Frsize != uint32(hs.Frsize) {
			t.Errorf("STATFS = %+v, host %+v", s, hs)
		}
		_, err := d.FE.Statfs(1 << 40)
		wantErrno(t, "STATFS unknown nodeid", err, unix.EBADF)

		p := filepath.Join(d.Shared, "priv")
		writeHost(t, p, nil, 0o640)
		os.Chown(p, 1000, 1000)
		e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "priv"))
		for _, c := range []struct {
			uid, gid, mask uint32
			want           unix.Errno
		}{
			{0, 0, unix.R_OK | unix.W_OK, 0},
			{0, 0, unix.X_OK, unix.EACCES}, // root needs some x bit
			{1000, 1000, unix.R_OK | unix.W_OK, 0},
			{1000, 1000, unix.X_OK, unix.EACCES},
			{2000, 1000, unix.R_OK, 0},
			{2000, 1000, unix.W_OK, unix.EACCES},
			{2000, 2000, unix.R_OK, unix.EACCES},
			{2000, 2000, unix.F_OK, 0},
		} {
			d.FE.UID, d.FE.GID = c.uid, c.gid
			err := d.FE.Access(e.NodeID, c.mask)
			d.FE.UID, d.FE.GID = 0, 0
			if c.want == 0 {
				mustOK(t, "ACCESS", err)
			} else {
				wantErrno(t, "ACCESS", err, c.want)
			}
		}
		err = d.FE.Access(1<<40, unix.R_OK)
		wantErrno(t, "ACCESS unknown nodeid", err, unix.EBADF)
	})
}

func TestCredentials(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		os.Chmod(d.Shared, 0o777)
		d.FE.UID, d.FE.GID = 4321, 8765
		e, o, err := d.FE.Create(root, "owned", unix.O_RDWR|unix.O_CREAT, unix.S_IFREG|0o644, 0)
		mustOK(t, "CREATE as 4321", err)
		m := must[fe.EntryOut](t, "MKDIR as 4321")(d.FE.Mkdir(root, "odir", unix.S_IFDIR|0o755, 0))
		s := must[fe.EntryOut](t, "SYMLINK as 4321")(d.FE.Symlink(root, "olink", "x"))
		n := must[fe.EntryOut](t, "MKNOD as 4321")(d.FE.Mknod(root, "onod", unix.S_IFIFO|0o600, 0, 0))
		d.FE.UID, d.FE.GID = 0, 0
		for name, a := range map[string]fe.Attr{"owned": e.Attr, "odir": m.Attr, "olink": s.Attr, "onod": n.Attr} {
			st := hostStat(t, filepath.Join(d.Shared, name))
			if st.Uid != 4321 || st.Gid != 8765 || a.UID != 4321 || a.GID != 8765 {
				t.Errorf("%s owner: host %d:%d reply %d:%d, want 4321:8765", name, st.Uid, st.Gid, a.UID, a.GID)
			}
		}
		mustOK(t, "RELEASE", d.FE.Release(e.NodeID, o.Fh))
		d.serves()
	})
}

func TestDestroy(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		writeHost(t, filepath.Join(d.Shared, "f"), []byte("x"), 0o644)
		e := must[fe.EntryOut](t, "LOOKUP")(d.FE.Lookup(root, "f"))
		o := must[fe.OpenOut](t, "OPEN")(d.FE.Open(e.NodeID, unix.O_RDONLY))
		used, err := d.FE.Destroy()
		mustOK(t, "DESTROY", err)
		if used != 0 {
			t.Errorf("DESTROY used length %d, want 0", used)
		}
		_, err = d.FE.Getattr(root)
		wantErrno(t, "GETATTR root after DESTROY", err, unix.EBADF)
		_, err = d.FE.Read(e.NodeID, o.Fh, 0, 1)
		wantErrno(t, "READ after DESTROY", err, unix.EBADF)
		if _, err := d.FE.Init(fe.DefaultInitFlags); err != nil {
			t.Fatalf("INIT after DESTROY: %v", err)
		}
		e2 := must[fe.EntryOut](t, "LOOKUP after re-INIT")(d.FE.Lookup(root, "f"))
		if e2.NodeID == e.NodeID {
			t.Errorf("nodeid %d reused after DESTROY", e.NodeID)
		}
		o2 := must[fe.OpenOut](t, "OPEN after re-INIT")(d.FE.Open(e2.NodeID, unix.O_RDONLY))
		if o2.Fh == o.Fh {
			t.Errorf("handle %d reused after DESTROY", o.Fh)
		}
		d.serves()
	})
}

func TestUnknownOpcodes(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, spec *daemonSpec) {
		d := startDaemon(t, spec, startOpts{})
		for _, op := range []uint32{0, 7, 19, fe.FUSE_GETLK, 32, 33, fe.FUSE_BMAP, fe.FUSE_IOCTL, 40, 41,
			fe.FUSE_SETUPMAPPING, 49, fe.FUSE_TMPFILE, 52, 99, 1000, fe.CUSE_INIT, 0xffffffff} {
			_, err := d.FE.Call(op, root, 256, make([]byte, 64))
			wantErrno(t, "opcode "+itoa(op), err, unix.ENOSYS)
		}
		d.serves()
	})
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func le32(v ...uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	}
	return b
}

func le32at(b []byte, off int) uint32 {
	return uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16 | uint32(b[off+3])<<24
}
