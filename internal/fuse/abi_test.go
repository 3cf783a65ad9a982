package fuse

import (
	"testing"
	"unsafe"
)

// TestSizes pins every wire structure to the size of its C counterpart in
// include/uapi/linux/fuse.h.
func TestSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"InHeader", unsafe.Sizeof(InHeader{}), 40},
		{"OutHeader", unsafe.Sizeof(OutHeader{}), 16},
		{"Attr", unsafe.Sizeof(Attr{}), 88},
		{"EntryOut", unsafe.Sizeof(EntryOut{}), 128},
		{"AttrOut", unsafe.Sizeof(AttrOut{}), 104},
		{"OpenOut", unsafe.Sizeof(OpenOut{}), 16},
		{"InitIn", unsafe.Sizeof(InitIn{}), 16},
		{"InitInExt", unsafe.Sizeof(InitInExt{}), 48},
		{"InitOut", unsafe.Sizeof(InitOut{}), 64},
		{"StatfsOut", unsafe.Sizeof(StatfsOut{}), 80},
		{"WriteOut", unsafe.Sizeof(WriteOut{}), 8},
		{"GetxattrOut", unsafe.Sizeof(GetxattrOut{}), 8},
		{"LseekOut", unsafe.Sizeof(LseekOut{}), 8},
		{"Dirent", unsafe.Sizeof(Dirent{}), 24},
		{"GetattrIn", unsafe.Sizeof(GetattrIn{}), 16},
		{"SetattrIn", unsafe.Sizeof(SetattrIn{}), 88},
		{"MknodIn", unsafe.Sizeof(MknodIn{}), 16},
		{"MkdirIn", unsafe.Sizeof(MkdirIn{}), 8},
		{"RenameIn", unsafe.Sizeof(RenameIn{}), 8},
		{"Rename2In", unsafe.Sizeof(Rename2In{}), 16},
		{"LinkIn", unsafe.Sizeof(LinkIn{}), 8},
		{"OpenIn", unsafe.Sizeof(OpenIn{}), 8},
		{"CreateIn", unsafe.Sizeof(CreateIn{}), 16},
		{"ReleaseIn", unsafe.Sizeof(ReleaseIn{}), 24},
		{"FlushIn", unsafe.Sizeof(FlushIn{}), 24},
		{"ReadIn", unsafe.Sizeof(ReadIn{}), 40},
		{"WriteIn", unsafe.Sizeof(WriteIn{}), 40},
		{"FsyncIn", unsafe.Sizeof(FsyncIn{}), 16},
		{"SetxattrIn", unsafe.Sizeof(SetxattrIn{}), 16},
		{"GetxattrIn", unsafe.Sizeof(GetxattrIn{}), 8},
		{"AccessIn", unsafe.Sizeof(AccessIn{}), 8},
		{"ForgetIn", unsafe.Sizeof(ForgetIn{}), 8},
		{"BatchForgetIn", unsafe.Sizeof(BatchForgetIn{}), 8},
		{"ForgetOne", unsafe.Sizeof(ForgetOne{}), 16},
		{"FallocateIn", unsafe.Sizeof(FallocateIn{}), 32},
		{"LseekIn", unsafe.Sizeof(LseekIn{}), 24},
		{"CopyFileRangeIn", unsafe.Sizeof(CopyFileRangeIn{}), 56},
		{"ExtHeader", unsafe.Sizeof(ExtHeader{}), 8},
		{"SecctxHeader", unsafe.Sizeof(SecctxHeader{}), 8},
		{"Secctx", unsafe.Sizeof(Secctx{}), 8},
		{"SuppGroups", unsafe.Sizeof(SuppGroups{}), 4},
	} {
		if c.got != c.want {
			t.Errorf("unsafe.Sizeof(%s{}) = %d, want %d", c.name, c.got, c.want)
		}
	}
}
