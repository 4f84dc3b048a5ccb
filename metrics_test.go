package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/workertest"
)

// metricsEnv is an Env whose worker registers its metrics on a fresh
// registry, with the schedule's jitter and initial spread off so that
// every poll is due on the minute.
func metricsEnv(t *testing.T, opts ...workertest.EnvOption) (*workertest.Env, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts = append([]workertest.EnvOption{workertest.WithConfig(func(c *worker.Config) {
		c.Metrics = reg
		c.Schedule.Jitter, c.Schedule.InitialSpread = -1, -1
	}), workertest.WithSim(func(c *sim.Config) { c.LaunchDelay = 20 * time.Second })}, opts...)
	return workertest.NewEnv(t, opts...), reg
}

// scraped flattens what reg gathers into "name{label="value",…}" → value:
// a counter's or gauge's value, a histogram's _count and _sum.
func scraped(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				name, labels, _ := strings.Cut(key, "{")
				if labels != "" {
					labels = "{" + labels
				}
				out[name+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// eventually waits until the series has the value.
func eventually(t *testing.T, reg prometheus.Gatherer, series string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return scraped(t, reg)[series] == want }, 10*time.Second, 5*time.Millisecond,
		"%s never became %v (last %v)", series, want, scraped(t, reg)[series])
}

