package persist_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// TestBackupWorkerResumes: a worker on SQLite polls a cloud and publishes
// its changes; its database is exported and restored into MariaDB; a
// worker started there on the same cloud publishes nothing (no duplicate,
// no false "created"), and then exactly the next real change.
func TestBackupWorkerResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	mysqlDSN := testenv.MySQLDSN(t)
	clk := clock.NewFake(workertest.DefaultStart)
	cl, err := sim.New(sim.Config{Now: clk.Now})
	require.NoError(t, err)
	require.NoError(t, cl.AddAccount("acct-1"))
	compute, err := cl.Compute()
	require.NoError(t, err)
	var ids []string
	for i := range 20 {
		op, err := compute.Launch(ctx, "acct-1", cloud.LaunchRequest{Name: "web-" + string(rune('a'+i)), Image: "debian-12"})
		require.NoError(t, err)
		ids = append(ids, op.ResourceID)
	}

	run := func(db persist.DBConfig) *workertest.Env {
		env := workertest.NewEnv(t, workertest.SharedClock(clk), workertest.SharedCloud(cl),
			workertest.WithConfig(func(c *worker.Config) { c.Store = persist.Config{Provisioning: db} }))
		require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute}, 10*time.Second))
		require.NoError(t, env.Worker.Watch("acct-1", "acme"))
		env.Start(t)
		env.Settle(t)
		return env
	}
	changes := func(evs []worker.Action) (created, other int) {
		for _, e := range evs {
			if e.Type != "server.changed" {
				continue
			}
			var ch state.Change
			require.NoError(t, e.Decode(&ch))
			if ch.Op == state.Created {
				created++
			} else {
				other++
			}
		}
		return created, other
	}

	src := persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}
	a := run(src)
	a.Advance(t, time.Minute, time.Second) // created PENDING, then RUNNING
	created, updated := changes(a.Drain(t))
	require.Equal(t, 20, created)
	require.Equal(t, 20, updated)
	require.NoError(t, a.Stop())

	store, err := persist.Open(ctx, persist.Config{Provisioning: src, Logger: quiet})
	require.NoError(t, err)
	var archive bytes.Buffer
	_, err = store.Export(ctx, &archive, persist.ExportOptions{})
	require.NoError(t, err)
	require.NoError(t, store.Close())
	dst := persist.DBConfig{Driver: persist.MySQL, DSN: mysqlDSN}
	_, err = persist.Import(ctx, &archive, persist.Config{Provisioning: dst, Logger: quiet}, persist.ImportOptions{})
	require.NoError(t, err)

	b := run(dst)
	b.Advance(t, time.Minute, time.Second)
	require.Empty(t, b.Drain(t), "the restored worker re-emits nothing and takes nothing for new")

	_, err = compute.Terminate(ctx, "acct-1", ids[0])
	require.NoError(t, err)
	b.Advance(t, time.Minute, time.Second)
	var events int
	for _, e := range b.Drain(t) {
		var ch state.Change
		require.NoError(t, e.Decode(&ch))
		require.Equal(t, ids[0], ch.Target.Resource, "only the terminated server changed (%s %s)", e.Type, ch.Op)
		events++
	}
	require.NotZero(t, events)
}
