package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// QMP is a client of QEMU's machine protocol (docs/interop/qmp-spec.rst in
// QEMU): JSON objects over a UNIX socket. Commands are sent one at a time;
// events are kept in arrival order for WaitEvent.
type QMP struct {
	conn net.Conn
	enc  *json.Encoder
	// mu serialises commands; their replies arrive on replies.
	mu      sync.Mutex
	replies chan qmpMessage

	evMu   sync.Mutex
	events []QMPEvent
	// evChanged is closed and replaced whenever an event arrives or the
	// connection ends (readErr set).
	evChanged chan struct{}
	readErr   error
}

// QMPEvent is an asynchronous message from QEMU.
type QMPEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

type qmpMessage struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Greeting json.RawMessage `json:"QMP"`
}

// DialQMP connects to the QMP socket at path, reads QEMU's greeting and
// leaves the capabilities negotiation mode. ctx bounds the handshake; when it
// ends the connection is closed.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	q := &QMP{conn: conn, enc: json.NewEncoder(conn), replies: make(chan qmpMessage, 1), evChanged: make(chan struct{})}
	greeting := make(chan error, 1)
	go q.read(greeting)
	select {
	case err = <-greeting:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		_, err = q.Execute(ctx, "qmp_capabilities", nil)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp handshake on %s: %w", path, err)
	}
	return q, nil
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }

func (q *QMP) read(greeting chan<- error) {
	dec := json.NewDecoder(q.conn)
	first := true
	var err error
	for {
		var m qmpMessage
		if err = dec.Decode(&m); err != nil {
			break
		}
		switch {
		case first:
			first = false
			if m.Greeting == nil {
				err = fmt.Errorf("first message is not a greeting")
			}
			greeting <- err
		case m.Event != "":
			q.evMu.Lock()
			q.events = append(q.events, QMPEvent{Event: m.Event, Data: m.Data})
			close(q.evChanged)
			q.evChanged = make(chan struct{})
			q.evMu.Unlock()
			continue
		default:
			// Only one command is ever outstanding.
			select {
			case q.replies <- m:
			default:
				err = fmt.Errorf("unexpected reply %s", m.Return)
			}
		}
		if err != nil {
			break
		}
	}
	if first {
		greeting <- err
	}
	q.evMu.Lock()
	q.readErr = err
	close(q.evChanged)
	q.evChanged = make(chan struct{})
	q.evMu.Unlock()
	close(q.replies)
}

// Execute runs command with args (nil for none) and returns its "return"
// value, or the error QEMU answered with.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	msg := map[string]any{"execute": command}
	if args != nil {
		msg["arguments"] = args
	}
	if err := q.enc.Encode(msg); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	select {
	case m, ok := <-q.replies:
		switch {
		case !ok:
			return nil, fmt.Errorf("qmp %s: connection closed: %v", command, q.err())
		case m.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s", command, m.Error.Class, m.Error.Desc)
		}
		return m.Return, nil
	case <-ctx.Done():
		// The reply may still come; the connection is of no more use.
		q.conn.Close()
		return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
}

func (q *QMP) err() error {
	q.evMu.Lock()
	defer q.evMu.Unlock()
	return q.readErr
}

// eventCount returns how many events have arrived so far.
func (q *QMP) eventCount() int {
	q.evMu.Lock()
	defer q.evMu.Unlock()
	return len(q.events)
}

// Events returns the events received so far.
func (q *QMP) Events() []QMPEvent {
	q.evMu.Lock()
	defer q.evMu.Unlock()
	return append([]QMPEvent(nil), q.events...)
}

// errQMPClosed is returned by WaitEvent once the connection has ended.
var errQMPClosed = errors.New("qmp connection closed")

// WaitEvent waits for an event, among those numbered from *next on (in
// arrival order), for which match returns true, and returns it; *next is
// moved past it.
func (q *QMP) WaitEvent(ctx context.Context, next *int, match func(QMPEvent) bool) (QMPEvent, error) {
	for {
		q.evMu.Lock()
		for ; *next < len(q.events); *next++ {
			if ev := q.events[*next]; match(ev) {
				*next++
				q.evMu.Unlock()
				return ev, nil
			}
		}
		changed, rerr := q.evChanged, q.readErr
		q.evMu.Unlock()
		if rerr != nil {
			return QMPEvent{}, fmt.Errorf("%w: %v", errQMPClosed, rerr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return QMPEvent{}, ctx.Err()
		}
	}
}

// MigrationStatus returns the status of a MIGRATION event, or "" for any
// other event.
func MigrationStatus(ev QMPEvent) string {
	if ev.Event != "MIGRATION" {
		return ""
	}
	var d struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(ev.Data, &d) != nil {
		return ""
	}
	return d.Status
}

// WaitMigration waits for a MIGRATION event whose status ends a migration
// (completed, failed or cancelled) and returns the status.
func (q *QMP) WaitMigration(ctx context.Context, next *int) (string, error) {
	ev, err := q.WaitEvent(ctx, next, func(ev QMPEvent) bool {
		switch MigrationStatus(ev) {
		case "completed", "failed", "cancelled":
			return true
		}
		return false
	})
	if err != nil {
		return "", err
	}
	return MigrationStatus(ev), nil
}
