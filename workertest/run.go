package workertest

import (
	"context"
	"testing"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/internal/workerlink"
)

// DefaultHandlerTimeout is the handler timeout of [Run] without
// [WithTimeout]: 1m, the default of worker.Config.HandlerTimeout.
const DefaultHandlerTimeout = time.Minute

// abandonAfter is how long Run waits for a handler that ignores its
// cancelled context before it fails the test.
const abandonAfter = 5 * time.Second

// Result is what became of one attempt of an action in [Run].
type Result struct {
	// Verdict is the subscriber's decision after the attempt, as
	// worker.RetryPolicy.Decide makes it: its Outcome (Handled, Retried,
	// Snoozed, Poisoned), the Wait before the next attempt (Retried,
	// Snoozed) and the Reason (Poisoned).
	worker.Verdict
	// Err is what the handler returned: nil, its own error, a
	// worker.Permanent wrapping worker.ErrHandlerPanic when it panicked, or
	// its error wrapped with worker.ErrHandlerTimeout when it failed after
	// the timeout.
	Err error
	// Action is the action as the handler received it: ID, Key and
	// CreatedAt filled in, Attempt set.
	Action worker.Action
}

// Option sets one setting of [Run].
type Option interface{ apply(*runConfig) }

type runConfig struct {
	attempt int
	retry   worker.RetryPolicy
	clock   clock.Clock
	timeout time.Duration
	since   time.Time
	ctx     context.Context
}

type optionFunc func(*runConfig)

func (f optionFunc) apply(c *runConfig) { f(c) }

// WithAttempt runs the action as its n-th attempt (1-based): Action.Attempt
// is n, and the retry policy's MaxAttempts counts from it. Default 1.
func WithAttempt(n int) Option { return optionFunc(func(c *runConfig) { c.attempt = n }) }

// WithRetry decides with policy p. Zero fields take their defaults, as in
// a worker. Default: the zero RetryPolicy, the worker's default policy.
func WithRetry(p worker.RetryPolicy) Option { return optionFunc(func(c *runConfig) { c.retry = p }) }

// WithClock reads the time from c: CreatedAt of an action without one, and
// the now of the decision (the retry budget runs on it). Pass a clock.Fake
// for a fixed time. Default: the system clock.
func WithClock(c clock.Clock) Option { return optionFunc(func(rc *runConfig) { rc.clock = c }) }

// WithTimeout bounds the attempt: the handler's context is cancelled after
// d of real time, as worker.Config.HandlerTimeout does. Default
// [DefaultHandlerTimeout].
func WithTimeout(d time.Duration) Option { return optionFunc(func(c *runConfig) { c.timeout = d }) }

// WithRetrySince sets when the action first failed, from which the retry
// budget (RetryPolicy.Budget) runs. Default: none on the first attempt;
// on a later attempt (WithAttempt) the run's now, so only MaxAttempts can
// exhaust the policy.
func WithRetrySince(t time.Time) Option { return optionFunc(func(c *runConfig) { c.since = t }) }

// WithContext runs the handler under ctx (with the timeout added).
// Default context.Background().
func WithContext(ctx context.Context) Option { return optionFunc(func(c *runConfig) { c.ctx = ctx }) }

// Run calls h once with a, as a worker's subscriber would, and returns
// what the subscriber would do next: acknowledge it (Handled), try it again
// after a wait (Retried, Snoozed) or poison it (Poisoned, with the
// reason). The decision is worker.RetryPolicy.Decide's, so a [worker.Permanent]
// error poisons, a [worker.Snooze] snoozes, a throttled cloud's RetryAfter
// is honoured and the policy's MaxAttempts and Budget hold.
//
// Like [worker.Publisher.Publish], Run gives an action without an ID a
// fresh one, without a Key its ID, and without CreatedAt the clock's now.
// The action then goes through the worker's own wire encoder and the
// subscriber's decoder (with the default MaxPayloadBytes), and Run fails
// the test if the publisher would refuse it (it does not validate, it is
// too large) or the subscriber would poison it. The handler receives the
// action as it comes off the wire (a compacted payload, times without a
// monotonic reading) with Attempt set.
//
// As in the subscriber, a handler that panics has failed with a
// [worker.Permanent] error wrapping [worker.ErrHandlerPanic] (the panic
// value and stack in its text): the action is poisoned. A handler that
// fails after its timeout has its error wrapped with
// [worker.ErrHandlerTimeout]. A handler that has not returned a few seconds
// after its context was cancelled fails the test.
//
// Run does not sleep for the wait, park, or try again: call it again with
// [WithAttempt] to test the next attempt.
func Run(t testing.TB, h worker.Handler, a worker.Action, opts ...Option) Result {
	t.Helper()
	cfg := runConfig{attempt: 1, clock: clock.Real(), timeout: DefaultHandlerTimeout, ctx: context.Background()}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case h == nil:
		t.Fatalf("workertest.Run: handler is nil")
	case cfg.attempt < 1:
		t.Fatalf("workertest.Run: WithAttempt(%d): attempts count from 1", cfg.attempt)
	case cfg.timeout <= 0:
		t.Fatalf("workertest.Run: WithTimeout(%v): must be positive", cfg.timeout)
	}
	if err := cfg.retry.Validate(); err != nil {
		t.Fatalf("workertest.Run: WithRetry: %v", err)
	}
	a, err := delivered(a, cfg.clock.Now())
	if err != nil {
		t.Fatalf("workertest.Run: %v", err)
	}
	a.Attempt = cfg.attempt

	err = attempt(t, cfg, h, a)
	now := cfg.clock.Now().UTC()
	since := cfg.since
	if since.IsZero() && cfg.attempt > 1 {
		since = now
	}
	return Result{Verdict: cfg.retry.Decide(err, cfg.attempt, since, now), Err: err, Action: a}
}

// delivered is a as Publish fills it in and a subscriber decodes it (the
// worker's own encoder and decoder, with the default MaxPayloadBytes).
func delivered(a worker.Action, now time.Time) (worker.Action, error) {
	out, err := workerlink.Deliver(a, now)
	if err != nil {
		return a, err
	}
	return out.(worker.Action), nil
}

// attempt runs h once as the subscriber does (the worker's own attempt
// function: the timeout, a panic turned into a permanent error, a late
// error wrapped with worker.ErrHandlerTimeout), on a goroutine, so that a
// handler which ignores its cancelled context fails the test instead of
// hanging it.
func attempt(t testing.TB, cfg runConfig, h worker.Handler, a worker.Action) error {
	t.Helper()
	started := make(chan context.Context, 1)
	done := make(chan error, 1)
	go func() {
		done <- workerlink.Attempt(cfg.ctx, cfg.timeout, func(ctx context.Context) error {
			started <- ctx
			return h.Handle(ctx, a)
		})
	}()
	ctx := <-started
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(abandonAfter):
		t.Fatalf("workertest.Run: the %s handler did not return within %v of its context being cancelled (%v)",
			a.Type, abandonAfter, context.Cause(ctx))
		return nil
	}
}
