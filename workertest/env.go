package workertest

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/workerlink"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// DefaultStart is the time an [Env]'s clock shows when it is made (unless
// [SharedClock] gives it one).
var DefaultStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// DefaultWait is how long, in real time, an [Env] waits for the worker
// (Settle, Advance, Event, Drain) before it fails the test. See [WithWait].
const DefaultWait = 10 * time.Second

// DefaultEvents are the event types an [Env] records (see [Env.Event]):
// the changes and deletions of the kinds package cloud polls, and the
// outcomes of tracked jobs.
var DefaultEvents = []string{
	"server.changed", "server.deleted",
	"firewall.changed", "firewall.deleted",
	"budget.changed", "budget.deleted",
	persist.EventJobCompleted, persist.EventJobFailed, persist.EventJobTimedOut,
}

// drainGrace is how long Drain lets events already sent by the relay reach
// their handler.
const drainGrace = 100 * time.Millisecond

// Env is a whole worker for a test: the embedded transport (gochannel), an
// in-memory SQLite database (persist.MemoryDSN) and a simulated cloud
// (cloud/sim), all on one fake clock that the test moves. Everything else is
// the worker's default configuration, as shipped: intervals, jitter, retry
// policy, budgets, timeouts; only its logs go to the test's log (t.Log, Info
// and up, shown with -v or on failure). [WithConfig] changes any of it.
//
// Make it with [NewEnv]; register pollers and handlers, watch accounts,
// then [Env.Start] it. Move time with [Env.Advance], and read what the
// worker did from the Cloud, the store (Worker.Store(), a read-only view)
// and its events ([Env.Event], [Env.Drain]). The Env stops the worker when
// the test ends.
//
// Only the schedule's work (polls, job checks, log collections) is waited
// for by Advance. Actions the test publishes itself, and retries parked for
// later, run when the worker gets to them: the parked-retry pump and the
// outbox relay look every Config.DeferredInterval of real time (default
// 1s). Wait for their effects with Event, or require.Eventually.
type Env struct {
	// Worker is the worker under test. Its Config.Schedule.Clock is Clock
	// and its Config.Cloud is Cloud.
	Worker *worker.Worker
	// Cloud is the simulated cloud; its Config.Now reads Clock.
	Cloud *sim.Cloud
	// Clock is the fake clock of the schedule, the worker and the cloud.
	Clock *clock.Fake

	wait     time.Duration
	recorded []string
	events   chan worker.Action
	logs     *testLog

	mu      sync.Mutex
	held    []worker.Action // received, not yet taken by Event
	started bool
	stopped bool
	stop    func() error
}

// EnvOption sets one setting of [NewEnv].
type EnvOption interface{ applyEnv(*envConfig) }

type envConfig struct {
	clock    *clock.Fake
	cloud    *sim.Cloud
	simCfg   []func(*sim.Config)
	workCfg  []func(*worker.Config)
	events   []string
	wait     time.Duration
	noEvents bool
}

type envOptionFunc func(*envConfig)

func (f envOptionFunc) applyEnv(c *envConfig) { f(c) }

// SharedClock makes the Env run on clk, so that two Envs (a publisher and a
// subscriber process, say) see one time. Default: a new clock.Fake showing
// [DefaultStart].
func SharedClock(clk *clock.Fake) EnvOption {
	return envOptionFunc(func(c *envConfig) { c.clock = clk })
}

// SharedCloud makes the Env use cloud instead of a new one; its Config.Now
// should read the Env's clock. Default: a new sim.Cloud on sim's default
// configuration with Now reading the Env's clock.
func SharedCloud(cloud *sim.Cloud) EnvOption {
	return envOptionFunc(func(c *envConfig) { c.cloud = cloud })
}

// WithSim changes the configuration of the Env's new simulated cloud
// (launch delays, eventual consistency, page sizes, faults) before it is
// made. Now is already set to the Env's clock. Ignored with [SharedCloud].
func WithSim(f func(*sim.Config)) EnvOption {
	return envOptionFunc(func(c *envConfig) { c.simCfg = append(c.simCfg, f) })
}

// WithConfig changes the worker's Config before the worker is made. The
// Env has set Store (an in-memory database), Schedule.Clock, Cloud and
// Logger (the test's log, from Info up); f may change any of them, and
// anything else: a Role, a Transport shared with another Env, guest-log
// collection, a shorter retry policy.
func WithConfig(f func(*worker.Config)) EnvOption {
	return envOptionFunc(func(c *envConfig) { c.workCfg = append(c.workCfg, f) })
}

