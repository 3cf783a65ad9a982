package virtiofs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"virtiofsd/internal/guestmem"
	"virtiofsd/internal/linux"
	"virtiofsd/internal/virtqueue"
)

// queueWorker runs one started queue: a goroutine waiting on the kick
// eventfd and a control eventfd, popping chains and either serving them
// inline (serial mode, on its own locked thread) or handing them to the
// pool.
type queueWorker struct {
	idx  int
	q    *virtqueue.Queue
	mem  *guestmem.Memory
	kick int // borrowed from the control plane
	ctl  int // eventfd: wake-up and stop requests
	epfd int
	log  *slog.Logger

	stopping atomic.Bool
	done     chan struct{} // closed when run has returned

	// Serial mode: used only by the worker goroutine.
	h     requestHandler
	fw    requestWorker
	chain *virtqueue.Chain

	// Pool mode.
	pool     *pool
	inflight sync.WaitGroup // chains handed to the pool and not yet pushed

	errs errLimiter

	// ringBroken is set while the driver's avail ring is unusable (see
	// ringUnusable). Used only by the worker goroutine.
	ringBroken bool

	hooks *workerHooks // nil outside tests
}

// workerHooks let tests observe the worker loop without timing it. Every
// function is optional and runs on the worker goroutine.
type workerHooks struct {
	// round runs at the start of every processing round.
	round func(queue int)
	// idle runs right before the worker waits for a kick or a control
	// event.
	idle func(queue int)
	// woke runs when that wait returned, before the events are handled.
	woke func(queue int)
}

// Epoll tokens.
const (
	tokenCtl  = 0
	tokenKick = 1
)

// StartQueue implements vhostuser.Backend.StartQueue.
func (b *backend) StartQueue(idx int, q *virtqueue.Queue, mem *guestmem.Memory, kick int) error {
	if b.workers[idx] != nil {
		return fmt.Errorf("queue %d already started", idx)
	}
	w, err := newQueueWorker(idx, q, mem, kick, b.d.h, b.pool, b.d.log)
	if err != nil {
		return err
	}
	w.hooks = b.d.hooks
	if err := w.start(); err != nil {
		return err
	}
	b.workers[idx] = w
	b.running.Add(1)
	return nil
}

// StopQueue implements vhostuser.Backend.StopQueue.
func (b *backend) StopQueue(idx int) {
	if w := b.workers[idx]; w != nil {
		w.stop()
		b.workers[idx] = nil
		b.running.Add(-1)
	}
}

// WakeQueue implements vhostuser.Backend.WakeQueue.
func (b *backend) WakeQueue(idx int) {
	if w := b.workers[idx]; w != nil {
		if err := linux.Signal(w.ctl); err != nil {
			b.d.log.Error("wake queue", "queue", idx, "err", err)
		}
	}
}

func newQueueWorker(idx int, q *virtqueue.Queue, mem *guestmem.Memory, kick int,
	h requestHandler, p *pool, log *slog.Logger) (*queueWorker, error) {
	ctl, err := linux.NewEventfd()
	if err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		linux.Close(ctl)
		return nil, fmt.Errorf("start queue %d: %w", idx, os.NewSyscallError("epoll_create1", err))
	}
	w := &queueWorker{
		idx: idx, q: q, mem: mem, kick: kick, ctl: ctl, epfd: epfd,
		log: log.With("queue", idx), done: make(chan struct{}), h: h, pool: p,
		chain: virtqueue.NewChain(),
	}
	for _, e := range []struct {
		fd  int
		tok int32
	}{{ctl, tokenCtl}, {kick, tokenKick}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: e.tok}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			w.closeFDs()
			return nil, fmt.Errorf("start queue %d: %w", idx, os.NewSyscallError("epoll_ctl", err))
		}
	}
	return w, nil
}

func (w *queueWorker) closeFDs() {
	linux.Close(w.epfd)
	linux.Close(w.ctl)
	w.epfd, w.ctl = -1, -1
}

// start launches the worker goroutine and waits until it is ready.
func (w *queueWorker) start() error {
	ready := make(chan error, 1)
	go w.run(ready)
	if err := <-ready; err != nil {
		<-w.done
		w.closeFDs()
		return fmt.Errorf("start queue %d: %w", w.idx, err)
	}
	return nil
}

// stop makes the worker stop popping, waits for every chain it popped to be
// completed, and releases its descriptors (not the kick fd, which belongs
// to the caller).
func (w *queueWorker) stop() {
	w.stopping.Store(true)
	if err := linux.Signal(w.ctl); err != nil {
		w.log.Error("stop queue", "err", err)
	}
	<-w.done
	w.closeFDs()
}

