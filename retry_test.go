package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/rabbitmq"
	"github.com/stretchr/testify/require"
)

// defaultRetry makes a harness use the zero-value retry policy, as users do.
func defaultRetry(c *SubscriberConfig) { c.Retry = RetryPolicy{} }

// TestRetryDefaultsWaitOutAnOutage: with the zero-value Config, a handler
// whose database is away for 4 s is retried (in place, then parked and
// republished) until it succeeds: handled once, poisoned never.
func TestRetryDefaultsWaitOutAnOutage(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{Store: sqliteConfig(t)})
	outageEnds := time.Now().Add(4 * time.Second)
	var calls, done atomic.Int32
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		calls.Add(1)
		if time.Now().Before(outageEnds) {
			return fmt.Errorf("insert: %w", persist.ErrUnavailable)
		}
		done.Add(1)
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := make(chan error, 1)
	go func() { run <- w.Run(ctx) }()
	<-w.Running()
	require.NoError(t, w.Publish(ctx, Action{Type: "t"}))
	require.Eventually(t, func() bool { return done.Load() == 1 }, 30*time.Second, 20*time.Millisecond)
	poisoned, err := w.store.ListPoison(context.Background(), persist.PoisonFilter{IncludeReplayed: true})
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-run)
	require.Empty(t, poisoned)
	require.Greater(t, calls.Load(), int32(3), "it failed several times first")
	t.Logf("outage 4s: attempts=%d handled=%d poisoned=%d", calls.Load(), done.Load(), len(poisoned))
}

// TestRetryBudgetThenPoison: the default policy poisons an action that keeps
// failing once a day (Budget) has passed since its first failure, with a
// reason that says so.
func TestRetryBudgetThenPoison(t *testing.T) {
	t.Parallel()
	clock := newTestClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	h := newSubHarness(t, func(c *SubscriberConfig) { defaultRetry(c); c.Now = clock.Now })
	require.NoError(t, h.sub.HandleFunc("t", func(context.Context, Action) error { return errors.New("still broken") }))
	h.start()
	h.publish(Action{ID: "a-1", Type: "t"})
	p := h.nextParked() // the inline waits (0.1–0.8 s) passed; the next one parks
	require.Empty(t, h.stores.poison)
	require.Equal(t, 6, p.Attempts, "5 failed attempts, parked for the 6th")
	since, err := time.Parse(time.RFC3339Nano, p.Metadata[MetaRetrySince])
	require.NoError(t, err)
	require.Equal(t, clock.Now(), since)

	// Back from the park 25 hours later: the next failure poisons it.
	clock.Advance(25 * time.Hour)
	m := message.NewMessage(p.MessageUUID, p.Payload)
	for k, v := range p.Metadata {
		m.Metadata.Set(k, v)
	}
	h.publishRaw(p.Topic, m)
	poisoned := h.nextParked()
	require.Equal(t, 6, poisoned.Attempts)
	require.Contains(t, poisoned.Reason, "gave up after 6 attempts over 25h0m0s")
	require.Contains(t, poisoned.Reason, "still broken")
}

// TestSnoozeSpendsNoBudget: snoozes are not failures. The policy here allows
// no retry at all (MaxAttempts 1), so that one counted failure would poison:
// the action survives three snoozes and one parked snooze with its Attempt
// unchanged.
func TestSnoozeSpendsNoBudget(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, func(c *SubscriberConfig) { c.Retry = RetryPolicy{MaxAttempts: 1} })
	var mu sync.Mutex
	var seen []int
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, a.Attempt)
		switch len(seen) {
		case 1, 2, 3:
			return Snooze(10 * time.Millisecond)
		case 4:
			return Snooze(90 * time.Second) // longer than InlineMax: parked
		}
		return nil
	}))
	h.start()
	before := time.Now()
	h.publish(Action{ID: "s-1", Type: "t"})
	p := h.nextParked()
	require.Empty(t, h.stores.poison)
	require.Equal(t, 1, p.Attempts)
	require.Empty(t, p.Metadata[MetaRetrySince], "a snooze starts no retry budget")
	h.stores.mu.Lock()
	due := h.stores.dues[0]
	h.stores.mu.Unlock()
	require.WithinDuration(t, before.Add(90*time.Second), due, 5*time.Second)
	mu.Lock()
	require.Equal(t, []int{1, 1, 1, 1}, seen)
	mu.Unlock()
	d, ok := snoozed(fmt.Errorf("wrapped: %w", Snooze(-time.Second)))
	require.True(t, ok)
	require.Zero(t, d, "a negative snooze is 0")
}

