package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
	"github.com/stretchr/testify/require"
)

var simStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// cloudHarness is a worker on the embedded transport and SQLite, polling a
// simulated cloud, with one fake clock for the schedule, the cloud and the
// worker's own notion of now.
type cloudHarness struct {
	t      *testing.T
	clk    *poller.FakeClock
	sim    *sim.Cloud
	w      *Worker
	db     string
	events chan Action
	held   []Action // received while waiting for another type
	stop   func()
}

type harnessOpt func(*Config, *sim.Config)

func newCloudHarness(t *testing.T, opts ...harnessOpt) *cloudHarness {
	t.Helper()
	clk := poller.NewFakeClock(simStart)
	scfg := sim.Config{Now: clk.Now, Seed: 7, LaunchDelay: 30 * time.Second, TerminateDelay: 10 * time.Second}
	cfg := Config{
		Store:            sqliteConfig(t),
		Schedule:         poller.Config{Clock: clk, Seed: 1, Jitter: -1, InitialSpread: -1, Budget: poller.Unlimited},
		Retry:            RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond, MaxAttempts: 50},
		DeletionGrace:    2 * time.Minute,
		DeferredInterval: 5 * time.Millisecond,
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, o := range opts {
		o(&cfg, &scfg)
	}
	c, err := sim.New(scfg)
	require.NoError(t, err)
	cfg.Cloud = c
	h := &cloudHarness{t: t, clk: clk, sim: c, db: cfg.Store.Provisioning.DSN, events: make(chan Action, 1000)}
	h.w = h.newWorker(cfg)
	return h
}

func (h *cloudHarness) newWorker(cfg Config) *Worker {
	w := newTestWorker(h.t, cfg)
	for _, typ := range []string{"server.changed", "server.deleted", "firewall.changed", "job.completed", "job.failed", "job.timed_out"} {
		require.NoError(h.t, w.HandleFunc(typ, func(_ context.Context, a Action) error {
			h.events <- a
			return nil
		}))
	}
	return w
}

func (h *cloudHarness) run(w *Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); require.NoError(h.t, <-done) }) }
	h.t.Cleanup(h.stop)
}

// advance moves the clock in steps, letting the work each step dispatches finish.
func (h *cloudHarness) advance(d, step time.Duration) {
	for moved := time.Duration(0); moved < d; moved += step {
		h.clk.Advance(step)
		h.settle()
	}
}

// settle waits until nothing is in flight: no due dispatch waits and every
// dispatched poll has been reported.
func (h *cloudHarness) settle() {
	require.Eventually(h.t, h.w.ScheduleIdle, 10*time.Second, time.Millisecond)
}

func (h *cloudHarness) event(typ string) Action {
	h.t.Helper()
	for i, a := range h.held {
		if a.Type == typ {
			h.held = append(h.held[:i], h.held[i+1:]...)
			return a
		}
	}
	for {
		select {
		case a := <-h.events:
			if a.Type == typ {
				return a
			}
			h.held = append(h.held, a)
		case <-time.After(10 * time.Second):
			h.t.Fatalf("no %s event within 10s", typ)
		}
	}
}

func (h *cloudHarness) drainEvents() []Action {
	out := h.held
	h.held = nil
	for {
		select {
		case a := <-h.events:
			out = append(out, a)
		case <-time.After(50 * time.Millisecond):
			return out
		}
	}
}

func (h *cloudHarness) addServers(account string, n int) []cloud.Server {
	var out []cloud.Server
	for i := 0; i < n; i++ {
		s, err := h.sim.AddServer(account, cloud.Server{Name: fmt.Sprintf("web-%d", i), Image: "debian-12", State: cloud.StateRunning})
		require.NoError(h.t, err)
		out = append(out, s)
	}
	return out
}

func (h *cloudHarness) registerStandard() {
	compute, err := h.sim.Compute()
	require.NoError(h.t, err)
	network, err := h.sim.Network()
	require.NoError(h.t, err)
	require.NoError(h.t, h.w.Register(cloud.ServerPoller{Compute: compute, PageSize: 2}, time.Minute))
	require.NoError(h.t, h.w.Register(cloud.FirewallPoller{Network: network}, 15*time.Second))
}

