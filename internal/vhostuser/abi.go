package vhostuser

// Request is a front-end request code (QEMU docs/interop/vhost-user.rst,
// "Front-end message types").
type Request uint32

// Front-end request codes.
const (
	VHOST_USER_GET_FEATURES          Request = 1
	VHOST_USER_SET_FEATURES          Request = 2
	VHOST_USER_SET_OWNER             Request = 3
	VHOST_USER_RESET_OWNER           Request = 4
	VHOST_USER_SET_MEM_TABLE         Request = 5
	VHOST_USER_SET_LOG_BASE          Request = 6
	VHOST_USER_SET_LOG_FD            Request = 7
	VHOST_USER_SET_VRING_NUM         Request = 8
	VHOST_USER_SET_VRING_ADDR        Request = 9
	VHOST_USER_SET_VRING_BASE        Request = 10
	VHOST_USER_GET_VRING_BASE        Request = 11
	VHOST_USER_SET_VRING_KICK        Request = 12
	VHOST_USER_SET_VRING_CALL        Request = 13
	VHOST_USER_SET_VRING_ERR         Request = 14
	VHOST_USER_GET_PROTOCOL_FEATURES Request = 15
	VHOST_USER_SET_PROTOCOL_FEATURES Request = 16
	VHOST_USER_GET_QUEUE_NUM         Request = 17
	VHOST_USER_SET_VRING_ENABLE      Request = 18
	VHOST_USER_SEND_RARP             Request = 19
	VHOST_USER_NET_SET_MTU           Request = 20
	VHOST_USER_SET_BACKEND_REQ_FD    Request = 21
	VHOST_USER_IOTLB_MSG             Request = 22
	VHOST_USER_SET_VRING_ENDIAN      Request = 23
	VHOST_USER_GET_CONFIG            Request = 24
	VHOST_USER_SET_CONFIG            Request = 25
	VHOST_USER_CREATE_CRYPTO_SESSION Request = 26
	VHOST_USER_CLOSE_CRYPTO_SESSION  Request = 27
	VHOST_USER_POSTCOPY_ADVISE       Request = 28
	VHOST_USER_POSTCOPY_LISTEN       Request = 29
	VHOST_USER_POSTCOPY_END          Request = 30
	VHOST_USER_GET_INFLIGHT_FD       Request = 31
	VHOST_USER_SET_INFLIGHT_FD       Request = 32
	VHOST_USER_GPU_SET_SOCKET        Request = 33
	VHOST_USER_RESET_DEVICE          Request = 34
	VHOST_USER_VRING_KICK            Request = 35
	VHOST_USER_GET_MAX_MEM_SLOTS     Request = 36
	VHOST_USER_ADD_MEM_REG           Request = 37
	VHOST_USER_REM_MEM_REG           Request = 38
	VHOST_USER_SET_STATUS            Request = 39
	VHOST_USER_GET_STATUS            Request = 40
	VHOST_USER_GET_SHARED_OBJECT     Request = 41
	VHOST_USER_SET_DEVICE_STATE_FD   Request = 42
	VHOST_USER_CHECK_DEVICE_STATE    Request = 43
	maxRequest                       Request = 43
)

var requestNames = [...]string{
	VHOST_USER_GET_FEATURES:          "GET_FEATURES",
	VHOST_USER_SET_FEATURES:          "SET_FEATURES",
	VHOST_USER_SET_OWNER:             "SET_OWNER",
	VHOST_USER_RESET_OWNER:           "RESET_OWNER",
	VHOST_USER_SET_MEM_TABLE:         "SET_MEM_TABLE",
	VHOST_USER_SET_LOG_BASE:          "SET_LOG_BASE",
	VHOST_USER_SET_LOG_FD:            "SET_LOG_FD",
	VHOST_USER_SET_VRING_NUM:         "SET_VRING_NUM",
	VHOST_USER_SET_VRING_ADDR:        "SET_VRING_ADDR",
	VHOST_USER_SET_VRING_BASE:        "SET_VRING_BASE",
	VHOST_USER_GET_VRING_BASE:        "GET_VRING_BASE",
	VHOST_USER_SET_VRING_KICK:        "SET_VRING_KICK",
	VHOST_USER_SET_VRING_CALL:        "SET_VRING_CALL",
	VHOST_USER_SET_VRING_ERR:         "SET_VRING_ERR",
	VHOST_USER_GET_PROTOCOL_FEATURES: "GET_PROTOCOL_FEATURES",
	VHOST_USER_SET_PROTOCOL_FEATURES: "SET_PROTOCOL_FEATURES",
	VHOST_USER_GET_QUEUE_NUM:         "GET_QUEUE_NUM",
	VHOST_USER_SET_VRING_ENABLE:      "SET_VRING_ENABLE",
	VHOST_USER_SEND_RARP:             "SEND_RARP",
	VHOST_USER_NET_SET_MTU:           "NET_SET_MTU",
	VHOST_USER_SET_BACKEND_REQ_FD:    "SET_BACKEND_REQ_FD",
	VHOST_USER_IOTLB_MSG:             "IOTLB_MSG",
	VHOST_USER_SET_VRING_ENDIAN:      "SET_VRING_ENDIAN",
	VHOST_USER_GET_CONFIG:            "GET_CONFIG",
	VHOST_USER_SET_CONFIG:            "SET_CONFIG",
	VHOST_USER_CREATE_CRYPTO_SESSION: "CREATE_CRYPTO_SESSION",
	VHOST_USER_CLOSE_CRYPTO_SESSION:  "CLOSE_CRYPTO_SESSION",
	VHOST_USER_POSTCOPY_ADVISE:       "POSTCOPY_ADVISE",
	VHOST_USER_POSTCOPY_LISTEN:       "POSTCOPY_LISTEN",
	VHOST_USER_POSTCOPY_END:          "POSTCOPY_END",
	VHOST_USER_GET_INFLIGHT_FD:       "GET_INFLIGHT_FD",
	VHOST_USER_SET_INFLIGHT_FD:       "SET_INFLIGHT_FD",
	VHOST_USER_GPU_SET_SOCKET:        "GPU_SET_SOCKET",
	VHOST_USER_RESET_DEVICE:          "RESET_DEVICE",
	VHOST_USER_VRING_KICK:            "VRING_KICK",
	VHOST_USER_GET_MAX_MEM_SLOTS:     "GET_MAX_MEM_SLOTS",
	VHOST_USER_ADD_MEM_REG:           "ADD_MEM_REG",
	VHOST_USER_REM_MEM_REG:           "REM_MEM_REG",
	VHOST_USER_SET_STATUS:            "SET_STATUS",
	VHOST_USER_GET_STATUS:            "GET_STATUS",
	VHOST_USER_GET_SHARED_OBJECT:     "GET_SHARED_OBJECT",
	VHOST_USER_SET_DEVICE_STATE_FD:   "SET_DEVICE_STATE_FD",
	VHOST_USER_CHECK_DEVICE_STATE:    "CHECK_DEVICE_STATE",
}

