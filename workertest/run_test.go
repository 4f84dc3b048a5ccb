package workertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/workertest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func returning(err error) worker.Handler {
	return worker.HandlerFunc(func(context.Context, worker.Action) error { return err })
}

// TestRunOutcomes: each kind of handler result comes back as the
// subscriber's decision.
func TestRunOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		h        worker.Handler
		opts     []workertest.Option
		outcome  worker.Outcome
		wait     [2]time.Duration // bounds of Wait (the policy's jitter is ±20%)
		reason   string           // part of Reason
		errIs    []error
		errNotIs []error
	}{
		{name: "Handled", h: returning(nil), outcome: worker.Handled},
		{name: "RetriedAfterTheFirstInterval", h: returning(errors.New("503")), outcome: worker.Retried,
			wait: [2]time.Duration{80 * time.Millisecond, 120 * time.Millisecond}},
		{name: "RetriedLaterOnALaterAttempt", h: returning(errors.New("503")), outcome: worker.Retried,
			opts: []workertest.Option{workertest.WithAttempt(3), workertest.WithRetry(worker.RetryPolicy{InitialInterval: time.Second})},
			wait: [2]time.Duration{3200 * time.Millisecond, 4800 * time.Millisecond}},
		{name: "ThrottledWaitsRetryAfter", h: returning(&cloud.ThrottledError{API: "Launch", RetryAfter: 10 * time.Minute}),
			outcome: worker.Retried, wait: [2]time.Duration{10 * time.Minute, 10 * time.Minute}},
		{name: "Snoozed", h: returning(worker.Snooze(30 * time.Second)), outcome: worker.Snoozed,
			wait: [2]time.Duration{30 * time.Second, 30 * time.Second}},
		{name: "SnoozeSpendsNoAttempt", h: returning(worker.Snooze(time.Second)), outcome: worker.Snoozed,
			opts: []workertest.Option{workertest.WithAttempt(3), workertest.WithRetry(worker.RetryPolicy{MaxAttempts: 3})},
			wait: [2]time.Duration{time.Second, time.Second}},
		{name: "PermanentPoisons", h: returning(worker.Permanent(errors.New("image debian-99 does not exist"))),
			outcome: worker.Poisoned, reason: "image debian-99 does not exist"},
		{name: "PanicPoisons", h: worker.HandlerFunc(func(context.Context, worker.Action) error { panic("catalog is nil") }),
			outcome: worker.Poisoned, reason: "worker: handler panicked: catalog is nil", errIs: []error{worker.ErrHandlerPanic}},
		{name: "MaxAttemptsPoisons", h: returning(errors.New("503")), outcome: worker.Poisoned, reason: "gave up after 3 attempts",
			opts: []workertest.Option{workertest.WithAttempt(3), workertest.WithRetry(worker.RetryPolicy{MaxAttempts: 3})}},
		{name: "SpentBudgetPoisons", h: returning(errors.New("503")), outcome: worker.Poisoned, reason: "gave up after 30 attempts",
			opts: []workertest.Option{workertest.WithAttempt(30), workertest.WithClock(clock.NewFake(t0)),
				workertest.WithRetrySince(t0.Add(-25 * time.Hour))}},
		{name: "BudgetLeftRetries", h: returning(errors.New("503")), outcome: worker.Retried,
			opts: []workertest.Option{workertest.WithAttempt(30), workertest.WithClock(clock.NewFake(t0)),
				workertest.WithRetrySince(t0.Add(-23 * time.Hour))},
			wait: [2]time.Duration{48 * time.Minute, 72 * time.Minute}}, // capped at MaxInterval 1h
		{name: "TimeoutRetries", outcome: worker.Retried,
			h: worker.HandlerFunc(func(ctx context.Context, _ worker.Action) error {
				<-ctx.Done()
				return fmt.Errorf("list servers: %w", ctx.Err())
			}),
			opts:  []workertest.Option{workertest.WithTimeout(10 * time.Millisecond)},
			wait:  [2]time.Duration{80 * time.Millisecond, 120 * time.Millisecond},
			errIs: []error{worker.ErrHandlerTimeout, context.DeadlineExceeded}},
		{name: "PermanentAfterTimeoutStaysPermanent", outcome: worker.Poisoned, reason: "gave up waiting",
			h: worker.HandlerFunc(func(ctx context.Context, _ worker.Action) error {
				<-ctx.Done()
				return worker.Permanent(errors.New("gave up waiting"))
			}),
			opts:     []workertest.Option{workertest.WithTimeout(10 * time.Millisecond)},
			errNotIs: []error{worker.ErrHandlerTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := workertest.Run(t, tt.h, worker.Action{Type: "server.launch"}, tt.opts...)
			require.Equal(t, tt.outcome, r.Outcome, "err: %v", r.Err)
			require.GreaterOrEqual(t, r.Wait, tt.wait[0])
			require.LessOrEqual(t, r.Wait, tt.wait[1])
			if tt.reason == "" {
				require.Empty(t, r.Reason)
			} else {
				require.Contains(t, r.Reason, tt.reason)
			}
			for _, e := range tt.errIs {
				require.ErrorIs(t, r.Err, e)
			}
			for _, e := range tt.errNotIs {
				require.NotErrorIs(t, r.Err, e)
			}
		})
	}
}

