package migration

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The vectors of docs/migration.md ("Test vectors"), produced by postcard
// 1.0.10 from the Rust schema.
const (
	vectorA = `01 04 01 03 00 00 02 01 01 01 03 64 69 72 00 c8 01 01 01 02 07 66 c3 a9 2e 74 78 74 00
		c9 01 05 02 00 ca 01 02 00 c8 01 00 84 80 04 07 02 00 01 08 00 01 00 01 00`
	vectorB = `01 03 01 02 00 01 ac 02 02 02 11 22 03 01 04 ac 02 82 02 08 de ad be ef 01 02 03 04 00
		04 01 03 03 61 2f 62 00 80 01 00 80 80 01 01 01 01 00 01 ac 02 01 2e`
	vectorC = `00 00 02 00 00 00 00 00 00`
)

var (
	stateA = &State{
		Version: V2,
		Inodes: []Inode{
			{ID: 1, Refcount: 3, Location: Location{Kind: LocRoot}},
			{ID: 2, Refcount: 1, Location: Location{Kind: LocPath, Parent: 1, Name: "dir"}},
			{ID: 200, Refcount: 1, Location: Location{Kind: LocPath, Parent: 2, Name: "fé.txt"}},
			{ID: 201, Refcount: 5, Location: Location{Kind: LocInvalid}},
		},
		NextInode: 202,
		Handles: []Handle{
			{ID: 0, Inode: 200, Flags: 0x8002},
			{ID: 7, Inode: 2, Flags: -1},
		},
		NextHandle: 8,
		Opts:       NegotiatedOpts{AnnounceSubmounts: true, SupGroupExtension: true},
	}
	stateB = &State{
		Version: V2,
		Inodes: []Inode{
			{ID: 1, Refcount: 2, Location: Location{Kind: LocRoot},
				FileHandle: &FileHandle{MntID: 300, Type: 1, Bytes: []byte{0x11, 0x22}}},
			{ID: 3, Refcount: 1, Location: Location{Kind: LocFileHandle,
				Handle: FileHandle{MntID: 300, Type: 0x81, Bytes: []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}}}},
			{ID: 4, Refcount: 1, Location: Location{Kind: LocFullPath, Name: "a/b"}},
		},
		NextInode:  128,
		NextHandle: 16384,
		Opts:       NegotiatedOpts{Writeback: true, AnnounceSubmounts: true, PosixACL: true},
		MountPaths: []MountPath{{MntID: 300, Path: "."}},
	}
	stateC = &State{Version: V1, NextInode: 2}
)

func mustDecode(t testing.TB, b []byte) *State {
	t.Helper()
	st, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(% x): %v", b, err)
	}
	return st
}

func mustEncode(t testing.TB, st *State) []byte {
	t.Helper()
	b, err := Encode(st)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func TestVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		st   *State
		size int
	}{
		{"A", vectorA, stateA, 54},
		{"B", vectorB, stateB, 52},
		{"C", vectorC, stateC, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := unhex(t, tc.hex)
			if len(b) != tc.size {
				t.Fatalf("vector is %d bytes, want %d", len(b), tc.size)
			}
			if got := mustDecode(t, b); !reflect.DeepEqual(got, tc.st) {
				t.Errorf("Decode:\n got %+v\nwant %+v", got, tc.st)
			}
			if got := mustEncode(t, tc.st); !bytes.Equal(got, b) {
				t.Errorf("Encode:\n got % x\nwant % x", got, b)
			}
		})
	}
}

// wantDecodeError checks that Decode fails on b with a message containing
// msg at byte offset off (off < 0: any offset).
func wantDecodeError(t *testing.T, b []byte, off int, msg string) {
	t.Helper()
	st, err := Decode(b)
	if err == nil {
		t.Fatalf("Decode(% x) = %+v, want error %q", b, st, msg)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Decode(% x): error %T %v, want *DecodeError", b, err, err)
	}
	if !strings.Contains(de.Msg, msg) || (off >= 0 && de.Offset != off) {
		t.Fatalf("Decode(% x): %v, want %q at offset %d", b, err, msg, off)
	}
	if !strings.HasPrefix(err.Error(), "device state: offset ") {
		t.Fatalf("error text %q lacks the offset prefix", err)
	}
}

