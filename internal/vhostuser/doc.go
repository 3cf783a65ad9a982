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
// # Device state (live migration)
//
// A Backend that also implements StateBackend takes part in migration
// (devstate.go). LogAll follows VHOST_F_LOG_ALL in the acked features and
// is called only when the bit changes (the reference runs its hook on
// every SET_FEATURES; a repeated SET_FEATURES with the bit set does not
// start a second preparation here). SET_DEVICE_STATE_FD (direction SAVE
// or LOAD, phase STOPPED) is answered 0x100 at once, before any data moves,
// and the transfer runs on its own goroutine, which calls SaveState with
// the pipe's write end or LoadState with its read end and closes that end
// when it returns, so that the front-end sees EOF. The connection
// goroutine keeps answering requests meanwhile; only CHECK_DEVICE_STATE
// waits for the transfer, then replies 0 (success) or 1 (failure, the
// error logged once). The transfer runs only while the device is
// suspended, as QEMU guarantees by stopping every ring with
// GET_VRING_BASE first: a transfer requested while a ring runs is refused,
// and starting a ring while one is in progress fails the request.
//
// Differences from the reference, which treats a bad direction or phase
// as a fatal protocol error and lets a new transfer replace one still
// running: a backend without StateBackend, an unknown direction or phase,
// a running ring or a transfer still in progress get the reply 0x101 and
// one log line, and the connection stays. CHECK_DEVICE_STATE without a
// transfer replies 1 and the connection stays. A finished transfer that
// was never checked is replaced by the next one.
//
// The pipe end is set non-blocking and wrapped in an os.File, so that it
// waits in the runtime poller (O_NONBLOCK is a property of the open file
// description, which the front-end's copy of that end shares; QEMU closes
// its copy once it has sent it): the end of the connection and RESET_DEVICE
// close it, which interrupts a transfer blocked on the pipe, and wait for
// the transfer goroutine. A write to a pipe whose reader went away fails
// with EPIPE (Go does not die of SIGPIPE on such descriptors), which fails
// the transfer.
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
// Serve's goroutine owns all connection state, except the pipe of a
// device state transfer, which the transfer goroutine owns until it ends. Queue workers (run by the
// Backend) share only the virtqueue.Queue objects, which lock internally,
// and the guestmem.Memory, whose tables are reference counted: a memory
// update never waits for the data plane, and a region is unmapped only
// when the last request holding it has completed. SET_LOG_BASE waits only
// for dirty-bit updates in progress on the previous log, which never
// block.
package vhostuser
