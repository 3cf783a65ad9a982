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
// Set-up: New(fd, Options) maps the guest memory described by
// Options.Regions (memfds, any GPA layout and mmap offsets), lays out the
// queues and runs the handshake QEMU runs: GET_FEATURES,
// GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER, GET_QUEUE_NUM,
// GET_MAX_MEM_SLOTS, optionally SET_BACKEND_REQ_FD, SET_FEATURES, memory
// by SET_MEM_TABLE or one ADD_MEM_REG per region (Options.MemMode), then
// per queue SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK,
// SET_VRING_CALL and SET_VRING_ENABLE. With REPLY_ACK every request waits
// for its ack; without it GET_FEATURES serves as the barrier. Dial
// connects to a socket path; NewUnconnected plus Negotiate, SendMemory and
// StartQueue allow scripted or partial handshakes; GetVringBase stops a
// queue and StartQueue restarts it from the returned index.
//
// Layers, from the top:
//
//   - FUSE helpers (Frontend.Init, Lookup, Forget, BatchForget, Getattr,
//     Setattr, Open, Opendir, Read, ReadView, Write, Readdir, Readdirplus,
//     Release, Releasedir, Fsync, Fsyncdir, Flush, Create, Mkdir, Mknod,
//     Symlink, Readlink, Link, Unlink, Rmdir, Rename, Rename2, Statfs,
//     Access, Destroy) build one request, run it and decode the reply,
//     returning a unix.Errno when the daemon answers with an error and a
//     *ReplyError when the reply is malformed. Call, CallView, RawCall and
//     SendNoReply send arbitrary opcodes and bodies.
//   - Frontend.Do(queue, in, outSizes) (reply, usedLen, err) and DoView
//     submit one descriptor chain made of one device-readable descriptor
//     per element of in and one device-writable descriptor per size in
//     outSizes (through an indirect table with Options.Indirect) and wait
//     for its completion.
//   - Queue gives raw access to the descriptor table and the avail ring
//     (AllocDescs, WriteDesc, WriteDescAt, Track, Publish, PublishAndKick,
//     SetAvailIdx, Kick, WaitUsed, PopUsed) so that tests can build
//     malformed chains (loops, bad addresses, bogus lengths, bad head
//     indices, bad avail indices) and keep several chains in flight.
//     Memory and Allocator give access to guest memory by GPA.
//   - Conn sends and receives raw vhost-user messages (SendRaw with any
//     code, flags, size field and fds; Recv, RecvReply; WaitClosed).
//   - Dirty-page logging: SetLogBase shares a log memfd (SET_LOG_BASE) and
//     keeps it mapped; DirtyPages, WaitDirtyPages and ClearLog read and
//     reset the bitmap; LogSize sizes it; AddMemRegion hot-plugs a region
//     (ADD_MEM_REG). Queue.SubmitChain places buffers at chosen GPAs.
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