// The decoder behaviour checks listed after the vectors.
func TestDecoderChecks(t *testing.T) {
	c := unhex(t, vectorC)
	t.Run("trailing bytes", func(t *testing.T) {
		got := mustDecode(t, append(append([]byte{}, c...), 0xff, 0xff))
		if !reflect.DeepEqual(got, stateC) {
			t.Errorf("got %+v, want %+v", got, stateC)
		}
	})
	t.Run("non-canonical count", func(t *testing.T) {
		got := mustDecode(t, unhex(t, "00 80 00 02 00 00 00 00 00 00 00"))
		if !reflect.DeepEqual(got, stateC) {
			t.Errorf("got %+v, want %+v", got, stateC)
		}
	})
	t.Run("bool 02", func(t *testing.T) {
		wantDecodeError(t, unhex(t, "00 00 02 00 00 00 02 00 00"), 6, "bad bool 2")
	})
	t.Run("option 02", func(t *testing.T) {
		// One Invalid inode whose file_handle tag is 2.
		wantDecodeError(t, unhex(t, "00 01 05 01 02 02"), 5, "bad option tag 2")
	})
	t.Run("top-level tag 02", func(t *testing.T) {
		wantDecodeError(t, append([]byte{2}, c[1:]...), 0, "unknown version 2")
	})
	t.Run("truncated 01 00", func(t *testing.T) {
		wantDecodeError(t, []byte{1, 0}, 2, "unexpected end")
	})
	t.Run("map duplicate keys", func(t *testing.T) {
		b := append(unhex(t, "01 00 02 00 00 00 00 00 00"), unhex(t, "02 05 01 61 05 01 62")...)
		got := mustDecode(t, b)
		want := []MountPath{{MntID: 5, Path: "b"}}
		if !reflect.DeepEqual(got.MountPaths, want) {
			t.Errorf("mount paths %+v, want %+v", got.MountPaths, want)
		}
	})
	t.Run("map sorted and deduplicated", func(t *testing.T) {
		b := append(unhex(t, "01 00 02 00 00 00 00 00 00"),
			unhex(t, "05 09 01 61 02 01 62 09 01 63 02 01 64 07 00")...)
		got := mustDecode(t, b)
		want := []MountPath{{2, "d"}, {7, ""}, {9, "c"}}
		if !reflect.DeepEqual(got.MountPaths, want) {
			t.Errorf("mount paths %+v, want %+v", got.MountPaths, want)
		}
	})
	t.Run("many duplicate keys keep the last value", func(t *testing.T) {
		// Enough entries that the sort is not a plain insertion sort:
		// keys 0..3 each given 16 times, value = position in the stream.
		b := append(unhex(t, "01 00 02 00 00 00 00 00 00"), 64)
		for i := range 64 {
			b = append(b, byte((i*7)%4), 1, '0'+byte(i))
		}
		got := mustDecode(t, b).MountPaths
		var want []MountPath
		for k := range 4 {
			last := -1
			for i := range 64 {
				if (i*7)%4 == k {
					last = i
				}
			}
			want = append(want, MountPath{MntID: uint64(k), Path: string(rune('0' + last))})
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("mount paths %+v, want %+v", got, want)
		}
	})
	t.Run("string with ff", func(t *testing.T) {
		// A Path inode named "a\xff".
		wantDecodeError(t, unhex(t, "01 01 02 01 01 01 02 61 ff 00"), 6, "not valid UTF-8")
	})
	t.Run("mount path with ff", func(t *testing.T) {
		b := append(unhex(t, "01 00 02 00 00 00 00 00 00"), unhex(t, "01 05 01 ff")...)
		wantDecodeError(t, b, 11, "not valid UTF-8")
	})
	t.Run("unknown location", func(t *testing.T) {
		wantDecodeError(t, unhex(t, "01 01 02 01 07 00"), 4, "unknown location 7")
	})
	t.Run("unknown handle source", func(t *testing.T) {
		wantDecodeError(t, unhex(t, "01 00 02 01 00 01 01 00"), 6, "unknown handle source 1")
	})
	t.Run("V1 ignores what would be mount paths", func(t *testing.T) {
		got := mustDecode(t, append(append([]byte{}, c...), unhex(t, "01 05 01 61")...))
		if !reflect.DeepEqual(got, stateC) {
			t.Errorf("got %+v, want %+v", got, stateC)
		}
	})
	t.Run("V1 with all locations", func(t *testing.T) {
		st := *stateB
		st.Version = V1
		st.MountPaths = nil
		b := mustEncode(t, &st)
		if got := mustDecode(t, b); !reflect.DeepEqual(got, &st) {
			t.Errorf("got %+v, want %+v", got, &st)
		}
		vb := unhex(t, vectorB)
		if want := append([]byte{0}, vb[1:len(vb)-5]...); !bytes.Equal(b, want) {
			t.Errorf("V1 encoding\n got % x\nwant % x", b, want)
		}
	})
}

