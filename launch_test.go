package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stretchr/testify/require"
)

// gatedLaunch is a cloud whose Launch call blocks until the gate opens: a
// clone slower than any retry budget.
type gatedLaunch struct {
	cloud.Provider
	gate  chan struct{}
	calls atomic.Int32
}

func (g *gatedLaunch) Compute() (cloud.Compute, error) {
	c, err := g.Provider.Compute()
	return gatedCompute{Compute: c, g: g}, err
}

type gatedCompute struct {
	cloud.Compute
	g *gatedLaunch
}

func (c gatedCompute) Launch(ctx context.Context, account string, req cloud.LaunchRequest) (cloud.Operation, error) {
	c.g.calls.Add(1)
	select {
	case <-c.g.gate:
	case <-ctx.Done():
		return cloud.Operation{}, ctx.Err()
	}
	return c.Compute.Launch(ctx, account, req)
}

// launchEnv is a worker with the default configuration on a simulated
// cloud. Its one setting is the clock, a fake one shared with the cloud, so
// that the two-minute default consistency window passes in a test's time.
type launchEnv struct {
	t   *testing.T
	clk *poller.FakeClock
	sim *sim.Cloud
	w   *Worker
}

func newLaunchEnv(t *testing.T, wrap func(cloud.Provider) cloud.Provider) *launchEnv {
	t.Helper()
	return newLaunchEnvOpts(t, wrap, nil)
}

// newLaunchEnvWith lets setup register pollers and watch accounts before Run.
func newLaunchEnvWith(t *testing.T, setup func(*Worker, *sim.Cloud)) *launchEnv {
	t.Helper()
	return newLaunchEnvOpts(t, nil, setup)
}

