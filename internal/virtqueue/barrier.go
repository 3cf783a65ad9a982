package virtqueue

// load16 loads *p with acquire ordering.
//
//go:noescape
func load16(p *uint16) uint16

// store16 stores v to *p with release (on amd64 sequentially consistent)
// ordering.
//
//go:noescape
func store16(p *uint16, v uint16)

// fence is a full memory barrier, ordering earlier stores before later
// loads.
func fence()