// run is the worker goroutine.
func (w *queueWorker) run(ready chan<- error) {
	defer close(w.done)
	if w.pool == nil {
		// Serial mode: requests run on this goroutine, which therefore owns
		// its OS thread for good, with a private fs context. The thread is
		// never unlocked, so it exits with the goroutine.
		runtime.LockOSThread()
		if err := linux.UnshareFS(); err != nil {
			ready <- err
			return
		}
		w.fw = w.h.newWorker()
	}
	// Guest memory may vanish under us (truncated memfd): turn the fault
	// into a panic recovered per request instead of a crash.
	debug.SetPanicOnFault(true)
	ready <- nil

	defer w.inflight.Wait()
	var events [2]unix.EpollEvent
	if w.q.Enabled() {
		w.process()
	}
	for {
		if w.hooks != nil && w.hooks.idle != nil {
			w.hooks.idle(w.idx)
		}
		n, err := linux.EpollWait(w.epfd, events[:], -1)
		if w.hooks != nil && w.hooks.woke != nil {
			w.hooks.woke(w.idx)
		}
		if err != nil {
			w.log.Error("wait for queue events", "err", err)
			return
		}
		for _, ev := range events[:n] {
			fd := w.ctl
			if ev.Fd == tokenKick {
				fd = w.kick
			}
			if ev.Events&^unix.EPOLLIN != 0 {
				w.log.Error("unexpected queue event", "events", ev.Events, "token", ev.Fd)
				return
			}
			if err := linux.Drain(fd); err != nil {
				w.log.Error("read queue eventfd", "err", err)
				return
			}
		}
		if w.stopping.Load() {
			return
		}
		// A kick on a disabled ring is dropped, like the reference does.
		if w.q.Enabled() {
			w.process()
		}
	}
}

// process runs passes until the driver has nothing more
// (spec/vhost.md §2.5: with EVENT_IDX, re-check after re-enabling kicks).
//
// A fault on guest memory that vanished (SetPanicOnFault) aborts the
// processing round with a log message instead of killing the process.
func (w *queueWorker) process() {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("queue processing aborted", "panic", r)
		}
	}()
	for !w.stopping.Load() && w.round() {
	}
}

// round runs one pass with a fresh memory table reference and re-enables
// kicks. It returns true if the ring must be processed again.
//
// A pass that ends because the ring itself is unusable (see ringUnusable)
// still re-enables kicks, so that the driver's next kick reaches us, but
// never asks for another round: re-reading an index that is still invalid
// would spin without end.
func (w *queueWorker) round() bool {
	if w.hooks != nil && w.hooks.round != nil {
		w.hooks.round(w.idx)
	}
	t := w.mem.Acquire()
	defer t.Release()
	w.pass(t)
	more, err := w.q.EnableNotification(t)
	if err != nil {
		w.errs.log(w.log, "re-enable queue notifications", err)
		return false
	}
	return more && !w.ringBroken
}

// pass pops and serves chains until the ring is empty or unusable.
func (w *queueWorker) pass(t *guestmem.Table) {
	for !w.stopping.Load() {
		if w.pool != nil {
			if !w.submit(t) {
				return
			}
			continue
		}
		got, more := w.pop(t, w.chain)
		if !more {
			return
		}
		if !got {
			continue
		}
		n := serveChain(w.fw, w.chain, w.log)
		if err := w.q.Push(t, w.chain, n); err != nil {
			w.errs.log(w.log, "complete descriptor chain", err)
		}
	}
}

// pop takes the next chain into c. got reports that c holds a chain to
// serve; more that the pass should go on (a malformed chain was skipped, or
// c holds a chain).
func (w *queueWorker) pop(t *guestmem.Table, c *virtqueue.Chain) (got, more bool) {
	ok, err := w.q.Pop(t, c)
	switch {
	case err == nil:
		w.ringUsable()
		return ok, ok
	case ok:
		// One malformed chain, already completed or skipped.
		w.ringUsable()
		w.errs.log(w.log, "pop descriptor chain", err)
		return false, true
	default:
		w.ringUnusable(err)
		return false, false
	}
}

// ringUnusable records that the ring as a whole cannot be processed, for
// example because the driver moved avail->idx more than the queue size
// ahead of the last index we consumed (virtio v1.2 §2.7.6: the ring holds
// at most queue-size entries, so the driver cannot have made more
// available).
//
// Over vhost-user the device cannot set DEVICE_NEEDS_RESET (the device
// status belongs to the front-end), so the queue is not declared dead:
// processing stops until the next kick, every kick re-checks the ring, and
// a ring whose index becomes valid again is served again. The error is
// logged once per episode, not once per kick.
func (w *queueWorker) ringUnusable(err error) {
	if w.ringBroken {
		return
	}
	w.ringBroken = true
	w.log.Error("queue ring unusable; waiting for the next kick", "err", err)
}