func newLaunchEnvOpts(t *testing.T, wrap func(cloud.Provider) cloud.Provider, setup func(*Worker, *sim.Cloud)) *launchEnv {
	t.Helper()
	clk := poller.NewFakeClock(simStart)
	c, err := sim.New(sim.Config{Now: clk.Now})
	require.NoError(t, err)
	require.NoError(t, c.AddAccount("acct-1"))
	var p cloud.Provider = c
	if wrap != nil {
		p = wrap(c)
	}
	w := newTestWorker(t, Config{Store: sqliteConfig(t), Cloud: p, Schedule: poller.Config{Clock: clk}})
	e := &launchEnv{t: t, clk: clk, sim: c, w: w}
	if setup != nil {
		setup(w, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *launchEnv) launch(id, key string) {
	e.t.Helper()
	a, err := NewAction(TypeServerLaunch, LaunchRequest{LaunchRequest: cloud.LaunchRequest{Name: "web-1", Image: "debian-12"}})
	require.NoError(e.t, err)
	a.ID, a.Account, a.Customer, a.Key = id, "acct-1", "acme", key
	require.NoError(e.t, e.w.Publish(context.Background(), a))
}

// advance moves the fake clock in steps, giving the worker real time to act
// on each (the parked-retry pump ticks every second of real time).
func (e *launchEnv) advance(d, step time.Duration) {
	for moved := time.Duration(0); moved < d; moved += step {
		e.clk.Advance(step)
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *launchEnv) counts() (deferred, poisoned int) {
	e.t.Helper()
	ctx := context.Background()
	var n int64
	require.NoError(e.t, e.w.db.DB().WithContext(ctx).Table("worker_deferred").Count(&n).Error)
	p, err := e.w.db.ListPoison(ctx, persist.PoisonFilter{IncludeReplayed: true})
	require.NoError(e.t, err)
	return int(n), len(p)
}

// TestLaunchRecoveryOnDefaults: a launch whose key was claimed by a worker
// that died before its cloud call is launched exactly once, after the
// default consistency window, however many copies are delivered; none is
// poisoned.
func TestLaunchRecoveryOnDefaults(t *testing.T) {
	t.Parallel()
	e := newLaunchEnv(t, nil)
	// The dead worker's claim.
	_, fresh, err := e.w.db.ClaimLaunch(context.Background(), persist.LaunchIntent{Key: "k-1", Account: "acct-1", Customer: "acme"})
	require.NoError(t, err)
	require.True(t, fresh)
	e.advance(10*time.Second, 5*time.Second)

	e.launch("copy-1", "k-1")
	e.launch("copy-2", "k-1")
	require.Eventually(t, func() bool { d, _ := e.counts(); return d == 2 }, 10*time.Second, 10*time.Millisecond,
		"both copies wait for the window")
	require.Empty(t, e.sim.Servers("acct-1"), "nothing launched within the window")

	e.advance(2*time.Minute, 5*time.Second)
	require.Eventually(t, func() bool {
		in, err := e.w.Store().LaunchIntent(context.Background(), "k-1")
		d, _ := e.counts()
		return err == nil && in.State == persist.LaunchLaunched && d == 0
	}, 20*time.Second, 20*time.Millisecond)
	e.advance(10*time.Second, 5*time.Second) // the loser's short snooze, if any
	require.Eventually(t, func() bool { d, _ := e.counts(); return d == 0 }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, e.sim.Servers("acct-1"), 1, "exactly one server")
	_, poisoned := e.counts()
	require.Zero(t, poisoned)
	t.Logf("launch recovery: servers=%d poisoned=%d", len(e.sim.Servers("acct-1")), poisoned)
}

// TestLaunchSlowCloneOnDefaults: a cloud launch call that takes longer than
// the consistency window (here: 5 minutes, the worker renewing its claim)
// makes redelivered copies wait, not launch again and not poison.
func TestLaunchSlowCloneOnDefaults(t *testing.T) {
	t.Parallel()
	g := &gatedLaunch{gate: make(chan struct{})}
	e := newLaunchEnv(t, func(p cloud.Provider) cloud.Provider { g.Provider = p; return g })
	e.launch("orig", "k-2")
	require.Eventually(t, func() bool { return g.calls.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	e.advance(5*time.Minute, 10*time.Second) // the clone runs on; its claim is renewed
	e.launch("copy-1", "k-2")
	e.launch("copy-2", "k-2")
	require.Eventually(t, func() bool { d, _ := e.counts(); return d == 2 }, 10*time.Second, 10*time.Millisecond)
	e.advance(3*time.Minute, 10*time.Second) // the copies wake, see a live claim, wait again
	require.Equal(t, int32(1), g.calls.Load(), "no second launch call")
	_, poisoned := e.counts()
	require.Zero(t, poisoned)

	close(g.gate) // the clone returns
	require.Eventually(t, func() bool {
		in, err := e.w.Store().LaunchIntent(context.Background(), "k-2")
		return err == nil && in.State == persist.LaunchLaunched
	}, 10*time.Second, 10*time.Millisecond)
	e.advance(3*time.Minute, 10*time.Second)
	require.Eventually(t, func() bool { d, _ := e.counts(); return d == 0 }, 10*time.Second, 10*time.Millisecond,
		"the copies found the launch recorded and finished")
	require.Len(t, e.sim.Servers("acct-1"), 1)
	require.Equal(t, int32(1), g.calls.Load())
	_, poisoned = e.counts()
	require.Zero(t, poisoned)
	t.Logf("slow clone: launch calls=%d servers=%d poisoned=%d", g.calls.Load(), len(e.sim.Servers("acct-1")), poisoned)
}

// TestPollRecoveryOnDefaults: a 500 ms target whose cloud account was down
// for ten minutes is polled again within ten intervals of the cloud coming
// back (default schedule; only the clock is a fake one).
func TestPollRecoveryOnDefaults(t *testing.T) {
	t.Parallel()
	e := newLaunchEnvWith(t, func(w *Worker, c *sim.Cloud) {
		compute, err := c.Compute()
		require.NoError(t, err)
		require.NoError(t, w.Register(cloud.ServerPoller{Compute: compute}, 500*time.Millisecond))
		require.NoError(t, w.Watch("acct-1", "acme"))
	})
	e.advance(3*time.Second, 100*time.Millisecond)
	e.sim.SetAccountDown("acct-1", fmt.Errorf("%w: vCenter unreachable", cloud.ErrCommunication))
	e.advance(10*time.Minute, 5*time.Second)
	e.sim.SetAccountDown("acct-1", nil)
	s, err := e.sim.AddServer("acct-1", cloud.Server{Name: "new", Image: "debian-12"})
	require.NoError(t, err)
	back := e.clk.Now()
	seen := func() bool {
		rs, err := e.w.Store().Resources(context.Background(), "acct-1", "server", "", 10)
		return err == nil && slices.ContainsFunc(rs, func(r persist.Resource) bool { return r.ID == s.ID })
	}
	for !seen() {
		require.Less(t, e.clk.Now().Sub(back), time.Minute, "not polled a minute after the cloud came back")
		e.clk.Advance(100 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	after := e.clk.Now().Sub(back)
	t.Logf("500ms target: polled %v after a 10-minute outage ended", after)
	require.LessOrEqual(t, after, 5*time.Second+500*time.Millisecond, "within 10 intervals (+ one step)")
}

// TestCustomerLogShowsTheWorkersOwnLines: during one customer's provider
// outage, that customer's own log file gets the worker's lines about it —
// the failing polls and the retried actions — and another customer's file
// gets none of them.
func TestCustomerLogShowsTheWorkersOwnLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h, err := logging.NewCustomerHandler(slog.DiscardHandler, logging.Config{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	clk := poller.NewFakeClock(simStart)
	c, err := sim.New(sim.Config{Now: clk.Now})
	require.NoError(t, err)
	require.NoError(t, c.AddAccount("acct-a"))
	require.NoError(t, c.AddAccount("acct-b"))
	w := newTestWorker(t, Config{Store: sqliteConfig(t), Cloud: c, Schedule: poller.Config{Clock: clk}, Logger: slog.New(h)})
	compute, err := c.Compute()
	require.NoError(t, err)
	require.NoError(t, w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, w.Watch("acct-a", "acme"))
	require.NoError(t, w.Watch("acct-b", "globex"))
	failed := make(chan struct{}, 10)
	require.NoError(t, w.HandleFunc("report.build", func(context.Context, Action) error {
		failed <- struct{}{}
		return errors.New("report service unavailable")
	}))
	c.SetAccountDown("acct-a", fmt.Errorf("%w: connection refused", cloud.ErrCommunication))
	e := &launchEnv{t: t, clk: clk, sim: c, w: w}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	require.NoError(t, w.Publish(ctx, Action{Type: "report.build", Customer: "acme", Account: "acct-a"}))
	recv(t, failed)
	e.advance(3*time.Minute, 10*time.Second)
	cancel()
	require.NoError(t, <-done)

	read := func(customer string) string {
		p, err := h.FilePath(customer)
		require.NoError(t, err)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return ""
		}
		require.NoError(t, err)
		return string(b)
	}
	acme := read("acme")
	require.Contains(t, acme, "poll failed")
	require.Contains(t, acme, "acct-a")
	require.Contains(t, acme, "action failed, will retry")
	require.NotContains(t, read("globex"), "poll failed")
}