// TestPollStateAndEvents: the first polls store every server and firewall
// and publish their change events; steady state writes nothing and publishes
// nothing; a change is picked up at the next poll of its kind.
func TestPollStateAndEvents(t *testing.T) {
	t.Parallel()
	h := newCloudHarness(t)
	servers := h.addServers("acct-1", 5) // 3 pages of 2
	_, err := h.sim.AddFirewall("acct-1", cloud.Firewall{Name: "default"})
	require.NoError(t, err)
	h.registerStandard()
	require.NoError(t, h.w.Watch("acct-1", "acme"))
	h.run(h.w)
	h.settle()

	got := map[string]bool{}
	for i := 0; i < 5; i++ {
		got[h.event("server.changed").Resource] = true
	}
	h.event("firewall.changed")
	require.Len(t, got, 5)
	r, err := h.w.Store().Resource(context.Background(), "acct-1", "server", servers[0].ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Version)

	// Steady state: ten minutes of polls, no change, no event.
	listCalls := h.sim.Calls(sim.APIListServers)
	fwCalls := h.sim.Calls(sim.APIListFirewalls)
	h.advance(10*time.Minute, 5*time.Second)
	require.Empty(t, h.drainEvents(), "steady state publishes nothing")
	r2, err := h.w.Store().Resource(context.Background(), "acct-1", "server", servers[0].ID)
	require.NoError(t, err)
	require.Equal(t, r.Version, r2.Version, "steady state writes nothing")
	// Intervals: servers every minute (3 pages each), firewalls every 15 s.
	require.InDelta(t, 10*3, h.sim.Calls(sim.APIListServers)-listCalls, 3)
	require.InDelta(t, 40, h.sim.Calls(sim.APIListFirewalls)-fwCalls, 2)

	// A change shows up once, with the changed field.
	require.NoError(t, h.sim.SetServerState("acct-1", servers[2].ID, cloud.StateStopped))
	h.advance(time.Minute, 5*time.Second)
	ev := h.event("server.changed")
	require.Equal(t, servers[2].ID, ev.Resource)
	var ch state.Change
	require.NoError(t, ev.Decode(&ch))
	require.Equal(t, state.Updated, ch.Op)
	require.Equal(t, []string{"state"}, ch.Fields)
	require.Empty(t, h.drainEvents())
}

// TestPollDeletionAfterGrace: a server gone from complete listings is deleted
// only after DeletionGrace, with one server.deleted event.
func TestPollDeletionAfterGrace(t *testing.T) {
	t.Parallel()
	h := newCloudHarness(t)
	servers := h.addServers("acct-1", 3)
	h.registerStandard()
	require.NoError(t, h.w.Watch("acct-1", "acme"))
	h.run(h.w)
	h.settle()
	for i := 0; i < 3; i++ {
		h.event("server.changed")
	}
	compute, _ := h.sim.Compute()
	_, err := compute.Terminate(context.Background(), "acct-1", servers[1].ID)
	require.NoError(t, err)
	h.advance(21*time.Second, time.Second) // STOPPING → TERMINATED → gone from listings
	h.drainEvents()                        // the state changes on the way
	h.advance(time.Minute, 5*time.Second)  // first complete listing without it: marked missing
	r, err := h.w.Store().Resource(context.Background(), "acct-1", "server", servers[1].ID)
	require.NoError(t, err, "not deleted before the grace period")
	page, _ := compute.ListServers(context.Background(), "acct-1", cloud.ListOptions{})
	t.Logf("listed: %d, missing since %v, attrs %s", len(page.Servers), r.MissingSince, r.Attributes)
	h.advance(2*time.Minute, 5*time.Second)
	ev := h.event("server.deleted")
	require.Equal(t, servers[1].ID, ev.Resource)
	_, err = h.w.Store().Resource(context.Background(), "acct-1", "server", servers[1].ID)
	require.ErrorIs(t, err, persist.ErrNotFound)
	require.Empty(t, h.drainEvents())
}

