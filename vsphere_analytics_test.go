package worker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// TestServerAnalyticsVSphere: the server-analytics kind, polled by the
// standard poller on a vCenter (vcsim, 50 powered-on VMs), appends the VMs'
// realtime samples (one QueryPerf per page) to the analytics database with
// their hourly rollups, and writes no state; the retention purges (run with
// a clock moved on, not by waiting) prune the raw rows, then the rollups.
// On SQLite and on MariaDB (skipped without WORKER_TEST_MYSQL_DSN).
func TestServerAnalyticsVSphere(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		db   func(t *testing.T) persist.Config
	}{
		{"SQLite", sqliteConfig},
		{"MariaDB", func(t *testing.T) persist.Config {
			return persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}, Logger: discardLogger()}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const vms = 50
			store := tt.db(t)
			vc := vcsimtest.New(t, vcsimtest.Options{Servers: vms})
			w := newTestWorker(t, Config{Store: store, Cloud: vc.Provider(t), Schedule: poller.Config{InitialSpread: -1}})
			ctx := context.Background()
			an, err := cloud.ServerAnalyticsOf(w.Cloud())
			require.NoError(t, err)
			// Pages of 20 VMs: three QueryPerf calls.
			require.NoError(t, w.Register(cloud.ServerAnalyticsPoller{Analytics: an, PageSize: 20}, cloud.IntervalServerAnalytics))
			require.NoError(t, w.Watch(vc.Account(), "acme"))

			runCtx, cancel := context.WithCancel(ctx)
			stopped := make(chan error, 1)
			go func() { stopped <- w.Run(runCtx) }()
			t.Cleanup(func() { cancel(); <-stopped })

			db := w.db.DB()
			count := func(q string) int64 {
				var n int64
				require.NoError(t, db.Raw(q).Scan(&n).Error)
				return n
			}
			require.Eventually(t, func() bool {
				return count("SELECT COUNT(DISTINCT server) FROM worker_usage_samples") == vms
			}, time.Minute, 10*time.Millisecond, "samples of every VM")
			require.Eventually(t, w.ScheduleIdle, 30*time.Second, time.Millisecond, "the poll is done")

			raw := count("SELECT COUNT(*) FROM worker_usage_samples")
			require.GreaterOrEqual(t, raw, int64(vms*29), "the poller's window (10 minutes) of 20s samples per VM")
			require.Equal(t, raw, count("SELECT COALESCE(SUM(samples), 0) FROM worker_usage_hourly"), "every sample in one rollup")
			require.Equal(t, int64(vms), count("SELECT COUNT(DISTINCT server) FROM worker_usage_hourly"))
			require.Zero(t, count("SELECT COUNT(*) FROM worker_resources"), "samples are not state")
			require.Zero(t, count("SELECT COUNT(*) FROM worker_outbox"), "and raise no events")

			vmID := ""
			require.NoError(t, db.Raw("SELECT MIN(server) FROM worker_usage_samples").Scan(&vmID).Error)
			now := time.Now()
			hours, err := w.db.UsageRollups(ctx, vc.Account(), vmID, now.Add(-3*time.Hour), now.Add(time.Hour), 10)
			require.NoError(t, err)
			require.NotEmpty(t, hours)
			for _, h := range hours {
				require.Positive(t, h.Samples)
				require.True(t, h.CPU.Min <= h.CPU.Avg && h.CPU.Avg <= h.CPU.Max && h.CPU.Max <= 100, "%+v", h.CPU)
				require.True(t, h.Memory.Min <= h.Memory.Avg && h.Memory.Avg <= h.Memory.Max, "%+v", h.Memory)
			}

			// The retention settings as shipped, a week and a day later.
			a := w.cfg.Analytics
			later := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
			require.NoError(t, purger{purge: w.db.PurgeSamples, now: later(8 * 24 * time.Hour), keep: a.Retention}.run(ctx))
			require.Zero(t, count("SELECT COUNT(*) FROM worker_usage_samples"), "raw samples pruned after Analytics.Retention")
			require.Equal(t, raw, count("SELECT COALESCE(SUM(samples), 0) FROM worker_usage_hourly"), "the rollups stay")
			require.NoError(t, purger{purge: w.db.PurgeRollups, now: later(8 * 24 * time.Hour), keep: a.RollupRetention}.run(ctx))
			require.Positive(t, count("SELECT COUNT(*) FROM worker_usage_hourly"))
			require.NoError(t, purger{purge: w.db.PurgeRollups, now: later(401 * 24 * time.Hour), keep: a.RollupRetention}.run(ctx))
			require.Zero(t, count("SELECT COUNT(*) FROM worker_usage_hourly"), "rollups pruned after Analytics.RollupRetention")
		})
	}
}
