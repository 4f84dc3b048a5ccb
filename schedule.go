package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/persist"
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

	// The shards of a shared schedule (leases.go); keeper nil: this
	// process owns every target.
	self    string
	keeper  *leaseKeeper
	forward leaseStore
	// forwarder writes the forwarded reports in batches (group commit).
	forwarder *batcher[persist.ForwardedReport]
	nshards   int
	period    time.Duration
	inFlight  time.Duration // the schedule's InFlightTimeout
	smu       sync.Mutex    // the shards below, and what the schedule holds of them
	owned     map[int]bool
	known     map[int]map[string]accounts.Account    // the registry's live accounts, by shard
	extra     map[int]map[string]bool                // accounts with jobs or own targets only, by shard
	own       map[int]map[state.Target]time.Duration // Worker.Schedule's targets, by shard
	fenced    atomic.Int64                           // dispatches not sent: their shard's lease had run out
	rejected  atomic.Int64                           // reports of another owner's or an older generation's dispatch
	applying  atomic.Int64                           // outcomes being applied: reported to the schedule, health not yet noted
}

func newScheduler(cfg poller.Config, pub actionPublisher, now func() time.Time, log *slog.Logger) (*scheduler, error) {
	sched, err := poller.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: Schedule: %w", ErrInvalidConfig, err)
	}
	return &scheduler{sched: sched, pub: pub, log: log, now: now, obs: noObserver{}, health: map[string]*AccountHealth{},
		inFlight: cmp.Or(cfg.InFlightTimeout, poller.DefaultInFlightTimeout)}, nil
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
	if s.keeper == nil {
		return s.followNow(a)
	}
	sh := shardOf(a.ID, s.nshards)
	s.smu.Lock()
	defer s.smu.Unlock()
	addTo(s.known, sh, a.ID, a)
	if !s.owned[sh] {
		return nil // another publisher's, or nobody's yet
	}
	return s.followNow(a)
}

