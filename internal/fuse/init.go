package fuse

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// knownFlags are the INIT flags the reference daemon knows (bits 0-34, 36
// and 40); the others are discarded from the kernel's offer before
// negotiation.
const knownFlags uint64 = 1<<35 - 1 | FUSE_DIRECT_IO_ALLOW_MMAP | FUSE_ALLOW_IDMAP

// alwaysFlags are negotiated whenever the kernel offers them, whatever the
// file system wants.
const alwaysFlags = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_BIG_WRITES |
	FUSE_AUTO_INVAL_DATA | FUSE_ASYNC_DIO | FUSE_HAS_IOCTL_DIR |
	FUSE_ATOMIC_O_TRUNC | FUSE_MAX_PAGES | FUSE_SUBMOUNTS | FUSE_INIT_EXT |
	FUSE_CREATE_SUPP_GROUP | FUSE_ALLOW_IDMAP

// doInit negotiates the protocol version and the INIT flags.
func doInit(w *Worker) unix.Errno {
	in, _ := decode[InitIn](w.body)
	if in.Major < KernelVersion {
		w.s.limited(slog.LevelError, "unsupported fuse protocol version", "major", in.Major, "minor", in.Minor)
		return unix.EPROTO
	}
	w.initOut = InitOut{}
	w.setReply(bytesOf(&w.initOut))
	if in.Major > KernelVersion {
		// Announce our version; the kernel retries with major 7.
		w.initOut.Major = KernelVersion
		w.initOut.Minor = KernelMinorVersion
		return 0
	}
	if in.Minor < MinKernelMinor {
		w.s.limited(slog.LevelError, "unsupported fuse protocol version", "major", in.Major, "minor", in.Minor)
		return unix.EPROTO
	}
	offered := uint64(in.Flags)
	if offered&FUSE_INIT_EXT != 0 {
		ext, ok := decode[InitInExt](w.body[sizeof[InitIn]():])
		if !ok {
			return w.decodeError("init request without its extended flags")
		}
		offered |= uint64(ext.Flags2) << 32
	}
	offered &= knownFlags
	want, errno := w.s.fs.Init(offered)
	if errno != 0 {
		return errno
	}
	enabled := offered & (want | alwaysFlags)
	w.s.negotiated.Store(enabled)
	w.initOut = InitOut{
		Major:               KernelVersion,
		Minor:               KernelMinorVersion,
		MaxReadahead:        in.MaxReadahead,
		Flags:               uint32(enabled),
		MaxBackground:       MaxBackground,
		CongestionThreshold: CongestionThreshold,
		MaxWrite:            MaxWrite,
		TimeGran:            1,
		MaxPages:            w.s.maxPages,
		Flags2:              uint32(enabled >> 32),
	}
	return 0
}
