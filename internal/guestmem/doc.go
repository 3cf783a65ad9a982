// Package guestmem maps the guest's RAM, received from the vhost-user
// front-end as file descriptors, and translates guest physical addresses
// (GPAs) into host byte slices.
//
// # Model
//
// A Region is one mapped piece of guest RAM: a GPA range, the front-end's own
// virtual address for it (used only to translate vring addresses) and the
// host mapping. A Table is an immutable, sorted, non-overlapping set of
// regions. Memory publishes the current Table through an atomic pointer;
// every memory update (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) builds a new
// Table and swaps it in. The optional dirty Log (SET_LOG_BASE) is held by
// the Memory beside the tables.
//
// # Lifetime
//
// Readers call Memory.Acquire, use the Table and call Table.Release. Tables
// and regions are reference counted: a region is unmapped (and its fd
// closed) only when the last Table holding it has been released by every
// reader. Munmap therefore never races a request that still holds a slice
// into the mapping. Acquire and Release are two atomic operations and do not
// allocate, so the data path can take a reference per request.
//
// # Trust
//
// Every GPA and length handed to this package comes from the guest or the
// front-end and is checked with overflow-safe arithmetic (Addr.AddLength).
// A buffer must lie entirely inside one region; a buffer spanning two
// regions is rejected even if they are contiguous (spec/vhost.md §2.7).
//
// # Dirty logging
//
// Table.MarkDirty (and MarkDirtyIovec) is the single place that records
// device writes to guest memory in the dirty bitmap (QEMU
// docs/interop/vhost-user.rst, "Migration"): one bit per 4 KiB page of the
// absolute GPA, set with an atomic OR. Every region is logged, including
// regions added after the log was installed. The log is not part of a
// Table: every table marks through the log installed now, so a request
// that started before a SET_LOG_BASE logs its later writes in the new log,
// and Memory.SetLog returns only once the previous log is no longer
// written.
//
// Lock order: Memory.mu (writers only) is a leaf lock. Readers take no lock.
package guestmem
