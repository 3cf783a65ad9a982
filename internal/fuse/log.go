package fuse

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Guest-triggered warnings are rate-limited so that a hostile guest cannot
// flood the log: at most logBurst lines per logWindow, then one summary line
// with the number of suppressed lines when the next window opens.
const (
	logBurst  = 20
	logWindow = time.Second
)

// rateLimiter counts log lines per time window.
type rateLimiter struct {
	mu         sync.Mutex
	start      time.Time // start of the current window; protected by mu
	n          int       // lines logged in the window; protected by mu
	suppressed int       // lines dropped in the window; protected by mu
}

// allow reports whether a line may be logged now, and how many lines were
// suppressed in the previous window (to be reported first).
func (r *rateLimiter) allow(now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= logWindow {
		suppressed = r.suppressed
		r.start, r.n, r.suppressed = now, 0, 0
	}
	if r.n >= logBurst {
		r.suppressed++
		return false, suppressed
	}
	r.n++
	return true, suppressed
}

// warn logs a rate-limited warning about guest input. Only error paths call
// it; building args may allocate.
func (s *Server) warn(msg string, args ...any) { s.limited(slog.LevelWarn, msg, args...) }

// limited logs a rate-limited line at level. All lines a guest can trigger
// at will go through it.
func (s *Server) limited(level slog.Level, msg string, args ...any) {
	ok, suppressed := s.limiter.allow(time.Now())
	if suppressed > 0 {
		s.log.Warn("suppress repeated log lines", "count", suppressed)
	}
	if ok {
		s.log.Log(context.Background(), level, msg, args...)
	}
}
