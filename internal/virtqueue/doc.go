// Package virtqueue implements the device side of a VIRTIO split virtqueue
// (virtio v1.2 §2.7; spec/vhost.md §2) over guest memory from package
// guestmem.
//
// # Layout and ownership
//
// A split ring is three areas in guest memory, all little-endian:
//
//	desc   16·N bytes   {addr le64, len le32, flags le16, next le16}   driver writes
//	avail  6+2·N bytes  {flags, idx, ring[N], used_event} (le16)       driver writes
//	used   6+8·N bytes  {flags, idx, ring[N]{id le32, len le32}, avail_event}  device writes
//
// The driver publishes chains by writing ring entries and then avail->idx;
// the device consumes them in order (next_avail) and returns them in any
// order by writing a used element and then used->idx (next_used). Only the
// device writes the used ring; only the driver writes desc and avail.
//
// # Memory ordering (spec/vhost.md §2.6)
//
// The 16-bit ring indices are accessed through three primitives written in
// assembly per architecture (barrier_amd64.s, barrier_arm64.s), because
// sync/atomic has no 16-bit operations:
//
//   - load16: load-acquire (amd64: MOVW, ordered under TSO; arm64: LDARH);
//   - store16: store-release that is also sequentially consistent
//     (amd64: XCHGW, a locked instruction; arm64: STLRH);
//   - fence: full barrier including StoreLoad (amd64: MFENCE; arm64: DMB ISH).
//
// Being out-of-line assembly, calls to them are also compiler barriers: the
// Go compiler neither caches nor reorders memory accesses across them. The
// sequences used are:
//
//   - pop: load16(avail->idx) then plain loads of ring entries and
//     descriptors (acquire);
//   - push: plain stores of the used element (and, earlier, of the reply
//     data), then store16(used->idx) (release);
//   - notification check: store16(used->idx); fence; load16(used_event);
//   - re-enable kicks: store16(avail_event); fence; load16(avail->idx).
//
// # Untrusted input
//
// Every descriptor is read once into local variables and checked before use
// (double-fetch safety). Pop is the only constructor of a Chain: head < N,
// at most N hops (loops end), indirect tables a non-zero multiple of 16
// bytes and at most 65535 entries, no nested indirect tables, total length
// fits in uint32, every buffer inside a single guest memory region.
// Readable and writable descriptors are separated by their WRITE flag in
// chain order; interleaving is tolerated like the reference implementation.
// A malformed chain is completed with used length 0 and reported as an
// error; a head index out of range cannot be completed and is skipped.
//
// # Dirty logging
//
// Every device write to guest memory is marked through Table.MarkDirty in
// Push: the first n bytes of the writable buffers (the reply, including
// file data read straight into guest buffers; the used length n is the
// number of bytes written), the used element and used->idx;
// EnableNotification marks avail_event. used->flags is never written (the
// device does not suppress notifications through VRING_USED_F_NO_NOTIFY).
// Used-ring writes are logged at the used ring's GPA, or at the vring's
// log_guest_addr when the front-end gave one (SetAddrLog).
//
// # Locking
//
// Queue.mu guards all queue state. Pop, Push and EnableNotification take it
// internally, so a pool of workers may complete chains concurrently and the
// control plane may reconfigure (SetCallFD, SetAddr) a running queue. It is
// a leaf lock; no other lock is taken while it is held.
package virtqueue
