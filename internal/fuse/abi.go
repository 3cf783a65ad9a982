package fuse

import "structs"

// This file mirrors include/uapi/linux/fuse.h (protocol 7.38) field for
// field. All structures are little-endian on the wire; every one of them has
// explicit padding so that its Go layout equals the C layout. abi_test.go
// pins the sizes.

// Opcode is the opcode field of struct fuse_in_header.
type Opcode uint32

// Opcodes (enum fuse_opcode).
const (
	FUSE_LOOKUP          Opcode = 1
	FUSE_FORGET          Opcode = 2
	FUSE_GETATTR         Opcode = 3
	FUSE_SETATTR         Opcode = 4
	FUSE_READLINK        Opcode = 5
	FUSE_SYMLINK         Opcode = 6
	FUSE_MKNOD           Opcode = 8
	FUSE_MKDIR           Opcode = 9
	FUSE_UNLINK          Opcode = 10
	FUSE_RMDIR           Opcode = 11
	FUSE_RENAME          Opcode = 12
	FUSE_LINK            Opcode = 13
	FUSE_OPEN            Opcode = 14
	FUSE_READ            Opcode = 15
	FUSE_WRITE           Opcode = 16
	FUSE_STATFS          Opcode = 17
	FUSE_RELEASE         Opcode = 18
	FUSE_FSYNC           Opcode = 20
	FUSE_SETXATTR        Opcode = 21
	FUSE_GETXATTR        Opcode = 22
	FUSE_LISTXATTR       Opcode = 23
	FUSE_REMOVEXATTR     Opcode = 24
	FUSE_FLUSH           Opcode = 25
	FUSE_INIT            Opcode = 26
	FUSE_OPENDIR         Opcode = 27
	FUSE_READDIR         Opcode = 28
	FUSE_RELEASEDIR      Opcode = 29
	FUSE_FSYNCDIR        Opcode = 30
	FUSE_GETLK           Opcode = 31
	FUSE_SETLK           Opcode = 32
	FUSE_SETLKW          Opcode = 33
	FUSE_ACCESS          Opcode = 34
	FUSE_CREATE          Opcode = 35
	FUSE_INTERRUPT       Opcode = 36
	FUSE_BMAP            Opcode = 37
	FUSE_DESTROY         Opcode = 38
	FUSE_IOCTL           Opcode = 39
	FUSE_POLL            Opcode = 40
	FUSE_NOTIFY_REPLY    Opcode = 41
	FUSE_BATCH_FORGET    Opcode = 42
	FUSE_FALLOCATE       Opcode = 43
	FUSE_READDIRPLUS     Opcode = 44
	FUSE_RENAME2         Opcode = 45
	FUSE_LSEEK           Opcode = 46
	FUSE_COPY_FILE_RANGE Opcode = 47
	FUSE_SETUPMAPPING    Opcode = 48
	FUSE_REMOVEMAPPING   Opcode = 49
	FUSE_SYNCFS          Opcode = 50
	FUSE_TMPFILE         Opcode = 51
	FUSE_STATX           Opcode = 52
	CUSE_INIT            Opcode = 4096
)

// Protocol version served (FUSE_KERNEL_VERSION.FUSE_KERNEL_MINOR_VERSION)
// and the oldest kernel minor accepted.
const (
	KernelVersion      = 7
	KernelMinorVersion = 38
	MinKernelMinor     = 27
)

