package frontend

// vhost-user front-end request codes (QEMU docs/interop/vhost-user.rst).
const (
	VHOST_USER_GET_FEATURES          = 1
	VHOST_USER_SET_FEATURES          = 2
	VHOST_USER_SET_OWNER             = 3
	VHOST_USER_RESET_OWNER           = 4
	VHOST_USER_SET_MEM_TABLE         = 5
	VHOST_USER_SET_LOG_BASE          = 6
	VHOST_USER_SET_LOG_FD            = 7
	VHOST_USER_SET_VRING_NUM         = 8
	VHOST_USER_SET_VRING_ADDR        = 9
	VHOST_USER_SET_VRING_BASE        = 10
	VHOST_USER_GET_VRING_BASE        = 11
	VHOST_USER_SET_VRING_KICK        = 12
	VHOST_USER_SET_VRING_CALL        = 13
	VHOST_USER_SET_VRING_ERR         = 14
	VHOST_USER_GET_PROTOCOL_FEATURES = 15
	VHOST_USER_SET_PROTOCOL_FEATURES = 16
	VHOST_USER_GET_QUEUE_NUM         = 17
	VHOST_USER_SET_VRING_ENABLE      = 18
	VHOST_USER_SET_BACKEND_REQ_FD    = 21
	VHOST_USER_GET_CONFIG            = 24
	VHOST_USER_SET_CONFIG            = 25
	VHOST_USER_RESET_DEVICE          = 34
	VHOST_USER_GET_MAX_MEM_SLOTS     = 36
	VHOST_USER_ADD_MEM_REG           = 37
	VHOST_USER_REM_MEM_REG           = 38
	VHOST_USER_SET_DEVICE_STATE_FD   = 42
	VHOST_USER_CHECK_DEVICE_STATE    = 43
)

// vhost-user header flags.
const (
	VHOST_USER_VERSION    = 0x1
	VHOST_USER_REPLY      = 0x4
	VHOST_USER_NEED_REPLY = 0x8

	// VHOST_USER_VRING_NOFD_MASK in the u64 of SET_VRING_KICK/CALL/ERR
	// means "no file descriptor attached".
	VHOST_USER_VRING_NOFD_MASK = 0x100

	// HeaderSize is the size of a vhost-user message header.
	HeaderSize = 12
	// MaxPayload is the largest payload a back-end accepts.
	MaxPayload = 4096
)

// Virtio feature bits (virtio 1.2 §6, vhost-user).
const (
	VHOST_F_LOG_ALL                = 1 << 26
	VIRTIO_RING_F_INDIRECT_DESC    = 1 << 28
	VIRTIO_RING_F_EVENT_IDX        = 1 << 29
	VHOST_USER_F_PROTOCOL_FEATURES = 1 << 30
	VIRTIO_F_VERSION_1             = 1 << 32
)

// vhost-user protocol feature bits.
const (
	VHOST_USER_PROTOCOL_F_MQ                  = 1 << 0
	VHOST_USER_PROTOCOL_F_LOG_SHMFD           = 1 << 1
	VHOST_USER_PROTOCOL_F_REPLY_ACK           = 1 << 3
	VHOST_USER_PROTOCOL_F_BACKEND_REQ         = 1 << 5
	VHOST_USER_PROTOCOL_F_CONFIG              = 1 << 9
	VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD     = 1 << 10
	VHOST_USER_PROTOCOL_F_RESET_DEVICE        = 1 << 13
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 1 << 15
	VHOST_USER_PROTOCOL_F_DEVICE_STATE        = 1 << 19
)

// Split ring descriptor and ring flags (virtio 1.2 §2.7).
const (
	VRING_DESC_F_NEXT          = 1
	VRING_DESC_F_WRITE         = 2
	VRING_DESC_F_INDIRECT      = 4
	VRING_AVAIL_F_NO_INTERRUPT = 1
	VRING_USED_F_NO_NOTIFY     = 1

	descSize = 16
)

// Queue indices of a virtio-fs device.
const (
	QueueHiprio  = 0
	QueueRequest = 1
)

