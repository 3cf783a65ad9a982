package logging

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Levels beyond the four slog defines. LevelTrace sits below slog.LevelDebug,
// LevelOff above every level a record can have.
const (
	LevelTrace = slog.Level(-8)
	LevelOff   = slog.Level(1 << 20)
)

// Target is the name printed after the level, as the reference daemon prints
// its crate name.
const Target = "virtiofsd"

// ParseLevel parses a --log-level value: off, error, warn, info, debug or
// trace, in any letter case.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "off":
		return LevelOff, true
	case "error":
		return slog.LevelError, true
	case "warn":
		return slog.LevelWarn, true
	case "info":
		return slog.LevelInfo, true
	case "debug":
		return slog.LevelDebug, true
	case "trace":
		return LevelTrace, true
	}
	return 0, false
}

// LevelName returns the five-letter-or-shorter name of l: the name of the
// highest defined level that is not above l.
func LevelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	case l >= slog.LevelDebug:
		return "DEBUG"
	}
	return "TRACE"
}

// Filter decides which records are written.
type Filter struct {
	// Level is the lowest level written; LevelOff disables output.
	Level slog.Level
	// Contains, if non-empty, keeps only messages containing it.
	Contains string
}

// Handler is a slog.Handler writing the reference daemon's line format.
type Handler struct {
	out    *output
	filter Filter
	// prefix holds the attributes added by WithAttrs, already formatted,
	// each preceded by a space.
	prefix string
	// group is the dotted group prefix for keys, empty or ending in '.'.
	group string
	// target is printed after the level: Target or Target::module.
	target string
	// now returns the timestamp of a record whose Time is zero.
	now func() time.Time
}

// output serialises writes to one io.Writer shared by derived handlers.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

// NewHandler returns a Handler writing records that pass f to w.
func NewHandler(w io.Writer, f Filter) *Handler {
	return &Handler{out: &output{w: w}, filter: f, target: Target, now: time.Now}
}

// Enabled implements slog.Handler.Enabled.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return h.filter.Level < LevelOff && l >= h.filter.Level
}

// Handle implements slog.Handler.Handle.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	if h.filter.Contains != "" && !strings.Contains(r.Message, h.filter.Contains) {
		return nil
	}
	t := r.Time
	if t.IsZero() {
		t = h.now()
	}
	buf := make([]byte, 0, 128)
	buf = append(buf, '[')
	buf = t.UTC().AppendFormat(buf, "2006-01-02T15:04:05Z")
	buf = append(buf, ' ')
	name := LevelName(r.Level)
	buf = append(buf, name...)
	for i := len(name); i < 5; i++ {
		buf = append(buf, ' ')
	}
	buf = append(buf, ' ')
	buf = append(buf, h.target...)
	buf = append(buf, "] "...)
	buf = append(buf, r.Message...)
	buf = append(buf, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, h.group, a)
		return true
	})
	buf = append(buf, '\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(buf)
	return err
}

// WithAttrs implements slog.Handler.WithAttrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	var buf []byte
	for _, a := range attrs {
		buf = appendAttr(buf, h.group, a)
	}
	h2.prefix = h.prefix + string(buf)
	return &h2
}

// WithGroup implements slog.Handler.WithGroup.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

// appendAttr appends " key=value" for a, flattening groups into dotted keys
// and dropping empty attributes as slog.Handler requires.
func appendAttr(buf []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		if len(attrs) == 0 {
			return buf
		}
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range attrs {
			buf = appendAttr(buf, g, ga)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = append(buf, group...)
	buf = append(buf, a.Key...)
	buf = append(buf, '=')
	var s string
	switch a.Value.Kind() {
	case slog.KindTime:
		s = a.Value.Time().UTC().Format(time.RFC3339Nano)
	default:
		s = a.Value.String()
	}
	if needsQuote(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// needsQuote reports whether s must be quoted to stay one unambiguous token.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == utf8.RuneError || r == 0x7f {
			return true
		}
	}
	return false
}

// WithModule returns a logger like l whose records name module in their
// target, as in "[... WARN  virtiofsd::limits] ...". Loggers whose handler
// is not a *Handler are returned unchanged.
func WithModule(l *slog.Logger, module string) *slog.Logger {
	h, ok := l.Handler().(*Handler)
	if !ok {
		return l
	}
	h2 := *h
	h2.target = Target + "::" + module
	return slog.New(&h2)
}