// TestPollStatusAndFullListingsDoNotFlap: a status-only poller and a full
// poller of the same servers never make a server change back and forth.
func TestPollStatusAndFullListingsDoNotFlap(t *testing.T) {
	t.Parallel()
	h := newCloudHarness(t)
	servers := h.addServers("acct-1", 3)
	compute, _ := h.sim.Compute()
	require.NoError(t, h.w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, h.w.Register(cloud.ServerStatusPoller{Compute: compute}, 10*time.Second))
	require.NoError(t, h.w.Watch("acct-1", "acme"))
	h.run(h.w)
	h.advance(2*time.Minute, 5*time.Second)
	h.drainEvents()
	h.advance(5*time.Minute, 5*time.Second)
	require.Empty(t, h.drainEvents(), "no flapping between full and status-only shapes")
	require.NoError(t, h.sim.SetServerState("acct-1", servers[0].ID, cloud.StateStopped))
	h.advance(10*time.Second, 5*time.Second) // the status poll sees it first
	ev := h.event("server.changed")
	var ch state.Change
	require.NoError(t, ev.Decode(&ch))
	require.Equal(t, []string{"state"}, ch.Fields)
	var after map[string]any
	require.NoError(t, json.Unmarshal(ch.After.Attributes, &after))
	require.Equal(t, "STOPPED", after["state"])
	require.Equal(t, "web-0", after["name"], "a partial update keeps the full attributes")
	h.advance(2*time.Minute, 5*time.Second)
	require.Empty(t, h.drainEvents(), "the next full listing agrees")
}

// TestPollFailingAccountDoesNotDelayAnother: one account's cloud is down (and
// another throttled); a healthy account is polled on time throughout.
func TestPollFailingAccountDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	h := newCloudHarness(t)
	h.addServers("bad", 1)
	h.addServers("slow", 1)
	good := h.addServers("good", 1)
	compute, _ := h.sim.Compute()
	require.NoError(t, h.w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	for _, acct := range []string{"bad", "slow", "good"} {
		require.NoError(t, h.w.Watch(acct, "cust-"+acct))
	}
	h.sim.SetAccountDown("bad", fmt.Errorf("%w: connection reset", cloud.ErrCommunication))
	h.sim.SetAccountDown("slow", &cloud.ThrottledError{API: sim.APIListServers, RetryAfter: 10 * time.Minute})
	h.run(h.w)
	h.advance(5*time.Minute, 10*time.Second)
	_, err := h.w.Store().Resource(context.Background(), "good", "server", good[0].ID)
	require.NoError(t, err)
	require.NoError(t, h.sim.SetServerState("good", good[0].ID, cloud.StateStopped))
	h.advance(time.Minute, 10*time.Second)
	r, err := h.w.Store().Resource(context.Background(), "good", "server", good[0].ID)
	require.NoError(t, err)
	require.Contains(t, string(r.Attributes), "STOPPED", "the healthy account was polled on time")
	e, ok := h.w.sched.sched.Lookup(state.Target{Account: "bad", Kind: "server"})
	require.True(t, ok)
	require.Greater(t, e.Failures, 0, "the failing account backs off")
	// Recovery: the account comes back and is polled again.
	h.sim.SetAccountDown("bad", nil)
	h.advance(20*time.Minute, 30*time.Second)
	e, _ = h.w.sched.sched.Lookup(state.Target{Account: "bad", Kind: "server"})
	require.Zero(t, e.Failures)
}

// TestJobTrackedAcrossRestart: a job started by a dispatcher is tracked until
// the cloud finishes it, across a restart of the worker; job.completed is
// published once.
func TestJobTrackedAcrossRestart(t *testing.T) {
	t.Parallel()
	h := newCloudHarness(t)
	require.NoError(t, h.sim.AddAccount("acct-1"))
	compute, _ := h.sim.Compute()
	op, err := compute.Launch(context.Background(), "acct-1", cloud.LaunchRequest{Image: "debian-12"})
	require.NoError(t, err)
	cfg := h.w.cfg
	h.run(h.w)
	require.NoError(t, h.w.TrackJob(context.Background(), persist.Job{ID: "job-1", Account: "acct-1", OperationID: op.ID}))
	h.advance(20*time.Second, 5*time.Second)
	h.stop() // the worker goes away mid-job

	w2 := h.newWorker(cfg) // same database, same cloud
	h.w = w2
	h.run(w2)
	h.advance(30*time.Second, 5*time.Second)
	ev := h.event("job.completed")
	var done persist.Job
	require.NoError(t, ev.Decode(&done))
	require.Equal(t, "job-1", done.ID)
	require.Equal(t, op.ResourceID, ev.Resource, "the event names the server")
	j, err := w2.Store().Job(context.Background(), "job-1")
	require.NoError(t, err)
	require.Equal(t, persist.JobSucceeded, j.State)
	require.Equal(t, op.ResourceID, j.ResourceID)
	h.advance(time.Minute, 10*time.Second)
	require.Empty(t, h.drainEvents(), "published once")
}

