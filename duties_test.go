package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
	"github.com/stretchr/testify/require"
)

// logLines is a concurrency-safe slog sink whose records a test can read back.
type logLines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns every record logged so far, each as its JSON object.
func (l *logLines) records() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// matching returns the records whose message contains text.
func (l *logLines) matching(text string) []map[string]any {
	var out []map[string]any
	for _, r := range l.records() {
		if strings.Contains(fmt.Sprint(r["msg"]), text) {
			out = append(out, r)
		}
	}
	return out
}

// TestDutiesRunIndependently: a duty stuck on a hung database does not stop
// another, and the stuck one is reported by name.
func TestDutiesRunIndependently(t *testing.T) {
	t.Parallel()
	var logs logLines
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, d := range []duty{
		// The stall threshold's value is not what is tested (its default is
		// 10s); that the stall is reported, by name, is.
		{name: "copying history", every: 10 * time.Millisecond, stallAfter: 50 * time.Millisecond, log: logs.logger(),
			run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{name: "publishing change events", every: 10 * time.Millisecond, log: logs.logger(),
			run: func(context.Context) error { runs.Add(1); return nil }},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); d.loop(ctx) }()
	}
	require.Eventually(t, func() bool { return runs.Load() >= 20 && len(logs.matching("stalled")) == 1 },
		10*time.Second, 10*time.Millisecond)
	cancel()
	wg.Wait()
	stalled := logs.matching("stalled")
	require.Len(t, stalled, 1)
	require.Equal(t, "copying history", stalled[0]["duty"])
	require.Equal(t, "WARN", stalled[0]["level"])
	for _, r := range logs.records() {
		require.NotEqual(t, "ERROR", r["level"], "a clean stop logs no error: %v", r)
	}
}

// TestFailureLogIsQuiet: a duty failing every second for ten minutes logs
// one line when it starts failing, one a minute with a count, one when it
// recovers.
func TestFailureLogIsQuiet(t *testing.T) {
	t.Parallel()
	var logs logLines
	f := newFailureLog(logs.logger(), "publishing change events")
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.runs.now = func() time.Time { return now }
	for i := 0; i < 600; i++ {
		f.failed(errors.New("Error 1290: read only"))
		now = now.Add(time.Second)
	}
	f.ok()
	recs := logs.records()
	require.Len(t, recs, 1+9+1, "first failure, one summary a minute, recovery")
	require.Equal(t, "publishing change events failed; will keep trying", recs[0]["msg"])
	require.Equal(t, "publishing change events still failing", recs[1]["msg"])
	require.EqualValues(t, 60, recs[1]["failures"])
	require.Equal(t, "publishing change events recovered", recs[10]["msg"])
	require.EqualValues(t, 600, recs[10]["failures"])
}

// fakeOutbox is the relay's view of the store, failing on demand.
type fakeOutbox struct {
	mu       sync.Mutex
	pending  []persist.Event
	markFail bool
	marks    int
}

func (o *fakeOutbox) PendingEvents(_ context.Context, limit int) ([]persist.Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending[:min(limit, len(o.pending))], nil
}

func (o *fakeOutbox) MarkEventsSent(_ context.Context, ids ...string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.marks++
	if o.markFail {
		return fmt.Errorf("Error 1290 (HY000): read only: %w", persist.ErrUnavailable)
	}
	sent := map[string]bool{}
	for _, id := range ids {
		sent[id] = true
	}
	kept := o.pending[:0]
	for _, e := range o.pending {
		if !sent[e.ID] {
			kept = append(kept, e)
		}
	}
	o.pending = kept
	return nil
}

func (o *fakeOutbox) PurgeSentEvents(context.Context, time.Time) (int, error) { return 0, nil }

// TestOutboxPurgeDuty: published events are purged after a day, pending ones
// never.
func TestOutboxPurgeDuty(t *testing.T) {
	t.Parallel()
	store := openSQLiteStore(t)
	ctx := context.Background()
	_, err := store.Save(ctx, state.Target{Account: "a", Kind: "server"}, state.Snapshot{
		Observations: []state.Observation{{ID: "s-1", Attributes: json.RawMessage(`{"n":1}`)}, {ID: "s-2", Attributes: json.RawMessage(`{"n":2}`)}}})
	require.NoError(t, err)
	evs, err := store.PendingEvents(ctx, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.NoError(t, store.MarkEventsSent(ctx, evs[0].ID))
	now := time.Now()
	p := purger{purge: store.PurgeSentEvents, now: func() time.Time { return now }, keep: sentEventsKept}
	require.NoError(t, p.run(ctx))
	var n int64
	require.NoError(t, store.DB().Table("worker_outbox").Count(&n).Error)
	require.EqualValues(t, 2, n, "sent less than a day ago: kept")
	now = now.Add(25 * time.Hour)
	require.NoError(t, p.run(ctx))
	require.NoError(t, store.DB().Table("worker_outbox").Count(&n).Error)
	require.EqualValues(t, 1, n, "the sent one is purged, the pending one kept")
}

// TestRelayDoesNotResendWhileMarkingFails: with a read-only database the
// relay publishes each event once and then only retries the marking; once
// marking works again it goes on with the next events.
func TestRelayDoesNotResendWhileMarkingFails(t *testing.T) {
	t.Parallel()
	mem := newMemoryPubSub(watermill.NopLogger{})
	defer mem.Close()
	pub, err := NewPublisher(PublisherConfig{Publisher: mem, Declarer: mem})
	require.NoError(t, err)
	msgs, err := mem.Subscribe(context.Background(), pub.Topology().Topic(QueueEvents))
	require.NoError(t, err)
	out := &fakeOutbox{markFail: true}
	for i := range 55 {
		out.pending = append(out.pending, persist.Event{ID: fmt.Sprintf("ev-%02d", i), Type: "server.changed", Account: "a"})
	}
	r := &relay{store: out, pub: pub}
	for range 20 {
		require.ErrorIs(t, r.run(context.Background()), persist.ErrUnavailable)
	}
	out.mu.Lock()
	out.markFail = false
	out.mu.Unlock()
	require.NoError(t, r.run(context.Background()))
	delivered := map[string]int{}
	for len(delivered) < 55 {
		m := recv(t, msgs)
		delivered[m.UUID]++
		m.Ack()
	}
	select {
	case m := <-msgs:
		t.Fatalf("event %s delivered again", m.UUID)
	case <-time.After(100 * time.Millisecond):
	}
	for id, n := range delivered {
		require.Equal(t, 1, n, id)
	}
	require.Empty(t, out.pending)
}
