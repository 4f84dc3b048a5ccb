package sim_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/workerlink"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// kindCase is one full kind: how a test changes its first resource (and
// which attributes that changes) and removes its second.
type kindCase struct {
	kind   string
	fields []string // the attributes the change changes, sorted
	ids    func(c *sim.Cloud, account string) []string
	update func(t testing.TB, c *sim.Cloud, account string) string
	remove func(t testing.TB, c *sim.Cloud, account string) string
}

func caseOf[T sim.Kind](kind string, id func(T) string, change func(*T), fields ...string) kindCase {
	return kindCase{
		kind: kind, fields: fields,
		ids: func(c *sim.Cloud, account string) []string {
			var out []string
			for _, v := range sim.Resources[T](c, account) {
				out = append(out, id(v))
			}
			return out
		},
		update: func(t testing.TB, c *sim.Cloud, account string) string {
			t.Helper()
			v := sim.Resources[T](c, account)[0]
			change(&v)
			_, err := sim.Put(c, account, v)
			require.NoError(t, err)
			return id(v)
		},
		remove: func(t testing.TB, c *sim.Cloud, account string) string {
			t.Helper()
			gone := id(sim.Resources[T](c, account)[1])
			require.NoError(t, sim.Remove[T](c, account, gone))
			return gone
		},
	}
}

var kindCases = []kindCase{
	caseOf(cloud.KindRegion, func(v cloud.Region) string { return v.ID }, func(v *cloud.Region) { v.Active = !v.Active }, "active"),
	caseOf(cloud.KindDataCenter, func(v cloud.DataCenter) string { return v.ID }, func(v *cloud.DataCenter) { v.Name += "-b" }, "name"),
	caseOf(cloud.KindImage, func(v cloud.Image) string { return v.ID },
		func(v *cloud.Image) { v.State, v.Public = cloud.ResourceDisabled, true }, "public", "state"),
	caseOf(cloud.KindVolume, func(v cloud.Volume) string { return v.ID },
		func(v *cloud.Volume) { v.State, v.Server = cloud.ResourceInUse, "server-1" }, "server", "state"),
	caseOf(cloud.KindSnapshot, func(v cloud.Snapshot) string { return v.ID }, func(v *cloud.Snapshot) { v.State = cloud.ResourceError }, "state"),
	caseOf(cloud.KindNetwork, func(v cloud.VirtualNetwork) string { return v.ID },
		func(v *cloud.VirtualNetwork) { v.Tags = map[string]string{"env": "changed"} }, "tags"),
	caseOf(cloud.KindAddress, func(v cloud.Address) string { return v.ID }, func(v *cloud.Address) { v.Server = "server-9" }, "server"),
	caseOf(cloud.KindLoadBalancer, func(v cloud.LoadBalancer) string { return v.ID },
		func(v *cloud.LoadBalancer) { v.Servers = append(v.Servers, "server-999") }, "servers"),
	caseOf(cloud.KindDNSZone, func(v cloud.DNSZone) string { return v.ID },
		func(v *cloud.DNSZone) { v.NameServers = []string{"ns9.example."} }, "name_servers"),
	caseOf(cloud.KindDNSRecord, func(v cloud.DNSRecord) string { return v.ID }, func(v *cloud.DNSRecord) { v.TTL = 42 }, "ttl"),
	caseOf(cloud.KindVPNGateway, func(v cloud.VPNGateway) string { return v.ID }, func(v *cloud.VPNGateway) { v.State = cloud.ResourceInUse }, "state"),
	caseOf(cloud.KindDatabase, func(v cloud.Database) string { return v.ID },
		func(v *cloud.Database) { v.StorageGB, v.HighlyAvailable = v.StorageGB+100, true }, "highly_available", "storage_gb"),
	caseOf(cloud.KindDistribution, func(v cloud.Distribution) string { return v.ID },
		func(v *cloud.Distribution) { v.State = cloud.ResourceDisabled }, "state"),
	caseOf(cloud.KindCertificate, func(v cloud.Certificate) string { return v.ID },
		func(v *cloud.Certificate) { v.NotAfter = v.NotAfter.AddDate(0, 3, 0) }, "not_after"),
	caseOf(cloud.KindSubscription, func(v cloud.Subscription) string { return v.ID }, func(v *cloud.Subscription) { v.Quantity += 5 }, "quantity"),
	caseOf(cloud.KindInvoice, func(v cloud.Invoice) string { return v.ID }, func(v *cloud.Invoice) { v.State = cloud.ResourcePaid }, "state"),
}

