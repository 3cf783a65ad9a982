// Package migration holds the device state of the virtio-fs device as it
// travels between two daemons during live migration: the Go form of the
// stream (State), its codec, and the interface through which the device
// drives the file system that produces and consumes it.
//
// The stream is a single postcard-encoded value of the Rust virtiofsd's
// PassthroughFs type (postcard wire format: https://postcard.jamesmunns.com/wire-format),
// so that this daemon and virtiofsd 1.12 and later can migrate to each
// other. docs/migration.md describes the schema field by field. An optional
// trailer after the value (see Extension) carries what that schema lacks;
// the Rust decoder ignores bytes after the value, so the trailer does not
// disturb it.
package migration

import "io"

// Version is the variant index of the top-level enum.
type Version uint32

const (
	// V1 is written by virtiofsd 1.11: no mount paths.
	V1 Version = 0
	// V2 is written by virtiofsd 1.12 and later, and by this daemon.
	V2 Version = 1
)

// State is one decoded device-state stream.
type State struct {
	Version Version
	// Inodes in ascending ID order when encoded by a source.
	Inodes []Inode
	// NextInode is the next FUSE node ID the source would have handed out.
	NextInode uint64
	// Handles in ascending ID order when encoded by a source.
	Handles []Handle
	// NextHandle is the next FUSE file handle the source would have
	// handed out.
	NextHandle uint64
	Opts       NegotiatedOpts
	// MountPaths (V2 only) maps a source mount ID to the path of that
	// mount's root relative to the shared directory ("." for the shared
	// directory itself). The wire form is a map; here it is a list without
	// duplicate IDs, sorted by MntID when it comes out of Decode and
	// written in that order by Encode.
	MountPaths []MountPath
	// Ext is the trailer of this daemon; nil when the stream has none (a
	// stream from the Rust virtiofsd).
	Ext *Extension
}

// NegotiatedOpts are the file system's runtime flags negotiated at FUSE
// INIT.
type NegotiatedOpts struct {
	Writeback         bool
	AnnounceSubmounts bool
	PosixACL          bool
	SupGroupExtension bool
}

// Inode is one entry of the source's inode table.
type Inode struct {
	// ID is the FUSE node ID (1 is the shared directory).
	ID uint64
	// Refcount is the guest's lookup count, plus 2 for the root, plus one
	// for each serialized inode whose location is Path with this inode as
	// parent (docs/migration.md).
	Refcount uint64
	Location Location
	// FileHandle, when not nil, is the inode's handle as the source saw it
	// (--migration-verify-handles); the destination compares type and
	// bytes.
	FileHandle *FileHandle
}

// LocationKind is the variant index of InodeLocation.
type LocationKind uint32

const (
	LocRoot       LocationKind = 0 // the shared directory (ID 1 only)
	LocPath       LocationKind = 1 // Parent + Name, one path component
	LocInvalid    LocationKind = 2 // the source could not describe the inode
	LocFullPath   LocationKind = 3 // Name relative to the shared directory (1.11 sources)
	LocFileHandle LocationKind = 4 // Handle
)

// Location tells the destination how to find an inode again. Which fields
// are used depends on Kind.
type Location struct {
	Kind LocationKind
	// Parent is the parent's node ID (LocPath).
	Parent uint64
	// Name is one path component (LocPath) or a relative path
	// (LocFullPath).
	Name string
	// Handle is the file handle (LocFileHandle).
	Handle FileHandle
}

// FileHandle is a kernel file handle as name_to_handle_at(2) returns it,
// with the source's mount ID.
type FileHandle struct {
	MntID uint64
	Type  int32
	Bytes []byte
}

// Handle is one open file or directory handle: reopen the inode with Flags.
type Handle struct {
	ID    uint64
	Inode uint64
	// Flags are open(2) flags of the source's architecture.
	Flags int32
}

// MountPath is one entry of State.MountPaths.
type MountPath struct {
	MntID uint64
	Path  string
}

// Extension is what this daemon appends after the postcard value: the
// FUSE session state that the Rust schema does not carry, so that a Go
// destination continues with exactly what the guest negotiated instead of
// re-deriving it.
type Extension struct {
	// FUSEFlags is the INIT flag set enabled for the session
	// (flags | flags2<<32), as fuse.Server.Negotiated returns it.
	FUSEFlags uint64
}

// Handler is the device-state side of the file system, as the virtio-fs
// device drives it through the vhost-user messages of a migration
// (QEMU docs/interop/vhost-user.rst, "Migrating back-end state").
type Handler interface {
	// Prepare is called when the front-end turns dirty logging on
	// (VHOST_F_LOG_ALL acked): the source may start preparing the state
	// in the background while the guest still runs. It returns at once.
	Prepare()
	// Cancel is called when the front-end turns dirty logging off without
	// a save (migration cancelled or failed): stop any preparation.
	Cancel()
	// Save writes the whole state to w. The device is stopped (no request
	// in flight) while it runs. It may take long; the caller runs it in
	// the background.
	Save(w io.Writer) error
	// Load reads r to EOF and rebuilds the file system's session from it.
	// The device is stopped while it runs. On error the session is left
	// as it was before (or empty), never half-applied in a way that lets
	// the guest reach anything outside the shared directory.
	Load(r io.Reader) error
}