func (s *scheduler) followNow(a accounts.Account) error {
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
	if s.keeper != nil {
		sh := shardOf(account, s.nshards)
		s.smu.Lock()
		defer s.smu.Unlock()
		delete(s.known[sh], account)
		delete(s.extra[sh], account)
		for t := range s.own[sh] {
			if t.Account == account {
				delete(s.own[sh], t)
			}
		}
	}
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

// idle reports whether nothing is in flight, no outcome is being applied
// and nothing is due at the clock's now (Worker.ScheduleIdle).
func (s *scheduler) idle() bool {
	if s.sched.Stats().InFlight > 0 {
		return false
	}
	if s.applying.Load() > 0 { // read after InFlight: apply counts itself before Report clears it
		return false
	}
	next, ok := s.sched.NextWake()
	return !ok || next.After(s.now())
}

// noteOutcome keeps the health of the outcome's account; now is when the
// outcome arrived.
func (s *scheduler) noteOutcome(d poller.Dispatch, o poller.Outcome, now time.Time) {
	account := d.Target.Account
	s.obs.polled(d, o, now)
	s.noteHealth(d, o, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.Err == nil && !o.Throttled {
		delete(s.health, account)
		return
	}
	h := s.health[account]
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

// dispatch publishes due polls, job checks and collections on the polls
// queue. In a shared schedule each dispatch carries this process and its
// shard's lease generation, and a dispatch whose shard's lease has run out
// here (a renewal failed, the process was paused) is not sent: it is
// fenced, counted, and its shard dropped, since another publisher may own
// it by now.
func (s *scheduler) dispatch(ctx context.Context, ds []poller.Dispatch) error {
	actions := make([]Action, 0, len(ds))
	now := s.now()
	var fenced map[int]bool
	for _, d := range ds {
		wd := wireDispatch{Dispatch: d}
		if s.keeper != nil {
			sh := shardOf(d.Target.Account, s.nshards)
			gen, ok := s.keeper.owns(sh)
			if !ok {
				if fenced == nil {
					fenced = map[int]bool{}
				}
				fenced[sh] = true
				s.fenced.Add(1)
				s.obs.fenced("dispatch")
				continue
			}
			wd.Owner, wd.Gen = s.self, gen
		}
		s.obs.dispatched(d, now)
		typ := TypePoll
		switch d.Target.Kind {
		case jobKind:
			typ = TypeJobCheck
		case guestLogsKind:
			typ = TypeGuestLogs
		}
		a, err := NewAction(typ, wd)
		if err != nil {
			return err
		}
		a.Account, a.Customer, a.Resource = d.Target.Account, d.Target.Customer, d.Target.Resource
		a.Key = fmt.Sprintf("%s#%d", d.Target, d.Lease)
		actions = append(actions, a)
	}
	if len(fenced) > 0 {
		s.log.Warn("dispatches fenced: the lease of their shard ran out before it could be renewed; the shard is dropped",
			"fenced", len(ds)-len(actions), "fenced_total", s.fenced.Load(), "shards", len(fenced))
		for sh := range fenced {
			s.keeper.fence(sh)
		}
	}
	if len(actions) == 0 {
		return nil
	}
	return s.pub.Publish(ctx, actions...)
}

// wireDispatch is the payload of a dispatched action: the schedule's
// dispatch and, in a shared schedule, the publisher that made it and its
// shard's lease generation (the fencing token its outcome must carry back).
type wireDispatch struct {
	poller.Dispatch
	Owner string `json:"owner,omitempty"`
	Gen   int64  `json:"gen,omitempty"`
}

// scheduleJob puts a job's checks on the schedule if they are not there yet
// (and, in a shared schedule, the job's account is in a shard this process
// owns; the owner's job sync finds it otherwise).
func (s *scheduler) scheduleJob(t state.Target, every time.Duration) error {
	if s.keeper != nil {
		sh := shardOf(t.Account, s.nshards)
		s.smu.Lock()
		defer s.smu.Unlock()
		if _, ok := s.known[sh][t.Account]; !ok {
			addTo(s.extra, sh, t.Account, true)
		}
		if !s.owned[sh] {
			return nil
		}
	}
	if _, ok := s.sched.Lookup(t); ok {
		return nil
	}
	if err := s.sched.Set(t, every); err != nil {
		return err
	}
	s.obs.jobScheduled(t)
	return nil
}

// setTarget is Worker.Schedule: a target with its own interval, kept in a
// shared schedule for when this process owns its shard.
func (s *scheduler) setTarget(t state.Target, every time.Duration) error {
	if s.keeper == nil {
		return s.sched.Set(t, every)
	}
	if t.Account == "" || t.Kind == "" {
		return s.sched.Set(t, every) // the schedule's own error
	}
	sh := shardOf(t.Account, s.nshards)
	s.smu.Lock()
	defer s.smu.Unlock()
	addTo(s.own, sh, t, every)
	if !s.owned[sh] {
		return nil
	}
	return s.sched.Set(t, every)
}

// mine reports whether a dispatch was made by this process's schedule.
func (s *scheduler) mine(d wireDispatch) bool { return d.Owner == "" || d.Owner == s.self }

// stale and report make the scheduler the outcomes of its own dispatches
// (dispatchOutcomes) in a process that also handles them; another
// publisher's dispatch goes the way of remoteOutcomes.
func (s *scheduler) stale(d wireDispatch) bool {
	if !s.mine(d) {
		return s.now().Sub(d.DueAt) > s.inFlight
	}
	return !s.sched.Current(d.Dispatch)
}

func (s *scheduler) report(ctx context.Context, d wireDispatch, o poller.Outcome) error {
	if !s.mine(d) {
		return publishReport(ctx, s.pub, d, o)
	}
	s.apply(d, o)
	return nil
}

// apply applies the outcome of one of this process's dispatches; an
// outcome of a generation of its shard this process no longer holds is
// rejected and counted.
func (s *scheduler) apply(d wireDispatch, o poller.Outcome) bool {
	if s.keeper != nil && d.Owner != "" {
		if gen, ok := s.keeper.owns(shardOf(d.Target.Account, s.nshards)); !ok || gen != d.Gen {
			s.reject(d, "its shard's lease is no longer at that generation here")
			if ok && gen > d.Gen {
				s.adopt(d, o)
			}
			return false
		}
	}
	// The outcome's time is read, and the outcome counted as being applied,
	// before the schedule hears of it: once the target is no longer in
	// flight, idle stays false until its health is noted, at the time it
	// arrived (a test's fake clock may move the moment idle is true).
	now := s.now()
	s.applying.Add(1)
	defer s.applying.Add(-1)
	if !s.sched.Report(d.Dispatch, o) {
		targetLog(s.log, d.Target).Debug("stale poll report ignored", "target", d.Target.String())
		return false
	}
	s.noteOutcome(d.Dispatch, o, now)
	return true
}

// adopt keeps what a rejected report of an earlier owner's dispatch says
// about the account, which this process owns now: a throttled cloud pauses
// the account here too, so that the move of a shard does not break the
// cloud's RetryAfter.
func (s *scheduler) adopt(d wireDispatch, o poller.Outcome) {
	if o.Throttled && o.RetryAfter > 0 {
		s.sched.Pause(d.Target.Account, s.now().Add(o.RetryAfter))
	}
}

func (s *scheduler) reject(d wireDispatch, why string) {
	n := s.rejected.Add(1)
	s.obs.fenced("report")
	targetLog(s.log, d.Target).Debug("poll report of an earlier owner rejected; the current owner has its own dispatch",
		"target", d.Target.String(), "owner", d.Owner, "gen", d.Gen, "why", why, "rejected_total", n)
}

// pollReport carries a poll's outcome to the schedule of another process.
type pollReport struct {
	Dispatch   wireDispatch  `json:"dispatch"`
	Error      string        `json:"error,omitempty"`
	Throttled  bool          `json:"throttled,omitempty"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	Complete   bool          `json:"complete,omitempty"`
	Calls      int           `json:"calls,omitempty"`
}

func (r pollReport) outcome() poller.Outcome {
	o := poller.Outcome{Throttled: r.Throttled, RetryAfter: r.RetryAfter, Complete: r.Complete, Calls: r.Calls}
	if r.Error != "" {
		o.Err = errors.New(r.Error)
	}
	return o
}

// handleReport applies an outcome reported by another process. In a shared
// schedule, an outcome of another publisher's dispatch is forwarded to its
// shard's owner through the database (forwarded reports), unless this
// process owns the shard now: then the dispatch was an earlier owner's, and
// this process's own dispatch of the target supersedes it.
func (s *scheduler) handleReport(ctx context.Context, a Action) error {
	var r pollReport
	if err := a.Decode(&r); err != nil {
		return Permanent(err)
	}
	if s.mine(r.Dispatch) || s.keeper == nil {
		s.apply(r.Dispatch, r.outcome())
		return nil
	}
	sh := shardOf(r.Dispatch.Target.Account, s.nshards)
	if _, ok := s.keeper.owns(sh); ok {
		s.reject(r.Dispatch, "this process owns the shard now")
		s.adopt(r.Dispatch, r.outcome())
		return nil
	}
	if err := s.forwarder.forward(ctx, persist.ForwardedReport{Shard: sh, Generation: r.Dispatch.Gen, Body: a.Payload}); err != nil {
		return fmt.Errorf("worker: forward a poll report to the owner of shard %d: %w", sh, err)
	}
	return nil
}

// applyForwarded is a publisher's duty in a shared schedule: it applies the
// reports other publishers forwarded to the shards it owns.
func (s *scheduler) applyForwarded(ctx context.Context) error {
	for {
		shards := s.keeper.heldShards()
		rows, err := s.forward.ForwardedReports(ctx, shards, forwardBatch)
		if err != nil || len(rows) == 0 {
			return err
		}
		ids := make([]int64, 0, len(rows))
		for _, row := range rows {
			ids = append(ids, row.ID)
			var r pollReport
			if json.Unmarshal(row.Body, &r) != nil {
				continue
			}
			s.apply(r.Dispatch, r.outcome())
		}
		if err := s.forward.DeleteForwardedReports(ctx, ids...); err != nil {
			return err
		}
		if len(rows) < forwardBatch {
			return nil
		}
	}
}

const forwardBatch = 500

// dispatchOutcomes is where the handlers of dispatched targets learn whether
// a dispatch is still wanted and send its outcome: the scheduler itself in a
// process that has one, remoteOutcomes in a subscriber-only process.
type dispatchOutcomes interface {
	stale(d wireDispatch) bool
	report(ctx context.Context, d wireDispatch, o poller.Outcome) error
}

// remoteOutcomes sends outcomes to the publisher processes' schedule as
// "poll.report" actions, and judges a dispatch stale by its lease's age.
type remoteOutcomes struct {
	pub      actionPublisher
	now      func() time.Time
	inFlight time.Duration // the schedule's InFlightTimeout
}

func (r remoteOutcomes) stale(d wireDispatch) bool { return r.now().Sub(d.DueAt) > r.inFlight }

func (r remoteOutcomes) report(ctx context.Context, d wireDispatch, o poller.Outcome) error {
	return publishReport(ctx, r.pub, d, o)
}

func publishReport(ctx context.Context, pub actionPublisher, d wireDispatch, o poller.Outcome) error {
	rep := pollReport{Dispatch: d, Throttled: o.Throttled, RetryAfter: o.RetryAfter, Complete: o.Complete, Calls: o.Calls}
	if o.Err != nil {
		rep.Error = o.Err.Error()
	}
	a, err := NewAction(TypePollReport, rep)
	if err != nil {
		return err
	}
	a.Account, a.Customer = d.Target.Account, d.Target.Customer
	return pub.Publish(ctx, a)
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
		wd, err := decodeDispatch(a)
		if err != nil {
			return err
		}
		d := wd.Dispatch
		tlog := targetLog(log, d.Target)
		if out.stale(wd) {
			tlog.Debug("stale dispatch dropped", "type", a.Type, "target", d.Target.String(), "lease", d.Lease)
			return nil
		}
		o, err := run(ctx, d)
		if err != nil {
			return err
		}
		if tlog.Enabled(ctx, slog.LevelDebug) {
			tlog.Debug("dispatch handled", "type", a.Type, "target", d.Target.String(), "owner", wd.Owner, "gen", wd.Gen,
				"dispatched_at", a.CreatedAt, "ok", o.Err == nil)
		}
		if o.Err != nil && ctx.Err() == nil && !errors.Is(o.Err, context.Canceled) { // not at shutdown
			tlog.Warn("poll failed", "target", d.Target.String(), "throttled", o.Throttled, "retry_after", o.RetryAfter, "err", o.Err)
		}
		return out.report(ctx, wd, o)
	}
}

func decodeDispatch(a Action) (wireDispatch, error) {
	var d wireDispatch
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
