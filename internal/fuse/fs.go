package fuse

import "golang.org/x/sys/unix"

// Context identifies the guest process that sent a request. The Server
// fills one per request in Worker-owned memory; a FileSystem must not keep
// the pointer past the call.
type Context struct {
	UID uint32
	GID uint32
	PID uint32
	// SuppGID is the supplementary group carried by the FUSE_EXT_GROUPS
	// request extension; valid only if HasSuppGID.
	SuppGID    uint32
	HasSuppGID bool
	// SuppGIDs lists every group of that extension (SuppGID is the first);
	// it points into Worker memory and is nil without the extension.
	SuppGIDs []uint32
	// SecctxName (NUL-terminated, e.g. "security.selinux\x00") and
	// SecctxValue are the security context carried by the security-context
	// request extension of MKNOD, MKDIR, CREATE and SYMLINK; valid only if
	// HasSecctx. They point into Worker memory.
	SecctxName  []byte
	SecctxValue []byte
	HasSecctx   bool
}

// Name is a guest-supplied directory entry name that passed the Server's
// validator: 1 to 255 bytes, no '/' and no NUL, and neither "." nor "..".
// It is stored with its terminating NUL so that it can be handed to system
// calls without copying; the slice (and so the memory it points to) is only
// valid for the duration of the call.
type Name []byte

// Bytes returns the name without its terminating NUL.
func (n Name) Bytes() []byte { return n[:len(n)-1] }

// String returns the name as a string (allocates; for logs and tests).
func (n Name) String() string { return string(n.Bytes()) }