// Header flags.
const (
	VHOST_USER_VERSION_MASK   = 0x3
	VHOST_USER_VERSION        = 0x1
	VHOST_USER_REPLY_MASK     = 0x4
	VHOST_USER_NEED_REPLY     = 0x8
	VHOST_USER_RESERVED_FLAGS = 0xffff_fff0
)

// Virtio and vhost feature bits (virtio v1.2 §6, vhost-user.rst).
const (
	VHOST_F_LOG_ALL                = 1 << 26
	VIRTIO_RING_F_INDIRECT_DESC    = 1 << 28
	VIRTIO_RING_F_EVENT_IDX        = 1 << 29
	VHOST_USER_F_PROTOCOL_FEATURES = 1 << 30
	VIRTIO_F_VERSION_1             = 1 << 32
)

// Protocol feature bits (vhost-user.rst "Protocol features").
const (
	VHOST_USER_PROTOCOL_F_MQ                   = 1 << 0
	VHOST_USER_PROTOCOL_F_LOG_SHMFD            = 1 << 1
	VHOST_USER_PROTOCOL_F_RARP                 = 1 << 2
	VHOST_USER_PROTOCOL_F_REPLY_ACK            = 1 << 3
	VHOST_USER_PROTOCOL_F_MTU                  = 1 << 4
	VHOST_USER_PROTOCOL_F_BACKEND_REQ          = 1 << 5
	VHOST_USER_PROTOCOL_F_CROSS_ENDIAN         = 1 << 6
	VHOST_USER_PROTOCOL_F_CRYPTO_SESSION       = 1 << 7
	VHOST_USER_PROTOCOL_F_PAGEFAULT            = 1 << 8
	VHOST_USER_PROTOCOL_F_CONFIG               = 1 << 9
	VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD      = 1 << 10
	VHOST_USER_PROTOCOL_F_HOST_NOTIFIER        = 1 << 11
	VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD       = 1 << 12
	VHOST_USER_PROTOCOL_F_RESET_DEVICE         = 1 << 13
	VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 1 << 14
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS  = 1 << 15
	VHOST_USER_PROTOCOL_F_STATUS               = 1 << 16
	VHOST_USER_PROTOCOL_F_DEVICE_STATE         = 1 << 19
)

// Other protocol constants.
const (
	headerSize = 12
	// maxPayload is the largest payload accepted in a header.
	maxPayload = 4096
	// maxMemRegions is the region limit of SET_MEM_TABLE.
	maxMemRegions = 32
	// maxMemSlots is the GET_MAX_MEM_SLOTS answer.
	maxMemSlots = 509
	// VHOST_USER_VRING_IDX_MASK and VHOST_USER_VRING_NOFD_MASK split the
	// u64 of SET_VRING_KICK/CALL/ERR.
	VHOST_USER_VRING_IDX_MASK  = 0xff
	VHOST_USER_VRING_NOFD_MASK = 0x100
	// VHOST_VRING_F_LOG is the only SET_VRING_ADDR flag.
	VHOST_VRING_F_LOG = 1
	// configSpaceMax bounds offset+size of GET/SET_CONFIG.
	configSpaceMax = 0x1000
	// Config flags: WRITABLE, LIVE_MIGRATION.
	configFlagsMask = 0x3
	// Device state transfer replies and directions.
	deviceStateNoFD      = 0x100
	deviceStateError     = 0x1
	deviceStateSave      = 0
	deviceStateLoad      = 1
	deviceStatePhaseStop = 0
)

// Payload sizes (spec/vhost.md §1.5).
const (
	sizeU64          = 8
	sizeVringState   = 8
	sizeVringAddr    = 40
	sizeMemRegion    = 32
	sizeMemoryHeader = 8
	sizeSingleRegion = 40
	sizeLog          = 16
	sizeConfigHeader = 12
	sizeTransfer     = 8
)