// INIT flags (fuse_init_in.flags | fuse_init_in.flags2<<32).
const (
	FUSE_ASYNC_READ           uint64 = 1 << 0
	FUSE_POSIX_LOCKS          uint64 = 1 << 1
	FUSE_FILE_OPS             uint64 = 1 << 2
	FUSE_ATOMIC_O_TRUNC       uint64 = 1 << 3
	FUSE_EXPORT_SUPPORT       uint64 = 1 << 4
	FUSE_BIG_WRITES           uint64 = 1 << 5
	FUSE_DONT_MASK            uint64 = 1 << 6
	FUSE_SPLICE_WRITE         uint64 = 1 << 7
	FUSE_SPLICE_MOVE          uint64 = 1 << 8
	FUSE_SPLICE_READ          uint64 = 1 << 9
	FUSE_FLOCK_LOCKS          uint64 = 1 << 10
	FUSE_HAS_IOCTL_DIR        uint64 = 1 << 11
	FUSE_AUTO_INVAL_DATA      uint64 = 1 << 12
	FUSE_DO_READDIRPLUS       uint64 = 1 << 13
	FUSE_READDIRPLUS_AUTO     uint64 = 1 << 14
	FUSE_ASYNC_DIO            uint64 = 1 << 15
	FUSE_WRITEBACK_CACHE      uint64 = 1 << 16
	FUSE_NO_OPEN_SUPPORT      uint64 = 1 << 17
	FUSE_PARALLEL_DIROPS      uint64 = 1 << 18
	FUSE_HANDLE_KILLPRIV      uint64 = 1 << 19
	FUSE_POSIX_ACL            uint64 = 1 << 20
	FUSE_ABORT_ERROR          uint64 = 1 << 21
	FUSE_MAX_PAGES            uint64 = 1 << 22
	FUSE_CACHE_SYMLINKS       uint64 = 1 << 23
	FUSE_NO_OPENDIR_SUPPORT   uint64 = 1 << 24
	FUSE_EXPLICIT_INVAL_DATA  uint64 = 1 << 25
	FUSE_MAP_ALIGNMENT        uint64 = 1 << 26
	FUSE_SUBMOUNTS            uint64 = 1 << 27
	FUSE_HANDLE_KILLPRIV_V2   uint64 = 1 << 28
	FUSE_SETXATTR_EXT         uint64 = 1 << 29
	FUSE_INIT_EXT             uint64 = 1 << 30
	FUSE_INIT_RESERVED        uint64 = 1 << 31
	FUSE_SECURITY_CTX         uint64 = 1 << 32
	FUSE_HAS_INODE_DAX        uint64 = 1 << 33
	FUSE_CREATE_SUPP_GROUP    uint64 = 1 << 34
	FUSE_HAS_EXPIRE_ONLY      uint64 = 1 << 35
	FUSE_DIRECT_IO_ALLOW_MMAP uint64 = 1 << 36
	FUSE_PASSTHROUGH          uint64 = 1 << 37
	FUSE_NO_EXPORT_SUPPORT    uint64 = 1 << 38
	FUSE_HAS_RESEND           uint64 = 1 << 39
	FUSE_ALLOW_IDMAP          uint64 = 1 << 40
)

// SETATTR valid bits (fuse_setattr_in.valid).
const (
	FATTR_MODE         uint32 = 1 << 0
	FATTR_UID          uint32 = 1 << 1
	FATTR_GID          uint32 = 1 << 2
	FATTR_SIZE         uint32 = 1 << 3
	FATTR_ATIME        uint32 = 1 << 4
	FATTR_MTIME        uint32 = 1 << 5
	FATTR_FH           uint32 = 1 << 6
	FATTR_ATIME_NOW    uint32 = 1 << 7
	FATTR_MTIME_NOW    uint32 = 1 << 8
	FATTR_LOCKOWNER    uint32 = 1 << 9
	FATTR_CTIME        uint32 = 1 << 10
	FATTR_KILL_SUIDGID uint32 = 1 << 11
)

// fuse_open_out.open_flags.
const (
	FOPEN_DIRECT_IO              uint32 = 1 << 0
	FOPEN_KEEP_CACHE             uint32 = 1 << 1
	FOPEN_NONSEEKABLE            uint32 = 1 << 2
	FOPEN_CACHE_DIR              uint32 = 1 << 3
	FOPEN_STREAM                 uint32 = 1 << 4
	FOPEN_NOFLUSH                uint32 = 1 << 5
	FOPEN_PARALLEL_DIRECT_WRITES uint32 = 1 << 6
)

// Request flag bits.
const (
	FUSE_GETATTR_FH           uint32 = 1 << 0 // fuse_getattr_in.getattr_flags
	FUSE_OPEN_KILL_SUIDGID    uint32 = 1 << 0 // fuse_open_in.open_flags
	FUSE_RELEASE_FLUSH        uint32 = 1 << 0 // fuse_release_in.release_flags
	FUSE_RELEASE_FLOCK_UNLOCK uint32 = 1 << 1
	FUSE_WRITE_CACHE          uint32 = 1 << 0 // fuse_write_in.write_flags
	FUSE_WRITE_LOCKOWNER      uint32 = 1 << 1
	FUSE_WRITE_KILL_SUIDGID   uint32 = 1 << 2
	FUSE_READ_LOCKOWNER       uint32 = 1 << 1 // fuse_read_in.read_flags
	FUSE_FSYNC_FDATASYNC      uint32 = 1 << 0 // fuse_fsync_in.fsync_flags
	FUSE_ATTR_SUBMOUNT        uint32 = 1 << 0 // fuse_attr.flags
	FUSE_ATTR_DAX             uint32 = 1 << 1
)

// Request extension types (fuse_ext_header.type); 0..31 are security
// context counts.
const (
	FUSE_MAX_NR_SECCTX = 31
	FUSE_EXT_GROUPS    = 32
)

