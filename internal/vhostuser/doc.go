// Package vhostuser implements the back-end side of the vhost-user control
// protocol (QEMU docs/interop/vhost-user.rst; spec/vhost.md §1) for one
// front-end connection.
//
// # Place in the stack
//
// Serve reads requests from the connected socket, validates them (message.go,
// the only parser of front-end bytes, fuzzed by FuzzVhostMessage), keeps the
// connection state (features, owner, memory table, per-vring configuration
// and descriptors) and delegates everything device-specific to a Backend:
// feature bits, the configuration space, and running the queue workers.
// It knows nothing about FUSE.
//
// # Rules mirrored from the reference implementation
//
//   - one request at a time; a reply is written before the next request is
//     read;
//   - header: code 1..43, payload ≤ 4096 bytes, version 1, reserved flags
//     zero, no REPLY flag; fixed-size payloads must match exactly;
//     descriptors only on the requests that carry them, in the exact number;
//   - GET_* requests, GET_VRING_BASE, SET_LOG_BASE, SET_DEVICE_STATE_FD and
//     CHECK_DEVICE_STATE always reply; every other request is acked (u64 0
//     or 1) only when REPLY_ACK is in effect and NEED_REPLY is set;
//   - any validation error, failed feature gate, failed handler or
//     unsupported request ends the connection (a failing handler first
//     sends its ack); a clean EOF between messages is a disconnect.
//
// # Improvements over the reference
//
// GET_VRING_BASE and RESET_DEVICE stop the ring and wait until every
// in-flight request has been written to the used ring before replying. A
// replaced kick fd is re-armed. Unaligned mmap offsets are tolerated;
// memory regions are sorted instead of rejected when out of order.
// SET_DEVICE_STATE_FD is answered with failure (0x101) as long as
// DEVICE_STATE is not offered, and CHECK_DEVICE_STATE with 1.
// SET_PROTOCOL_FEATURES with a bit that was not offered fails like
// SET_FEATURES does, and ADD_MEM_REG beyond the GET_MAX_MEM_SLOTS count
// (509) fails; the reference accepts both.
//
// Dirty logging (SET_LOG_BASE) covers regions added after the log was
// installed, and a log replaced while the queues run is no longer written
// once the reply is sent. SET_VRING_ADDR with VHOST_VRING_F_LOG logs the
// used ring at log_guest_addr. SET_LOG_FD is accepted and its descriptor
// held, never used; the reference does not implement it.
//
// # Descriptors
//
// Every descriptor received with a message is owned by the message: a
// handler that keeps one takes it (message.takeFD) and all others are
// closed after the handler returns, on every path. Descriptors are
// received with MSG_CMSG_CLOEXEC. On return Serve closes everything it
// still holds.
//
// # Concurrency
//
// Serve's goroutine owns all connection state. Queue workers (run by the
// Backend) share only the virtqueue.Queue objects, which lock internally,
// and the guestmem.Memory, whose tables are reference counted: a memory
// update never waits for the data plane, and a region is unmapped only
// when the last request holding it has completed. SET_LOG_BASE waits only
// for dirty-bit updates in progress on the previous log, which never
// block.
package vhostuser
