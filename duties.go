package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// A duty is one of the worker's background jobs — the outbox relay, the
// deferred-retry pump, the history flusher, the job sync — running on its own
// goroutine, so that one stuck on a hung database never stops the others.
// Every run is bounded by timeout. A failing duty backs off (doubling from
// every up to maxDutyBackoff) and logs once when it starts failing, then at
// most once a minute with a count, and once when it recovers. A run still
// going after stallAfter is reported as stalled, by name, once.
type duty struct {
	name       string
	every      time.Duration
	timeout    time.Duration
	stallAfter time.Duration
	run        func(ctx context.Context) error
	log        *slog.Logger
}

const (
	maxDutyBackoff   = time.Minute
	dutyStallAfter   = 10 * time.Second
	dutyLogEvery     = time.Minute
	defaultDutyLimit = 30 * time.Second
)

// loop runs the duty until ctx is done.
func (d duty) loop(ctx context.Context) {
	if d.stallAfter == 0 {
		d.stallAfter = dutyStallAfter
	}
	if d.timeout == 0 {
		d.timeout = defaultDutyLimit
	}
	f := newFailureLog(d.log, d.name)
	// After a failure the duty waits longer each time, up to
	// maxDutyBackoff (or its own period if longer); a success resets it.
	retry := backoff.ExponentialBackOff{InitialInterval: d.every, RandomizationFactor: 0.1, Multiplier: 2,
		MaxInterval: max(maxDutyBackoff, d.every)}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := d.once(ctx)
		if ctx.Err() != nil {
			return // shutting down: not a failure
		}
		wait := d.every
		if err == nil {
			f.ok()
			retry.Reset()
		} else {
			f.failed(err)
			wait = retry.NextBackOff()
		}
		t.Reset(wait)
	}
}

// once runs the duty once within its timeout, reporting a stall.
func (d duty) once(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	stalled := false
	watch := time.AfterFunc(d.stallAfter, func() {
		mu.Lock()
		stalled = true
		mu.Unlock()
		d.log.Warn("background duty stalled: one run has been going for "+d.stallAfter.String()+
			" (its database or broker may be hung); the other duties go on", "duty", d.name, "timeout", d.timeout)
	})
	err := d.run(ctx)
	watch.Stop()
	mu.Lock()
	defer mu.Unlock()
	if stalled && ctx.Err() == nil {
		d.log.Info("background duty no longer stalled", "duty", d.name, "took", time.Since(start).Round(time.Millisecond))
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("run did not finish within %v: %w", d.timeout, err)
	}
	return err
}

// relay is the part that publishes the change and job events that saves committed to the
// outbox, then marks them sent. A crash in between publishes them again:
// events carry their id (the action ID), so consumers drop the duplicate.
// When marking fails (a read-only or unreachable database), the next run
// only retries the marking: events already published are not published again.
type relay struct {
	store    outboxStore
	pub      actionPublisher
	unmarked []string // published, not yet marked sent
	// lease is the relay lease of a shared schedule (nil: this process
	// relays): only its holder relays, so that each event is published once
	// fleet-wide in steady state.
	lease *leaseKeeper
}

const relayBatch = 100

