package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixedHandler(buf *bytes.Buffer, f Filter) *Handler {
	h := NewHandler(buf, f)
	h.now = func() time.Time { return time.Date(2026, 11, 27, 2, 3, 24, 999, time.FixedZone("X", 3600)) }
	return h
}

func TestFormat(t *testing.T) {
	tests := []struct {
		level slog.Level
		msg   string
		args  []any
		want  string
	}{
		{slog.LevelInfo, "Waiting for vhost-user socket connection...", nil,
			"[2026-11-27T01:03:24Z INFO  virtiofsd] Waiting for vhost-user socket connection...\n"},
		{slog.LevelWarn, "w", []any{"n", 3}, "[2026-11-27T01:03:24Z WARN  virtiofsd] w n=3\n"},
		{slog.LevelError, "e", []any{"err", "no such file"}, "[2026-11-27T01:03:24Z ERROR virtiofsd] e err=\"no such file\"\n"},
		{slog.LevelDebug, "d", []any{"empty", ""}, "[2026-11-27T01:03:24Z DEBUG virtiofsd] d empty=\"\"\n"},
		{LevelTrace, "t", []any{slog.Group("g", "a", 1, "b", "x")}, "[2026-11-27T01:03:24Z TRACE virtiofsd] t g.a=1 g.b=x\n"},
		{slog.LevelWarn + 1, "between", nil, "[2026-11-27T01:03:24Z WARN  virtiofsd] between\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l := slog.New(fixedHandler(&buf, Filter{Level: LevelTrace}))
		l.Log(context.Background(), tt.level, tt.msg, tt.args...)
		// slog sets Time to now; the format is checked separately.
		got := buf.String()
		if len(got) < 22 || got[0] != '[' || got[20:22] != "Z " {
			t.Fatalf("log line %q does not start with a UTC timestamp", got)
		}
		got = "[2026-11-27T01:03:24Z" + got[21:]
		if got != tt.want {
			t.Errorf("Log(%v, %q) wrote %q, want %q", tt.level, tt.msg, got, tt.want)
		}
	}
}

func TestTimestamp(t *testing.T) {
	var buf bytes.Buffer
	h := fixedHandler(&buf, Filter{Level: slog.LevelInfo})
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, "m", 0)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "[2026-11-27T01:03:24Z INFO  virtiofsd] m\n"; got != want {
		t.Errorf("Handle() wrote %q, want %q", got, want)
	}
}

func TestWithAttrsAndGroup(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(fixedHandler(&buf, Filter{Level: slog.LevelInfo}))
	l.With("queue", 1).WithGroup("req").Info("x", "op", "LOOKUP", "name", `a"b`)
	got := buf.String()[21:]
	if want := " INFO  virtiofsd] x queue=1 req.op=LOOKUP req.name=\"a\\\"b\"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLevelFilter(t *testing.T) {
	for _, tt := range []struct {
		filter slog.Level
		rec    slog.Level
		want   bool
	}{
		{slog.LevelInfo, slog.LevelDebug, false},
		{slog.LevelInfo, slog.LevelInfo, true},
		{slog.LevelError, slog.LevelWarn, false},
		{LevelTrace, LevelTrace, true},
		{LevelOff, slog.LevelError, false},
		{LevelOff, LevelOff, false},
	} {
		h := NewHandler(&bytes.Buffer{}, Filter{Level: tt.filter})
		if got := h.Enabled(context.Background(), tt.rec); got != tt.want {
			t.Errorf("Enabled(filter %v, record %v) = %v, want %v", tt.filter, tt.rec, got, tt.want)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"off", LevelOff, true}, {"ERROR", slog.LevelError, true}, {"Warn", slog.LevelWarn, true},
		{"info", slog.LevelInfo, true}, {"debug", slog.LevelDebug, true}, {"tRaCe", LevelTrace, true},
		{"warning", 0, false}, {"", 0, false}, {"err", 0, false},
	} {
		got, ok := ParseLevel(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseLevel(%q) = %v, %v, want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFilterFromEnv(t *testing.T) {
	for _, tt := range []struct {
		spec     string
		want     Filter
		warnings string
	}{
		{"", Filter{Level: slog.LevelError}, ""},
		{"debug", Filter{Level: slog.LevelDebug}, ""},
		{"WARN", Filter{Level: slog.LevelWarn}, ""},
		{"virtiofsd=info", Filter{Level: slog.LevelInfo}, ""},
		{"foo", Filter{Level: LevelOff}, ""},
		{"foo=debug", Filter{Level: LevelOff}, ""},
		{"virtio", Filter{Level: LevelTrace}, ""},
		{"virtiofsd=", Filter{Level: LevelTrace}, ""},
		{"info,virtiofsd=error", Filter{Level: slog.LevelError}, ""},
		{"virtiofsd=error,info", Filter{Level: slog.LevelError}, ""},
		{"warn,debug", Filter{Level: slog.LevelDebug}, ""},
		{" info , ", Filter{Level: slog.LevelInfo}, ""},
		{"virtiofsd::limits=debug", Filter{Level: LevelOff}, ""},
		{"bogus=xyz", Filter{Level: slog.LevelError}, "warning: invalid logging spec 'xyz', ignoring it\n"},
		{"a=b=c,info", Filter{Level: slog.LevelInfo}, "warning: invalid logging spec 'a=b=c', ignoring it\n"},
		{"info/Waiting", Filter{Level: slog.LevelInfo, Contains: "Waiting"}, ""},
		{"info/a/b", Filter{Level: slog.LevelError}, "warning: invalid logging spec 'info/a/b', ignoring it (too many '/'s)\n"},
	} {
		var warn bytes.Buffer
		got := FilterFromEnv(tt.spec, &warn)
		if got != tt.want || warn.String() != tt.warnings {
			t.Errorf("FilterFromEnv(%q) = %+v, warnings %q; want %+v, %q", tt.spec, got, warn.String(), tt.want, tt.warnings)
		}
	}
}

func TestContainsFilter(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, Filter{Level: slog.LevelInfo, Contains: "keep"}))
	l.Info("drop this")
	l.Info("keep this")
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "keep this") {
		t.Errorf("output %q, want only the record containing \"keep\"", got)
	}
}

func TestConcurrentLinesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, Filter{Level: slog.LevelInfo}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.Info(strings.Repeat("x", 50), "g", g)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("got %d lines, want 800", len(lines))
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, "] "+strings.Repeat("x", 50)+" g=") {
			t.Fatalf("malformed line %q", line)
		}
	}
}

func TestWithModule(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(fixedHandler(&buf, Filter{Level: slog.LevelInfo}))
	WithModule(l.With("a", 1), "limits").Warn("m")
	l.Info("n")
	want := "[2026-11-27T01:03:24Z WARN  virtiofsd::limits] m a=1\n[2026-11-27T01:03:24Z INFO  virtiofsd] n\n"
	got := buf.String()
	// Replace both timestamps, which slog takes from the clock.
	lines := strings.SplitAfter(got, "\n")
	for i, line := range lines {
		if len(line) > 21 {
			lines[i] = "[2026-11-27T01:03:24Z" + line[21:]
		}
	}
	if got = strings.Join(lines, ""); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
