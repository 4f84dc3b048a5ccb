package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// readCountingStore is the built-in store with its registry reads counted.
type readCountingStore struct {
	*persist.Store
	reads atomic.Int64
}

func (s *readCountingStore) Account(ctx context.Context, id string) (accounts.Account, error) {
	s.reads.Add(1)
	return s.Store.Account(ctx, id)
}

// TestPollReadsTheRegistryOnce: a poll of several pages reads the account's
// registry entry once (to skip a paused or deleted account), not once more
// per page for the provider lookup of each cloud call. The default Config
// apart from the fake clock and the Storage wrapper that counts the reads.
func TestPollReadsTheRegistryOnce(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	c, err := sim.New(sim.Config{Now: clk.Now})
	require.NoError(t, err)
	require.NoError(t, c.AddAccount("acme-prod"))
	for i := range 250 { // three pages of the sim's default 100
		_, err := c.AddServer("acme-prod", cloud.Server{ID: fmt.Sprintf("vm-%03d", i), Name: fmt.Sprintf("vm-%03d", i), State: cloud.StateRunning})
		require.NoError(t, err)
	}
	st, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	counted := &readCountingStore{Store: st}

	w, err := worker.New(ctx, worker.Config{
		Storage:  counted,
		Logger:   quiet,
		Cloud:    c,
		Schedule: poller.Config{Clock: clk, Jitter: -1, InitialSpread: -1},
	})
	require.NoError(t, err)
	compute, err := w.Cloud().Compute()
	require.NoError(t, err)
	require.NoError(t, w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, w.Watch("acme-prod", "acme"))

	before := counted.reads.Load()
	runFor(w, clk, 3*time.Minute, 10*time.Second)
	calls := c.Calls(sim.APIListServers)
	polls := calls / 3
	require.Equal(t, 3*polls, calls, "every poll read three pages")
	require.GreaterOrEqual(t, polls, 3, "polled once a minute")

	n, err := w.Store().Resources(ctx, "acme-prod", "server", "", 1000)
	require.NoError(t, err)
	require.Len(t, n, 250, "every server stored")
	require.Equal(t, int64(polls), counted.reads.Load()-before, "one registry read per poll, not one per page")
}
