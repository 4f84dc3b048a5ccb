package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// observer is what the parts tell the metrics (Config.Metrics). Without a
// registerer it is noObserver, whose methods do nothing, so the parts call
// it unconditionally. Every label it takes is bounded: action types by the
// types this process knows (handlers, routes, built-ins; anything else is
// "other"), kinds by the schedule's registered kinds, outcomes and
// operations by the fixed sets the parts pass.
type observer interface {
	// knowType adds an action type to those that get their own label.
	knowType(typ string)
	published(typ string)
	// attempted is one attempt of a handler: its duration and error.
	attempted(typ string, took time.Duration, err error)
	retried(typ string)
	snoozed(typ string)
	poisoned(typ string)
	// queued is the time an action waited on its queue before its first attempt.
	queued(typ string, waited time.Duration)
	// dispatched is a dispatch of the schedule at now: how late it is.
	dispatched(d poller.Dispatch, now time.Time)
	// polled is the outcome of a current dispatch, applied at now.
	polled(d poller.Dispatch, o poller.Outcome, now time.Time)
	// jobScheduled is a job's checks put on the schedule.
	jobScheduled(t state.Target)
	forgetAccount(account string)
	jobFinished(st persist.JobState)
	launched(outcome string)
	guestLogs(bytes int64, guests, failed, skipped int)
	dbError(op string)
	mqError(op string)
	// fenced counts what a shared schedule refused: op "dispatch" (its
	// shard's lease had run out) or "report" (of an older generation).
	fenced(op string)
}

// Operations of worker_db_errors_total and worker_mq_errors_total.
const (
	opPark      = "park"      // parking a retry (DeferStore)
	opPoison    = "poison"    // recording a poisoned action
	opSave      = "save"      // saving a poll's page
	opSweep     = "sweep"     // the deletion check after a complete listing
	opAccount   = "account"   // reading the account registry
	opJob       = "job"       // reading or finishing a tracked job
	opHeartbeat = "heartbeat" // writing the instance row / publishing the heartbeat
	opMembers   = "members"   // reading the membership view at a scrape
	opPublish   = "publish"   // publishing actions
	opDelay     = "delay"     // holding an action on the transport
	opRepublish = "republish" // republishing a parked retry or a replayed action
)

// Outcomes of worker_launches_total.
const (
	launchLaunched = "launched" // the cloud call launched a server
	launchFound    = "found"    // an earlier attempt's server, found by its key
	launchFailed   = "failed"   // the cloud refused or failed the launch call
)

// otherType is the label of every action type this process does not know.
const otherType = "other"

type noObserver struct{}

func (noObserver) knowType(string)                                   {}
func (noObserver) published(string)                                  {}
func (noObserver) attempted(string, time.Duration, error)            {}
func (noObserver) retried(string)                                    {}
func (noObserver) snoozed(string)                                    {}
func (noObserver) poisoned(string)                                   {}
func (noObserver) queued(string, time.Duration)                      {}
func (noObserver) dispatched(poller.Dispatch, time.Time)             {}
func (noObserver) polled(poller.Dispatch, poller.Outcome, time.Time) {}
func (noObserver) jobScheduled(state.Target)                         {}
func (noObserver) forgetAccount(string)                              {}
func (noObserver) jobFinished(persist.JobState)                      {}
func (noObserver) launched(string)                                   {}
func (noObserver) guestLogs(int64, int, int, int)                    {}
func (noObserver) dbError(string)                                    {}
func (noObserver) mqError(string)                                    {}
func (noObserver) fenced(string)                                     {}