func TestVarintExamples(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		hex string
	}{
		{0, "00"}, {127, "7f"}, {128, "80 01"}, {300, "ac 02"}, {16384, "80 80 01"},
		{1<<32 - 1, "ff ff ff ff 0f"}, {1<<64 - 1, "ff ff ff ff ff ff ff ff ff 01"},
	} {
		want := unhex(t, tc.hex)
		if got := appendUvarint(nil, tc.v); !bytes.Equal(got, want) {
			t.Errorf("varint(%d) = % x, want % x", tc.v, got, want)
		}
		d := decoder{b: want}
		if got, err := d.u64(); err != nil || got != tc.v || d.off != len(want) {
			t.Errorf("u64(% x) = %d, %v (offset %d), want %d", want, got, err, d.off, tc.v)
		}
	}
	for _, tc := range []struct {
		v   int32
		hex string
	}{
		{0, "00"}, {-1, "01"}, {1, "02"}, {0x8002, "84 80 04"}, {0x8000, "80 80 04"},
		{0x802, "84 20"}, {-1 << 31, "ff ff ff ff 0f"}, {1<<31 - 1, "fe ff ff ff 0f"},
	} {
		want := unhex(t, tc.hex)
		if got := appendI32(nil, tc.v); !bytes.Equal(got, want) {
			t.Errorf("zigzag(%d) = % x, want % x", tc.v, got, want)
		}
		d := decoder{b: want}
		if got, err := d.i32(); err != nil || got != tc.v || d.off != len(want) {
			t.Errorf("i32(% x) = %d, %v (offset %d), want %d", want, got, err, d.off, tc.v)
		}
	}
}