// TestLaunchCrashAfterCloudCall: the worker dies right after the cloud
// launched the server, before recording it. The redelivered action finds the
// server by its key: exactly one server, one job, one job.completed.
func TestLaunchCrashAfterCloudCall(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 20 * time.Second} {
		t.Run(fmt.Sprintf("ConsistencyDelay%s", delay), func(t *testing.T) {
			t.Parallel()
			h := newCloudHarness(t, func(c *Config, s *sim.Config) {
				s.ConsistencyDelay = delay
				c.LaunchConsistencyWindow = time.Minute
				c.SourceCIDR = netip.MustParsePrefix("192.0.2.0/28")
			})
			require.NoError(t, h.sim.AddAccount("acct-1"))
			fw, err := h.sim.AddFirewall("acct-1", cloud.Firewall{Name: "web"})
			require.NoError(t, err)
			var crashes sync.Once
			h.w.launcher.afterLaunch = func() error {
				err := errors.New("simulated crash after the cloud call")
				crashed := false
				crashes.Do(func() { crashed = true })
				if crashed {
					return err
				}
				return nil
			}
			h.run(h.w)
			a, err := NewAction(TypeServerLaunch, LaunchRequest{LaunchRequest: cloud.LaunchRequest{Name: "web-1", Image: "debian-12"}, Firewall: fw.ID})
			require.NoError(t, err)
			a.Account, a.Customer, a.Key = "acct-1", "acme", "launch-42"
			require.NoError(t, h.w.Publish(context.Background(), a))
			// Redeliveries retry until the server is found (after the cloud's
			// listing delay) and the job is tracked.
			require.Eventually(t, func() bool {
				in, err := h.w.Store().LaunchIntent(context.Background(), "launch-42")
				if err == nil && in.State == persist.LaunchLaunched {
					return true
				}
				h.clk.Advance(time.Second)
				return false
			}, 20*time.Second, 5*time.Millisecond)
			h.advance(time.Minute, 5*time.Second)
			h.event("job.completed")
			require.Len(t, h.sim.Servers("acct-1"), 1, "exactly one server")
			require.Equal(t, "launch-42", h.sim.Servers("acct-1")[0].Tags[LaunchTag])
			// SOURCE_CIDR: ingress to the management port from the worker's source addresses.
			fws := h.sim.Firewalls("acct-1")
			require.Len(t, fws, 1)
			require.Len(t, fws[0].Rules, 1)
			rule := fws[0].Rules[0]
			require.Equal(t, cloud.Ingress, rule.Direction)
			require.Equal(t, "192.0.2.0/28", rule.CIDR)
			require.Equal(t, 22, rule.FromPort)
			// A later redelivery of the same action does nothing new.
			require.NoError(t, h.w.Publish(context.Background(), a))
			h.advance(time.Minute, 5*time.Second)
			require.Len(t, h.sim.Servers("acct-1"), 1)
		})
	}
}

// TestEventSurvivesCrashBetweenSaveAndPublish: state and its change event
// commit together; a worker that dies before its relay ran leaves the event in
// the outbox, and the next worker publishes it.
func TestEventSurvivesCrashBetweenSaveAndPublish(t *testing.T) {
	t.Parallel()
	h := newCloudHarness(t, func(c *Config, _ *sim.Config) { c.DeferredInterval = time.Hour })
	servers := h.addServers("acct-1", 1)
	cfg := h.w.cfg
	compute, _ := h.sim.Compute()
	// The first worker only saves (its relay never gets to run).
	_, err := h.w.db.Save(context.Background(), state.Target{Account: "acct-1", Kind: "server"},
		state.Snapshot{Observations: []state.Observation{{ID: servers[0].ID, Attributes: json.RawMessage(`{"state":"RUNNING"}`)}}})
	require.NoError(t, err)
	require.NoError(t, h.w.Close())
	_ = compute

	cfg.DeferredInterval = 5 * time.Millisecond
	w2 := h.newWorker(cfg)
	h.w = w2
	h.run(w2)
	ev := h.event("server.changed")
	require.Equal(t, servers[0].ID, ev.Resource)
	require.Eventually(t, func() bool {
		pending, err := w2.db.PendingEvents(context.Background(), 10)
		return err == nil && len(pending) == 0
	}, 10*time.Second, 5*time.Millisecond, "the relay marks the event sent")
}
