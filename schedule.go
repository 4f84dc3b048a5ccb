package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/stratusworks/worker/accounts"
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

// Reserved schedule kinds: tracked jobs (their Resource is the job id) and
// guest-log collection (one target per watched account).
const (
	jobKind       = "job"
	guestLogsKind = "guest-logs"
)

// actionPublisher is what the parts publish through (the worker's
// [Publisher]).
type actionPublisher interface {
	Publish(ctx context.Context, actions ...Action) error
}

// scheduler is the part that owns the poll schedule of a publisher process
// (package poller): it takes registered kinds, watched accounts and
// per-target intervals, publishes a "poll", "job.check" or "guest.logs"
// action on the polls queue when a target is due, and takes the outcomes
// back — in process from the handlers, or as "poll.report" actions from
// subscriber-only processes. A subscriber-only process has none.
type scheduler struct {
	sched *poller.Schedule
	pub   actionPublisher
	log   *slog.Logger
	now   func() time.Time
	obs   observer

	mu     sync.Mutex
	kinds  []string                  // registered kinds, in order
	health map[string]*AccountHealth // accounts whose last poll failed
	ph     *pollHealth               // the persisted failing polls (pollhealth.go); nil: none
}

func newScheduler(cfg poller.Config, pub actionPublisher, now func() time.Time, log *slog.Logger) (*scheduler, error) {
	sched, err := poller.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: Schedule: %w", ErrInvalidConfig, err)
	}
	return &scheduler{sched: sched, pub: pub, log: log, now: now, obs: noObserver{}, health: map[string]*AccountHealth{}}, nil
}

// register schedules a kind for every followed account.
func (s *scheduler) register(kind string, every time.Duration) error {
	if err := s.sched.Register(kind, every); err != nil {
		return err
	}
	s.mu.Lock()
	s.kinds = append(s.kinds, kind)
	s.mu.Unlock()
	return nil
}

// follow schedules every registered kind for an account of the registry, at
// the account's own interval where it has one.
func (s *scheduler) follow(a accounts.Account) error {
	if err := s.sched.Watch(a.ID, a.Customer); err != nil {
		return err
	}
	s.mu.Lock()
	kinds := slices.Clone(s.kinds)
	s.mu.Unlock()
	for _, k := range kinds {
		// 0 puts a kind back on its registered interval.
		if err := s.sched.Set(state.Target{Kind: k, Account: a.ID, Customer: a.Customer}, a.Intervals[k]); err != nil {
			return fmt.Errorf("interval of %q: %w", k, err)
		}
	}
	return nil
}

// unfollow removes an account's targets.
func (s *scheduler) unfollow(account string) int {
	s.mu.Lock()
	delete(s.health, account)
	s.mu.Unlock()
	s.forgetHealth(account)
	s.obs.forgetAccount(account)
	return s.sched.Unwatch(account)
}

// AccountHealth is how the polls of one account are going, as the schedule
// of a publisher process saw their outcomes.
type AccountHealth struct {
	Account string
	// Failures counts consecutive failed (or throttled) polls of the
	// account, of any kind.
	Failures int
	// LastError is the last failure, e.g. a cloud.ErrAuthentication from
	// the account's provider; Throttled says it was throttling.
	LastError string
	Throttled bool
	// Since is when the failures began; LastFailure when the last one was.
	Since, LastFailure time.Time
}

// noteOutcome keeps the health of the outcome's account.
func (s *scheduler) noteOutcome(d poller.Dispatch, o poller.Outcome) {
	account := d.Target.Account
	s.obs.polled(d, o, s.now())
	s.noteHealth(d, o, s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.Err == nil && !o.Throttled {
		delete(s.health, account)
		return
	}
	h := s.health[account]
	now := s.now()
	if h == nil {
		h = &AccountHealth{Account: account, Since: now}
		s.health[account] = h
	}
	h.Failures++
	h.LastFailure, h.Throttled = now, o.Throttled
	if o.Err != nil {
		h.LastError = o.Err.Error()
	}
}

// accountHealth returns the health of an account with failing polls.
func (s *scheduler) accountHealth(account string) (AccountHealth, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.health[account]
	if !ok {
		return AccountHealth{}, false
	}
	return *h, true
}

// run dispatches due targets until ctx is done.
func (s *scheduler) run(ctx context.Context) error {
	if s.ph != nil {
		s.loadHealth(ctx)
		hctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.writeHealth(hctx) }()
		defer func() { stop(); <-done }()
	}
	if err := s.sched.Run(ctx, s.dispatch); err != nil {
		return fmt.Errorf("worker: schedule: %w", err)
	}
	return nil
}

// handlers are the action types the scheduler handles.
func (s *scheduler) handlers() map[string]HandlerFunc {
	return map[string]HandlerFunc{TypePollReport: s.handleReport}
}

