// Package fuse is the transport-agnostic FUSE protocol engine of the
// virtio-fs daemon.
//
// A Server decodes one FUSE request at a time from scatter-gather buffers
// (the device-readable and device-writable halves of one virtqueue
// descriptor chain, both pointing into guest memory), dispatches it to a
// FileSystem and encodes the reply into the writable buffers. The package
// knows nothing about virtqueues or vhost-user: the device layer hands it
// [][]byte and receives the number of bytes written (the used length).
//
// # Place in the stack
//
//	virtiofs (device) -> fuse.Server/Worker -> FileSystem (passthrough.FS)
//
// The device creates one Server per file system (NewServer or
// NewServerWithOptions) and one Worker per request thread (NewWorker), and
// for each popped chain calls Worker.Serve(readable, writable), completing
// the chain with the returned length. Server.Destroy serves vhost-user
// RESET_DEVICE; Server.Negotiated and SetNegotiated expose the INIT flag
// set for the migration code.
//
// # Trust
//
// Every request comes from the guest and is untrusted. Serve copies the
// 40-byte header and the request body (everything except WRITE data) into
// Worker-owned memory once, then validates and uses only the copy, because
// the guest can change its memory at any time. Names pass one validator
// (checkName) before any FileSystem call. Malformed requests get an EINVAL
// reply (or, when even a 16-byte reply header does not fit, no reply) and a
// rate-limited log line; they never panic the daemon. Panics raised by the
// FileSystem are recovered at the Serve boundary and answered with EIO.
//
// # Data path
//
// READ and WRITE payloads are never copied through Go memory: the Worker
// builds a [][]byte view of exactly the requested bytes of guest memory and
// hands it to FileSystem.Read/Write, which are expected to call
// preadv/pwritev on it. Serve performs no allocation in steady state for
// LOOKUP, GETATTR, READ, WRITE, GETXATTR and SETXATTR (enforced by tests):
// every decoded request and reply structure lives in the Worker.
//
// # Extended attributes
//
// Attribute names are not directory entries: they only have to be
// NUL-terminated, and reach the FileSystem with any other byte. SETXATTR's
// fixed part is 16 bytes once FUSE_SETXATTR_EXT is negotiated and 8 bytes
// before; its value must be exactly as long as its size field. GETXATTR
// and LISTXATTR sizes over 1 MiB are ENOMEM before the FileSystem is asked.
//
// # Concurrency
//
// A Server is shared by all Workers; its only mutable state is the
// negotiated INIT flag set (atomic) and the log rate limiter (own mutex).
// A Worker is owned by one goroutine, locked to its OS thread.
//
// # Intended differences from the reference daemon
//
//   - Malformed requests (truncated bodies, missing NULs, bad extensions,
//     reply buffers too small for the reply) are answered with EINVAL
//     instead of killing the worker thread. A request whose reply cannot be
//     delivered at all is not executed.
//   - Names "", ".", ".." and names containing '/' are rejected with EINVAL,
//     names longer than 255 bytes with ENAMETOOLONG, before the file system
//     sees them (so also where a read-only file system would answer EROFS,
//     as the reference does for modifying requests).
//   - READ and WRITE hand the file system exactly the requested byte count
//     of guest memory (the reference passes the last buffer whole).
//   - READDIRPLUS checks that an entry fits before looking its name up, so a
//     non-fitting entry costs neither a LOOKUP nor the FORGET undoing it.
//   - The supplementary-group request extension may carry more than one
//     group.
package fuse