// TestRetryHonoursRetryAfter: a handler that returns a cloud throttling
// error is retried no sooner than the cloud asked, on the default policy
// (whose own first wait is 100 ms).
func TestRetryHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, defaultRetry)
	require.NoError(t, h.sub.HandleFunc("t", func(context.Context, Action) error {
		return fmt.Errorf("list servers: %w", &cloud.ThrottledError{API: "ListServers", RetryAfter: 45 * time.Second})
	}))
	h.start()
	before := time.Now()
	h.publish(Action{ID: "r-1", Type: "t"})
	p := h.nextParked()
	require.Equal(t, 2, p.Attempts)
	h.stores.mu.Lock()
	due := h.stores.dues[0]
	h.stores.mu.Unlock()
	require.False(t, due.Before(before.Add(45*time.Second)), "due %v is sooner than the RetryAfter", due)
}

// TestRetryParkFallsBackToTheTransport: when the deferred store is
// unreachable, a long wait is held by the transport and the action comes
// back and succeeds; nothing is poisoned, and the handler is not called in a
// loop meanwhile.
func TestRetryParkFallsBackToTheTransport(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, func(c *SubscriberConfig) { defaultRetry(c) })
	h.stores.deferErr = fmt.Errorf("insert deferred: %w", persist.ErrUnavailable)
	h.sub.cfg.Delay = h.mem
	var calls atomic.Int32
	ok := make(chan Action, 1)
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		if calls.Add(1) <= 5 {
			return errors.New("not yet")
		}
		ok <- a
		return nil
	}))
	h.start()
	start := time.Now()
	h.publish(Action{ID: "p-1", Type: "t"})
	a := recv(t, ok)
	require.Equal(t, 6, a.Attempt)
	require.Equal(t, int32(6), calls.Load())
	require.Empty(t, h.stores.poison)
	// 0.1 + 0.2 + 0.4 + 0.8 s in place, then 1.6 s held by the transport.
	require.Greater(t, time.Since(start), 2*time.Second, "it waited, it did not loop")
}

// TestPoisonWaitsForItsStore: an action that must be poisoned while the
// poison store is unreachable is held by the transport and poisoned once
// the store is back; its handler runs once.
func TestPoisonWaitsForItsStore(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, defaultRetry)
	h.stores.failN = 2
	h.stores.failErr = fmt.Errorf("insert poison: %w", persist.ErrUnavailable)
	h.sub.cfg.Delay = h.mem
	var calls atomic.Int32
	require.NoError(t, h.sub.HandleFunc("t", func(context.Context, Action) error {
		calls.Add(1)
		return Permanent(errors.New("bad request"))
	}))
	h.start()
	h.publish(Action{ID: "q-1", Type: "t", Customer: "acme"})
	p := h.nextParked()
	require.Equal(t, "bad request", p.Reason)
	require.Equal(t, int32(1), calls.Load(), "the handler is not run again while the poisoning waits")
	require.NotContains(t, p.Metadata, metaPoisonPending)
	require.Equal(t, "acme", p.Metadata[MetaCustomer])
	time.Sleep(100 * time.Millisecond)
	h.stores.mu.Lock()
	require.Len(t, h.stores.poison, 1)
	h.stores.mu.Unlock()
}

// TestPoisonLastResortRejects: when the poison store fails for a reason
// other than being unreachable, the message is marked for the transport to
// reject (dead-letter) rather than requeued as if nothing happened; where
// the transport cannot dead-letter, it is held for a few minutes instead.
func TestPoisonLastResortRejects(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, func(c *SubscriberConfig) {
		defaultRetry(c)
		c.DeadLetters = func(string) bool { return true }
	})
	h.stores.failN = 1
	h.stores.failErr = errors.New("table worker_poison is missing")
	require.NoError(t, h.sub.HandleFunc("t", func(context.Context, Action) error { return Permanent(errors.New("bad")) }))
	msg, err := encode(Action{ID: "x-1", Key: "x-1", Type: "t", CreatedAt: time.Now()}, defaultMaxPayload)
	require.NoError(t, err)
	require.Error(t, h.sub.process(context.Background(), msg))
	require.Equal(t, "bad", msg.Metadata.Get(MetaReject))

	// Without dead-lettering: held on the transport, not requeued at once.
	h.sub.cfg.DeadLetters = func(string) bool { return false }
	h.sub.cfg.Delay = h.mem
	h.stores.mu.Lock()
	h.stores.failN = 1
	h.stores.mu.Unlock()
	msg, err = encode(Action{ID: "x-2", Key: "x-2", Type: "t", CreatedAt: time.Now()}, defaultMaxPayload)
	require.NoError(t, err)
	require.NoError(t, h.sub.process(context.Background(), msg), "held: acked")
	require.Equal(t, "bad", msg.Metadata.Get(metaPoisonPending))
	require.Empty(t, msg.Metadata.Get(MetaReject))
}