func (r *relay) run(ctx context.Context) error {
	if r.lease != nil {
		if _, ok := r.lease.holds(relayLease); !ok {
			return nil
		}
	}
	if len(r.unmarked) > 0 {
		if err := r.store.MarkEventsSent(ctx, r.unmarked...); err != nil {
			return fmt.Errorf("mark %d published events sent: %w", len(r.unmarked), err)
		}
		r.unmarked = nil
	}
	for {
		if r.lease != nil {
			if _, ok := r.lease.holds(relayLease); !ok {
				return nil // lost in the middle: its new holder goes on
			}
		}
		evs, err := r.store.PendingEvents(ctx, relayBatch)
		if err != nil || len(evs) == 0 {
			return err
		}
		actions := make([]Action, 0, len(evs))
		ids := make([]string, 0, len(evs))
		for _, e := range evs {
			actions = append(actions, Action{ID: e.ID, Key: e.ID, Type: e.Type, Account: e.Account, Customer: e.Customer,
				Resource: e.ResourceID, CreatedAt: e.CreatedAt, Payload: e.Payload})
			ids = append(ids, e.ID)
		}
		if err := r.pub.Publish(ctx, actions...); err != nil {
			return err
		}
		r.unmarked = ids
		if err := r.store.MarkEventsSent(ctx, ids...); err != nil {
			return fmt.Errorf("mark %d published events sent: %w", len(ids), err)
		}
		r.unmarked = nil
		if len(evs) < relayBatch {
			return nil
		}
	}
}

// sentEventsKept is how long the outbox keeps events after they were
// published (for looking into what was sent), before they are purged.
const sentEventsKept = 24 * time.Hour

// purger is the part that deletes what a store keeps only for a while
// (published events from the outbox, handled keys from the inbox) once it
// is older than keep, so the table does not grow without end. purge is the
// store's method for it (PurgeSentEvents, PurgeInbox).
type purger struct {
	purge func(ctx context.Context, olderThan time.Time) (int, error)
	now   func() time.Time
	keep  time.Duration
}

func (p purger) run(ctx context.Context) error {
	_, err := p.purge(ctx, p.now().Add(-p.keep))
	return err
}

// deferredPump is the part that republishes parked retries when they are
// due and removes them from the store. A crash between the two republishes
// one again later: handlers are idempotent.
type deferredPump struct {
	store deferredQueue
	pub   interface {
		publishRaw(topic, id string, md map[string]string, body []byte) error
	}
	now func() time.Time
}

func (p deferredPump) run(ctx context.Context) error {
	_, err := p.republish(ctx)
	return err
}

func (p deferredPump) republish(ctx context.Context) (int, error) {
	n := 0
	for {
		due, err := p.store.DueDeferred(ctx, p.now().UTC(), 100)
		if err != nil || len(due) == 0 {
			return n, err
		}
		for i, d := range due {
			if err := p.pub.publishRaw(d.Topic, d.MessageUUID, d.Metadata, d.Payload); err != nil {
				return n, errors.Join(err, p.store.DeleteDeferred(ctx, due[:i]...))
			}
		}
		if err := p.store.DeleteDeferred(ctx, due...); err != nil {
			return n, err
		}
		n += len(due)
		if len(due) < 100 {
			return n, nil
		}
	}
}

// historyFlusher is the part that copies history from the provisioning
// outbox to a separate analytics database (a no-op when they are one).
type historyFlusher struct{ store historyStore }

func (f historyFlusher) run(ctx context.Context) error {
	_, err := f.store.FlushHistory(ctx)
	return err
}

// failureLog logs a run of failures of one duty in a few lines: the first
// failure, then at most one line per dutyLogEvery with how many failures
// there were since the last line, then the recovery.
type failureLog struct {
	log  *slog.Logger
	name string
	runs *quietLog
}

func newFailureLog(log *slog.Logger, name string) *failureLog {
	return &failureLog{log: log, name: name, runs: newQuietLog(dutyLogEvery, 0, time.Now)}
}

func (f *failureLog) failed(err error) {
	switch r := f.runs.failed(f.name); {
	case r.first:
		f.log.Warn(f.name+" failed; will keep trying", "duty", f.name, "err", err)
	case r.summary:
		f.log.Warn(f.name+" still failing", "duty", f.name, "failures", r.unlogged, "since", r.since.Round(time.Second), "err", err)
	}
}

func (f *failureLog) ok() {
	if r, had := f.runs.ok(f.name); had {
		f.log.Info(f.name+" recovered", "duty", f.name, "failures", r.failures, "after", r.since.Round(time.Millisecond))
	}
}
