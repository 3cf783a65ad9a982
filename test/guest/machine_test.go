package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP serves one QMP connection on a socket in a temporary directory:
// it greets, then answers each command with script[command] (a JSON
// "return" value, or "!class: desc" for an error), sending the events listed
// in after[command] once it has answered. It returns the socket's path.
func fakeQMP(t *testing.T, script map[string]string, after map[string][]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, `{"QMP": {"version": {}, "capabilities": []}}`+"\r\n")
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var cmd struct {
				Execute string `json:"execute"`
			}
			if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
				return
			}
			r, ok := script[cmd.Execute]
			switch {
			case cmd.Execute == "qmp_capabilities":
				fmt.Fprintf(c, `{"return": {}}`+"\r\n")
			case !ok:
				fmt.Fprintf(c, `{"error": {"class": "CommandNotFound", "desc": "no %s"}}`+"\r\n", cmd.Execute)
			case strings.HasPrefix(r, "!"):
				class, desc, _ := strings.Cut(r[1:], ": ")
				fmt.Fprintf(c, `{"error": {"class": %q, "desc": %q}}`+"\r\n", class, desc)
			default:
				fmt.Fprintf(c, `{"return": %s}`+"\r\n", r)
			}
			for _, ev := range after[cmd.Execute] {
				fmt.Fprintf(c, "%s\r\n", ev)
			}
			if cmd.Execute == "quit" {
				return
			}
		}
	}()
	return path
}

func migrationEvent(status string) string {
	return fmt.Sprintf(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", "data": {"status": %q}}`, status)
}

func TestQMP(t *testing.T) {
	path := fakeQMP(t, map[string]string{
		"query-status":   `{"status": "running", "running": true}`,
		"migrate":        `{}`,
		"migrate-broken": "!GenericError: Migration disabled: no",
		"quit":           `{}`,
	}, map[string][]string{
		"migrate": {
			migrationEvent("setup"), `{"event": "STOP"}`, migrationEvent("active"),
			migrationEvent("failed"), `{"event": "RESUME"}`,
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := DialQMP(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(raw), `"running"`) {
		t.Errorf("query-status = %s, %v", raw, err)
	}
	if _, err := q.Execute(ctx, "migrate-broken", map[string]any{"uri": "unix:/x"}); err == nil || !strings.Contains(err.Error(), "GenericError: Migration disabled") {
		t.Errorf("a command answered with an error returned %v", err)
	}
	if _, err := q.Execute(ctx, "migrate", map[string]any{"uri": "unix:/x"}); err != nil {
		t.Fatal(err)
	}
	next := 0
	if st, err := q.WaitMigration(ctx, &next); err != nil || st != "failed" {
		t.Errorf("WaitMigration = %q, %v; want failed", st, err)
	}
	// The cursor is past the failure: RESUME is next.
	if ev, err := q.WaitEvent(ctx, &next, func(QMPEvent) bool { return true }); err != nil || ev.Event != "RESUME" {
		t.Errorf("event after the failure: %+v, %v; want RESUME", ev, err)
	}
	if n := len(q.Events()); n != 5 {
		t.Errorf("%d events kept, want 5", n)
	}
	// Nothing more comes: the wait ends with its context.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := q.WaitMigration(short, &next); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitMigration with no event = %v, want the deadline", err)
	}
	// QEMU closing the connection ends waits and commands.
	if _, err := q.Execute(ctx, "quit", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.WaitMigration(ctx, &next); !errors.Is(err, errQMPClosed) {
		t.Errorf("WaitMigration after the connection closed = %v, want %v", err, errQMPClosed)
	}
	if _, err := q.Execute(ctx, "query-status", nil); err == nil {
		t.Error("a command after the connection closed succeeded")
	}
}

func TestQMPNoGreeting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			fmt.Fprintf(c, `{"return": {}}`+"\r\n")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if q, err := DialQMP(ctx, path); err == nil {
		q.Close()
		t.Fatal("DialQMP accepted a server without a greeting")
	}
}

func TestOutputLogWaitFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := newOutputLog()
	gone := make(chan struct{})
	fmt.Fprintf(l, "boot\nREADY\n")
	end, err := l.WaitFor(ctx, 0, "READY", gone)
	if err != nil || end != len("boot\nREADY") {
		t.Fatalf("WaitFor READY = %d, %v", end, err)
	}
	// Only what comes after from counts.
	found := make(chan error, 1)
	go func() {
		_, err := l.WaitFor(ctx, end, "READY", gone)
		found <- err
	}()
	fmt.Fprintf(l, "more\nREA")
	fmt.Fprintf(l, "DY\n")
	if err := <-found; err != nil {
		t.Errorf("WaitFor a later READY: %v", err)
	}
	close(gone)
	if _, err := l.WaitFor(ctx, l.Len(), "READY", gone); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitFor after the writer exited = %v", err)
	}
	if _, err := l.WaitFor(ctx, 0, "READY", gone); err != nil {
		t.Errorf("WaitFor what came before the exit = %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := l.WaitFor(short, 0, "never", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor with nothing coming = %v, want the deadline", err)
	}
}