// TestRunDeliversAsPublished: the handler gets the action as Publish fills
// it in and the wire delivers it.
func TestRunDeliversAsPublished(t *testing.T) {
	t.Parallel()
	var got worker.Action
	h := worker.HandlerFunc(func(_ context.Context, a worker.Action) error { got = a; return nil })

	r := workertest.Run(t, h, worker.Action{Type: "t", Payload: json.RawMessage(`{ "image" : "debian-13" }`)},
		workertest.WithClock(clock.NewFake(t0)), workertest.WithAttempt(2))
	require.NotEmpty(t, got.ID)
	require.Equal(t, got.ID, got.Key, "Key defaults to ID")
	require.Equal(t, t0, got.CreatedAt, "CreatedAt from the run's clock")
	require.Equal(t, 2, got.Attempt)
	require.Equal(t, `{"image":"debian-13"}`, string(got.Payload), "as the wire delivers it")
	require.Equal(t, got, r.Action)

	created := time.Date(2026, 2, 1, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	workertest.Run(t, h, worker.Action{Type: "t", ID: "a-1", Key: "k-1", CreatedAt: created})
	require.Equal(t, "a-1", got.ID)
	require.Equal(t, "k-1", got.Key)
	require.True(t, created.Equal(got.CreatedAt))
	require.Equal(t, 1, got.Attempt)
}

// TestRunRefusesWhatPublishWould: Run fails the test, naming the problem,
// for an action Publish would refuse and for bad options.
func TestRunRefusesWhatPublishWould(t *testing.T) {
	t.Parallel()
	ok := returning(nil)
	tests := []struct {
		name string
		h    worker.Handler
		a    worker.Action
		opts []workertest.Option
		want string
	}{
		{name: "NoType", h: ok, a: worker.Action{}, want: "Type is required"},
		{name: "BadType", h: ok, a: worker.Action{Type: "Server Launch"}, want: `Type "Server Launch"`},
		{name: "BadPayload", h: ok, a: worker.Action{Type: "t", Payload: json.RawMessage(`{`)}, want: "Payload"},
		{name: "TooLarge", h: ok, a: worker.Action{Type: "t", Payload: json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)},
			want: "would not publish"},
		{name: "LoneSurrogate", h: ok, a: worker.Action{Type: "t", Payload: json.RawMessage(`"\ud800"`)}, want: "would poison"},
		{name: "NilHandler", a: worker.Action{Type: "t"}, want: "handler is nil"},
		{name: "AttemptZero", h: ok, a: worker.Action{Type: "t"}, opts: []workertest.Option{workertest.WithAttempt(0)}, want: "WithAttempt(0)"},
		{name: "BadPolicy", h: ok, a: worker.Action{Type: "t"}, opts: []workertest.Option{workertest.WithRetry(worker.RetryPolicy{Multiplier: 0.5})},
			want: "Retry.Multiplier"},
		{name: "NoTimeout", h: ok, a: worker.Action{Type: "t"}, opts: []workertest.Option{workertest.WithTimeout(-1)}, want: "WithTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msg := failure(t, func(tb testing.TB) { workertest.Run(tb, tt.h, tt.a, tt.opts...) })
			require.Contains(t, msg, tt.want)
		})
	}
	require.Empty(t, failure(t, func(tb testing.TB) { workertest.Run(tb, ok, worker.Action{Type: "t"}) }))
}
