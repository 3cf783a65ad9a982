package vhostuser

import (
	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/virtqueue"
)

// Backend is the device-specific half of a vhost-user back-end. Serve calls
// its methods from the connection goroutine only, one at a time.
type Backend interface {
	// Features returns the virtio and vhost feature bits offered by
	// GET_FEATURES.
	Features() uint64
	// ProtocolFeatures returns the bits offered by GET_PROTOCOL_FEATURES.
	ProtocolFeatures() uint64
	// NumQueues returns the number of virtqueues (GET_QUEUE_NUM).
	NumQueues() int
	// ReadConfig fills p with the device configuration space starting at
	// byte off; bytes past its end read as zero. It returns false if the
	// device has no configuration space to serve.
	ReadConfig(p []byte, off uint32) bool
	// StartQueue starts processing queue idx: wait for kicks on kickFD
	// and, while q is enabled, pop chains using memory tables from mem.
	// It also runs one pass right away if q is enabled. kickFD stays owned
	// by the caller and open until StopQueue returns.
	StartQueue(idx int, q *virtqueue.Queue, mem *guestmem.Memory, kickFD int) error
	// StopQueue stops processing queue idx and returns only when every
	// chain popped from it has been completed and written to the used ring.
	StopQueue(idx int)
	// WakeQueue makes a started queue run a processing pass (used when a
	// ring becomes enabled).
	WakeQueue(idx int)
	// Reset drops all device state (RESET_DEVICE). Queues are stopped
	// before it is called.
	Reset()
}
