// Package virtiofs is the virtio-fs device: it implements
// vhostuser.Backend (feature bits, the 40-byte configuration space, the
// queue workers) and feeds every descriptor chain of its queues to the FUSE
// server (spec/vhost.md §3).
//
// # Queues
//
// Queue 0 is the hiprio queue and queues 1.. are request queues; today one
// request queue is served (GET_QUEUE_NUM = 2, num_request_queues = 1), but
// the count is a parameter of the Device. Both kinds are dispatched to the
// same FUSE server. Each started queue has its own worker goroutine, which
// waits with epoll on the queue's kick eventfd and a private control
// eventfd (wake-up and stop).
//
// # Threading
//
// FUSE handlers switch credentials per thread and may fchdir, so requests
// run on goroutines locked to their OS thread that called
// unshare(CLONE_FS) once; such threads are never unlocked and die with
// their goroutine.
//
//   - ThreadPoolSize == 0 (serial): each queue's worker goroutine is itself
//     a locked, unshared thread and serves its chains inline, in order.
//   - ThreadPoolSize == N > 0 (pool): one pool of N locked, unshared threads
//     per connection, shared by all queues. Queue goroutines pop chains into
//     2·N preallocated requests and hand them over a channel; pool threads
//     serve them and push completions out of order under the queue's lock.
//
// Whether unshare(CLONE_FS) is permitted is probed once before serving, and
// Serve fails clearly if it is not.
//
// # Broken rings
//
// A driver that publishes an avail index more than the queue size ahead of
// the device has broken its ring (virtio v1.2 §2.7.6). The worker logs
// this once, stops processing the queue until the next kick, and re-checks
// the index on every kick; once the index is valid again the queue is
// served as usual. It never retries on its own, so a broken ring costs no
// CPU. Chain-level faults (a bad descriptor, a fault on vanished guest
// memory) fail that chain or pass only; pooled requests return to the free
// list on every path, so no number of faults exhausts the pool.
//
// # Stopping and memory
//
// StopQueue (GET_VRING_BASE, RESET_DEVICE, disconnect) sets the worker's
// stop flag and signals its control eventfd; the worker stops popping,
// waits until every chain it handed to the pool has been pushed, and exits.
// Only then does the control plane reply, so no completion reaches the used
// ring after GET_VRING_BASE. Each pass holds a reference on the current
// guest memory table and each pooled request holds its own until its
// completion is pushed, so memory updates never unmap memory in use and
// never wait for the data plane. No lock is held across request handling.
//
// # Live migration
//
// With Config.State set, the device offers DEVICE_STATE and implements
// vhostuser.StateBackend: VHOST_F_LOG_ALL turning on and off calls the
// handler's Prepare and Cancel, and device state transfers call Save and
// Load. A transfer runs only while every queue is stopped: vhostuser
// refuses one while a ring runs (QEMU stops them with GET_VRING_BASE
// first) and refuses to start a ring during one, and the device checks
// again that no queue worker is running before it calls Save or Load, so
// no request runs on the file system meanwhile. Without a handler,
// DEVICE_STATE is not offered and transfers are refused.
//
// # Lock order
//
// Only virtqueue.Queue's internal mutex (a leaf) and the pool channels are
// involved on the data path; the control plane owns everything else.
//
// # Allocation
//
// The pop → Serve → push path allocates nothing: chains and pool requests
// are preallocated per worker and reused (TestServeAllocs).
package virtiofs