// TestVarintLimits checks postcard's limits: 5 bytes with a last byte of
// at most 0x0f for u32 and i32, 10 bytes with a last byte of at most 0x01
// for u64, redundant zero groups accepted within the limit.
func TestVarintLimits(t *testing.T) {
	for _, tc := range []struct {
		hex string
		u32 string // "" = accepted, else the error
		u64 string
	}{
		{"80 00", "", ""},
		{"80 80 80 80 00", "", ""},
		{"ff ff ff ff 0f", "", ""},
		{"ff ff ff ff 10", "bad varint", ""},
		{"80 80 80 80 80 00", "bad varint", ""},
		{"ff ff ff ff 8f 01", "bad varint", ""},
		{"ff ff ff ff ff ff ff ff ff 01", "bad varint", ""},
		{"80 80 80 80 80 80 80 80 80 00", "bad varint", ""},
		{"ff ff ff ff ff ff ff ff ff 02", "bad varint", "bad varint"},
		{"80 80 80 80 80 80 80 80 80 80 00", "bad varint", "bad varint"},
		{"80", "unexpected end", "unexpected end"},
		{"ff ff ff ff", "unexpected end", "unexpected end"},
		{"ff ff ff ff ff ff ff ff ff", "bad varint", "unexpected end"},
	} {
		b := unhex(t, tc.hex)
		d := decoder{b: b}
		_, err := d.u32()
		if tc.u32 == "" && err != nil || tc.u32 != "" && (err == nil || !strings.Contains(err.Error(), tc.u32)) {
			t.Errorf("u32(% x): %v, want %q", b, err, tc.u32)
		}
		d = decoder{b: b}
		_, err = d.u64()
		if tc.u64 == "" && err != nil || tc.u64 != "" && (err == nil || !strings.Contains(err.Error(), tc.u64)) {
			t.Errorf("u64(% x): %v, want %q", b, err, tc.u64)
		}
	}

	// The same limits inside a stream: the version tag is a u32 (enum
	// index), next_inode a u64.
	wantDecodeError(t, unhex(t, "81 80 80 80 10"), 0, "bad varint")
	mustDecode(t, unhex(t, "80 80 80 80 00 00 02 00 00 00 00 00 00"))
	mustDecode(t, unhex(t, "00 00 ff ff ff ff ff ff ff ff ff 01 00 00 00 00 00 00"))
	wantDecodeError(t, unhex(t, "00 00 ff ff ff ff ff ff ff ff ff 02 00 00 00 00 00 00"), 2, "bad varint")
	// A handle's flags (i32) may not use the sixth byte a u64 could.
	wantDecodeError(t, unhex(t, "00 00 02 01 00 00 00 ff ff ff ff 1f 00 00 00 00 00 00"), 7, "bad varint")
	// Nor may a location tag (an enum index).
	wantDecodeError(t, unhex(t, "00 01 01 01 80 80 80 80 80 00"), 4, "bad varint")
}

func TestHugeCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		off  int
	}{
		{"inodes 2^60", "01 80 80 80 80 80 80 80 80 10", 1},
		{"inodes u64 max", "01 ff ff ff ff ff ff ff ff ff 01 00 00 00", 1},
		{"inodes more than the bytes", "01 03 01 01 00 00", 1},
		{"handles 2^60", "01 00 02 80 80 80 80 80 80 80 80 10", 3},
		{"mount paths 2^60", "01 00 02 00 00 00 00 00 00 80 80 80 80 80 80 80 80 10", 9},
		{"name 2^60", "01 01 02 01 01 01 80 80 80 80 80 80 80 80 10", 6},
		{"handle bytes 2^60", "01 01 02 01 04 05 00 80 80 80 80 80 80 80 80 10", 7},
		{"name one byte short", "01 01 02 01 01 01 04 61 62 63", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantDecodeError(t, unhex(t, tc.hex), tc.off, "unexpected end")
		})
	}
}

func TestTruncation(t *testing.T) {
	for _, v := range []string{vectorA, vectorB, vectorC} {
		b := unhex(t, v)
		for n := 0; n < len(b); n++ {
			// A copy of exactly n bytes, so that a read past the end
			// would fault instead of reading the rest of the vector.
			p := bytes.Clone(b[:n])
			st, err := Decode(p)
			if err == nil {
				t.Fatalf("Decode of %d of %d bytes = %+v, want an error", n, len(b), st)
			}
			if !strings.Contains(err.Error(), "unexpected end") {
				t.Fatalf("Decode of %d of %d bytes: %v, want unexpected end", n, len(b), err)
			}
		}
	}
}

