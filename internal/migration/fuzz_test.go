package migration

import (
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary streams to Decode: it must never panic, and
// whatever it accepts must survive Encode and a second Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, v := range []string{vectorA, vectorB, vectorC} {
		f.Add(unhex(f, v))
	}
	withExt := *stateB
	withExt.Ext = &Extension{FUSEFlags: 0x1234_5678_9abc}
	f.Add(mustEncode(f, &withExt))
	f.Add(unhex(f, "01 00 02 00 00 00 00 00 00 02 05 01 61 05 01 62"))
	f.Add(unhex(f, "00 80 00 02 00 00 00 00 00 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			if st != nil {
				t.Fatalf("Decode returned a state with error %v", err)
			}
			return
		}
		enc, err := Encode(st)
		if err != nil {
			t.Fatalf("Encode of a decoded state: %v\nstate %+v", err, st)
		}
		st2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode of the re-encoded state: %v\n% x", err, enc)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("round trip changed the state:\n first %+v\nsecond %+v", st, st2)
		}
	})
}