// Limits served in INIT and enforced on requests.
const (
	MaxWrite            = 1 << 20         // fuse_init_out.max_write
	MaxRequestLen       = MaxWrite + 4096 // larger requests get ENOMEM
	MaxBufferSize       = 1 << 20         // getxattr/listxattr/readdir size
	MaxBackground       = 65535           // fuse_init_out.max_background
	CongestionThreshold = MaxBackground / 4 * 3
)

// InHeader is struct fuse_in_header.
type InHeader struct {
	_           structs.HostLayout
	Len         uint32
	Opcode      Opcode
	Unique      uint64
	NodeID      uint64
	UID         uint32
	GID         uint32
	PID         uint32
	TotalExtlen uint16
	_           uint16
}

// OutHeader is struct fuse_out_header.
type OutHeader struct {
	_      structs.HostLayout
	Len    uint32
	Error  int32
	Unique uint64
}

// Attr is struct fuse_attr.
type Attr struct {
	_         structs.HostLayout
	Ino       uint64
	Size      uint64
	Blocks    uint64
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	Atimensec uint32
	Mtimensec uint32
	Ctimensec uint32
	Mode      uint32
	Nlink     uint32
	UID       uint32
	GID       uint32
	Rdev      uint32
	Blksize   uint32
	Flags     uint32
}

// EntryOut is struct fuse_entry_out.
type EntryOut struct {
	_              structs.HostLayout
	NodeID         uint64
	Generation     uint64
	EntryValid     uint64
	AttrValid      uint64
	EntryValidNsec uint32
	AttrValidNsec  uint32
	Attr           Attr
}

// AttrOut is struct fuse_attr_out.
type AttrOut struct {
	_             structs.HostLayout
	AttrValid     uint64
	AttrValidNsec uint32
	_             uint32
	Attr          Attr
}

// OpenOut is struct fuse_open_out.
type OpenOut struct {
	_         structs.HostLayout
	Fh        uint64
	OpenFlags uint32
	_         uint32
}

// InitIn is struct fuse_init_in up to flags; InitInExt is the part that
// follows when FUSE_INIT_EXT is set.
type InitIn struct {
	_            structs.HostLayout
	Major        uint32
	Minor        uint32
	MaxReadahead uint32
	Flags        uint32
}

// InitInExt is the tail of struct fuse_init_in (flags2 and unused words).
type InitInExt struct {
	_      structs.HostLayout
	Flags2 uint32
	_      [11]uint32
}

// InitOut is struct fuse_init_out.
type InitOut struct {
	_                   structs.HostLayout
	Major               uint32
	Minor               uint32
	MaxReadahead        uint32
	Flags               uint32
	MaxBackground       uint16
	CongestionThreshold uint16
	MaxWrite            uint32
	TimeGran            uint32
	MaxPages            uint16
	MapAlignment        uint16
	Flags2              uint32
	_                   [7]uint32
}

// StatfsOut is struct fuse_statfs_out (a struct fuse_kstatfs).
type StatfsOut struct {
	_       structs.HostLayout
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	Namelen uint32
	Frsize  uint32
	_       uint32
	_       [6]uint32
}

// WriteOut is struct fuse_write_out.
type WriteOut struct {
	_    structs.HostLayout
	Size uint32
	_    uint32
}

// GetxattrOut is struct fuse_getxattr_out.
type GetxattrOut struct {
	_    structs.HostLayout
	Size uint32
	_    uint32
}

// LseekOut is struct fuse_lseek_out.
type LseekOut struct {
	_      structs.HostLayout
	Offset uint64
}

// Dirent is the fixed part of struct fuse_dirent; the name follows,
// padded with zeros to a multiple of 8 bytes.
type Dirent struct {
	_       structs.HostLayout
	Ino     uint64
	Off     uint64
	Namelen uint32
	Type    uint32
}

// GetattrIn is struct fuse_getattr_in.
type GetattrIn struct {
	_            structs.HostLayout
	GetattrFlags uint32
	_            uint32
	Fh           uint64
}

// SetattrIn is struct fuse_setattr_in.
type SetattrIn struct {
	_         structs.HostLayout
	Valid     uint32
	_         uint32
	Fh        uint64
	Size      uint64
	LockOwner uint64
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	Atimensec uint32
	Mtimensec uint32
	Ctimensec uint32
	Mode      uint32
	_         uint32
	UID       uint32
	GID       uint32
	_         uint32
}

// MknodIn is struct fuse_mknod_in.
type MknodIn struct {
	_     structs.HostLayout
	Mode  uint32
	Rdev  uint32
	Umask uint32
	_     uint32
}

