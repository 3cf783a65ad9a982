package passthrough

import (
	"fmt"
	"io"

	"virtiofsd/internal/fuse"
	"virtiofsd/internal/migration"
)

// maxStateBytes bounds the device-state stream a destination accepts. A
// source with a million inodes and handles writes well under 100 MiB.
const maxStateBytes = 512 << 20

// deviceState is the migration.Handler of a FUSE server over an FS.
type deviceState struct {
	fs  *FS
	srv *fuse.Server
	// limit is the largest stream Load accepts (maxStateBytes).
	limit int
}

// NewDeviceState returns the migration.Handler that saves and restores the
// session of fs, together with the FUSE session state of srv (which must
// serve fs).
func NewDeviceState(fs *FS, srv *fuse.Server) migration.Handler {
	return &deviceState{fs: fs, srv: srv, limit: maxStateBytes}
}

func (d *deviceState) Prepare() { d.fs.prepareMigration() }

func (d *deviceState) Cancel() { d.fs.cancelMigration() }

// Save implements migration.Handler.Save.
func (d *deviceState) Save(w io.Writer) error {
	st, err := d.fs.saveState()
	if err != nil {
		return err
	}
	st.Ext = &migration.Extension{FUSEFlags: d.srv.Negotiated()}
	b, err := migration.Encode(st)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write device state: %w", err)
	}
	return nil
}

// Load implements migration.Handler.Load.
func (d *deviceState) Load(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, int64(d.limit)+1))
	if err != nil {
		return fmt.Errorf("read device state: %w", err)
	}
	if len(b) > d.limit {
		return fmt.Errorf("device state larger than %d bytes", d.limit)
	}
	st, err := migration.Decode(b)
	if err != nil {
		return fmt.Errorf("decode device state: %w", err)
	}
	if err := d.fs.loadState(st); err != nil {
		return err
	}
	d.srv.SetNegotiated(fuseFlagsAfterLoad(st))
	return nil
}

// fuseFlagsAfterLoad returns the INIT flag set the FUSE server continues
// with: the source's own when it sent them, otherwise the flags the
// request decoder depends on, derived from the negotiated options (a Rust
// source does not send its flag set).
func fuseFlagsAfterLoad(st *migration.State) uint64 {
	if st.Ext != nil {
		return st.Ext.FUSEFlags
	}
	var f uint64
	if st.Opts.Writeback {
		f |= fuse.FUSE_WRITEBACK_CACHE
	}
	if st.Opts.AnnounceSubmounts {
		f |= fuse.FUSE_SUBMOUNTS
	}
	if st.Opts.PosixACL {
		f |= fuse.FUSE_POSIX_ACL | fuse.FUSE_DONT_MASK | fuse.FUSE_SETXATTR_EXT
	}
	if st.Opts.SupGroupExtension {
		f |= fuse.FUSE_CREATE_SUPP_GROUP
	}
	return f
}