// Histogram buckets.
var (
	// handlerBuckets cover a fast in-memory handler (1ms) to the default
	// HandlerTimeout (1m).
	handlerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// lagBuckets cover a queue or schedule keeping up (10ms) to one an
	// hour behind.
	lagBuckets = []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// promObserver is the observer on a Prometheus registerer.
type promObserver struct {
	topology Topology
	now      func() time.Time

	published_, handled, failed, retried_, snoozed_, poisoned_ *prometheus.CounterVec
	handlerSeconds, queueLag, pollLag                          *prometheus.HistogramVec
	polls, jobsFinished, launches, guestLogGuests              *prometheus.CounterVec
	guestLogBytes                                              prometheus.Counter
	dbErrors, mqErrors, fencedOps                              *prometheus.CounterVec

	known  atomic.Pointer[map[string]bool] // copy on write
	knowMu sync.Mutex
	series sync.Map // action type (or otherType) → *typeSeries

	mu         sync.Mutex
	lastOK     map[state.Target]time.Time // per polled target: its last success (first dispatch until one)
	jobTargets map[state.Target]bool      // the jobs this process's schedule has put on it
}

// typeSeries are the children of one type label, looked up once.
type typeSeries struct {
	published, handled, failed, retried, snoozed, poisoned prometheus.Counter
	handlerSeconds, queueLag                               prometheus.Observer
}

// metricSources are what the scrape-time collectors read.
type metricSources struct {
	now        func() time.Time
	health     func() (throttled, backingOff int) // nil: no schedule
	inSchedule func(state.Target) bool            // nil: no schedule
	members    func(ctx context.Context) ([]Member, error)
}

// newPromObserver makes the metrics and registers them on reg. The
// collectors are returned so that Close can unregister them.
func newPromObserver(reg prometheus.Registerer, t Topology, src metricSources) (*promObserver, []prometheus.Collector, error) {
	o := &promObserver{topology: t, now: src.now, lastOK: map[state.Target]time.Time{}, jobTargets: map[state.Target]bool{}}
	o.topology.compile()
	byType := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"type"})
	}
	o.published_ = byType("worker_actions_published_total", "Actions published, by type.")
	o.handled = byType("worker_actions_handled_total", "Actions whose handler succeeded, by type.")
	o.failed = byType("worker_actions_failed_total", "Failed attempts of a handler (an error other than Snooze, a panic, a timeout, no handler), by type.")
	o.retried_ = byType("worker_actions_retried_total", "Failed attempts that will be retried, by type.")
	o.snoozed_ = byType("worker_actions_snoozed_total", "Attempts that snoozed, by type.")
	o.poisoned_ = byType("worker_actions_poisoned_total", "Actions poisoned (recorded in the poison store, or dead-lettered), by type.")
	o.handlerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "worker_handler_duration_seconds",
		Help: "Duration of one attempt of a handler, by action type.", Buckets: handlerBuckets}, []string{"type"})
	o.queueLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "worker_queue_lag_seconds",
		Help: "Time from an action's creation to its first attempt, by queue.", Buckets: lagBuckets}, []string{"queue"})
	o.pollLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "worker_poll_lag_seconds",
		Help: "How far past its due time the schedule dispatched a poll, by kind.", Buckets: lagBuckets}, []string{"kind"})
	o.polls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_polls_total",
		Help: "Poll outcomes applied to the schedule, by kind and outcome (ok, failed, throttled)."}, []string{"kind", "outcome"})
	o.jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_jobs_finished_total",
		Help: "Tracked jobs this process finished, by outcome (succeeded, failed, timed_out)."}, []string{"outcome"})
	o.launches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_launches_total",
		Help: "server.launch cloud calls, by outcome (launched, found, failed)."}, []string{"outcome"})
	o.guestLogGuests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_guest_log_guests_total",
		Help: "Guests whose logs were collected, by outcome (ok, failed, skipped)."}, []string{"outcome"})
	o.guestLogBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "worker_guest_log_bytes_total",
		Help: "Bytes of guest logs copied."})
	o.dbErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_db_errors_total",
		Help: "Failed store operations the worker saw, by operation."}, []string{"op"})
	o.mqErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_mq_errors_total",
		Help: "Failed transport operations the worker saw, by operation."}, []string{"op"})
	o.fencedOps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_schedule_fenced_total",
		Help: "What a shared schedule refused, by op: dispatch (its shard's lease had run out here), report (of a lease generation this process does not hold)."}, []string{"op"})
	cs := []prometheus.Collector{o.fencedOps, o.published_, o.handled, o.failed, o.retried_, o.snoozed_, o.poisoned_,
		o.handlerSeconds, o.queueLag, o.pollLag, o.polls, o.jobsFinished, o.launches, o.guestLogGuests, o.guestLogBytes,
		o.dbErrors, o.mqErrors, &scrapeCollector{o: o, src: src}}
	known := map[string]bool{}
	for _, typ := range builtinTypes {
		known[typ] = true
	}
	for k := range t.Routes {
		if validType(k) {
			known[k] = true
		}
	}
	o.known.Store(&known)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, r := range cs[:i] {
				reg.Unregister(r)
			}
			return nil, nil, err
		}
	}
	return o, cs, nil
}