// WithEvents records these event types instead of [DefaultEvents]: the Env
// registers a handler for each, so the test must not. WithEvents() with
// none records nothing. A publisher-only worker (RolePublisher) handles
// nothing and so records nothing.
func WithEvents(types ...string) EnvOption {
	return envOptionFunc(func(c *envConfig) { c.events, c.noEvents = types, len(types) == 0 })
}

// WithWait sets how long, in real time, the Env waits for the worker before
// it fails the test. Default [DefaultWait]. It bounds a wait; it is not a
// timing the test asserts.
func WithWait(d time.Duration) EnvOption {
	return envOptionFunc(func(c *envConfig) { c.wait = d })
}

// NewEnv makes a worker on the embedded transport, an in-memory database
// and a simulated cloud that share one fake clock (see [Env]), and
// registers a handler recording each event type of [DefaultEvents] (see
// [WithEvents]). The worker is not running yet: register what the test
// needs, then call [Env.Start]. It is stopped, or closed, when the test
// ends.
func NewEnv(t testing.TB, opts ...EnvOption) *Env {
	t.Helper()
	ec := envConfig{wait: DefaultWait}
	for _, o := range opts {
		o.applyEnv(&ec)
	}
	if ec.wait <= 0 {
		t.Fatalf("workertest.NewEnv: WithWait(%v): must be positive", ec.wait)
	}
	if ec.clock == nil {
		ec.clock = clock.NewFake(DefaultStart)
	}
	if ec.cloud == nil {
		sc := sim.Config{Now: ec.clock.Now}
		for _, f := range ec.simCfg {
			f(&sc)
		}
		c, err := sim.New(sc)
		if err != nil {
			t.Fatalf("workertest.NewEnv: simulated cloud: %v", err)
		}
		ec.cloud = c
	}
	if ec.events == nil && !ec.noEvents {
		ec.events = DefaultEvents
	}

	e := &Env{Cloud: ec.cloud, Clock: ec.clock, wait: ec.wait, logs: newTestLog(t),
		events: make(chan worker.Action, 10_000)}
	cfg := worker.Config{
		Store:    persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}},
		Schedule: poller.Config{Clock: ec.clock},
		Cloud:    ec.cloud,
		Logger:   slog.New(e.logs),
	}
	for _, f := range ec.workCfg {
		f(&cfg)
	}
	w, err := worker.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("workertest.NewEnv: %v", err)
	}
	e.Worker = w
	e.stop = w.Close
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("workertest: stopping the worker: %v", err)
		}
	})
	if cfg.Role != worker.RolePublisher {
		for _, typ := range ec.events {
			if err := w.HandleFunc(typ, e.record); err != nil {
				t.Fatalf("workertest.NewEnv: recording %s events: %v", typ, err)
			}
			e.recorded = append(e.recorded, typ)
		}
	}
	return e
}

func (e *Env) record(_ context.Context, a worker.Action) error {
	select {
	case e.events <- a:
		return nil
	default:
		return errors.New("workertest: the Env's event buffer is full; take events with Event or Drain")
	}
}

// Start runs the worker until the test ends (or [Env.Stop]), and returns
// once it consumes its queues.
func (e *Env) Start(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	if e.started || e.stopped {
		e.mu.Unlock()
		t.Fatalf("workertest: Env.Start: the worker was already started or stopped")
	}
	e.started = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Worker.Run(ctx) }()
	var once sync.Once
	var runErr error
	e.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	e.mu.Unlock()
	select {
	case <-e.Worker.Running():
	case err := <-done:
		done <- err // for stop
		t.Fatalf("workertest: Env.Start: the worker did not start: %v", err)
	case <-time.After(e.wait):
		t.Fatalf("workertest: Env.Start: the worker did not start within %v", e.wait)
	}
}

// Stop stops the worker (or closes it, if it never started) and returns
// what Run returned. The Env calls it when the test ends; calling it
// earlier, or again, is fine.
func (e *Env) Stop() error {
	e.mu.Lock()
	stop := e.stop
	e.stop = func() error { return nil }
	e.stopped = true
	e.mu.Unlock()
	err := stop()
	e.logs.close()
	return err
}

// Advance moves the clock forward by d in steps of step (the last one
// shorter if step does not divide d), and after each step waits until the
// schedule has finished the work that came due ([Env.Settle]): the polls,
// job checks and log collections it dispatched have run and reported.
// Small steps let work that comes due in between run at its own time, as
// it would in real time.
func (e *Env) Advance(t testing.TB, d, step time.Duration) {
	t.Helper()
	if d < 0 || step <= 0 {
		t.Fatalf("workertest: Env.Advance(%v, %v): d must not be negative and step must be positive", d, step)
	}
	for moved := time.Duration(0); moved < d; {
		s := min(step, d-moved)
		e.Clock.Advance(s)
		moved += s
		e.Settle(t)
	}
}

