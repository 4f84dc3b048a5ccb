package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

func TestThrottling(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{RateLimits: map[string]sim.Limit{
		sim.APIListServers: {PerSecond: 2, Burst: 3},
		sim.APILaunch:      {PerSecond: 0.1, Burst: 1},
	}})
	ctx := context.Background()
	list := func() error {
		_, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
		return err
	}
	for range 3 {
		require.NoError(t, list(), "the burst is allowed")
	}
	err := list()
	var thr *cloud.ThrottledError
	require.ErrorAs(t, err, &thr)
	require.Equal(t, sim.APIListServers, thr.API)
	require.Equal(t, 500*time.Millisecond, thr.RetryAfter)
	require.True(t, cloud.IsTransient(err))

	clk.Advance(200 * time.Millisecond)
	err = list()
	wait, ok := cloud.RetryAfter(err)
	require.True(t, ok)
	require.Equal(t, 300*time.Millisecond, wait, "RetryAfter shrinks as the bucket refills")

	clk.Advance(wait)
	require.NoError(t, list(), "a token is there after RetryAfter")
	_, ok = cloud.RetryAfter(list())
	require.True(t, ok, "and only one")

	_, err = c.GetServer(ctx, "acct", "i-x")
	require.ErrorIs(t, err, cloud.ErrNotFound, "other APIs have their own bucket (here: none)")

	launch(t, c, "acct", cloud.LaunchRequest{})
	_, err = c.Launch(ctx, "acct", cloud.LaunchRequest{Image: "debian-12"})
	wait, ok = cloud.RetryAfter(err)
	require.True(t, ok)
	require.Equal(t, 10*time.Second, wait)
	clk.Advance(wait)
	launch(t, c, "acct", cloud.LaunchRequest{})
	require.Equal(t, 3, c.Calls(sim.APILaunch), "throttled calls are counted")
}

func TestThrottlingRetryAfterIsEnough(t *testing.T) {
	t.Parallel()
	// Rates whose token interval is not a whole number of nanoseconds.
	for _, rate := range []float64{3, 7, 0.3, 1e6 / 7, 123.456} {
		c, clk := setup(t, sim.Config{RateLimits: map[string]sim.Limit{sim.APIGetServer: {PerSecond: rate, Burst: 1}}})
		id := seed(t, c, "acct", 1)[0]
		for range 20 {
			_, err := c.GetServer(context.Background(), "acct", id)
			if err == nil {
				continue
			}
			wait, ok := cloud.RetryAfter(err)
			require.True(t, ok)
			require.Positive(t, wait)
			clk.Advance(wait)
			_, err = c.GetServer(context.Background(), "acct", id)
			require.NoError(t, err, "rate %v: advancing by RetryAfter %v must be enough", rate, wait)
		}
	}
}

func TestThrottlingIsPerAccount(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{RateLimits: map[string]sim.Limit{sim.APIListServerStatus: {PerSecond: 1, Burst: 1}}})
	require.NoError(t, c.AddAccount("other"))
	ctx := context.Background()
	_, err := c.ListServerStatus(ctx, "acct", cloud.ListOptions{})
	require.NoError(t, err)
	_, err = c.ListServerStatus(ctx, "acct", cloud.ListOptions{})
	_, throttled := cloud.RetryAfter(err)
	require.True(t, throttled)
	_, err = c.ListServerStatus(ctx, "other", cloud.ListOptions{})
	require.NoError(t, err, "another account has its own bucket")
}

func TestSetAccountDown(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	require.NoError(t, c.AddAccount("other"))
	ctx := context.Background()
	outage := errors.New("region on fire")
	c.SetAccountDown("acct", outage)

	_, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
	require.ErrorIs(t, err, outage)
	_, err = c.Launch(ctx, "acct", cloud.LaunchRequest{Image: "debian-12"})
	require.ErrorIs(t, err, outage)
	_, err = c.ListServers(ctx, "other", cloud.ListOptions{})
	require.NoError(t, err, "other accounts work")

	c.SetAccountDown("acct", nil)
	_, err = c.ListServers(ctx, "acct", cloud.ListOptions{})
	require.NoError(t, err)
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	ctx := context.Background()
	c.FailNext(sim.APILaunch, cloud.ErrCapacity)
	c.FailNext(sim.APILaunch, &cloud.ThrottledError{API: sim.APILaunch, RetryAfter: time.Second})

	_, err := c.Launch(ctx, "acct", cloud.LaunchRequest{Image: "debian-12"})
	require.ErrorIs(t, err, cloud.ErrCapacity)
	_, err = c.ListServers(ctx, "acct", cloud.ListOptions{})
	require.NoError(t, err, "other APIs are unaffected")
	_, err = c.Launch(ctx, "acct", cloud.LaunchRequest{Image: "debian-12"})
	wait, ok := cloud.RetryAfter(err)
	require.True(t, ok)
	require.Equal(t, time.Second, wait)
	launch(t, c, "acct", cloud.LaunchRequest{})
	require.Len(t, c.Servers("acct"), 1)

	require.Panics(t, func() { c.FailNext("Reboot", cloud.ErrCapacity) })
	require.Panics(t, func() { c.FailNext(sim.APILaunch, nil) })
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	failures := func(seed int64, n int) []bool {
		c, _ := setup(t, sim.Config{Seed: seed, Faults: sim.Faults{ErrorRate: 0.2}})
		out := make([]bool, n)
		for i := range out {
			_, err := c.ListServerStatus(context.Background(), "acct", cloud.ListOptions{})
			if err != nil {
				require.ErrorIs(t, err, cloud.ErrCommunication)
				require.True(t, cloud.IsTransient(err))
				out[i] = true
			}
		}
		return out
	}
	a := failures(42, 10_000)
	require.Equal(t, a, failures(42, 10_000), "same seed, same failures")
	require.NotEqual(t, a, failures(43, 10_000), "another seed, other failures")
	n := 0
	for _, f := range a {
		if f {
			n++
		}
	}
	require.InDelta(t, 2000, n, 150, "about 20%% of 10,000 calls fail")
}