// builtinTypes are the action types of the worker itself.
var builtinTypes = []string{TypePoll, TypeJobCheck, TypeJobTrack, TypePollReport, TypeServerLaunch, TypeGuestLogs,
	TypeHeartbeat, TypeAccountPut, TypeAccountDelete,
	persist.EventJobCompleted, persist.EventJobFailed, persist.EventJobTimedOut}

func (o *promObserver) knowType(typ string) {
	o.knowMu.Lock()
	defer o.knowMu.Unlock()
	old := *o.known.Load()
	if old[typ] {
		return
	}
	known := make(map[string]bool, len(old)+1)
	for k := range old {
		known[k] = true
	}
	known[typ] = true
	o.known.Store(&known)
}

// of returns the series of an action type: its own if known, else other's.
func (o *promObserver) of(typ string) *typeSeries {
	if s, ok := o.series.Load(typ); ok {
		return s.(*typeSeries)
	}
	label := typ
	if !(*o.known.Load())[typ] {
		label = otherType
		if s, ok := o.series.Load(otherType); ok {
			return s.(*typeSeries)
		}
	}
	queue := string(o.topology.QueueFor(label))
	if label == otherType {
		queue = string(QueueActions)
	}
	s := &typeSeries{
		published: o.published_.WithLabelValues(label), handled: o.handled.WithLabelValues(label),
		failed: o.failed.WithLabelValues(label), retried: o.retried_.WithLabelValues(label),
		snoozed: o.snoozed_.WithLabelValues(label), poisoned: o.poisoned_.WithLabelValues(label),
		handlerSeconds: o.handlerSeconds.WithLabelValues(label), queueLag: o.queueLag.WithLabelValues(queue),
	}
	actual, _ := o.series.LoadOrStore(label, s)
	return actual.(*typeSeries)
}

func (o *promObserver) published(typ string) { o.of(typ).published.Inc() }
func (o *promObserver) retried(typ string)   { o.of(typ).retried.Inc() }
func (o *promObserver) snoozed(typ string)   { o.of(typ).snoozed.Inc() }
func (o *promObserver) poisoned(typ string)  { o.of(typ).poisoned.Inc() }

func (o *promObserver) attempted(typ string, took time.Duration, err error) {
	s := o.of(typ)
	s.handlerSeconds.Observe(took.Seconds())
	if err == nil {
		s.handled.Inc()
	} else if _, ok := snoozed(err); !ok {
		s.failed.Inc()
	}
}

func (o *promObserver) queued(typ string, waited time.Duration) {
	o.of(typ).queueLag.Observe(max(waited, 0).Seconds())
}

func (o *promObserver) dispatched(d poller.Dispatch, now time.Time) {
	o.pollLag.WithLabelValues(d.Target.Kind).Observe(max(now.Sub(d.DueAt), 0).Seconds())
	if d.Target.Kind == jobKind {
		return
	}
	o.mu.Lock()
	if _, ok := o.lastOK[d.Target]; !ok {
		o.lastOK[d.Target] = d.DueAt // not observed yet: stale from its first due time
	}
	o.mu.Unlock()
}

