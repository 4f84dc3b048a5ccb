package guest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/sshtest"
)

// record is one captured log record, its logger's attributes included.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// capture is a slog.Handler that keeps every record.
type capture struct {
	mu    *sync.Mutex
	recs  *[]record
	attrs []slog.Attr
}

func newCapture() *capture { return &capture{mu: new(sync.Mutex), recs: new([]record)} }

func (h *capture) Enabled(context.Context, slog.Level) bool { return true }

func (h *capture) Handle(_ context.Context, r slog.Record) error {
	m := make(map[string]string)
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, record{level: r.Level, msg: r.Message, attrs: m})
	return nil
}

func (h *capture) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(slices.Clip(h.attrs), attrs...)
	return &h2
}

// WithGroup is not used by the collector; a group would hide the
// attributes from the checks, which is the point.
func (h *capture) WithGroup(string) slog.Handler { return h }

func (h *capture) records() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.recs)
}

// refusedAddr is an address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// canceledAfter returns a context canceled after d.
func canceledAfter(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(d, cancel)
	t.Cleanup(cancel)
	return ctx
}

// Every record the collector writes about a guest carries its customer,
// which a logging.CustomerHandler routes to the customer's file, and its
// account.
func TestEveryRecordNamesCustomerAndAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := newCapture()
	c := e.collector(t, func(c *CollectorConfig) { c.Logger = slog.New(h) }) // captures the records
	g := e.guest("srv-1")
	local := func() string { return e.local(t, "srv-1", "syslog") }
	path := e.localPath("srv-1", "syslog")
	appendLocal := func(s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		require.NoError(t, err)
		_, err = f.WriteString(s)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}

	// A local copy without a stored offset.
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o750))
	appendLocal("old\n")
	e.srv.Write(t, syslog, "1\n")
	collectOne(t, c, g)
	require.Equal(t, "old\n1\n", local())
	// An append whose offset was never stored.
	appendLocal("torn")
	e.srv.Append(t, syslog, "2\n")
	collectOne(t, c, g)
	// A local copy shorter than recorded.
	require.NoError(t, os.Truncate(path, 0))
	e.srv.Append(t, syslog, "3\n")
	collectOne(t, c, g)
	require.Equal(t, "3\n", local())
	// An unreachable guest; a flooding one; a canceled collection.
	down := e.guest("srv-down")
	down.Address = refusedAddr(t)
	flooding := e.guest("srv-flood")
	e.srv.Write(t, messages, logLines(DefaultMaxReadBytes+1))
	e.srv.Flood(messages, sshtest.FloodStdout)
	for _, r := range c.Collect(t.Context(), []Guest{down, flooding}) {
		require.Error(t, r.Err)
	}
	hang := e.guest("srv-hang")
	hang.Address = sshtest.Hanging(t)
	require.Error(t, c.Collect(canceledAfter(t, 100*time.Millisecond), []Guest{hang})[0].Err)

	recs := h.records()
	var msgs []string
	for _, r := range recs {
		require.Equal(t, "acme", r.attrs["customer"], "%s: %v", r.msg, r.attrs)
		require.Equal(t, "acct-1", r.attrs["account"], "%s: %v", r.msg, r.attrs)
		require.NotEmpty(t, r.attrs["server"], "%s: %v", r.msg, r.attrs)
		if !slices.Contains(msgs, r.msg) {
			msgs = append(msgs, r.msg)
		}
	}
	// Every kind of record was seen.
	require.ElementsMatch(t, []string{
		"guest logs collected",
		"guest log collection failed",
		"guest log collection canceled",
		"no stored offset for an existing local copy; copying the remote file from its start, lines may repeat",
		"discarding an uncommitted append of a previous run; it is copied again",
		"local copy is shorter than recorded (rotated or removed locally); appending at its end",
	}, msgs)
}

// One failure, one line: a guest that fails logs one warning per
// collection, however many of its files failed; a shutdown logs no warning.
func TestOneLinePerFailedGuest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *env) (Guest, context.Context)
		level slog.Level
		msg   string
	}{
		{"Unreachable", func(t *testing.T, e *env) (Guest, context.Context) {
			g := e.guest("srv-1")
			g.Address = refusedAddr(t)
			return g, t.Context()
		}, slog.LevelWarn, "guest log collection failed"},
		{"EveryFileFails", func(t *testing.T, e *env) (Guest, context.Context) {
			e.srv.Write(t, "/var/log", "a file where the directory should be\n")
			return e.guest("srv-1"), t.Context()
		}, slog.LevelWarn, "guest log collection failed"},
		{"OutOfTime", func(t *testing.T, e *env) (Guest, context.Context) {
			g := e.guest("srv-1")
			g.Address = sshtest.Hanging(t)
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			t.Cleanup(cancel)
			return g, ctx
		}, slog.LevelWarn, "guest log collection failed"},
		{"Canceled", func(t *testing.T, e *env) (Guest, context.Context) {
			g := e.guest("srv-1")
			g.Address = sshtest.Hanging(t)
			return g, canceledAfter(t, 100*time.Millisecond)
		}, slog.LevelInfo, "guest log collection canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			h := newCapture()
			c := e.collector(t, func(c *CollectorConfig) { c.Logger = slog.New(h) }) // captures the records
			g, ctx := tc.setup(t, e)
			r := c.Collect(ctx, []Guest{g})[0]
			require.Error(t, r.Err)
			t.Logf("%v", r.Err)
			recs := h.records()
			require.Len(t, recs, 1, "%+v", recs)
			require.Equal(t, tc.level, recs[0].level)
			require.Equal(t, tc.msg, recs[0].msg)
			if tc.level >= slog.LevelWarn {
				require.Equal(t, r.Err.Error(), recs[0].attrs["error"])
			}
		})
	}
}