// noSpread makes every target due at once when it is watched, so that a
// test's first round of polls is at the start; the rest of the schedule is
// as shipped.
func noSpread(c *worker.Config) { c.Schedule.InitialSpread = -1 }

// TestKindsEndToEnd: for every full kind, polled by its standard poller at
// its default interval in pages of two, a worker detects the resources
// created, the change of one (with the right changed fields) and the
// deletion of another, and nothing else.
func TestKindsEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range kindCases {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			// WithWait: the subtests run a worker each, in parallel; under -race on
			// 2 cores beside the module's other packages one clock step has taken
			// over the default 10 s of real time (a wait of the harness, not of the worker).
			env := workertest.NewEnv(t, workertest.WithEvents(tc.kind+".changed", tc.kind+".deleted"),
				workertest.WithSim(func(c *sim.Config) { c.DefaultPageSize = 2 }), workertest.WithConfig(noSpread),
				workertest.WithWait(30*time.Second))
			require.NoError(t, env.Cloud.Populate("acct", 3))
			every := cloud.DefaultInterval(tc.kind)
			require.NoError(t, env.Worker.Register(standard(t, env.Cloud, tc.kind), every))
			require.NoError(t, env.Worker.Watch("acct", "acme"))
			env.Start(t)
			env.Settle(t)

			var created []string
			for range 3 {
				var ch state.Change
				require.NoError(t, env.Event(t, tc.kind+".changed").Decode(&ch))
				require.Equal(t, state.Created, ch.Op)
				require.Equal(t, tc.kind, ch.Target.Kind)
				created = append(created, ch.Target.Resource)
			}
			slices.Sort(created)
			require.Equal(t, tc.ids(env.Cloud, "acct"), created, "every resource, across pages")

			changed := tc.update(t, env.Cloud, "acct")
			env.Advance(t, every+every/5, every/10)
			var ch state.Change
			require.NoError(t, env.Event(t, tc.kind+".changed").Decode(&ch))
			require.Equal(t, state.Updated, ch.Op)
			require.Equal(t, changed, ch.Target.Resource)
			require.Equal(t, tc.fields, ch.Fields)

			gone := tc.remove(t, env.Cloud, "acct")
			env.Advance(t, 3*every+every/5, every/10)
			ev := env.Event(t, tc.kind+".deleted")
			require.Equal(t, gone, ev.Resource)
			require.Empty(t, env.Drain(t), "nothing else changed")
			_, err := env.Worker.Store().Resource(context.Background(), "acct", tc.kind, gone)
			require.Error(t, err)
		})
	}
}

// TestKindsStatusOnly: a status-only listing updates the state of its full
// kind (changed field "state") without making it flap between the full and
// the status-only shapes.
func TestKindsStatusOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status, full string
		change       func(t testing.TB, c *sim.Cloud) string
	}{
		{cloud.KindVolumeStatus, cloud.KindVolume, func(t testing.TB, c *sim.Cloud) string {
			return caseOf(cloud.KindVolume, func(v cloud.Volume) string { return v.ID },
				func(v *cloud.Volume) { v.State = cloud.ResourceError }).update(t, c, "acct")
		}},
		{cloud.KindSnapshotStatus, cloud.KindSnapshot, func(t testing.TB, c *sim.Cloud) string {
			return caseOf(cloud.KindSnapshot, func(v cloud.Snapshot) string { return v.ID },
				func(v *cloud.Snapshot) { v.State = cloud.ResourceDeleting }).update(t, c, "acct")
		}},
		{cloud.KindLoadBalancerStatus, cloud.KindLoadBalancer, func(t testing.TB, c *sim.Cloud) string {
			return caseOf(cloud.KindLoadBalancer, func(v cloud.LoadBalancer) string { return v.ID },
				func(v *cloud.LoadBalancer) { v.State = cloud.ResourceError }).update(t, c, "acct")
		}},
		{cloud.KindDatabaseStatus, cloud.KindDatabase, func(t testing.TB, c *sim.Cloud) string {
			return caseOf(cloud.KindDatabase, func(v cloud.Database) string { return v.ID },
				func(v *cloud.Database) { v.State = cloud.ResourcePending }).update(t, c, "acct")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			t.Parallel()
			c, _ := setup(t, sim.Config{DefaultPageSize: 2})
			require.NoError(t, c.Populate("acct", 3))
			st := workertest.NewStore(t)
			full, status := standard(t, c, tt.full), standard(t, c, tt.status)
			fullT, statusT := state.Target{Account: "acct", Kind: tt.full}, state.Target{Account: "acct", Kind: tt.status}
			require.Len(t, workertest.Poll(t, full, fullT, st), 3)
			require.Empty(t, workertest.Poll(t, status, statusT, st), "the status-only shape agrees with the full one")

			id := tt.change(t, c)
			changes := workertest.Poll(t, status, statusT, st)
			require.Len(t, changes, 1)
			require.Equal(t, state.Updated, changes[0].Op)
			require.Equal(t, tt.full, changes[0].Target.Kind)
			require.Equal(t, id, changes[0].Target.Resource)
			require.Equal(t, []string{"state"}, changes[0].Fields)
			require.Empty(t, workertest.Poll(t, full, fullT, st), "the full listing agrees: no flapping")
			require.Empty(t, workertest.Poll(t, status, statusT, st))
		})
	}
}

