package worker

import (
	"context"
	"errors"
	"fmt"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// maxPagesPerPoll stops a poller whose cursor never ends.
const maxPagesPerPoll = 100_000

// pollStore is what the poll runner writes to.
type pollStore interface {
	StateSink
	sweeper
	AppendSamples(ctx context.Context, account string, samples []state.Sample) (int, error)
}

// pollRunner is the part that runs dispatched polls ("poll" actions): it
// pages through the registered Poller of the target's kind, saves every page
// to the state sink, and after the last page of a complete listing has the
// resources it did not return marked missing (deleted after grace).
type pollRunner struct {
	store    pollStore
	accounts accountReader
	grace    time.Duration
	obs      observer

	mu      sync.RWMutex
	pollers map[string]Poller
}

func newPollRunner(store pollStore, accts accountReader, grace time.Duration) *pollRunner {
	return &pollRunner{store: store, accounts: accts, grace: grace, obs: noObserver{}, pollers: map[string]Poller{}}
}

// register adds p for its kind; false if the kind has one already.
func (r *pollRunner) register(p Poller) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.pollers[p.Kind()]; dup {
		return false
	}
	r.pollers[p.Kind()] = p
	return true
}

func (r *pollRunner) has(kind string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.pollers[kind]
	return ok
}

// run runs one dispatched poll.
func (r *pollRunner) run(ctx context.Context, d poller.Dispatch) (poller.Outcome, error) {
	r.mu.RLock()
	p, ok := r.pollers[d.Target.Kind]
	r.mu.RUnlock()
	if !ok {
		return poller.Outcome{}, Permanent(fmt.Errorf("worker: no poller registered for kind %q (target %s)", d.Target.Kind, d.Target))
	}
	// A paused or deleted account is not polled, even when the schedule
	// that dispatched the poll has not seen the change yet.
	a, err := r.accounts.Account(ctx, d.Target.Account)
	switch {
	case err == nil && (a.Deleted() || a.Paused):
		return poller.Outcome{}, nil // reported as done: the schedule drops the target when it learns
	case err != nil && !errors.Is(err, accounts.ErrNotFound):
		r.obs.dbError(opAccount)
		return failed(fmt.Errorf("poll %s: account registry: %w", d.Target, err), 0), nil
	case err == nil:
		ctx = withPollAccount(ctx, a)
	}
	return r.poll(ctx, p, d.Target), nil
}

func (r *pollRunner) poll(ctx context.Context, p Poller, t state.Target) poller.Outcome {
	var (
		seen     []uint64
		cursor   string
		calls    int
		complete bool
	)
	for {
		snap, next, err := p.Poll(ctx, t, cursor)
		calls++
		if err != nil && calls == 1 && errors.Is(err, cloud.ErrNotSupported) {
			// The account's provider has no such service (Worker.Cloud
			// offers every kind; a vSphere account has no DNS): nothing
			// to poll, and not a failure to back off from.
			return poller.Outcome{Calls: calls}
		}
		if err != nil {
			return failed(fmt.Errorf("poll %s page %d: %w", t, calls, err), calls)
		}
		for _, o := range snap.Observations {
			seen = append(seen, idHash(o.ID))
		}
		if len(snap.Observations) > 0 {
			if _, err := r.store.Save(ctx, t, snap); err != nil {
				r.obs.dbError(opSave)
				return failed(fmt.Errorf("save %s page %d: %w", t, calls, err), calls)
			}
		}
		if len(snap.Samples) > 0 {
			// Time series, not state: appended to the analytics
			// database (duplicates dropped), durable before the poll
			// is reported done.
			if _, err := r.store.AppendSamples(ctx, t.Account, snap.Samples); err != nil {
				r.obs.dbError(opSave)
				return failed(fmt.Errorf("append the samples of %s page %d: %w", t, calls, err), calls)
			}
		}
		complete = complete || snap.Complete
		if next == "" {
			break
		}
		if calls >= maxPagesPerPoll {
			return failed(fmt.Errorf("poll %s: more than %d pages; the poller's cursor never ends", t, maxPagesPerPoll), calls)
		}
		cursor = next
	}
	if complete {
		slices.Sort(seen)
		wasSeen := func(id string) bool { _, ok := slices.BinarySearch(seen, idHash(id)); return ok }
		if _, err := r.store.Sweep(ctx, t, wasSeen, r.grace); err != nil {
			r.obs.dbError(opSweep)
			return failed(fmt.Errorf("deletion check of %s: %w", t, err), calls)
		}
	}
	return poller.Outcome{Calls: calls}
}

// idHash keeps the ids a listing saw in 8 bytes each: a complete listing of a
// million resources needs 8 MB, not the observations themselves.
func idHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}
