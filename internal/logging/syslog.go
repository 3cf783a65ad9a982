package logging

import (
	"context"
	"log/slog"
	"log/syslog"
)

// SyslogHandler is a slog.Handler that sends records to the system logger
// with facility LOG_USER and tag "virtiofsd". The syslog daemon adds the
// timestamp; the message text is the record message followed by its
// attributes as key=value pairs.
type SyslogHandler struct {
	w      *syslog.Writer
	level  slog.Level
	prefix string
	group  string
}

// NewSyslog connects to the local system logger. Records below level are
// dropped.
func NewSyslog(level slog.Level) (*SyslogHandler, error) {
	return dialSyslog("", "", level)
}

// dialSyslog connects to the system logger at addr over network, or to the
// local one when both are empty.
func dialSyslog(network, addr string, level slog.Level) (*SyslogHandler, error) {
	w, err := syslog.Dial(network, addr, syslog.LOG_USER|syslog.LOG_INFO, Target)
	if err != nil {
		return nil, err
	}
	return &SyslogHandler{w: w, level: level}, nil
}

// Enabled implements slog.Handler.Enabled.
func (h *SyslogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.level < LevelOff && l >= h.level
}

// Handle implements slog.Handler.Handle.
func (h *SyslogHandler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 64+len(r.Message))
	buf = append(buf, r.Message...)
	buf = append(buf, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, h.group, a)
		return true
	})
	msg := string(buf)
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(msg)
	}
	return h.w.Debug(msg)
}

// WithAttrs implements slog.Handler.WithAttrs.
func (h *SyslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
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
func (h *SyslogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}
