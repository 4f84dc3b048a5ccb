package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
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
	wait := time.Duration(0)
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
		if err == nil {
			f.ok()
			wait = d.every
		} else {
			f.failed(err)
			wait = min(max(2*wait, d.every), max(maxDutyBackoff, d.every))
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