func TestTrailer(t *testing.T) {
	st := *stateA
	st.Ext = &Extension{FUSEFlags: 0x1_0000_0000 | 1<<10 | 1}
	b := mustEncode(t, &st)
	a := unhex(t, vectorA)
	if !bytes.HasPrefix(b, a) {
		t.Fatalf("stream with trailer does not start with vector A:\n% x", b)
	}
	wantTrailer := append(append([]byte{}, trailerMagic[:]...), 0x05, 0x81, 0x88, 0x80, 0x80, 0x10)
	if tr := b[len(a):]; !bytes.Equal(tr, wantTrailer) {
		t.Errorf("trailer % x, want % x", tr, wantTrailer)
	}
	if got := mustDecode(t, b); !reflect.DeepEqual(got, &st) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, &st)
	}
	// What the Rust decoder sees: the value, the trailer being ignored.
	got := mustDecode(t, b)
	got.Ext = nil
	if !reflect.DeepEqual(got, stateA) {
		t.Errorf("Rust-compatible part changed:\n got %+v\nwant %+v", got, stateA)
	}

	// Zero flags still make a trailer.
	st.Ext = &Extension{}
	if got := mustDecode(t, mustEncode(t, &st)); got.Ext == nil || *got.Ext != (Extension{}) {
		t.Errorf("zero flags: Ext = %+v", got.Ext)
	}

	// A longer payload from a later version: the known field is read, the
	// rest ignored, as are bytes after the payload.
	mk := func(tail string) []byte { return append(bytes.Clone(a), unhex(t, tail)...) }
	if got := mustDecode(t, mk("f0 47 4f 01 04 2a 01 02 03 ff")); got.Ext == nil || got.Ext.FUSEFlags != 42 {
		t.Errorf("longer payload: Ext = %+v, want flags 42", got.Ext)
	}

	// Malformed trailers are ignored like any trailing bytes.
	for _, tail := range []string{
		"f0 47 4f",             // magic cut short
		"f0 47 4f 02 01 2a",    // wrong magic
		"f0 47 4f 01",          // no length
		"f0 47 4f 01 05 2a",    // length beyond the input
		"f0 47 4f 01 00",       // empty payload
		"f0 47 4f 01 02 80 80", // flags varint cut by the payload length
		"f0 47 4f 01 0a ff ff ff ff ff ff ff ff ff 02", // bad varint
		"f0 47 4f 01 ff ff ff ff ff ff ff ff ff 7f",    // length bad varint
	} {
		got := mustDecode(t, mk(tail))
		if got.Ext != nil {
			t.Errorf("trailer % s: Ext = %+v, want nil", tail, got.Ext)
		}
		got.Ext = nil
		if !reflect.DeepEqual(got, stateA) {
			t.Errorf("trailer %s changed the value: %+v", tail, got)
		}
	}
}

func TestEncodeMountPathsSorted(t *testing.T) {
	st := &State{Version: V2, NextInode: 2, MountPaths: []MountPath{{9, "x"}, {2, "."}, {300, "a/b"}}}
	b := mustEncode(t, st)
	want := append(unhex(t, "01 00 02 00 00 00 00 00 00"), unhex(t, "03 02 01 2e 09 01 78 ac 02 03 61 2f 62")...)
	if !bytes.Equal(b, want) {
		t.Errorf("got % x\nwant % x", b, want)
	}
	if st.MountPaths[0].MntID != 9 {
		t.Errorf("Encode reordered the caller's slice: %+v", st.MountPaths)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   State
		msg  string
	}{
		{"unknown version", State{Version: 2}, "unknown version 2"},
		{"V1 mount paths", State{Version: V1, MountPaths: []MountPath{{1, "."}}}, "cannot carry mount paths"},
		{"duplicate mount ID", State{Version: V2, MountPaths: []MountPath{{1, "."}, {1, "a"}}}, "mount ID 1 listed twice"},
		{"mount path UTF-8", State{Version: V2, MountPaths: []MountPath{{1, "a\xff"}}}, "not valid UTF-8"},
		{"name UTF-8", State{Version: V2, Inodes: []Inode{{ID: 5, Location: Location{Kind: LocPath, Parent: 1, Name: "\xc3"}}}}, "name of inode 5 is not valid UTF-8"},
		{"full path UTF-8", State{Version: V2, Inodes: []Inode{{ID: 5, Location: Location{Kind: LocFullPath, Name: "a/\xff"}}}}, "path of inode 5 is not valid UTF-8"},
		{"unknown location", State{Version: V2, Inodes: []Inode{{ID: 5, Location: Location{Kind: 5}}}}, "unknown location 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(&tc.st)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Encode = % x, %v; want error %q", b, err, tc.msg)
			}
		})
	}
}

