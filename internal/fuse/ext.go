package fuse

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// parseExtensions parses the request extensions in w.body[off:] of MKNOD,
// MKDIR, CREATE and SYMLINK into w.ctx. Extensions are only looked at when
// the security-context or supplementary-group extension was negotiated;
// otherwise trailing bytes are ignored, like the reference does. Every
// length is checked against the bytes present; any violation is a decode
// error (EINVAL).
func (w *Worker) parseExtensions(off int) unix.Errno {
	neg := w.s.negotiated.Load()
	if neg&(FUSE_SECURITY_CTX|FUSE_CREATE_SUPP_GROUP) == 0 {
		return 0
	}
	b := w.body[off:]
	hs := sizeof[ExtHeader]()
	var seenSecctx, seenGroups bool
	for len(b) > 0 {
		h, ok := decode[ExtHeader](b)
		if !ok {
			return w.decodeError("truncated extension header")
		}
		if h.Size < uint32(hs) || h.Size > uint32(len(b)) {
			return w.decodeError("bad extension size")
		}
		blk := b[hs:h.Size]
		b = b[h.Size:]
		switch {
		case h.Type <= FUSE_MAX_NR_SECCTX:
			if neg&FUSE_SECURITY_CTX == 0 || seenSecctx {
				return w.decodeError("unexpected security context extension")
			}
			seenSecctx = true
			if errno := w.parseSecctx(h.Type, blk); errno != 0 {
				return errno
			}
		case h.Type == FUSE_EXT_GROUPS:
			if neg&FUSE_CREATE_SUPP_GROUP == 0 || seenGroups {
				return w.decodeError("unexpected supplementary group extension")
			}
			seenGroups = true
			if errno := w.parseGroups(blk); errno != 0 {
				return errno
			}
		default:
			return w.decodeError("unknown extension type")
		}
	}
	if neg&FUSE_SECURITY_CTX != 0 && !seenSecctx {
		return w.decodeError("missing security context extension")
	}
	return 0
}

// parseSecctx parses a security-context block holding nr contexts (the
// extension type). Only "no context" (0) and one context are valid; the
// trailing alignment padding of the block is ignored.
func (w *Worker) parseSecctx(nr uint32, b []byte) unix.Errno {
	if nr > 1 {
		return w.decodeError("more than one security context")
	}
	if nr == 0 {
		// No context (for example a guest without an LSM).
		return 0
	}
	sc, ok := decode[Secctx](b)
	if !ok || sc.Size == 0 {
		return w.decodeError("bad security context")
	}
	b = b[sizeof[Secctx]():]
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return w.decodeError("security context name not NUL-terminated")
	}
	name := b[:i+1]
	b = b[i+1:]
	if uint64(sc.Size) > uint64(len(b)) {
		return w.decodeError("security context value exceeds the extension")
	}
	w.ctx.SecctxName = name
	w.ctx.SecctxValue = b[:sc.Size]
	w.ctx.HasSecctx = true
	return 0
}

// parseGroups parses a supplementary-groups block: nr_groups (at least 1)
// followed by that many GIDs.
func (w *Worker) parseGroups(b []byte) unix.Errno {
	sg, ok := decode[SuppGroups](b)
	if !ok || sg.NrGroups == 0 {
		return w.decodeError("bad supplementary group extension")
	}
	b = b[sizeof[SuppGroups]():]
	if uint64(sg.NrGroups)*4 > uint64(len(b)) {
		return w.decodeError("supplementary groups exceed the extension")
	}
	gids := w.gids[:0]
	for i := 0; i < int(sg.NrGroups); i++ {
		o := 4 * i
		gids = append(gids, uint32(b[o])|uint32(b[o+1])<<8|uint32(b[o+2])<<16|uint32(b[o+3])<<24)
	}
	w.gids = gids[:0]
	w.ctx.SuppGIDs = gids
	w.ctx.SuppGID = gids[0]
	w.ctx.HasSuppGID = true
	return 0
}
