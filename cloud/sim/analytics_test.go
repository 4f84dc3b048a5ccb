package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/state"
)

// usageAll pages through ListUsage and returns every sample.
func usageAll(t *testing.T, c *sim.Cloud, o cloud.UsageOptions) []cloud.UsageSample {
	t.Helper()
	var out []cloud.UsageSample
	for {
		page, err := c.ListUsage(context.Background(), "acct", o)
		require.NoError(t, err)
		out = append(out, page.Items...)
		if page.NextToken == "" {
			return out
		}
		o.PageToken = page.NextToken
	}
}

// TestListUsage: every running server has a sample every UsageInterval of
// the window since it was launched, within bounds; the samples are the same
// on every call and across pages, and differ between servers.
func TestListUsage(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	ids := seed(t, c, "acct", 5)
	clk.Advance(2 * time.Hour)
	one := usageAll(t, c, cloud.UsageOptions{Window: 10 * time.Minute})
	require.Len(t, one, 5*30, "30 samples of 20s in 10 minutes, for each of 5 servers")
	for i, x := range one {
		require.Equal(t, ids[i/30], x.Server, "grouped by server, in id order")
		require.True(t, x.At.After(start.Add(2*time.Hour-10*time.Minute)) && !x.At.After(start.Add(2*time.Hour)), x.At)
		require.Zero(t, x.At.Unix()%20)
		require.True(t, x.CPU >= 0 && x.CPU <= 100 && x.Memory >= 0 && x.Memory <= 100, "%+v", x)
		require.True(t, x.DiskRead >= 0 && x.DiskWrite >= 0 && x.NetRx >= 0 && x.NetTx >= 0, "%+v", x)
	}
	require.NotEqual(t, one[0].CPU, one[30].CPU, "each server has its own load")
	paged := usageAll(t, c, cloud.UsageOptions{Window: 10 * time.Minute, PageSize: 2})
	require.Equal(t, one, paged, "deterministic, and the same across pages")

	clk.Advance(time.Minute)
	later := usageAll(t, c, cloud.UsageOptions{Window: 10 * time.Minute})
	require.Equal(t, one[3:30], later[:27], "the overlap of two windows has the same samples")

	all := usageAll(t, c, cloud.UsageOptions{Window: 48 * time.Hour})
	require.Len(t, all, 5*int(sim.UsageWindow/sim.UsageInterval), "the window is capped at an hour")
}

// TestListUsageLifecycle: a server just launched has no samples until it
// runs; a server gone has none.
func TestListUsageLifecycle(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	op := launch(t, c, "acct", cloud.LaunchRequest{Name: "new", Image: "ubuntu-24.04"})
	require.Empty(t, usageAll(t, c, cloud.UsageOptions{}), "a pending server is not sampled")
	clk.Advance(sim.DefaultLaunchDelay + 5*time.Minute)
	got := usageAll(t, c, cloud.UsageOptions{})
	require.NotEmpty(t, got)
	require.Equal(t, op.ResourceID, got[0].Server)
	require.LessOrEqual(t, len(got), int((sim.DefaultLaunchDelay+5*time.Minute)/sim.UsageInterval)+1, "only since the launch")
}

// TestListUsageFaults: throttling, disabling and bad arguments.
func TestListUsageFaults(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{RateLimits: map[string]sim.Limit{sim.APIListUsage: {PerSecond: 1, Burst: 1}}})
	seed(t, c, "acct", 1)
	p := cloud.ServerAnalyticsPoller{Analytics: c}
	tgt := state.Target{Account: "acct", Kind: p.Kind()}
	snap, next, err := p.Poll(context.Background(), tgt, "")
	require.NoError(t, err)
	require.Empty(t, next)
	require.Empty(t, snap.Observations, "samples, not state")
	require.False(t, snap.Complete)
	_, _, err = p.Poll(context.Background(), tgt, "")
	_, ok := cloud.RetryAfter(err)
	require.True(t, ok, "throttled: %v", err)
	require.Equal(t, 2, c.Calls(sim.APIListUsage))

	c, _ = setup(t, sim.Config{})
	_, err = c.ListUsage(context.Background(), "acct", cloud.UsageOptions{Window: -time.Second})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
	_, err = c.ListUsage(context.Background(), "acct", cloud.UsageOptions{PageToken: "junk"})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
	_, err = c.ListUsage(context.Background(), "nobody", cloud.UsageOptions{})
	require.ErrorIs(t, err, cloud.ErrNotFound)

	off, err := sim.New(sim.Config{Disable: []string{sim.ServiceAnalytics}})
	require.NoError(t, err)
	_, err = cloud.ServerAnalyticsOf(off)
	var ns *cloud.NotSupportedError
	require.True(t, errors.As(err, &ns), "%v", err)
}
