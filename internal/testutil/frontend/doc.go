// Package frontend is a vhost-user front-end (the role QEMU plays) for
// tests of a virtio-fs back-end daemon.
//
// It talks to the daemon over a real AF_UNIX socket, shares guest memory as
// memfd regions mapped in the test process, places split virtqueues (virtio
// 1.2 §2.7) in that memory, kicks and receives notifications through
// eventfds, and carries FUSE requests on the queues. It is deliberately an
// independent implementation of the wire formats (vhost-user, split rings,
// FUSE): it is the tool that checks the daemon, so it must not share code
// with it.
//
// Layers, from the top:
//
//   - FUSE helpers (Frontend.Init, Frontend.Lookup, ...) build one request,
//     run it with Frontend.Do and decode the reply, returning a unix.Errno
//     when the daemon answers with an error.
//   - Frontend.Do and Frontend.DoView submit one descriptor chain built
//     from device-readable and device-writable buffers and wait for its
//     completion.
//   - Queue gives raw access to the descriptor table and the avail ring so
//     that tests can build malformed chains (loops, bad addresses, bogus
//     lengths, bad head indices, bad avail indices).
//   - Conn sends and receives raw vhost-user messages, including malformed
//     ones.
//
// Memory ordering on the rings: the front-end is the driver side. It writes
// descriptors and avail ring entries with plain stores, then publishes the
// avail index with a 32-bit sync/atomic store of the aligned word holding
// avail flags and avail idx (the front-end owns both fields and keeps a
// shadow of the flags). Go atomics are sequentially consistent, so that
// store also orders the following load of avail_event (EVENT_IDX) or of
// used flags. The used index is read with a 32-bit atomic load of the
// aligned flags+idx word of the used ring; used elements are read with
// plain loads after it. used_event and avail_event are accessed as the low
// half of an aligned 32-bit word; the ring layout reserves two bytes of
// padding after each so the word never leaves memory the front-end owns.
// The avail ring is therefore placed 4-aligned and queue sizes must be even.
//
// Waiting is always bounded: every wait for a reply, a notification or a
// vhost-user reply gives up after Options.Timeout and reports whether the
// daemon closed the connection or exited (Options.Alive).
//
// A Frontend is not safe for concurrent use.
package frontend