func (o *promObserver) polled(d poller.Dispatch, out poller.Outcome, now time.Time) {
	outcome := "ok"
	switch {
	case out.Throttled:
		outcome = "throttled"
	case out.Err != nil:
		outcome = "failed"
	}
	o.polls.WithLabelValues(d.Target.Kind, outcome).Inc()
	if outcome != "ok" || d.Target.Kind == jobKind {
		return
	}
	o.mu.Lock()
	o.lastOK[d.Target] = now
	o.mu.Unlock()
}

func (o *promObserver) jobScheduled(t state.Target) {
	o.mu.Lock()
	o.jobTargets[t] = true
	o.mu.Unlock()
}

func (o *promObserver) forgetAccount(account string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for t := range o.lastOK {
		if t.Account == account {
			delete(o.lastOK, t)
		}
	}
}

func (o *promObserver) jobFinished(st persist.JobState) {
	o.jobsFinished.WithLabelValues(string(st)).Inc()
}
func (o *promObserver) launched(outcome string) { o.launches.WithLabelValues(outcome).Inc() }
func (o *promObserver) dbError(op string)       { o.dbErrors.WithLabelValues(op).Inc() }
func (o *promObserver) mqError(op string)       { o.mqErrors.WithLabelValues(op).Inc() }
func (o *promObserver) fenced(op string)        { o.fencedOps.WithLabelValues(op).Inc() }

func (o *promObserver) guestLogs(bytes int64, guests, failed, skipped int) {
	o.guestLogBytes.Add(float64(bytes))
	o.guestLogGuests.WithLabelValues("ok").Add(float64(guests - failed - skipped))
	o.guestLogGuests.WithLabelValues("failed").Add(float64(failed))
	o.guestLogGuests.WithLabelValues("skipped").Add(float64(skipped))
}

// maxMemberSeries bounds worker_heartbeat_age_seconds: the members that
// beat most recently.
const maxMemberSeries = 100

// membersScrapeTimeout bounds the read of the membership view at a scrape.
const membersScrapeTimeout = 2 * time.Second

var (
	descStaleness = prometheus.NewDesc("worker_poll_staleness_seconds",
		"Age of the oldest last successful poll among the schedule's targets of a kind (a target never polled successfully counts from its first due time).",
		[]string{"kind"}, nil)
	descThrottled = prometheus.NewDesc("worker_accounts_throttled",
		"Accounts whose last poll the cloud throttled.", nil, nil)
	descBackingOff = prometheus.NewDesc("worker_accounts_backing_off",
		"Accounts whose last poll failed (not throttled): the schedule backs off.", nil, nil)
	descJobsInFlight = prometheus.NewDesc("worker_jobs_in_flight",
		"Tracked jobs on this process's schedule, not finished yet.", nil, nil)
	descHeartbeatAge = prometheus.NewDesc("worker_heartbeat_age_seconds",
		"Time since the last heartbeat of each worker instance that has not stopped (the 100 most recent).",
		[]string{"member", "status"}, nil)
	descMembers = prometheus.NewDesc("worker_members",
		"Worker instances of the membership view, by status (alive, dead, stopped).", []string{"status"}, nil)
)