func TestContextDone(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	id := seed(t, c, "acct", 1)[0]
	fw, err := c.AddFirewall("acct", cloud.Firewall{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rule := cloud.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"}
	calls := map[string]func() error{
		"ListServers": func() error { _, err := c.ListServers(ctx, "acct", cloud.ListOptions{}); return err },
		"ListServerStatus": func() error {
			_, err := c.ListServerStatus(ctx, "acct", cloud.ListOptions{})
			return err
		},
		"GetServer":        func() error { _, err := c.GetServer(ctx, "acct", id); return err },
		"FindServersByTag": func() error { _, err := c.FindServersByTag(ctx, "acct", "n", "0"); return err },
		"Launch": func() error {
			_, err := c.Launch(ctx, "acct", cloud.LaunchRequest{Image: "debian-12"})
			return err
		},
		"Terminate":     func() error { _, err := c.Terminate(ctx, "acct", id); return err },
		"ListFirewalls": func() error { _, err := c.ListFirewalls(ctx, "acct", cloud.ListOptions{}); return err },
		"Authorize":     func() error { _, err := c.Authorize(ctx, "acct", fw.ID, rule); return err },
		"Revoke":        func() error { return c.Revoke(ctx, "acct", fw.ID, "r-1") },
		"ListBudgets":   func() error { _, err := c.ListBudgets(ctx, "acct"); return err },
		"Operation":     func() error { _, err := c.Operation(ctx, "acct", "op-1"); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.ErrorIs(t, err, context.Canceled)
			require.ErrorContains(t, err, name)
		})
	}
	require.Zero(t, c.Calls(""), "calls with a done context are not counted")
	require.Equal(t, cloud.StateRunning, get(t, c, "acct", id).State)
}

func TestLatencyHonoursContext(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{Faults: sim.Faults{Latency: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestDisable(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{Disable: []string{sim.ServiceBilling, sim.ServiceOperations}})
	_, err := c.Billing()
	require.ErrorIs(t, err, cloud.ErrNotSupported)
	require.ErrorContains(t, err, "billing")
	_, err = c.Operations()
	require.ErrorIs(t, err, cloud.ErrNotSupported)
	_, err = c.ListBudgets(context.Background(), "acct")
	require.ErrorIs(t, err, cloud.ErrNotSupported, "the methods refuse too")
	require.False(t, cloud.IsTransient(err))

	compute, err := c.Compute()
	require.NoError(t, err)
	_, err = compute.ListServers(context.Background(), "acct", cloud.ListOptions{})
	require.NoError(t, err)
	_, err = c.Network()
	require.NoError(t, err)
	require.Equal(t, "sim", c.Name())
}

func TestCalls(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	ctx := context.Background()
	for range 3 {
		_, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
		require.NoError(t, err)
	}
	_, err := c.GetServer(ctx, "acct", "i-missing")
	require.ErrorIs(t, err, cloud.ErrNotFound)
	_, err = c.ListServers(ctx, "ghost", cloud.ListOptions{})
	require.ErrorIs(t, err, cloud.ErrNotFound)

	require.Equal(t, 4, c.Calls(sim.APIListServers), "failed calls count")
	require.Equal(t, 1, c.Calls(sim.APIGetServer))
	require.Equal(t, 0, c.Calls(sim.APILaunch))
	require.Equal(t, 0, c.Calls("NoSuchAPI"))
	require.Equal(t, 5, c.Calls(""))
	c.ResetCalls()
	require.Zero(t, c.Calls(""))
}