// TestDecodeHostileAllocation checks that a short input claiming huge
// counts is refused before anything large is allocated.
func TestDecodeHostileAllocation(t *testing.T) {
	inputs := [][]byte{
		unhex(t, "01 80 80 80 80 80 80 80 80 10"),
		unhex(t, "01 00 02 80 80 80 80 80 80 80 80 10"),
		unhex(t, "01 00 02 00 00 00 00 00 00 80 80 80 80 80 80 80 80 10"),
		unhex(t, "01 01 02 01 01 01 80 80 80 80 80 80 80 80 10"),
		unhex(t, "01 01 02 01 04 05 00 80 80 80 80 80 80 80 80 10"),
	}
	// 100 bytes: as many inodes as fit, then a huge name length.
	big := unhex(t, "01 18")
	for len(big) < 80 {
		big = append(big, 0x05, 0x01, 0x02, 0x00) // Invalid inode
	}
	big = append(big, 0x06, 0x01, 0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)
	for len(big) < 100 {
		big = append(big, 0)
	}
	inputs = append(inputs, big)
	for _, in := range inputs {
		if _, err := Decode(in); err == nil {
			t.Fatalf("Decode(% x) succeeded", in)
		}
		allocs := testing.AllocsPerRun(100, func() { Decode(in) })
		if allocs > 10 {
			t.Errorf("Decode(% x): %v allocations", in, allocs)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < 100; i++ {
			Decode(in)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("Decode(% x) x100 allocated %d bytes", in, n)
		}
	}
}

func BenchmarkEncode100k(b *testing.B) {
	st := bigState(100000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode100k(b *testing.B) {
	enc, err := Encode(bigState(100000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// bigState returns a V2 state of n Path inodes (a tree 100 entries wide)
// and n/10 handles, as a find-paths source would write it.
func bigState(n int) *State {
	st := &State{Version: V2, NextInode: uint64(n) + 2, Opts: NegotiatedOpts{AnnounceSubmounts: true}}
	st.Inodes = make([]Inode, n)
	st.Inodes[0] = Inode{ID: 1, Refcount: 2, Location: Location{Kind: LocRoot}}
	for i := 1; i < n; i++ {
		id := uint64(i + 1)
		parent := uint64(1)
		if i > 100 {
			parent = uint64(i/100 + 1)
		}
		st.Inodes[i] = Inode{ID: id, Refcount: 1, Location: Location{Kind: LocPath, Parent: parent, Name: "file-name-" + strings.Repeat("x", i%16)}}
	}
	for i := 0; i < n/10; i++ {
		st.Handles = append(st.Handles, Handle{ID: uint64(i), Inode: uint64(i*10 + 2), Flags: 0x8002})
	}
	st.NextHandle = uint64(n / 10)
	return st
}

// TestDecodeOwnsItsMemory checks that the decoded state does not alias the
// input, and that growing one decoded byte vector cannot overwrite
// another.
func TestDecodeOwnsItsMemory(t *testing.T) {
	b := unhex(t, vectorB)
	st := mustDecode(t, b)
	for i := range b {
		b[i] = 0x55
	}
	root := st.Inodes[0].FileHandle
	root.Bytes = append(root.Bytes, bytes.Repeat([]byte{0xaa}, 16)...)
	want := *stateB
	want.Inodes = slices.Clone(stateB.Inodes)
	want.Inodes[0].FileHandle = &FileHandle{MntID: 300, Type: 1, Bytes: append([]byte{0x11, 0x22}, bytes.Repeat([]byte{0xaa}, 16)...)}
	if !reflect.DeepEqual(st, &want) {
		t.Errorf("decoded state changed with its input or a neighbour:\n got %+v\nwant %+v", st, want)
	}
}
