package guestmem

// Addr is a guest physical address.
type Addr uint64

// AddLength returns a + n and whether the sum did not overflow.
func (a Addr) AddLength(n uint64) (Addr, bool) {
	end := a + Addr(n)
	return end, end >= a
}

// PageSize is the dirty-log granularity (spec/vhost.md §1.10).
const PageSize = 4096
