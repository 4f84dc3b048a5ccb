package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// scaleAccounts is how many accounts the start-up tests put in the registry.
const scaleAccounts = 1000

var scaleKinds = []string{"server", "firewall"}

// seedAccounts writes n "sim" accounts to the registry of the SQLite
// database at dsn, as another process would have, and returns their ids.
func seedAccounts(t testing.TB, dsn string, n int) []accounts.Account {
	t.Helper()
	ctx := context.Background()
	s, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{DSN: dsn}, Logger: discardLogger()})
	require.NoError(t, err)
	defer s.Close()
	out := make([]accounts.Account, 0, n)
	for i := range n {
		a, err := s.PutAccount(ctx, accounts.Account{ID: fmt.Sprintf("acct-%05d", i), Customer: fmt.Sprintf("customer-%02d", i%50),
			Provider: "sim", Settings: json.RawMessage(`{"servers":2}`)})
		require.NoError(t, err)
		out = append(out, a)
	}
	return out
}

// newScaleWorker is a worker on the seeded database with the server and
// firewall pollers on Worker.Cloud, not running yet.
func newScaleWorker(t testing.TB, dsn string) *Worker {
	t.Helper()
	w, err := New(context.Background(), Config{
		Store:  persist.Config{Provisioning: persist.DBConfig{DSN: dsn}}, // the seeded database
		Logger: discardLogger(),
	})
	require.NoError(t, err)
	compute, err := w.Cloud().Compute()
	require.NoError(t, err)
	network, err := w.Cloud().Network()
	require.NoError(t, err)
	require.NoError(t, w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, w.Register(cloud.FirewallPoller{Network: network}, time.Minute))
	return w
}

// TestAccountsStartupSchedulesAll: with 1,000 accounts in the registry on
// the sim cloud, a publisher has every kind of every account on its
// schedule when Run reports running, though it never called Put or Watch.
func TestAccountsStartupSchedulesAll(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "worker.db")
	seeded := seedAccounts(t, dsn, scaleAccounts)
	w := newScaleWorker(t, dsn)
	t.Cleanup(func() { _ = w.Close() })
	runWorkerUntilCleanup(t, w)

	st := w.sched.sched.Stats()
	require.Equal(t, scaleAccounts, st.Accounts)
	require.Equal(t, scaleAccounts*len(scaleKinds), st.Targets)
	for _, a := range seeded {
		for _, kind := range scaleKinds {
			e, ok := w.sched.sched.Lookup(state.Target{Kind: kind, Account: a.ID, Customer: a.Customer})
			require.True(t, ok, "%s/%s is on the schedule", a.ID, kind)
			require.Equal(t, a.Customer, e.Target.Customer)
			require.Equal(t, time.Minute, e.Every)
		}
	}
}

// BenchmarkAccountsScheduled measures the memory a publisher spends per
// account of the registry once it is on the schedule (two kinds): the heap
// in use after the start-up registry sync less before, divided by the
// number of accounts. Providers are built lazily, at the first poll, and are
// not counted.
//
//	go test -run '^$' -bench BenchmarkAccountsScheduled -benchtime 5x .
func BenchmarkAccountsScheduled(b *testing.B) {
	for _, n := range []int{scaleAccounts, 10 * scaleAccounts} {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "worker.db")
			seedAccounts(b, dsn, n)
			ctx := context.Background()
			var total float64
			runs := 0
			for b.Loop() {
				w := newScaleWorker(b, dsn)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				require.NoError(b, w.accts.sync(ctx)) // what Run does before it reports running
				runtime.GC()
				runtime.ReadMemStats(&after)
				require.Equal(b, n*len(scaleKinds), w.sched.sched.Stats().Targets)
				total += (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n)
				runs++
				runtime.KeepAlive(w)
				require.NoError(b, w.Close())
			}
			b.ReportMetric(total/float64(runs), "bytes/account")
		})
	}
}
