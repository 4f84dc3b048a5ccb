package workertest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/workerlink"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// TestEnvOneClock: the worker, the schedule and the cloud read the Env's
// clock: a launch the cloud finishes after its 30s delay is seen RUNNING at
// the poll after it, and nothing moves while the clock stands still.
func TestEnvOneClock(t *testing.T) {
	t.Parallel()
	env := workertest.NewEnv(t)
	require.Equal(t, workertest.DefaultStart, env.Clock.Now())
	compute, err := env.Cloud.Compute()
	require.NoError(t, err)
	require.NoError(t, env.Cloud.AddAccount("acct-1"))
	op, err := compute.Launch(context.Background(), "acct-1", cloud.LaunchRequest{Name: "web-1", Image: "debian-12"})
	require.NoError(t, err)
	require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute}, 10*time.Second))
	require.NoError(t, env.Worker.Watch("acct-1", "acme"))
	env.Start(t)
	env.Settle(t)

	env.Advance(t, 10*time.Second, time.Second) // the first poll, within an interval
	var ch state.Change
	require.NoError(t, env.Event(t, "server.changed").Decode(&ch))
	require.Equal(t, state.Created, ch.Op)
	require.Contains(t, string(ch.After.Attributes), `"PENDING"`)
	require.Empty(t, env.Drain(t), "the clock stood still: nothing more")

	env.Advance(t, 40*time.Second, time.Second)
	require.NoError(t, env.Event(t, "server.changed").Decode(&ch))
	require.Equal(t, op.ResourceID, ch.After.ID)
	require.Contains(t, string(ch.After.Attributes), `"RUNNING"`)
	require.Equal(t, []string{"state"}, ch.Fields)
}

// TestEnvParkedRetryWaitsForTheClock: a handler that snoozes for an hour is
// parked until the Env's clock has moved by an hour, not before.
func TestEnvParkedRetryWaitsForTheClock(t *testing.T) {
	t.Parallel()
	env := workertest.NewEnv(t, workertest.WithEvents())
	var calls atomic.Int32
	require.NoError(t, env.Worker.HandleFunc("volume.attach", func(context.Context, worker.Action) error {
		if calls.Add(1) == 1 {
			return worker.Snooze(time.Hour)
		}
		return nil
	}))
	env.Start(t)
	env.Publish(t, worker.Action{Type: "volume.attach"})
	require.Eventually(t, func() bool { return parked(t, env) == 1 }, 10*time.Second, 5*time.Millisecond)
	env.Advance(t, 59*time.Minute, 10*time.Minute)
	time.Sleep(1500 * time.Millisecond) // more than one run of the parked-retry pump (every second)
	require.Equal(t, int32(1), calls.Load(), "not due yet")
	env.Advance(t, time.Minute, time.Minute)
	require.Eventually(t, func() bool { return calls.Load() == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return parked(t, env) == 0 }, 10*time.Second, 5*time.Millisecond)
}

func parked(t *testing.T, env *workertest.Env) int {
	t.Helper()
	due, err := workerlink.BuiltinStore(env.Worker).DueDeferred(context.Background(), env.Clock.Now().Add(24*time.Hour), 10)
	require.NoError(t, err)
	return len(due)
}

// TestEnvOptions: a shared clock and cloud, a changed sim and worker
// configuration, and a custom list of recorded events.
func TestEnvOptions(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC))
	shared, err := sim.New(sim.Config{Now: clk.Now})
	require.NoError(t, err)
	a := workertest.NewEnv(t, workertest.SharedClock(clk), workertest.SharedCloud(shared),
		workertest.WithConfig(func(c *worker.Config) { c.Role = worker.RolePublisher }))
	require.Same(t, clk, a.Clock)
	require.Same(t, shared, a.Cloud)
	require.ErrorIs(t, a.Worker.HandleFunc("t", func(context.Context, worker.Action) error { return nil }), worker.ErrRoleNotSupported)

	var simCfg sim.Config
	b := workertest.NewEnv(t, workertest.WithSim(func(c *sim.Config) { c.LaunchDelay = time.Nanosecond; simCfg = *c }),
		workertest.WithEvents("volume.changed"), workertest.WithWait(time.Second))
	require.NotNil(t, simCfg.Now, "Now is the Env's clock")
	require.Equal(t, workertest.DefaultStart, simCfg.Now())
	require.NotSame(t, clk, b.Clock)
	// A recorded type is the Env's: the test cannot register it again.
	require.Error(t, b.Worker.HandleFunc("volume.changed", func(context.Context, worker.Action) error { return nil }))
	require.NoError(t, b.Worker.HandleFunc("server.changed", func(context.Context, worker.Action) error { return nil }))
	require.NoError(t, b.Stop())
	require.NoError(t, b.Stop(), "Stop twice")
}

// TestEnvFailsTheTest: misuse and waits that run out fail the test with
// what went wrong.
func TestEnvFailsTheTest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB, env *workertest.Env)
		want string
	}{
		{name: "EventNotRecorded", run: func(tb testing.TB, env *workertest.Env) { env.Event(tb, "volume.changed") },
			want: `Env.Event("volume.changed"): the Env does not record volume.changed events`},
		{name: "SettleBeforeStart", run: func(tb testing.TB, env *workertest.Env) { env.Settle(tb) }, want: "Env.Settle before Env.Start"},
		{name: "StartTwice", run: func(tb testing.TB, env *workertest.Env) { env.Start(tb); env.Start(tb) }, want: "already started"},
		{name: "NoEvent", run: func(tb testing.TB, env *workertest.Env) { env.Start(tb); env.Event(tb, "server.changed") },
			want: "no server.changed event within 100ms"},
		{name: "BadStep", run: func(tb testing.TB, env *workertest.Env) { env.Start(tb); env.Advance(tb, time.Minute, 0) },
			want: "step must be positive"},
		{name: "PublishInvalid", run: func(tb testing.TB, env *workertest.Env) { env.Publish(tb, worker.Action{}) },
			want: "Type is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := workertest.NewEnv(t, workertest.WithWait(100*time.Millisecond))
			require.Contains(t, failure(t, func(tb testing.TB) { tt.run(tb, env) }), tt.want)
		})
	}
	msg := failure(t, func(tb testing.TB) {
		workertest.NewEnv(tb, workertest.WithConfig(func(c *worker.Config) { c.Concurrency = -1 }))
	})
	require.Contains(t, msg, "Concurrency")
	msg = failure(t, func(tb testing.TB) {
		workertest.NewEnv(tb, workertest.WithConfig(func(c *worker.Config) {
			c.Store = persist.Config{Provisioning: persist.DBConfig{Driver: "postgres"}}
		}))
	})
	require.Contains(t, msg, "Provisioning.Driver")
}