// Settle waits until the schedule is idle at the clock's now
// ([worker.Worker.ScheduleIdle]): no dispatched poll, job check or log
// collection awaits its outcome and none is due.
func (e *Env) Settle(t testing.TB) {
	t.Helper()
	e.mustBeStarted(t, "Settle")
	deadline := time.Now().Add(e.wait)
	for !e.Worker.ScheduleIdle() {
		if time.Now().After(deadline) {
			t.Fatalf("workertest: the schedule did not settle at %s within %v of real time (a poll or job check is stuck, or its outcome was lost)",
				e.Clock.Now().Format(time.RFC3339), e.wait)
		}
		time.Sleep(time.Millisecond)
	}
}

// Event returns the next event of type typ the worker published, waiting
// for it if none has arrived; events of other types that arrive meanwhile
// are kept for later calls. typ must be recorded (see [WithEvents]).
// Events are relayed from the outbox every Config.DeferredInterval of real
// time; Event does not move the clock.
func (e *Env) Event(t testing.TB, typ string) worker.Action {
	t.Helper()
	if !slices.Contains(e.recorded, typ) {
		t.Fatalf("workertest: Env.Event(%q): the Env does not record %s events (it records %v; see WithEvents)", typ, typ, e.recorded)
	}
	e.mustBeStarted(t, "Event")
	if a, ok := e.take(typ); ok {
		return a
	}
	timeout := time.After(e.wait)
	for {
		select {
		case a := <-e.events:
			if a.Type == typ {
				return a
			}
			e.mu.Lock()
			e.held = append(e.held, a)
			e.mu.Unlock()
		case <-timeout:
			t.Fatalf("workertest: no %s event within %v of real time", typ, e.wait)
		}
	}
}

func (e *Env) take(typ string) (worker.Action, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, a := range e.held {
		if a.Type == typ {
			e.held = slices.Delete(e.held, i, i+1)
			return a, true
		}
	}
	return worker.Action{}, false
}

// Drain waits until the outbox holds no event left to publish, then
// returns, in order of arrival, every recorded event that [Env.Event] has
// not taken, and forgets them. After Settle, an empty result means the
// work so far published nothing more: require.Empty(t, env.Drain(t)).
func (e *Env) Drain(t testing.TB) []worker.Action {
	t.Helper()
	e.mustBeStarted(t, "Drain")
	if st := workerlink.BuiltinStore(e.Worker); st != nil {
		deadline := time.Now().Add(e.wait)
		for {
			pending, err := st.PendingEvents(context.Background(), 1)
			if err != nil {
				t.Fatalf("workertest: Env.Drain: reading the outbox: %v", err)
			}
			if len(pending) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("workertest: Env.Drain: the outbox still has events to publish after %v of real time", e.wait)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(drainGrace) // events the relay has just sent reach their handler
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.held
	e.held = nil
	for {
		select {
		case a := <-e.events:
			out = append(out, a)
		default:
			return out
		}
	}
}

// Publish publishes actions through the worker, failing the test on error.
func (e *Env) Publish(t testing.TB, actions ...worker.Action) {
	t.Helper()
	if err := e.Worker.Publish(context.Background(), actions...); err != nil {
		t.Fatalf("workertest: Env.Publish: %v", err)
	}
}

func (e *Env) mustBeStarted(t testing.TB, what string) {
	t.Helper()
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		t.Fatalf("workertest: Env.%s before Env.Start", what)
	}
}

// testLog is a slog.Handler writing to the test's log until the Env stops:
// a line logged after the test ended would make the testing package panic.
type testLog struct {
	t      testing.TB
	prefix string      // the open groups, "g1.g2."
	attrs  string      // the attributes added with WithAttrs, formatted
	state  *testLogEnd // shared by every handler derived from this one
}

type testLogEnd struct {
	mu   sync.RWMutex
	done bool
}

func newTestLog(t testing.TB) *testLog { return &testLog{t: t, state: &testLogEnd{}} }

func (h *testLog) close() {
	h.state.mu.Lock()
	h.state.done = true
	h.state.mu.Unlock()
}

func (h *testLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *testLog) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message + h.attrs
	r.Attrs(func(a slog.Attr) bool { line += h.format(a); return true })
	h.state.mu.RLock()
	defer h.state.mu.RUnlock()
	if !h.state.done {
		h.t.Log(line)
	}
	return nil
}

func (h *testLog) format(a slog.Attr) string {
	a.Key = h.prefix + a.Key
	return " " + a.String()
}

func (h *testLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	for _, a := range as {
		c.attrs += h.format(a)
	}
	return &c
}

func (h *testLog) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix += name + "."
	return &c
}