// FileSystem is the interface between the FUSE protocol engine and a file
// system implementation (passthrough.FS). Node IDs and file handles are the
// file system's own; the Server passes them through unchanged.
//
// Every method returns 0 on success or the errno to send to the guest.
// Methods are called concurrently from several Workers. Each call runs on a
// goroutine locked to its OS thread with a private fs context, so a method
// may change per-thread state (credentials, capabilities, umask, cwd) as
// long as it restores it before returning.
//
// out parameters point to zeroed, Worker-owned structures; the file system
// fills them completely (including cache timeouts) and the Server encodes
// them as they are.
type FileSystem interface {
	// Init handles FUSE_INIT after the Server checked the protocol
	// version. It drops all state as Destroy does, opens the root inode
	// (node ID 1) and returns the INIT flags it wants, given capable (the
	// flags the guest offers, flags | flags2<<32). The Server adds the
	// flags it always negotiates and intersects with capable.
	Init(capable uint64) (want uint64, errno unix.Errno)
	// Destroy drops all inodes and handles (FUSE_DESTROY, RESET_DEVICE).
	Destroy()

	Lookup(c *Context, parent uint64, name Name, out *EntryOut) unix.Errno
	// Forget subtracts nlookup from the lookup count of nodeid; unknown
	// node IDs are ignored.
	Forget(nodeid, nlookup uint64)
	Getattr(c *Context, nodeid uint64, out *AttrOut) unix.Errno
	Setattr(c *Context, nodeid uint64, in *SetattrIn, out *AttrOut) unix.Errno
	// Readlink writes the target into buf (4096 bytes) and returns its
	// length; longer targets are truncated.
	Readlink(c *Context, nodeid uint64, buf []byte) (int, unix.Errno)
	// Symlink creates name -> target; target is NUL-terminated and may
	// be empty (then the host refuses it, or a read-only file system does
	// first, as the reference's does).
	Symlink(c *Context, parent uint64, name Name, target []byte, out *EntryOut) unix.Errno
	Mknod(c *Context, parent uint64, name Name, in *MknodIn, out *EntryOut) unix.Errno
	Mkdir(c *Context, parent uint64, name Name, in *MkdirIn, out *EntryOut) unix.Errno
	Unlink(c *Context, parent uint64, name Name) unix.Errno
	Rmdir(c *Context, parent uint64, name Name) unix.Errno
	// Rename renames; flags are RENAME_NOREPLACE, RENAME_EXCHANGE and
	// RENAME_WHITEOUT only (0 for FUSE_RENAME).
	Rename(c *Context, olddir uint64, oldname Name, newdir uint64, newname Name, flags uint32) unix.Errno
	Link(c *Context, nodeid, newparent uint64, newname Name, out *EntryOut) unix.Errno
	Open(c *Context, nodeid uint64, in *OpenIn, out *OpenOut) unix.Errno
	Create(c *Context, parent uint64, name Name, in *CreateIn, entry *EntryOut, open *OpenOut) unix.Errno
	// Read reads at in.Offset straight into dst, guest memory trimmed to
	// in.Size bytes in total, and returns the byte count (short at EOF).
	// The Server lowers in.Size to the writable space the guest supplied
	// when that is smaller than the size it asked for. dst has no empty
	// slices but may have more than IOV_MAX of them.
	Read(c *Context, nodeid uint64, in *ReadIn, dst [][]byte) (int, unix.Errno)
	// Write writes src, guest memory holding exactly in.Size bytes, at
	// in.Offset and returns the byte count. src has no empty slices but
	// may have more than IOV_MAX of them.
	Write(c *Context, nodeid uint64, in *WriteIn, src [][]byte) (int, unix.Errno)
	Statfs(c *Context, nodeid uint64, out *StatfsOut) unix.Errno
	Release(c *Context, nodeid uint64, in *ReleaseIn) unix.Errno
	Flush(c *Context, nodeid uint64, in *FlushIn) unix.Errno
	Fsync(c *Context, nodeid uint64, in *FsyncIn) unix.Errno
	Opendir(c *Context, nodeid uint64, in *OpenIn, out *OpenOut) unix.Errno
	// Readdir positions directory handle in.Fh at the cookie in.Offset and
	// fills buf (len(buf) == in.Size) with raw linux_dirent64 records from
	// one getdents64 call, returning the number of bytes filled. The
	// Server encodes them (and, for READDIRPLUS, looks each name up).
	Readdir(c *Context, nodeid uint64, in *ReadIn, buf []byte) (int, unix.Errno)
	Releasedir(c *Context, nodeid uint64, in *ReleaseIn) unix.Errno
	Fsyncdir(c *Context, nodeid uint64, in *FsyncIn) unix.Errno
	Access(c *Context, nodeid uint64, mask uint32) unix.Errno
	// Fallocate calls fallocate(2) with in.Mode unchanged on handle in.Fh.
	Fallocate(c *Context, nodeid uint64, in *FallocateIn) unix.Errno
	// Lseek moves the offset of handle in.Fh (in.Whence unchanged,
	// SEEK_DATA and SEEK_HOLE included) and stores the new offset in out.
	Lseek(c *Context, nodeid uint64, in *LseekIn, out *LseekOut) unix.Errno
	// CopyFileRange copies in.Len bytes from handle in.FhIn of nodeid to
	// handle in.FhOut of in.NodeIDOut, with in.Flags unchanged, and returns
	// the byte count (at most in.Len).
	CopyFileRange(c *Context, nodeid uint64, in *CopyFileRangeIn) (int, unix.Errno)
	// Syncfs flushes the host file system that holds nodeid.
	Syncfs(c *Context, nodeid uint64) unix.Errno

	// Extended attributes. Attribute names are NUL-terminated and may
	// hold any other byte ('/' included); they point into Worker memory.

	// GetXattr reads attribute name of nodeid into buf like getxattr(2)
	// and returns the value's length. An empty buf asks for the length
	// only; a value longer than a non-empty buf is ERANGE. len(buf) is at
	// most MaxBufferSize.
	GetXattr(c *Context, nodeid uint64, name, buf []byte) (int, unix.Errno)
	// ListXattr writes the NUL-terminated attribute names of nodeid into
	// buf like listxattr(2) and returns the list's length; an empty buf
	// asks for the length only.
	ListXattr(c *Context, nodeid uint64, buf []byte) (int, unix.Errno)
	// SetXattr sets attribute name of nodeid to value (len(value) ==
	// in.Size) with in.Flags (XATTR_CREATE, XATTR_REPLACE) and
	// in.SetxattrFlags (zero unless FUSE_SETXATTR_EXT was negotiated).
	SetXattr(c *Context, nodeid uint64, name, value []byte, in *SetxattrIn) unix.Errno
	// RemoveXattr removes attribute name of nodeid.
	RemoveXattr(c *Context, nodeid uint64, name []byte) unix.Errno
}