// dispatch publishes due polls, job checks and collections on the polls queue.
func (s *scheduler) dispatch(ctx context.Context, ds []poller.Dispatch) error {
	actions := make([]Action, 0, len(ds))
	now := s.now()
	for _, d := range ds {
		s.obs.dispatched(d, now)
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
	return s.pub.Publish(ctx, actions...)
}

// scheduleJob puts a job's checks on the schedule if they are not there yet.
func (s *scheduler) scheduleJob(t state.Target, every time.Duration) error {
	if _, ok := s.sched.Lookup(t); ok {
		return nil
	}
	if err := s.sched.Set(t, every); err != nil {
		return err
	}
	s.obs.jobScheduled(t)
	return nil
}

// stale and report make the scheduler the outcomes of its own dispatches
// (dispatchOutcomes) in a process that also handles them.
func (s *scheduler) stale(d poller.Dispatch) bool { return !s.sched.Current(d) }

func (s *scheduler) report(_ context.Context, d poller.Dispatch, o poller.Outcome) error {
	if s.sched.Report(d, o) {
		s.noteOutcome(d, o)
	}
	return nil
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

// handleReport applies an outcome reported by another process.
func (s *scheduler) handleReport(_ context.Context, a Action) error {
	var r pollReport
	if err := a.Decode(&r); err != nil {
		return Permanent(err)
	}
	o := poller.Outcome{Throttled: r.Throttled, RetryAfter: r.RetryAfter, Complete: r.Complete, Calls: r.Calls}
	if r.Error != "" {
		o.Err = errors.New(r.Error)
	}
	if !s.sched.Report(r.Dispatch, o) {
		targetLog(s.log, r.Dispatch.Target).Debug("stale poll report ignored", "target", r.Dispatch.Target.String())
		return nil
	}
	s.noteOutcome(r.Dispatch, o)
	return nil
}

// dispatchOutcomes is where the handlers of dispatched targets learn whether
// a dispatch is still wanted and send its outcome: the scheduler itself in a
// process that has one, remoteOutcomes in a subscriber-only process.
type dispatchOutcomes interface {
	stale(d poller.Dispatch) bool
	report(ctx context.Context, d poller.Dispatch, o poller.Outcome) error
}

// remoteOutcomes sends outcomes to the publisher processes' schedule as
// "poll.report" actions, and judges a dispatch stale by its lease's age.
type remoteOutcomes struct {
	pub      actionPublisher
	now      func() time.Time
	inFlight time.Duration // the schedule's InFlightTimeout
}

func (r remoteOutcomes) stale(d poller.Dispatch) bool { return r.now().Sub(d.DueAt) > r.inFlight }

func (r remoteOutcomes) report(ctx context.Context, d poller.Dispatch, o poller.Outcome) error {
	rep := pollReport{Dispatch: d, Throttled: o.Throttled, RetryAfter: o.RetryAfter, Complete: o.Complete, Calls: o.Calls}
	if o.Err != nil {
		rep.Error = o.Err.Error()
	}
	a, err := NewAction(TypePollReport, rep)
	if err != nil {
		return err
	}
	a.Account, a.Customer = d.Target.Account, d.Target.Customer
	return r.pub.Publish(ctx, a)
}

// dispatchRun runs one dispatched target: a poll, a job check, a collection.
// Its failures are the schedule's to retry (with backoff, per account), so
// they come back in the Outcome; a returned error is the action's own (a
// dispatch that does not make sense, say).
type dispatchRun func(ctx context.Context, d poller.Dispatch) (poller.Outcome, error)

// scheduled turns a dispatchRun into the handler of its action type: it
// decodes the dispatch, drops it when stale, runs it and reports the outcome.
func scheduled(out dispatchOutcomes, log *slog.Logger, run dispatchRun) HandlerFunc {
	return func(ctx context.Context, a Action) error {
		d, err := decodeDispatch(a)
		if err != nil {
			return err
		}
		tlog := targetLog(log, d.Target)
		if out.stale(d) {
			tlog.Debug("stale dispatch dropped", "type", a.Type, "target", d.Target.String(), "lease", d.Lease)
			return nil
		}
		o, err := run(ctx, d)
		if err != nil {
			return err
		}
		if o.Err != nil && ctx.Err() == nil && !errors.Is(o.Err, context.Canceled) { // not at shutdown
			tlog.Warn("poll failed", "target", d.Target.String(), "throttled", o.Throttled, "retry_after", o.RetryAfter, "err", o.Err)
		}
		return out.report(ctx, d, o)
	}
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

// failed is the Outcome of a run that failed with err after calls API calls;
// a throttled cloud's RetryAfter is carried over.
func failed(err error, calls int) poller.Outcome {
	o := poller.Outcome{Err: err, Calls: calls}
	if d, ok := cloud.RetryAfter(err); ok {
		o.Throttled, o.RetryAfter = true, d
	}
	return o
}

// actionLog is log with an action's customer and account, so that what it
// logs about the action reaches that customer's own log.
func actionLog(log *slog.Logger, a Action) *slog.Logger {
	return log.With("customer", a.Customer, "account", a.Account)
}

// targetLog is log with a target's customer and account.
func targetLog(log *slog.Logger, t state.Target) *slog.Logger {
	return log.With("customer", t.Customer, "account", t.Account)
}