// scrapeCollector computes at scrape time what is a state, not a count.
type scrapeCollector struct {
	o   *promObserver
	src metricSources
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStaleness, descThrottled, descBackingOff, descJobsInFlight, descHeartbeatAge, descMembers} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.src.now()
	if c.src.health != nil {
		throttled, backingOff := c.src.health()
		ch <- prometheus.MustNewConstMetric(descThrottled, prometheus.GaugeValue, float64(throttled))
		ch <- prometheus.MustNewConstMetric(descBackingOff, prometheus.GaugeValue, float64(backingOff))
	}
	c.o.mu.Lock()
	oldest := map[string]time.Time{}
	for t, at := range c.o.lastOK {
		if o, ok := oldest[t.Kind]; !ok || at.Before(o) {
			oldest[t.Kind] = at
		}
	}
	jobs := 0
	if c.src.inSchedule != nil {
		for t := range c.o.jobTargets {
			if c.src.inSchedule(t) {
				jobs++
			} else {
				delete(c.o.jobTargets, t) // finished (or its account unfollowed)
			}
		}
	}
	c.o.mu.Unlock()
	for kind, at := range oldest {
		ch <- prometheus.MustNewConstMetric(descStaleness, prometheus.GaugeValue, max(now.Sub(at), 0).Seconds(), kind)
	}
	if c.src.inSchedule != nil {
		ch <- prometheus.MustNewConstMetric(descJobsInFlight, prometheus.GaugeValue, float64(jobs))
	}
	c.collectMembers(ch, now)
}

func (c *scrapeCollector) collectMembers(ch chan<- prometheus.Metric, now time.Time) {
	if c.src.members == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), membersScrapeTimeout)
	defer cancel()
	ms, err := c.src.members(ctx)
	if err != nil {
		if !errors.Is(err, ErrNoMembership) {
			c.o.dbError(opMembers)
		}
		return
	}
	count := map[MemberStatus]int{MemberAlive: 0, MemberDead: 0, MemberStopped: 0}
	var beating []Member
	for _, m := range ms {
		count[m.Status]++
		if m.Status != MemberStopped {
			beating = append(beating, m)
		}
	}
	for _, st := range []MemberStatus{MemberAlive, MemberDead, MemberStopped} {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(count[st]), string(st))
	}
	slices.SortFunc(beating, func(a, b Member) int { return b.BeatAt.Compare(a.BeatAt) })
	for _, m := range beating[:min(len(beating), maxMemberSeries)] {
		ch <- prometheus.MustNewConstMetric(descHeartbeatAge, prometheus.GaugeValue, max(now.Sub(m.BeatAt), 0).Seconds(),
			m.ID, string(m.Status))
	}
}

// instrument gives every part the observer of Config.Metrics (noObserver
// without one) and registers the metrics; Close unregisters them.
func (w *Worker) instrument() error {
	var obs observer = noObserver{}
	if reg := w.cfg.Metrics; reg != nil {
		src := metricSources{now: w.now, members: w.Members}
		if s := w.sched; s != nil {
			src.health = s.failingAccounts
			src.inSchedule = func(t state.Target) bool { _, ok := s.sched.Lookup(t); return ok }
		}
		o, cs, err := newPromObserver(reg, w.cfg.Topology, src)
		if err != nil {
			return fmt.Errorf("%w: Metrics: %w", ErrInvalidConfig, err)
		}
		w.closers = append(w.closers, func() error {
			for _, c := range cs {
				reg.Unregister(c)
			}
			return nil
		})
		for _, typ := range w.sub.types() {
			o.knowType(typ)
		}
		for typ := range w.yielding {
			o.knowType(typ)
		}
		obs = o
	}
	w.obs = obs
	w.pub.obs, w.sub.obs, w.polls.obs, w.jobs.obs = obs, obs, obs, obs
	if w.sched != nil {
		w.sched.obs = obs
	}
	if w.launcher != nil {
		w.launcher.obs = obs
	}
	if w.guests != nil {
		w.guests.obs = obs
	}
	if w.beats != nil {
		w.beats.obs = obs
	}
	return nil
}

// failingAccounts counts the accounts whose last poll failed: throttled,
// and otherwise.
func (s *scheduler) failingAccounts() (throttled, backingOff int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.health {
		if h.Throttled {
			throttled++
		} else {
			backingOff++
		}
	}
	return throttled, backingOff
}

// types are the action types with a handler.
func (s *Subscriber) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.handlers))
	for t := range s.handlers {
		out = append(out, t)
	}
	return out
}