// FUSE opcodes (uapi/linux/fuse.h).
const (
	FUSE_LOOKUP          = 1
	FUSE_FORGET          = 2
	FUSE_GETATTR         = 3
	FUSE_SETATTR         = 4
	FUSE_READLINK        = 5
	FUSE_SYMLINK         = 6
	FUSE_MKNOD           = 8
	FUSE_MKDIR           = 9
	FUSE_UNLINK          = 10
	FUSE_RMDIR           = 11
	FUSE_RENAME          = 12
	FUSE_LINK            = 13
	FUSE_OPEN            = 14
	FUSE_READ            = 15
	FUSE_WRITE           = 16
	FUSE_STATFS          = 17
	FUSE_RELEASE         = 18
	FUSE_FSYNC           = 20
	FUSE_SETXATTR        = 21
	FUSE_GETXATTR        = 22
	FUSE_LISTXATTR       = 23
	FUSE_REMOVEXATTR     = 24
	FUSE_FLUSH           = 25
	FUSE_INIT            = 26
	FUSE_OPENDIR         = 27
	FUSE_READDIR         = 28
	FUSE_RELEASEDIR      = 29
	FUSE_FSYNCDIR        = 30
	FUSE_GETLK           = 31
	FUSE_ACCESS          = 34
	FUSE_CREATE          = 35
	FUSE_INTERRUPT       = 36
	FUSE_BMAP            = 37
	FUSE_DESTROY         = 38
	FUSE_IOCTL           = 39
	FUSE_BATCH_FORGET    = 42
	FUSE_READDIRPLUS     = 44
	FUSE_RENAME2         = 45
	FUSE_SETUPMAPPING    = 48
	FUSE_TMPFILE         = 51
	CUSE_INIT            = 4096
	FUSE_ROOT_ID         = 1
	FUSE_KERNEL_VERSION  = 7
	FUSE_KERNEL_MINOR    = 38
	FUSE_MAX_REQUEST_LEN = 1<<20 + 4096
)

// FUSE_INIT flags used by the helpers.
const (
	FUSE_ASYNC_READ        = 1 << 0
	FUSE_ATOMIC_O_TRUNC    = 1 << 3
	FUSE_BIG_WRITES        = 1 << 5
	FUSE_DO_READDIRPLUS    = 1 << 13
	FUSE_READDIRPLUS_AUTO  = 1 << 14
	FUSE_PARALLEL_DIROPS   = 1 << 18
	FUSE_MAX_PAGES         = 1 << 22
	FUSE_INIT_EXT          = 1 << 30
	FUSE_CREATE_SUPP_GROUP = 1 << 34
)

// SETATTR valid bits.
const (
	FATTR_MODE      = 1 << 0
	FATTR_UID       = 1 << 1
	FATTR_GID       = 1 << 2
	FATTR_SIZE      = 1 << 3
	FATTR_ATIME     = 1 << 4
	FATTR_MTIME     = 1 << 5
	FATTR_FH        = 1 << 6
	FATTR_ATIME_NOW = 1 << 7
	FATTR_MTIME_NOW = 1 << 8
)

// RENAME2 flags.
const (
	RENAME_NOREPLACE = 1
	RENAME_EXCHANGE  = 2
)

// Wire sizes of FUSE structures (fs.md Appendix A).
const (
	InHeaderSize  = 40
	OutHeaderSize = 16
	AttrSize      = 88
	EntryOutSize  = 128
	AttrOutSize   = 104
	OpenOutSize   = 16
	InitOutSize   = 64
	StatfsOutSize = 80
	WriteOutSize  = 8
	DirentSize    = 24
)

// InHeader is struct fuse_in_header.
type InHeader struct {
	Len         uint32
	Opcode      uint32
	Unique      uint64
	NodeID      uint64
	UID         uint32
	GID         uint32
	PID         uint32
	TotalExtlen uint16
	Padding     uint16
}

// OutHeader is struct fuse_out_header.
type OutHeader struct {
	Len    uint32
	Error  int32
	Unique uint64
}

// Attr is struct fuse_attr.
type Attr struct {
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
	AttrValid     uint64
	AttrValidNsec uint32
	Attr          Attr
}

// OpenOut is struct fuse_open_out.
type OpenOut struct {
	Fh        uint64
	OpenFlags uint32
}

// InitOut is struct fuse_init_out.
type InitOut struct {
	Major               uint32
	Minor               uint32
	MaxReadahead        uint32
	Flags               uint64 // flags | flags2<<32
	MaxBackground       uint16
	CongestionThreshold uint16
	MaxWrite            uint32
	TimeGran            uint32
	MaxPages            uint16
	MapAlignment        uint16
}

// StatfsOut is struct fuse_kstatfs.
type StatfsOut struct {
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	Namelen uint32
	Frsize  uint32
}

// Dirent is one struct fuse_dirent (and, for READDIRPLUS, its entry).
type Dirent struct {
	Ino   uint64
	Off   uint64
	Type  uint32
	Name  string
	Entry *EntryOut // READDIRPLUS only
}

// SetattrIn is struct fuse_setattr_in.
type SetattrIn struct {
	Valid     uint32
	Fh        uint64
	Size      uint64
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	Atimensec uint32
	Mtimensec uint32
	Ctimensec uint32
	Mode      uint32
	UID       uint32
	GID       uint32
}