// MkdirIn is struct fuse_mkdir_in.
type MkdirIn struct {
	_     structs.HostLayout
	Mode  uint32
	Umask uint32
}

// RenameIn is struct fuse_rename_in.
type RenameIn struct {
	_      structs.HostLayout
	Newdir uint64
}

// Rename2In is struct fuse_rename2_in.
type Rename2In struct {
	_      structs.HostLayout
	Newdir uint64
	Flags  uint32
	_      uint32
}

// LinkIn is struct fuse_link_in.
type LinkIn struct {
	_         structs.HostLayout
	OldNodeID uint64
}

// OpenIn is struct fuse_open_in.
type OpenIn struct {
	_         structs.HostLayout
	Flags     uint32
	OpenFlags uint32
}

// CreateIn is struct fuse_create_in.
type CreateIn struct {
	_         structs.HostLayout
	Flags     uint32
	Mode      uint32
	Umask     uint32
	OpenFlags uint32
}

// ReleaseIn is struct fuse_release_in.
type ReleaseIn struct {
	_            structs.HostLayout
	Fh           uint64
	Flags        uint32
	ReleaseFlags uint32
	LockOwner    uint64
}

// FlushIn is struct fuse_flush_in.
type FlushIn struct {
	_         structs.HostLayout
	Fh        uint64
	_         uint32
	_         uint32
	LockOwner uint64
}

// ReadIn is struct fuse_read_in.
type ReadIn struct {
	_         structs.HostLayout
	Fh        uint64
	Offset    uint64
	Size      uint32
	ReadFlags uint32
	LockOwner uint64
	Flags     uint32
	_         uint32
}

// WriteIn is struct fuse_write_in.
type WriteIn struct {
	_          structs.HostLayout
	Fh         uint64
	Offset     uint64
	Size       uint32
	WriteFlags uint32
	LockOwner  uint64
	Flags      uint32
	_          uint32
}

// FsyncIn is struct fuse_fsync_in.
type FsyncIn struct {
	_          structs.HostLayout
	Fh         uint64
	FsyncFlags uint32
	_          uint32
}

// SetxattrIn is struct fuse_setxattr_in (16 bytes with FUSE_SETXATTR_EXT;
// only the first 8 bytes without it).
type SetxattrIn struct {
	_             structs.HostLayout
	Size          uint32
	Flags         uint32
	SetxattrFlags uint32
	_             uint32
}

// GetxattrIn is struct fuse_getxattr_in.
type GetxattrIn struct {
	_    structs.HostLayout
	Size uint32
	_    uint32
}

// AccessIn is struct fuse_access_in.
type AccessIn struct {
	_    structs.HostLayout
	Mask uint32
	_    uint32
}

// ForgetIn is struct fuse_forget_in.
type ForgetIn struct {
	_       structs.HostLayout
	Nlookup uint64
}

// BatchForgetIn is struct fuse_batch_forget_in; Count ForgetOne records
// follow.
type BatchForgetIn struct {
	_     structs.HostLayout
	Count uint32
	_     uint32
}

// ForgetOne is struct fuse_forget_one.
type ForgetOne struct {
	_       structs.HostLayout
	NodeID  uint64
	Nlookup uint64
}

// FallocateIn is struct fuse_fallocate_in.
type FallocateIn struct {
	_      structs.HostLayout
	Fh     uint64
	Offset uint64
	Length uint64
	Mode   uint32
	_      uint32
}

// LseekIn is struct fuse_lseek_in.
type LseekIn struct {
	_      structs.HostLayout
	Fh     uint64
	Offset uint64
	Whence uint32
	_      uint32
}

// CopyFileRangeIn is struct fuse_copy_file_range_in.
type CopyFileRangeIn struct {
	_         structs.HostLayout
	FhIn      uint64
	OffIn     uint64
	NodeIDOut uint64
	FhOut     uint64
	OffOut    uint64
	Len       uint64
	Flags     uint64
}

// ExtHeader is struct fuse_ext_header.
type ExtHeader struct {
	_    structs.HostLayout
	Size uint32
	Type uint32
}

// SecctxHeader is struct fuse_secctx_header.
type SecctxHeader struct {
	_    structs.HostLayout
	Size uint32
	Nr   uint32
}

// Secctx is struct fuse_secctx; a NUL-terminated name and Size bytes of
// value follow.
type Secctx struct {
	_    structs.HostLayout
	Size uint32
	_    uint32
}

// SuppGroups is struct fuse_supp_groups; NrGroups uint32 gids follow.
type SuppGroups struct {
	_        structs.HostLayout
	NrGroups uint32
}