// TestMetricsScenario: polls of two accounts, one of them throttled, a
// poisoned action, a launch whose job completes: the scraped series have
// the values the scenario implies.
func TestMetricsScenario(t *testing.T) {
	t.Parallel()
	env, reg := metricsEnv(t)
	w := env.Worker
	_, err := env.Cloud.AddServer("acct-1", cloud.Server{Name: "web-1", Image: "debian-12", State: cloud.StateRunning})
	require.NoError(t, err)
	require.NoError(t, env.Cloud.AddAccount("acct-2"))
	env.Cloud.SetAccountDown("acct-2", &cloud.ThrottledError{API: sim.APIListServers, RetryAfter: 10 * time.Minute})
	compute, _ := env.Cloud.Compute()
	require.NoError(t, w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, w.Watch("acct-1", "acme"))
	require.NoError(t, w.Watch("acct-2", "acme"))
	require.NoError(t, w.HandleFunc("invoice.send", func(context.Context, worker.Action) error {
		return worker.Permanent(errors.New("no such invoice"))
	}))
	env.Start(t)
	start := env.Clock.Now()

	// Polls at 0, 1m, 2m, 3m of acct-1; acct-2 throttled at 0, then
	// paused for its RetryAfter (10m).
	env.Settle(t)
	env.Advance(t, 3*time.Minute, time.Minute)
	env.Event(t, "server.changed")

	// A poisoned action.
	env.Publish(t, worker.Action{Type: "invoice.send", Account: "acct-1", Customer: "acme"})
	eventually(t, reg, `worker_actions_poisoned_total{type="invoice.send"}`, 1)

	// A launch, tracked as a job until the cloud says it is running (20s).
	env.Publish(t, worker.Action{Type: worker.TypeServerLaunch, Account: "acct-1", Customer: "acme", Key: "launch-1",
		Payload: []byte(`{"image":"debian-12","name":"app-1"}`)})
	eventually(t, reg, `worker_launches_total{outcome="launched"}`, 1)
	eventually(t, reg, `worker_jobs_in_flight`, 1)
	env.Advance(t, time.Minute, 10*time.Second)
	ev := env.Event(t, persist.EventJobCompleted)
	require.Equal(t, "acct-1", ev.Account)
	// The Env sees the event inside its handler, maybe before the relay's
	// Publish returned (gochannel delivers within it) and before the
	// attempt is counted.
	eventually(t, reg, `worker_actions_published_total{type="job.completed"}`, 1)
	eventually(t, reg, `worker_actions_handled_total{type="job.completed"}`, 1)

	// A dispatch reports its outcome from inside its handler: the attempt
	// is counted just after the schedule settled.
	eventually(t, reg, `worker_actions_handled_total{type="poll"}`, 6)
	require.Eventually(t, func() bool {
		got := scraped(t, reg)
		return got[`worker_handler_duration_seconds_count{type="job.check"}`] == got[`worker_polls_total{kind="job",outcome="ok"}`]
	}, 10*time.Second, 5*time.Millisecond)
	got := scraped(t, reg)
	want := map[string]float64{
		`worker_polls_total{kind="server",outcome="ok"}`:        5, // 0, 1m, 2m, 3m, 4m
		`worker_polls_total{kind="server",outcome="throttled"}`: 1,
		`worker_accounts_throttled`:                             1,
		`worker_accounts_backing_off`:                           0,
		`worker_poll_lag_seconds_count{kind="server"}`:          6,
		`worker_poll_lag_seconds_sum{kind="server"}`:            0, // every poll on its due minute
		// acct-2 was never observed: stale since its first due time.
		`worker_poll_staleness_seconds{kind="server"}`: env.Clock.Now().Sub(start).Seconds(),

		`worker_actions_handled_total{type="poll"}`:               6,
		`worker_actions_failed_total{type="invoice.send"}`:        1,
		`worker_actions_poisoned_total{type="invoice.send"}`:      1,
		`worker_actions_published_total{type="invoice.send"}`:     1,
		`worker_handler_duration_seconds_count{type="poll"}`:      6,
		`worker_actions_handled_total{type="server.launch"}`:      1,
		`worker_actions_published_total{type="server.launch"}`:    1,
		`worker_launches_total{outcome="launched"}`:               1,
		`worker_jobs_finished_total{outcome="succeeded"}`:         1,
		`worker_jobs_in_flight`:                                   0,
		`worker_actions_published_total{type="job.completed"}`:    1,
		`worker_actions_handled_total{type="job.completed"}`:      1,
		`worker_actions_retried_total{type="invoice.send"}`:       0,
		`worker_members{status="stopped"}`:                        0,
		`worker_queue_lag_seconds_count{queue="polls"}`:           got[`worker_queue_lag_seconds_count{queue="polls"}`],
		`worker_poll_lag_seconds_count{kind="job"}`:               got[`worker_poll_lag_seconds_count{kind="job"}`],
		`worker_polls_total{kind="job",outcome="ok"}`:             got[`worker_poll_lag_seconds_count{kind="job"}`],
		`worker_handler_duration_seconds_count{type="job.check"}`: got[`worker_polls_total{kind="job",outcome="ok"}`],
	}
	for series, v := range want {
		require.Contains(t, got, series)
		require.InDelta(t, v, got[series], 1e-9, series)
	}
	require.GreaterOrEqual(t, got[`worker_poll_lag_seconds_count{kind="job"}`], 2.0, "the job was checked until it finished")
	require.GreaterOrEqual(t, got[`worker_queue_lag_seconds_count{queue="polls"}`], 6.0)
	// The Env's heartbeats run in real time, its clock does not: this
	// process is alive or, by the fake clock, dead.
	require.Equal(t, 1.0, got[`worker_members{status="alive"}`]+got[`worker_members{status="dead"}`])
	age, ok := got[fmt.Sprintf(`worker_heartbeat_age_seconds{member=%q,status="alive"}`, w.InstanceID())]
	if !ok {
		age, ok = got[fmt.Sprintf(`worker_heartbeat_age_seconds{member=%q,status="dead"}`, w.InstanceID())]
	}
	require.True(t, ok, "this instance's heartbeat age is exposed")
	require.GreaterOrEqual(t, age, 0.0)

	// The exposition of a few families, exactly. A type's series all
	// appear, at 0, once the type is first seen.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP worker_actions_poisoned_total Actions poisoned (recorded in the poison store, or dead-lettered), by type.
# TYPE worker_actions_poisoned_total counter
worker_actions_poisoned_total{type="invoice.send"} 1
worker_actions_poisoned_total{type="job.check"} 0
worker_actions_poisoned_total{type="job.completed"} 0
worker_actions_poisoned_total{type="poll"} 0
worker_actions_poisoned_total{type="server.changed"} 0
worker_actions_poisoned_total{type="server.launch"} 0
# HELP worker_launches_total server.launch cloud calls, by outcome (launched, found, failed).
# TYPE worker_launches_total counter
worker_launches_total{outcome="launched"} 1
# HELP worker_jobs_finished_total Tracked jobs this process finished, by outcome (succeeded, failed, timed_out).
# TYPE worker_jobs_finished_total counter
worker_jobs_finished_total{outcome="succeeded"} 1
# HELP worker_accounts_throttled Accounts whose last poll the cloud throttled.
# TYPE worker_accounts_throttled gauge
worker_accounts_throttled 1
`), "worker_actions_poisoned_total", "worker_launches_total", "worker_jobs_finished_total", "worker_accounts_throttled"))
}

// TestMetricsLint: the exposition passes the checks of promtool check
// metrics (testutil.GatherAndLint), with every family present.
func TestMetricsLint(t *testing.T) {
	t.Parallel()
	env, reg := metricsEnv(t)
	_, err := env.Cloud.AddServer("acct-1", cloud.Server{Name: "web-1", Image: "debian-12", State: cloud.StateRunning})
	require.NoError(t, err)
	compute, _ := env.Cloud.Compute()
	require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, env.Worker.Watch("acct-1", "acme"))
	env.Start(t)
	env.Advance(t, 2*time.Minute, time.Minute)
	env.Publish(t, worker.Action{Type: "no.such.type"})
	eventually(t, reg, `worker_actions_poisoned_total{type="other"}`, 1)

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		require.True(t, strings.HasPrefix(mf.GetName(), "worker_"), mf.GetName())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				require.Contains(t, []string{"type", "queue", "kind", "outcome", "op", "member", "status"}, l.GetName(),
					"%s: only bounded labels", mf.GetName())
			}
		}
	}
	sort.Strings(names)
	for _, n := range []string{"worker_actions_published_total", "worker_actions_handled_total", "worker_actions_failed_total",
		"worker_actions_poisoned_total", "worker_handler_duration_seconds", "worker_queue_lag_seconds", "worker_poll_lag_seconds",
		"worker_poll_staleness_seconds", "worker_polls_total", "worker_accounts_throttled", "worker_accounts_backing_off",
		"worker_jobs_in_flight", "worker_heartbeat_age_seconds", "worker_members"} {
		require.True(t, slices.Contains(names, n), "%s is exposed (got %v)", n, names)
	}
}

// TestMetricsUnknownTypeIsOther: an action of a type this process does
// not know (no handler, no route, not built in) is counted under
// type="other", so a hostile publisher cannot create series.
func TestMetricsUnknownTypeIsOther(t *testing.T) {
	t.Parallel()
	env, reg := metricsEnv(t)
	env.Start(t)
	for i := range 3 {
		env.Publish(t, worker.Action{Type: fmt.Sprintf("hostile.type-%d", i)})
	}
	eventually(t, reg, `worker_actions_poisoned_total{type="other"}`, 3)
	got := scraped(t, reg)
	require.Equal(t, 3.0, got[`worker_actions_published_total{type="other"}`])
	require.Equal(t, 3.0, got[`worker_actions_failed_total{type="other"}`])
	for series := range got {
		require.NotContains(t, series, "hostile", "no series names the hostile types")
	}
}

// TestMetricsOffAndTwice: without Config.Metrics nothing is registered
// anywhere; with it, a second worker on the same registry is refused, and
// once the first closes, the registry takes a new one.
func TestMetricsOffAndTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := func() worker.Config {
		return worker.Config{Store: persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}}, Metrics: reg, Logger: quiet}
	}
	w1, err := worker.New(context.Background(), cfg())
	require.NoError(t, err)
	_, err = worker.New(context.Background(), cfg())
	require.ErrorIs(t, err, worker.ErrInvalidConfig)
	require.ErrorContains(t, err, "Metrics")
	require.NoError(t, w1.Close())
	w3, err := worker.New(context.Background(), cfg())
	require.NoError(t, err)
	require.NoError(t, w3.Close())

	off := cfg()
	off.Metrics = nil
	w4, err := worker.New(context.Background(), off)
	require.NoError(t, err)
	require.NoError(t, w4.Close())
}
