package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// Built-in action types.
const (
	TypePoll         = "poll"          // run one poll of a target (payload: the schedule's dispatch)
	TypeJobCheck     = "job.check"     // check a tracked job's cloud operation once
	TypeJobTrack     = "job.track"     // start tracking a job a dispatcher started (payload: persist.Job)
	TypePollReport   = "poll.report"   // a poll's outcome, back to the schedule of another process
	TypeServerLaunch = "server.launch" // launch a server idempotently (payload: LaunchRequest)
)

// jobKind is the schedule kind of tracked jobs; their Resource is the job id.
const jobKind = "job"

// maxPagesPerPoll stops a poller whose cursor never ends.
const maxPagesPerPoll = 100_000

// Register adds a poller for its kind, polled every interval (the kind's
// default; Schedule sets per-resource intervals). Call it before Run, in every
// process: publishers schedule the kind, subscribers run its polls.
func (w *Worker) Register(p Poller, every time.Duration) error {
	if p == nil {
		return fmt.Errorf("%w: Register: poller is nil", ErrInvalidConfig)
	}
	kind := p.Kind()
	if !validType(kind) || kind == jobKind || kind == guestLogsKind {
		return fmt.Errorf("%w: Register: kind %q must be a-z 0-9 . _ - and not %q or %q", ErrInvalidConfig, kind, jobKind, guestLogsKind)
	}
	if every <= 0 {
		return fmt.Errorf("%w: Register(%q): interval %v must be positive", ErrInvalidConfig, kind, every)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ran {
		return fmt.Errorf("%w: Register(%q) must be called before Run", ErrAlreadyRunning, kind)
	}
	if _, dup := w.pollers[kind]; dup {
		return fmt.Errorf("worker: a poller for kind %q is already registered", kind)
	}
	if w.sched != nil {
		if err := w.sched.Register(kind, every); err != nil {
			return fmt.Errorf("worker: Register(%q): %w", kind, err)
		}
	}
	w.pollers[kind] = p
	return nil
}

// Watch schedules every registered kind for a cloud account. It needs a
// schedule: RoleAll or RolePublisher.
func (w *Worker) Watch(account, customer string) error {
	switch {
	case account == "":
		return fmt.Errorf("%w: Watch: account is required", ErrInvalidConfig)
	case customer == "":
		return fmt.Errorf("%w: Watch(%q): customer is required (logs and credentials are kept per customer)", ErrInvalidConfig, account)
	case len(account) > maxFieldLen || len(customer) > maxFieldLen:
		return fmt.Errorf("%w: Watch(%q, %q): account and customer are at most %d bytes", ErrInvalidConfig, shorten(account), shorten(customer), maxFieldLen)
	}
	if w.sched == nil {
		return fmt.Errorf("%w: Watch on a %s worker (the schedule lives in publishers)", ErrRoleNotSupported, w.cfg.Role)
	}
	return w.sched.Watch(account, customer)
}

// Unwatch stops polling an account and returns how many targets it removed.
// Polls already dispatched for it are dropped as stale.
func (w *Worker) Unwatch(account string) int {
	if w.sched == nil {
		return 0
	}
	return w.sched.Unwatch(account)
}

// Schedule polls one target at its own interval: a single resource polled more
// often than its kind, or a kind for one account without Watch.
func (w *Worker) Schedule(t state.Target, every time.Duration) error {
	if w.sched == nil {
		return fmt.Errorf("%w: Schedule on a %s worker", ErrRoleNotSupported, w.cfg.Role)
	}
	if _, ok := w.pollers[t.Kind]; !ok {
		return fmt.Errorf("%w: Schedule(%s): no poller registered for kind %q", ErrInvalidConfig, t, t.Kind)
	}
	return w.sched.Set(t, every)
}

// dispatch publishes due polls and job checks on the polls queue.
func (w *Worker) dispatch(ctx context.Context, ds []poller.Dispatch) error {
	actions := make([]Action, 0, len(ds))
	for _, d := range ds {
		typ := TypePoll
		switch d.Target.Kind {
		case jobKind:
			typ = TypeJobCheck
		case guestLogsKind:
			typ = TypeGuestLogs
		}
		a, err := NewAction(typ, d)
		if err != nil {
			return err
		}
		a.Account, a.Customer, a.Resource = d.Target.Account, d.Target.Customer, d.Target.Resource
		a.Key = fmt.Sprintf("%s#%d", d.Target, d.Lease)
		actions = append(actions, a)
	}
	return w.pub.Publish(ctx, actions...)
}

// stale reports whether a dispatched poll should be dropped: its target was
// polled, removed or unwatched since (when this process holds the schedule),
// or its lease has expired (otherwise).
func (w *Worker) stale(d poller.Dispatch) bool {
	if w.sched != nil {
		return !w.sched.Current(d)
	}
	return w.now().Sub(d.DueAt) > w.inFlightTimeout()
}

func (w *Worker) inFlightTimeout() time.Duration {
	if w.cfg.Schedule.InFlightTimeout > 0 {
		return w.cfg.Schedule.InFlightTimeout
	}
	return 5 * time.Minute
}

func decodeDispatch(a Action) (poller.Dispatch, error) {
	var d poller.Dispatch
	if err := a.Decode(&d); err != nil {
		return d, Permanent(err)
	}
	if d.Target.Account == "" || d.Target.Kind == "" {
		return d, Permanent(fmt.Errorf("%w: %s action %s has no target", ErrInvalidAction, a.Type, a.ID))
	}
	return d, nil
}

// scheduled turns the run of one dispatched target into a handler for the
// schedule's actions (poll, job.check, guest.logs): it decodes the dispatch,
// drops it when stale, and reports run's outcome to the schedule. Failures of
// the run are the schedule's to retry (with backoff, per account), so the
// action itself succeeds once reported; run's error, if any, is the action's.
func (w *Worker) scheduled(run func(ctx context.Context, d poller.Dispatch) (poller.Outcome, error)) HandlerFunc {
	return func(ctx context.Context, a Action) error {
		d, err := decodeDispatch(a)
		if err != nil {
			return err
		}
		if w.stale(d) {
			w.logTarget(d.Target).Debug("stale dispatch dropped", "type", a.Type, "target", d.Target.String(), "lease", d.Lease)
			return nil
		}
		o, err := run(ctx, d)
		if err != nil {
			return err
		}
		return w.report(ctx, d, o)
	}
}

// pollDispatched runs one dispatched poll: page by page through the poller
// into the store, then deletion detection for a complete listing.
func (w *Worker) pollDispatched(ctx context.Context, d poller.Dispatch) (poller.Outcome, error) {
	p, ok := w.pollers[d.Target.Kind]
	if !ok {
		return poller.Outcome{}, Permanent(fmt.Errorf("worker: no poller registered for kind %q (target %s)", d.Target.Kind, d.Target))
	}
	return w.runPoll(ctx, p, d.Target), nil
}

func (w *Worker) runPoll(ctx context.Context, p Poller, t state.Target) poller.Outcome {
	var (
		seen     []uint64
		cursor   string
		calls    int
		complete bool
	)
	for {
		snap, next, err := p.Poll(ctx, t, cursor)
		calls++
		if err != nil {
			return failed(fmt.Errorf("poll %s page %d: %w", t, calls, err), calls)
		}
		for _, o := range snap.Observations {
			seen = append(seen, idHash(o.ID))
		}
		if len(snap.Observations) > 0 {
			if _, err := w.store.Save(ctx, t, snap); err != nil {
				return failed(fmt.Errorf("save %s page %d: %w", t, calls, err), calls)
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
		if _, err := w.store.Sweep(ctx, t, wasSeen, w.cfg.DeletionGrace); err != nil {
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

func failed(err error, calls int) poller.Outcome {
	o := poller.Outcome{Err: err, Calls: calls}
	if d, ok := cloud.RetryAfter(err); ok {
		o.Throttled, o.RetryAfter = true, d
	}
	return o
}

// pollReport carries a poll's outcome to the schedule of another process.
type pollReport struct {
	Dispatch   poller.Dispatch `json:"dispatch"`
	Error      string          `json:"error,omitempty"`
	Throttled  bool            `json:"throttled,omitempty"`
	RetryAfter time.Duration   `json:"retry_after,omitempty"`
	Complete   bool            `json:"complete,omitempty"`
	Calls      int             `json:"calls,omitempty"`
}

// report hands an outcome to the schedule: directly when this process holds
// it, else as a poll.report action on the schedule queue.
func (w *Worker) report(ctx context.Context, d poller.Dispatch, o poller.Outcome) error {
	if o.Err != nil && ctx.Err() == nil && !errors.Is(o.Err, context.Canceled) { // not at shutdown
		w.logTarget(d.Target).Warn("poll failed", "target", d.Target.String(), "throttled", o.Throttled, "retry_after", o.RetryAfter, "err", o.Err)
	}
	if w.sched != nil {
		w.sched.Report(d, o)
		return nil
	}
	r := pollReport{Dispatch: d, Throttled: o.Throttled, RetryAfter: o.RetryAfter, Complete: o.Complete, Calls: o.Calls}
	if o.Err != nil {
		r.Error = o.Err.Error()
	}
	a, err := NewAction(TypePollReport, r)
	if err != nil {
		return err
	}
	a.Account, a.Customer = d.Target.Account, d.Target.Customer
	return w.pub.Publish(ctx, a)
}

// handlePollReport applies an outcome reported by another process.
func (w *Worker) handlePollReport(_ context.Context, a Action) error {
	var r pollReport
	if err := a.Decode(&r); err != nil {
		return Permanent(err)
	}
	o := poller.Outcome{Throttled: r.Throttled, RetryAfter: r.RetryAfter, Complete: r.Complete, Calls: r.Calls}
	if r.Error != "" {
		o.Err = errors.New(r.Error)
	}
	if !w.sched.Report(r.Dispatch, o) {
		w.logTarget(r.Dispatch.Target).Debug("stale poll report ignored", "target", r.Dispatch.Target.String())
	}
	return nil
}