// TestRejectKeyIsTheTransports: the subscriber and the RabbitMQ transport
// agree on the key that asks for a reject.
func TestRejectKeyIsTheTransports(t *testing.T) {
	require.Equal(t, rabbitmq.MetadataReject, MetaReject)
}

// TestAttemptsAndBudgetSurviveTransportDelay: an action held on the
// transport keeps its attempt count and the start of its budget.
func TestAttemptsAndBudgetSurviveTransportDelay(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, defaultRetry)
	h.stores.deferErr = persist.ErrUnavailable
	h.sub.cfg.Delay = h.mem
	var seen []Action
	var mu sync.Mutex
	done := make(chan struct{})
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, a)
		if len(seen) == 6 {
			close(done)
			return nil
		}
		return errors.New("no")
	}))
	h.start()
	h.publish(Action{ID: "k-1", Type: "t"})
	recv(t, done)
	mu.Lock()
	defer mu.Unlock()
	for i, a := range seen {
		require.Equal(t, i+1, a.Attempt, "attempt %d", i)
	}
}

// testClock is a settable clock for the subscriber's Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{now: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRetryPolicyValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, RetryPolicy{}.Validate(), "the zero value is the default")
	for _, tt := range []struct {
		p    RetryPolicy
		text string
	}{
		{RetryPolicy{Budget: -time.Second}, "Retry.Budget"},
		{RetryPolicy{MaxAttempts: -1}, "Retry.MaxAttempts"},
		{RetryPolicy{InitialInterval: -1}, "Retry.InitialInterval"},
		{RetryPolicy{InitialInterval: time.Hour, MaxInterval: time.Minute}, "Retry.MaxInterval"},
		{RetryPolicy{Multiplier: 0.5}, "Retry.Multiplier"},
		{RetryPolicy{Jitter: 1}, "Retry.Jitter"},
		{RetryPolicy{InlineMax: -1}, "Retry.InlineMax"},
	} {
		t.Run(tt.text, func(t *testing.T) {
			err := tt.p.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.text)
		})
	}
	// The default policy: about a day of attempts, none more than an hour apart.
	p := RetryPolicy{}
	p.setDefaults()
	var total time.Duration
	n := 1
	for ; total < p.Budget; n++ {
		total += p.Delay(n)
		require.LessOrEqual(t, p.Delay(n), time.Duration(float64(time.Hour)*1.2))
	}
	require.InDelta(t, 37, n, 4, "attempts in the first day")
}

// TestRetryLogIsQuiet: 200 actions of one type and customer that each fail
// twice log one WARN, then DEBUG lines, then one INFO when they succeed
// again; the customer's attribute is on every line.
func TestRetryLogIsQuiet(t *testing.T) {
	t.Parallel()
	logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelDebug})
	clock := newTestClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	h := newSubHarness(t, func(c *SubscriberConfig) { defaultRetry(c); c.Logger = logs.Logger(); c.Now = clock.Now })
	var mu sync.Mutex
	tries := map[string]int{}
	done := make(chan struct{}, 200)
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		mu.Lock()
		tries[a.ID]++
		n := tries[a.ID]
		mu.Unlock()
		if n <= 2 {
			return fmt.Errorf("database is down: %w", persist.ErrUnavailable)
		}
		done <- struct{}{}
		return nil
	}))
	h.start()
	for i := range 200 {
		h.publish(Action{ID: fmt.Sprintf("a-%03d", i), Type: "t", Customer: "acme", Account: "acct-1"})
	}
	for range 200 {
		recv(t, done)
	}
	require.Empty(t, logs.FindMessage("actions succeeding again"), "others were still failing a moment ago")
	clock.Advance(10 * time.Second) // quiet since: the next success is the recovery
	mu.Lock()
	tries["later"] = 2
	mu.Unlock()
	h.publish(Action{ID: "later", Type: "t", Customer: "acme", Account: "acct-1"})
	recv(t, done)
	c := logs.Counts()
	require.Equal(t, 1, c.Warn, "one warning for the whole run")
	require.GreaterOrEqual(t, c.Debug, 399, "every other failure at DEBUG")
	require.NotEmpty(t, logs.FindMessage("actions succeeding again"))
	for _, r := range logs.Find(func(r testenv.LogRecord) bool { return strings.Contains(r.Message, "action") }) {
		cust, ok := r.Attr("customer")
		require.True(t, ok && cust.String() == "acme", "%s", r)
	}
}
