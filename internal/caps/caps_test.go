package caps

import (
	"errors"
	"testing"
)

func TestCompute(t *testing.T) {
	const (
		def       = Set(0x880000db) // observed CapEff of the reference daemon
		sysAdmin  = Set(1) << 21
		dacSearch = Set(1) << capDacReadSearch
	)
	tests := []struct {
		modcaps string
		given   bool
		fh      FileHandles
		want    Set
		err     string
	}{
		{modcaps: "", want: def},
		{modcaps: "", fh: FileHandlesPrefer, want: def | dacSearch},
		{modcaps: "", fh: FileHandlesMandatory, want: def | dacSearch},
		{modcaps: "-mknod:+sys_admin", want: 0x802000db},
		{modcaps: "+chown:-chown", want: def &^ 1},
		{modcaps: "-chown:+chown", want: def},
		{modcaps: "+CHOWN", want: def},
		{modcaps: "+Sys_Admin", want: def | sysAdmin},
		{modcaps: "+checkpoint_restore:+sys_admin:+setpcap:+kill", want: 0x100882001fb},
		{modcaps: "-chown:-dac_override:-fowner:-fsetid:-setgid:-setuid:-mknod:-setfcap", want: 0},
		{modcaps: "+dac_read_search", want: def | dacSearch},
		{modcaps: "-dac_read_search", want: def},
		{modcaps: "-dac_read_search:+dac_read_search", fh: FileHandlesPrefer, want: def | dacSearch},
		{modcaps: "-dac_read_search", fh: FileHandlesPrefer, err: "can't disable DAC_READ_SEARCH when using --inode-file-handles=Prefer"},
		{modcaps: "-dac_read_search", fh: FileHandlesMandatory, err: "can't disable DAC_READ_SEARCH when using --inode-file-handles=Mandatory"},
		{modcaps: "+dac_read_search:-dac_read_search", fh: FileHandlesPrefer, err: "can't disable DAC_READ_SEARCH when using --inode-file-handles=Prefer"},
		{modcaps: "-DAC_read_search:+bogus", fh: FileHandlesPrefer, err: "invalid capability 'BOGUS': failed to get the ID for the capability with name BOGUS"},
		// Upper-casing uses the full Unicode mapping: a dotless i becomes
		// I, a ligature two letters.
		{modcaps: "+ıpc_lock", want: def | 1<<14},
		{modcaps: "+net_broadcaﬆ", want: def | 1<<11},
		// Errors, with the reference daemon's texts.
		{modcaps: "", given: true, err: "empty modcap found: expected (+|-)capability:..."},
		{modcaps: ":", err: "empty modcap found: expected (+|-)capability:..."},
		{modcaps: "+chown::", err: "empty modcap found: expected (+|-)capability:..."},
		{modcaps: "+chown:", err: "empty modcap found: expected (+|-)capability:..."},
		{modcaps: "chown", err: "invalid modcap action: expecting '+'|'-' but found 'c'"},
		{modcaps: "=chown", err: "invalid modcap action: expecting '+'|'-' but found '='"},
		{modcaps: " +chown", err: "invalid modcap action: expecting '+'|'-' but found ' '"},
		{modcaps: "+chown:xchown", err: "invalid modcap action: expecting '+'|'-' but found 'x'"},
		{modcaps: "ü", err: "invalid modcap action: expecting '+'|'-' but found 'ü'"},
		{modcaps: "+cap_chown", err: "invalid capability 'CAP_CHOWN': failed to get the ID for the capability with name CAP_CHOWN"},
		{modcaps: "+foo", err: "invalid capability 'FOO': failed to get the ID for the capability with name FOO"},
		{modcaps: "+", err: "invalid capability '': failed to get the ID for the capability with name "},
		{modcaps: "-", err: "invalid capability '': failed to get the ID for the capability with name "},
		{modcaps: "+chown:+bogus:", err: "invalid capability 'BOGUS': failed to get the ID for the capability with name BOGUS"},
		{modcaps: "+all", err: "invalid capability 'ALL': failed to get the ID for the capability with name ALL"},
		{modcaps: "+0", err: "invalid capability '0': failed to get the ID for the capability with name 0"},
		{modcaps: "+41", err: "invalid capability '41': failed to get the ID for the capability with name 41"},
		{modcaps: "+chown ", err: "invalid capability 'CHOWN ': failed to get the ID for the capability with name CHOWN "},
		{modcaps: "+chöwn", err: "invalid capability 'CHÖWN': failed to get the ID for the capability with name CHÖWN"},
		{modcaps: "+ß", err: "invalid capability 'SS': failed to get the ID for the capability with name SS"},
		{modcaps: "+ǰx", err: "invalid capability 'J̌X': failed to get the ID for the capability with name J̌X"},
		// The Kelvin sign folds to k but is not an ASCII letter.
		{modcaps: "+\u212aill", err: "invalid capability '\u212aILL': failed to get the ID for the capability with name \u212aILL"},
	}
	for _, tt := range tests {
		c := Config{Modcaps: tt.modcaps, ModcapsGiven: tt.given || tt.modcaps != "", FileHandles: tt.fh}
		got, err := c.Compute()
		if tt.err != "" {
			var e *Error
			if err == nil || err.Error() != tt.err || !errors.As(err, &e) {
				t.Errorf("%+v.Compute() = %#x, %v; want error %q", c, uint64(got), err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v.Compute() = %#x, %v; want %#x", c, uint64(got), err, uint64(tt.want))
		}
	}
}

func TestComputeShorthand(t *testing.T) {
	tests := []struct {
		modcaps string
		fh      bool
		want    Set
		err     string
	}{
		{"", false, 0x880000db, ""},
		{"", true, 0x880000df, ""},
		{"-mknod:+sys_admin", false, 0x802000db, ""},
		{"-dac_read_search", true, 0, "can't disable DAC_READ_SEARCH when using --inode-file-handles=Prefer"},
		{"+x", false, 0, "invalid capability 'X': failed to get the ID for the capability with name X"},
	}
	for _, tt := range tests {
		got, err := Compute(tt.modcaps, tt.fh)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Compute(%q, %v) = %#x, %v; want error %q", tt.modcaps, tt.fh, uint64(got), err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Compute(%q, %v) = %#x, %v; want %#x", tt.modcaps, tt.fh, uint64(got), err, uint64(tt.want))
		}
	}
}

func TestNames(t *testing.T) {
	n := Names()
	if len(n) != 41 || n[0] != "chown" || n[21] != "sys_admin" || n[40] != "checkpoint_restore" {
		t.Errorf("Names() = %q", n)
	}
	for i, name := range n {
		if c, ok := Lookup(name); !ok || c != i {
			t.Errorf("Lookup(%q) = %d, %v; want %d, true", name, c, ok, i)
		}
	}
	for _, name := range []string{"", "cap_chown", "CHOWN ", "chown\x00", "\u212aill"} {
		if c, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) = %d, true; want not found", name, c)
		}
	}
}

func TestSetString(t *testing.T) {
	tests := []struct {
		s    Set
		want string
	}{
		{0, ""},
		{Default, "chown,dac_override,fowner,fsetid,setgid,setuid,mknod,setfcap"},
		{1<<40 | 1<<41 | 1<<63, "checkpoint_restore,cap_41,cap_63"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Set(%#x).String() = %q, want %q", uint64(tt.s), got, tt.want)
		}
	}
	if !Default.Has(capChown) || Default.Has(capDacReadSearch) || Default.Has(-1) || Default.Has(64) {
		t.Errorf("Default.Has gives wrong answers")
	}
}

func TestFileHandlesString(t *testing.T) {
	for f, want := range map[FileHandles]string{FileHandlesNever: "Never", FileHandlesPrefer: "Prefer", FileHandlesMandatory: "Mandatory", 7: "FileHandles(7)"} {
		if got := f.String(); got != want {
			t.Errorf("FileHandles(%d).String() = %q, want %q", int(f), got, want)
		}
	}
}
