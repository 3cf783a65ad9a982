package virtqueue

// Descriptor flags (virtio v1.2 §2.7.5).
const (
	VRING_DESC_F_NEXT     = 1
	VRING_DESC_F_WRITE    = 2
	VRING_DESC_F_INDIRECT = 4
)

// Ring flags (virtio v1.2 §2.7.7, §2.7.8).
const (
	VRING_AVAIL_F_NO_INTERRUPT = 1
	VRING_USED_F_NO_NOTIFY     = 1
)

// Layout constants of the split ring.
const (
	descSize     = 16 // struct virtq_desc
	usedElemSize = 8  // struct virtq_used_elem
	ringHeader   = 4  // flags + idx

	// MaxSize is the largest queue size (virtio v1.2 §2.7: 32768).
	MaxSize = 32768

	// maxIndirect is the largest indirect table (its length is read into a
	// u16-indexed table in the reference implementation).
	maxIndirect = 65535
)

func descBytes(n uint32) uint64  { return uint64(n) * descSize }
func availBytes(n uint32) uint64 { return ringHeader + 2*uint64(n) + 2 }
func usedBytes(n uint32) uint64  { return ringHeader + usedElemSize*uint64(n) + 2 }