// ringUsable ends an episode started by ringUnusable.
func (w *queueWorker) ringUsable() {
	if w.ringBroken {
		w.ringBroken = false
		w.log.Info("queue ring usable again")
	}
}

// submit pops one chain into a free pool request and queues it. It
// returns false when the pass is over. The request goes back to the free
// list on every path that does not hand it to a pool thread, including a
// fault on vanished guest memory while popping.
func (w *queueWorker) submit(t *guestmem.Table) bool {
	r := <-w.pool.free
	queued := false
	defer func() {
		if !queued {
			w.pool.free <- r
		}
	}()
	got, more := w.pop(t, r.chain)
	if !got {
		return more
	}
	t.Acquire() // released by the pool thread after Push
	r.t, r.w = t, w
	w.inflight.Add(1)
	w.pool.work <- r
	queued = true
	return true
}

// serveChain runs one request, turning a panic (a fault on vanished guest
// memory, or a bug) into an empty reply.
func serveChain(fw requestWorker, c *virtqueue.Chain, log *slog.Logger) (n uint32) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("request aborted", "head", c.Head(), "panic", r)
			n = 0
		}
	}()
	return fw.Serve(c.Readable(), c.Writable())
}

// request is one chain in flight in pool mode. Requests are preallocated;
// none is allocated per chain.
type request struct {
	chain *virtqueue.Chain
	t     *guestmem.Table // reference held until the chain is pushed
	w     *queueWorker
}

// pool is a fixed set of request threads shared by all queues of a device
// connection. Each thread is locked, has its own fs context and its own
// requestWorker; completions are pushed out of order under the queue lock.
type pool struct {
	work chan *request
	free chan *request
	wg   sync.WaitGroup
	log  *slog.Logger
}

func startPool(h requestHandler, n int, log *slog.Logger) (*pool, error) {
	// Two requests per thread keep every thread busy while the queue
	// goroutines pop the next chains.
	nreq := 2 * n
	p := &pool{work: make(chan *request, nreq), free: make(chan *request, nreq), log: log}
	for range nreq {
		p.free <- &request{chain: virtqueue.NewChain()}
	}
	errs := make(chan error, n)
	for range n {
		p.wg.Add(1)
		go p.thread(h, errs)
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		p.stop()
		return nil, fmt.Errorf("start request thread pool: %w", first)
	}
	return p, nil
}

func (p *pool) thread(h requestHandler, ready chan<- error) {
	defer p.wg.Done()
	// Locked for good: the thread exits with the goroutine.
	runtime.LockOSThread()
	if err := linux.UnshareFS(); err != nil {
		ready <- err
		return
	}
	debug.SetPanicOnFault(true)
	fw := h.newWorker()
	ready <- nil
	for r := range p.work {
		p.complete(fw, r)
		r.t.Release()
		w := r.w
		r.t, r.w = nil, nil
		p.free <- r
		w.inflight.Done()
	}
}

// complete serves r and pushes its completion. A fault on guest memory
// that vanished is logged instead of killing the process.
func (p *pool) complete(fw requestWorker, r *request) {
	defer func() {
		if x := recover(); x != nil {
			r.w.log.Error("request completion aborted", "panic", x)
		}
	}()
	n := serveChain(fw, r.chain, p.log)
	if err := r.w.q.Push(r.t, r.chain, n); err != nil {
		r.w.errs.log(r.w.log, "complete descriptor chain", err)
	}
}

// stop ends all pool threads. No queue may be running.
func (p *pool) stop() {
	close(p.work)
	p.wg.Wait()
}

// errLimiter rate-limits data-path error logs: a hostile guest must not be
// able to flood the log. At most burst messages per second are written;
// the number suppressed is reported with the next one.
type errLimiter struct {
	mu         sync.Mutex
	window     time.Time
	count      int
	suppressed int
}

const errBurst = 10

func (l *errLimiter) log(log *slog.Logger, msg string, err error) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.window) >= time.Second {
		l.window, l.count = now, 0
	}
	l.count++
	if l.count > errBurst {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	level := slog.LevelWarn
	if errors.Is(err, virtqueue.ErrRingMemory) || errors.Is(err, virtqueue.ErrAvailIndex) {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, msg, "err", err, "suppressed", suppressed)
}
