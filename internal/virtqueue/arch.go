//go:build !(linux && (amd64 || arm64))

package virtqueue

// The ring code assumes a little-endian Linux host with the barrier
// primitives of barrier_amd64.s or barrier_arm64.s.
var _ = unsupportedPlatform // compile error: only linux/amd64 and linux/arm64 are supported