// newKinds are the standard pollers of the kinds beyond servers, firewalls
// and budgets.
func newKinds(t testing.TB, c cloud.Provider) []cloud.Scheduled {
	t.Helper()
	ps, err := cloud.StandardPollers(c)
	require.NoError(t, err)
	return slices.DeleteFunc(ps, func(s cloud.Scheduled) bool {
		switch s.Poller.Kind() {
		case cloud.KindServer, cloud.KindServerStatus, cloud.KindFirewall, cloud.KindBudget, cloud.KindServerAnalytics:
			return true
		}
		return false
	})
}

// TestKindsThrottledBackOff: every new kind's listing is rate limited (one
// call an hour per API). The first round passes; the next poll that comes
// due (load balancer states, every minute) is throttled, and the schedule
// pauses the account until the RetryAfter: no listing of any kind is called
// meanwhile. After it, polling resumes.
func TestKindsThrottledBackOff(t *testing.T) {
	t.Parallel()
	limits := map[string]sim.Limit{}
	for _, k := range kindAPIs {
		limits[k.api] = sim.Limit{PerSecond: 1.0 / 3600, Burst: 1}
	}
	env := workertest.NewEnv(t, workertest.WithEvents(), workertest.WithConfig(noSpread),
		workertest.WithSim(func(c *sim.Config) { c.RateLimits = limits }))
	require.NoError(t, env.Cloud.Populate("acct", 2))
	for _, s := range newKinds(t, env.Cloud) {
		require.NoError(t, env.Worker.Register(s.Poller, s.Interval))
	}
	require.NoError(t, env.Worker.Watch("acct", "acme"))
	env.Start(t)
	env.Settle(t)
	for _, k := range kindAPIs {
		require.Equal(t, 1, env.Cloud.Calls(k.api), "%s: the first round passes", k.api)
	}
	_, ok := env.Worker.AccountHealth("acct")
	require.False(t, ok, "healthy after the first round")

	env.Advance(t, 2*time.Minute, 10*time.Second)
	require.Equal(t, 2, env.Cloud.Calls(sim.APIListLoadBalancerStatus), "the second poll of load balancer states is throttled")
	h, ok := env.Worker.AccountHealth("acct")
	require.True(t, ok)
	require.True(t, h.Throttled, "the account is throttled: %+v", h)
	require.Contains(t, h.LastError, sim.APIListLoadBalancerStatus)

	calls := func() map[string]int {
		m := map[string]int{}
		for _, k := range kindAPIs {
			m[k.api] = env.Cloud.Calls(k.api)
		}
		return m
	}
	before := calls()
	env.Advance(t, 50*time.Minute, time.Minute)
	require.Equal(t, before, calls(), "the account is paused until RetryAfter: no kind is listed, though several came due")

	env.Advance(t, 15*time.Minute, time.Minute)
	after := calls()
	require.Greater(t, after[sim.APIListAddresses], before[sim.APIListAddresses], "polling resumes after the pause")
	require.Greater(t, after[sim.APIListVolumes], before[sim.APIListVolumes])
}

// steadyInterval caps the poll intervals of the 100-account test, so that
// one round of every kind (images and invoices are polled every six hours,
// regions daily) fits in the test; the kinds polled every few minutes run
// at their default intervals.
const steadyInterval = 15 * time.Minute

