package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

var (
	_ cloud.Provider   = (*sim.Cloud)(nil)
	_ cloud.Compute    = (*sim.Cloud)(nil)
	_ cloud.Network    = (*sim.Cloud)(nil)
	_ cloud.Billing    = (*sim.Cloud)(nil)
	_ cloud.Operations = (*sim.Cloud)(nil)
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// setup returns a cloud on a fake clock with account "acct" created.
func setup(t testing.TB, cfg sim.Config) (*sim.Cloud, *sim.FakeClock) {
	t.Helper()
	clk := sim.NewFakeClock(start)
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	c, err := sim.New(cfg)
	require.NoError(t, err)
	require.NoError(t, c.AddAccount("acct"))
	return c, clk
}

// seed adds n RUNNING servers to the account and returns their ids in order.
func seed(t testing.TB, c *sim.Cloud, account string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		s, err := c.AddServer(account, cloud.Server{Name: fmt.Sprintf("srv-%d", i), Image: "ubuntu-24.04",
			Tags: map[string]string{"n": fmt.Sprint(i)}})
		require.NoError(t, err)
		ids[i] = s.ID
	}
	return ids
}

// listAll pages through ListServers and returns every id seen, in order.
func listAll(t testing.TB, c *sim.Cloud, account string, size int) []string {
	t.Helper()
	var ids []string
	opts := cloud.ListOptions{PageSize: size}
	for {
		page, err := c.ListServers(context.Background(), account, opts)
		require.NoError(t, err)
		for _, s := range page.Servers {
			ids = append(ids, s.ID)
		}
		if page.NextToken == "" {
			return ids
		}
		opts.PageToken = page.NextToken
	}
}

func launch(t testing.TB, c *sim.Cloud, account string, req cloud.LaunchRequest) cloud.Operation {
	t.Helper()
	if req.Image == "" {
		req.Image = "ubuntu-24.04"
	}
	op, err := c.Launch(context.Background(), account, req)
	require.NoError(t, err)
	return op
}

func get(t testing.TB, c *sim.Cloud, account, id string) cloud.Server {
	t.Helper()
	s, err := c.GetServer(context.Background(), account, id)
	require.NoError(t, err)
	return s
}

func operation(t testing.TB, c *sim.Cloud, account, id string) cloud.Operation {
	t.Helper()
	op, err := c.Operation(context.Background(), account, id)
	require.NoError(t, err)
	return op
}
