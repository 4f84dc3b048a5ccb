package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/workertest"
)

// TestServerLaunchNeedsAnAccount: with no Config.Cloud, a launch goes to the
// provider of its account in the registry; a launch for an account that is
// not there, or is paused, is poisoned at once with the reason (no retries
// for a day) and launches nothing.
func TestServerLaunchNeedsAnAccount(t *testing.T) {
	t.Parallel()
	env := workertest.NewEnv(t, workertest.WithConfig(func(c *worker.Config) {
		c.Cloud = nil // every account needs a provider type of its own
	}))
	ctx := context.Background()
	_, err := env.Worker.Accounts().Put(ctx, accounts.Account{ID: "acct-sim", Customer: "acme", Provider: "sim"})
	require.NoError(t, err)
	_, err = env.Worker.Accounts().Put(ctx, accounts.Account{ID: "acct-paused", Customer: "acme", Provider: "sim"})
	require.NoError(t, err)
	require.NoError(t, env.Worker.Accounts().Pause(ctx, "acct-paused", "contract ended"))
	env.Start(t)

	for i, tc := range []struct{ account, reason string }{
		{"acct-unknown", `account is not in the registry: "acct-unknown"`},
		{"acct-paused", `account is paused: "acct-paused": contract ended`},
	} {
		a, err := worker.NewAction(worker.TypeServerLaunch, worker.LaunchRequest{LaunchRequest: cloud.LaunchRequest{Name: "web", Image: "debian-12"}})
		require.NoError(t, err)
		a.Account, a.Customer, a.Key = tc.account, "acme", "launch-"+tc.account
		env.Publish(t, a)
		ps := waitPoisoned(t, env.Worker, i+1)
		require.Contains(t, ps[0].Reason, tc.reason)
		require.Equal(t, 1, ps[0].Attempts, "poisoned at the first attempt")
	}

	// The account on the built-in sim type launches on its own simulated cloud.
	a, err := worker.NewAction(worker.TypeServerLaunch, worker.LaunchRequest{LaunchRequest: cloud.LaunchRequest{Name: "web", Image: "debian-12"}})
	require.NoError(t, err)
	a.Account, a.Customer, a.Key = "acct-sim", "acme", "launch-sim"
	env.Publish(t, a)
	require.Eventually(t, func() bool {
		_, err := env.Worker.Store().Job(ctx, "launch/launch-sim")
		return err == nil
	}, workertest.DefaultWait, 5*time.Millisecond)
	require.Empty(t, env.Cloud.Servers("acct-sim"), "not on the Env's cloud: the account has its own")
}