// TestKindsSteadyStateHundredAccounts: one worker polls every standard kind
// of 100 accounts of the sim cloud (20 under the race detector); once the first round has stored them
// (and its events are out), a further round of every kind writes nothing to
// the provisioning database but the servers' usage samples, which go to
// the analytics tables (here in the same database).
func TestKindsSteadyStateHundredAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("polls 2400 targets")
	}
	t.Parallel()
	accounts := 100
	if raceEnabled {
		accounts = 20 // the same code paths, in a fifth of the time
	}
	env := workertest.NewEnv(t, workertest.WithEvents(), workertest.WithConfig(noSpread), workertest.WithWait(5*time.Minute))
	for i := range accounts {
		a := fmt.Sprintf("acct-%03d", i)
		require.NoError(t, env.Cloud.Populate(a, 3))
		seedServers(t, env.Cloud, a, 3)
		_, err := env.Cloud.AddFirewall(a, cloud.Firewall{Rules: []cloud.Rule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"}}})
		require.NoError(t, err)
		_, err = env.Cloud.SetBudget(a, cloud.Budget{Name: "monthly", Limit: 500, Currency: "EUR", Period: "2026-01"})
		require.NoError(t, err)
	}
	ps, err := cloud.StandardPollers(env.Cloud)
	require.NoError(t, err)
	require.Len(t, ps, 25)
	for _, s := range ps {
		require.NoError(t, env.Worker.Register(s.Poller, min(s.Interval, steadyInterval)))
	}
	for i := range accounts {
		require.NoError(t, env.Worker.Watch(fmt.Sprintf("acct-%03d", i), "acme"))
	}
	writes := countWrites(t, workerlink.BuiltinStore(env.Worker).DB())
	env.Start(t)
	// The first round: the schedule's per-account budget spreads an
	// account's 24 targets over a few seconds.
	firstRound := func() bool {
		for _, k := range kindAPIs {
			if env.Cloud.Calls(k.api) < accounts {
				return false
			}
		}
		return true
	}
	for range 60 {
		if firstRound() {
			break
		}
		env.Advance(t, 10*time.Second, 10*time.Second)
	}
	require.True(t, firstRound(), "a first round of every kind of every account within 10 minutes")
	env.Drain(t) // the first round's events are published and marked sent
	last := fmt.Sprintf("acct-%03d", accounts-1)
	rec := sim.Resources[cloud.DNSRecord](env.Cloud, last)[0]
	_, err = env.Worker.Store().Resource(context.Background(), last, cloud.KindDNSRecord, rec.ID)
	require.NoError(t, err, "the first round stored the resources")
	require.Positive(t, writes.n.Load())

	env.Cloud.ResetCalls()
	writes.reset()
	env.Advance(t, steadyInterval+steadyInterval/5, time.Minute)
	for _, k := range kindAPIs {
		require.GreaterOrEqual(t, env.Cloud.Calls(k.api), accounts, "%s: another round of every account", k.api)
	}
	require.GreaterOrEqual(t, env.Cloud.Calls(sim.APIListUsage), accounts, "usage samples of every account")
	n, what := writes.get()
	t.Logf("steady state: %d polls, %d writes to the provisioning database, %d of samples to the analytics tables",
		env.Cloud.Calls(""), n, writes.samples.Load())
	require.Zero(t, n, "the steady state writes nothing: %v", what)
	require.Positive(t, writes.samples.Load(), "the usage samples are appended")
}

// writeCounter counts the INSERT, UPDATE, DELETE and raw statements issued
// through a database handle.
type writeCounter struct {
	n       atomic.Int64
	samples atomic.Int64 // writes to the usage tables (analytics, not state)
	mu      sync.Mutex
	what    []string // the tables (or raw SQL) written, for the failure message
}

func (w *writeCounter) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n.Store(0)
	w.samples.Store(0)
	w.what = nil
}

func (w *writeCounter) get() (int64, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n.Load(), slices.Clone(w.what)
}

// countWrites counts the writes through db from now on, heartbeats aside. Register it before
// the worker runs: GORM callbacks are not registered concurrently with use.
func countWrites(t *testing.T, db *gorm.DB) *writeCounter {
	t.Helper()
	w := &writeCounter{}
	inc := func(d *gorm.DB) {
		w.mu.Lock()
		defer w.mu.Unlock()
		// The heartbeat is the process's liveness, written every beat
		// whatever the cloud does; it is not cloud state.
		if t := d.Statement.Table; t == "worker_instances" || t == "worker_probes" {
			return
		}
		// Usage samples are time series for the analytics database, which
		// is the provisioning one in this test.
		if strings.Contains(d.Statement.SQL.String(), "worker_usage_") {
			w.samples.Add(1)
			return
		}
		w.n.Add(1)
		what := d.Statement.Table
		if what == "" {
			what = d.Statement.SQL.String()
		}
		if len(w.what) < 20 {
			w.what = append(w.what, what)
		}
	}
	name := "sim_test:count_writes"
	cb := db.Callback()
	require.NoError(t, cb.Create().Before("gorm:create").Register(name, inc))
	require.NoError(t, cb.Update().Before("gorm:update").Register(name, inc))
	require.NoError(t, cb.Delete().Before("gorm:delete").Register(name, inc))
	require.NoError(t, cb.Raw().Before("gorm:raw").Register(name, inc))
	return w
}
