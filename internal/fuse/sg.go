package fuse

// sgbuf is a cursor over a byte stream scattered across buffers, such as the
// readable or writable half of a descriptor chain. Structures may straddle
// buffer boundaries; the cursor hides them. It never touches memory outside
// the slices it was given and never allocates.
type sgbuf struct {
	bufs [][]byte
	i    int // index of the buffer holding the next byte
	off  int // offset of the next byte within bufs[i]
	left int // bytes from the cursor to the end of the stream
}

// reset positions the cursor at the start of bufs.
func (c *sgbuf) reset(bufs [][]byte) {
	c.bufs, c.i, c.off, c.left = bufs, 0, 0, 0
	for _, b := range bufs {
		c.left += len(b)
	}
}

// next returns the contiguous bytes at the cursor, at most n of them, and
// advances past them. It returns nil at the end of the stream or if n <= 0.
func (c *sgbuf) next(n int) []byte {
	if n <= 0 {
		return nil
	}
	for c.i < len(c.bufs) && c.off == len(c.bufs[c.i]) {
		c.i++
		c.off = 0
	}
	if c.i == len(c.bufs) {
		return nil
	}
	b := c.bufs[c.i][c.off:]
	if len(b) > n {
		b = b[:n]
	}
	c.off += len(b)
	c.left -= len(b)
	return b
}

// read copies up to len(dst) bytes from the stream into dst and returns
// the count.
func (c *sgbuf) read(dst []byte) int {
	n := 0
	for n < len(dst) {
		b := c.next(len(dst) - n)
		if b == nil {
			break
		}
		n += copy(dst[n:], b)
	}
	return n
}

// write copies up to len(src) bytes from src into the stream and returns
// the count.
func (c *sgbuf) write(src []byte) int {
	n := 0
	for n < len(src) {
		b := c.next(len(src) - n)
		if b == nil {
			break
		}
		n += copy(b, src[n:])
	}
	return n
}

// skip advances by up to n bytes and returns the count.
func (c *sgbuf) skip(n int) int {
	done := 0
	for done < n {
		b := c.next(n - done)
		if b == nil {
			break
		}
		done += len(b)
	}
	return done
}

// view appends to dst the slices that cover the next n bytes of the
// stream (fewer if the stream ends first), without empty slices, and
// advances past them. The slices alias the underlying buffers.
func (c *sgbuf) view(dst [][]byte, n int) [][]byte {
	for n > 0 {
		b := c.next(n)
		if b == nil {
			break
		}
		dst = append(dst, b)
		n -= len(b)
	}
	return dst
}
