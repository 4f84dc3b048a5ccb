package sim_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

func TestLaunchLifecycle(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	ctx := context.Background()

	op := launch(t, c, "acct", cloud.LaunchRequest{Name: "web", Image: "debian-12", Tags: map[string]string{"key": "k1"}})
	require.Equal(t, "launch", op.Kind)
	require.Equal(t, cloud.OpRunning, op.State)
	require.NotEmpty(t, op.ID)
	require.Equal(t, start, op.UpdatedAt)

	s := get(t, c, "acct", op.ResourceID)
	require.Equal(t, cloud.Server{
		ID: op.ResourceID, Name: "web", Account: "acct", Region: sim.DefaultRegion, Image: "debian-12",
		Size: "small", State: cloud.StatePending, Tags: map[string]string{"key": "k1"},
		PrivateIPs: s.PrivateIPs, LaunchedAt: start,
	}, s)
	require.Len(t, s.PrivateIPs, 1)

	clk.Advance(sim.DefaultLaunchDelay - time.Nanosecond)
	require.Equal(t, cloud.StatePending, get(t, c, "acct", op.ResourceID).State)
	require.Equal(t, cloud.OpRunning, operation(t, c, "acct", op.ID).State)

	clk.Advance(time.Nanosecond)
	require.Equal(t, cloud.StateRunning, get(t, c, "acct", op.ResourceID).State)
	done := operation(t, c, "acct", op.ID)
	require.Equal(t, cloud.OpSucceeded, done.State)
	require.Empty(t, done.Error)
	require.Equal(t, start.Add(sim.DefaultLaunchDelay), done.UpdatedAt)

	page, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Servers, 1)
	require.Equal(t, cloud.StateRunning, page.Servers[0].State)
}

func TestLaunchNameDefaultsToID(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	op := launch(t, c, "acct", cloud.LaunchRequest{Size: "large"})
	s := get(t, c, "acct", op.ResourceID)
	require.Equal(t, op.ResourceID, s.Name)
	require.Equal(t, "large", s.Size)
}

func TestLaunchValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      cloud.LaunchRequest
		notFound bool
	}{
		{"MissingImage", cloud.LaunchRequest{Name: "x"}, false},
		{"UnknownImage", cloud.LaunchRequest{Image: "plan9"}, true},
		{"UnknownSize", cloud.LaunchRequest{Image: "debian-12", Size: "huge"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := setup(t, sim.Config{})
			_, err := c.Launch(context.Background(), "acct", tt.req)
			require.ErrorIs(t, err, sim.ErrInvalidRequest)
			require.Equal(t, tt.notFound, errors.Is(err, cloud.ErrNotFound))
			require.Empty(t, c.Servers("acct"))
		})
	}
}

func TestLaunchQuota(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{MaxServersPerAccount: 2})
	ctx := context.Background()
	first := launch(t, c, "acct", cloud.LaunchRequest{})
	launch(t, c, "acct", cloud.LaunchRequest{})
	_, err := c.Launch(ctx, "acct", cloud.LaunchRequest{Image: "debian-12"})
	require.ErrorIs(t, err, cloud.ErrQuota)
	require.False(t, cloud.IsTransient(err))

	require.NoError(t, c.AddAccount("other"))
	launch(t, c, "other", cloud.LaunchRequest{}) // quotas are per account

	_, err = c.Terminate(ctx, "acct", first.ResourceID)
	require.NoError(t, err)
	launch(t, c, "acct", cloud.LaunchRequest{}) // a terminating server no longer counts
}

func TestTerminateLifecycle(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	ctx := context.Background()
	id := seed(t, c, "acct", 1)[0]

	op, err := c.Terminate(ctx, "acct", id)
	require.NoError(t, err)
	require.Equal(t, "terminate", op.Kind)
	require.Equal(t, id, op.ResourceID)
	require.Equal(t, cloud.OpRunning, op.State)
	require.Equal(t, cloud.StateStopping, get(t, c, "acct", id).State)

	again, err := c.Terminate(ctx, "acct", id)
	require.NoError(t, err)
	require.Equal(t, op.ID, again.ID, "terminating a stopping server returns its operation")

	clk.Advance(sim.DefaultTerminateDelay)
	require.Equal(t, cloud.StateTerminated, get(t, c, "acct", id).State)
	require.Equal(t, cloud.OpSucceeded, operation(t, c, "acct", op.ID).State)
	require.Equal(t, []string{id}, listAll(t, c, "acct", 0), "terminated servers are listed for a while")

	after, err := c.Terminate(ctx, "acct", id)
	require.NoError(t, err)
	require.Equal(t, cloud.OpSucceeded, after.State, "terminating a terminated server succeeds at once")

	clk.Advance(sim.DefaultTerminateDelay)
	_, err = c.GetServer(ctx, "acct", id)
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.ErrorContains(t, err, id)
	require.Empty(t, listAll(t, c, "acct", 0))
	require.Empty(t, c.Servers("acct"))
	_, err = c.Terminate(ctx, "acct", id)
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.Equal(t, cloud.OpSucceeded, operation(t, c, "acct", op.ID).State, "operations outlive their server")
}

func TestTerminateWhileLaunchingFailsTheLaunch(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	op := launch(t, c, "acct", cloud.LaunchRequest{})
	clk.Advance(time.Second)
	term, err := c.Terminate(context.Background(), "acct", op.ResourceID)
	require.NoError(t, err)

	got := operation(t, c, "acct", op.ID)
	require.Equal(t, cloud.OpFailed, got.State)
	require.Contains(t, got.Error, "STOPPING")
	require.Equal(t, start.Add(time.Second), got.UpdatedAt)

	clk.Advance(sim.DefaultTerminateDelay)
	require.Equal(t, cloud.StateTerminated, get(t, c, "acct", op.ResourceID).State)
	require.Equal(t, cloud.OpSucceeded, operation(t, c, "acct", term.ID).State)
}

func TestSetServerState(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	op := launch(t, c, "acct", cloud.LaunchRequest{})

	require.NoError(t, c.SetServerState("acct", op.ResourceID, cloud.StateRunning))
	require.Equal(t, cloud.StateRunning, get(t, c, "acct", op.ResourceID).State)
	require.Equal(t, cloud.OpSucceeded, operation(t, c, "acct", op.ID).State, "reaching the goal early ends the launch")

	op2 := launch(t, c, "acct", cloud.LaunchRequest{})
	require.NoError(t, c.SetServerState("acct", op2.ResourceID, cloud.StateError))
	clk.Advance(time.Minute)
	require.Equal(t, cloud.StateError, get(t, c, "acct", op2.ResourceID).State)
	require.Equal(t, cloud.OpFailed, operation(t, c, "acct", op2.ID).State)

	require.ErrorIs(t, c.SetServerState("acct", op.ResourceID, "BOGUS"), sim.ErrInvalidRequest)
	require.ErrorIs(t, c.SetServerState("acct", "i-nope", cloud.StateStopped), cloud.ErrNotFound)
	require.ErrorIs(t, c.SetServerState("nobody", op.ResourceID, cloud.StateStopped), cloud.ErrNotFound)
}

func TestOperationNotFound(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{OperationRetention: time.Minute})
	_, err := c.Operation(context.Background(), "acct", "op-missing")
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.ErrorContains(t, err, "op-missing")

	op := launch(t, c, "acct", cloud.LaunchRequest{})
	clk.Advance(sim.DefaultLaunchDelay + time.Minute - time.Nanosecond)
	require.Equal(t, cloud.OpSucceeded, operation(t, c, "acct", op.ID).State)
	clk.Advance(time.Nanosecond)
	_, err = c.Operation(context.Background(), "acct", op.ID)
	require.ErrorIs(t, err, cloud.ErrNotFound, "finished operations are forgotten after the retention")
}

func TestEventualConsistency(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{ConsistencyDelay: 5 * time.Second})
	ctx := context.Background()
	seeded := seed(t, c, "acct", 1)[0]
	op := launch(t, c, "acct", cloud.LaunchRequest{Tags: map[string]string{"key": "abc"}})

	visible := func() (list, status, found bool) {
		page, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
		require.NoError(t, err)
		st, err := c.ListServerStatus(ctx, "acct", cloud.ListOptions{})
		require.NoError(t, err)
		byTag, err := c.FindServersByTag(ctx, "acct", "key", "abc")
		require.NoError(t, err)
		require.Equal(t, seeded, page.Servers[0].ID, "seeded servers are visible at once")
		return len(page.Servers) == 2, len(st.Statuses) == 2, len(byTag) == 1
	}

	list, status, found := visible()
	require.False(t, list)
	require.False(t, status)
	require.False(t, found)
	require.Equal(t, cloud.StatePending, get(t, c, "acct", op.ResourceID).State, "GetServer sees it at once")
	require.Len(t, c.Servers("acct"), 2, "Servers is the truth")

	clk.Advance(5*time.Second - time.Nanosecond)
	list, _, _ = visible()
	require.False(t, list)

	clk.Advance(time.Nanosecond)
	list, status, found = visible()
	require.True(t, list)
	require.True(t, status)
	require.True(t, found)
}

func TestPagination(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	want := seed(t, c, "acct", 2345)
	require.True(t, slices.IsSorted(want), "generated ids sort in creation order")

	pages := 0
	var got []string
	opts := cloud.ListOptions{PageSize: 100}
	for {
		page, err := c.ListServers(context.Background(), "acct", opts)
		require.NoError(t, err)
		pages++
		require.LessOrEqual(t, len(page.Servers), 100)
		for _, s := range page.Servers {
			got = append(got, s.ID)
		}
		if page.NextToken == "" {
			break
		}
		opts.PageToken = page.NextToken
	}
	require.Equal(t, want, got, "each server exactly once, in order")
	require.Equal(t, 24, pages, "no empty last page")
}

func TestPaginationWithLaunchesBetweenPages(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	want := seed(t, c, "acct", 2345)
	var launched []string

	var got []string
	opts := cloud.ListOptions{PageSize: 100}
	for {
		page, err := c.ListServers(context.Background(), "acct", opts)
		require.NoError(t, err)
		for _, s := range page.Servers {
			got = append(got, s.ID)
		}
		if page.NextToken == "" {
			break
		}
		opts.PageToken = page.NextToken
		for range 3 {
			launched = append(launched, launch(t, c, "acct", cloud.LaunchRequest{}).ResourceID)
		}
	}
	require.True(t, slices.IsSorted(got), "in order")
	require.Len(t, slices.Compact(slices.Clone(got)), len(got), "no duplicates")
	require.Equal(t, want, got[:len(want)], "every server present before the listing, exactly once")
	require.Equal(t, launched, got[len(want):], "servers launched during the listing come after")
}

func TestPaginationSkipsRemovedPageBoundary(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	ids := seed(t, c, "acct", 10)
	page, err := c.ListServers(context.Background(), "acct", cloud.ListOptions{PageSize: 5})
	require.NoError(t, err)
	// The last server of the page disappears before the next page is asked for.
	_, err = c.Terminate(context.Background(), "acct", ids[4])
	require.NoError(t, err)
	clk.Advance(2 * sim.DefaultTerminateDelay)
	next, err := c.ListServers(context.Background(), "acct", cloud.ListOptions{PageSize: 5, PageToken: page.NextToken})
	require.NoError(t, err)
	var got []string
	for _, s := range next.Servers {
		got = append(got, s.ID)
	}
	require.Equal(t, ids[5:], got)
	require.Empty(t, next.NextToken)
}

func TestPageOptions(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{DefaultPageSize: 7, MaxPageSize: 20})
	seed(t, c, "acct", 50)
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    cloud.ListOptions
		wantLen int
		wantErr bool
	}{
		{"DefaultSize", cloud.ListOptions{}, 7, false},
		{"ExplicitSize", cloud.ListOptions{PageSize: 3}, 3, false},
		{"ClampedToMax", cloud.ListOptions{PageSize: 10_000}, 20, false},
		{"NegativeSize", cloud.ListOptions{PageSize: -1}, 0, true},
		{"MalformedToken", cloud.ListOptions{PageToken: "i-00000001"}, 0, true},
		{"EmptyTokenPayload", cloud.ListOptions{PageToken: "sim1."}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page, err := c.ListServers(ctx, "acct", tt.opts)
			status, serr := c.ListServerStatus(ctx, "acct", tt.opts)
			if tt.wantErr {
				require.ErrorIs(t, err, sim.ErrInvalidRequest)
				require.ErrorIs(t, serr, sim.ErrInvalidRequest)
				return
			}
			require.NoError(t, err)
			require.NoError(t, serr)
			require.Len(t, page.Servers, tt.wantLen)
			require.Len(t, status.Statuses, tt.wantLen)
			require.NotEmpty(t, page.NextToken)
		})
	}
}

func TestStatusListingMatchesFullListing(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	ctx := context.Background()
	ids := seed(t, c, "acct", 300)
	for i, id := range ids {
		switch i % 5 {
		case 1:
			require.NoError(t, c.SetServerState("acct", id, cloud.StateStopped))
		case 2:
			_, err := c.Terminate(ctx, "acct", id)
			require.NoError(t, err)
		case 3:
			require.NoError(t, c.SetServerState("acct", id, cloud.StatePending))
		}
	}
	for range 20 {
		launch(t, c, "acct", cloud.LaunchRequest{})
	}
	clk.Advance(sim.DefaultTerminateDelay + time.Second) // some STOPPING are now TERMINATED

	var full, status []cloud.ServerStatus
	opts := cloud.ListOptions{PageSize: 37}
	for {
		page, err := c.ListServers(ctx, "acct", opts)
		require.NoError(t, err)
		for _, s := range page.Servers {
			full = append(full, cloud.ServerStatus{ID: s.ID, State: s.State})
		}
		if opts.PageToken = page.NextToken; opts.PageToken == "" {
			break
		}
	}
	for {
		page, err := c.ListServerStatus(ctx, "acct", opts)
		require.NoError(t, err)
		status = append(status, page.Statuses...)
		if opts.PageToken = page.NextToken; opts.PageToken == "" {
			break
		}
	}
	require.Len(t, full, 320)
	require.Equal(t, full, status)
	states := map[cloud.ServerState]int{}
	for _, s := range status {
		states[s.State]++
	}
	require.Equal(t, map[cloud.ServerState]int{
		cloud.StateRunning: 120, cloud.StateStopped: 60, cloud.StateTerminated: 60, cloud.StatePending: 80,
	}, states)
}

func TestFindServersByTag(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	seed(t, c, "acct", 20)
	got, err := c.FindServersByTag(context.Background(), "acct", "n", "7")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "srv-7", got[0].Name)

	got, err = c.FindServersByTag(context.Background(), "acct", "n", "nope")
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestAddServer(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	s, err := c.AddServer("new-acct", cloud.Server{ID: "zz-custom", Account: "ignored", PublicIPs: []string{"203.0.113.9"}})
	require.NoError(t, err)
	require.Equal(t, "new-acct", s.Account, "the account is created and forced")
	require.Equal(t, cloud.StateRunning, s.State)
	require.Equal(t, start, s.LaunchedAt)
	require.Equal(t, []string{"203.0.113.9"}, s.PublicIPs)

	_, err = c.AddServer("new-acct", cloud.Server{ID: "zz-custom"})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
	_, err = c.AddServer("new-acct", cloud.Server{State: "SLEEPY"})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
	_, err = c.AddServer("", cloud.Server{})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)

	// A custom id sorts among generated ones; listings stay in id order.
	gen := seed(t, c, "new-acct", 2)
	_, err = c.AddServer("new-acct", cloud.Server{ID: "a-first"})
	require.NoError(t, err)
	require.Equal(t, []string{"a-first", gen[0], gen[1], "zz-custom"}, listAll(t, c, "new-acct", 2))
}

func TestSweepKeepsListingsCorrect(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{})
	ctx := context.Background()
	ids := seed(t, c, "acct", 500)
	for _, id := range ids[:300] {
		_, err := c.Terminate(ctx, "acct", id)
		require.NoError(t, err)
	}
	clk.Advance(2 * sim.DefaultTerminateDelay)
	op := launch(t, c, "acct", cloud.LaunchRequest{}) // sweeps the gone servers
	for _, id := range ids[300:400] {
		_, err := c.Terminate(ctx, "acct", id) // finds servers after the sweep moved them
		require.NoError(t, err)
	}
	want := append(slices.Clone(ids[300:]), op.ResourceID)
	require.Equal(t, want, listAll(t, c, "acct", 64))
	require.Len(t, c.Servers("acct"), 201)
}

func TestUnknownAccount(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	_, err := c.ListServers(context.Background(), "ghost", cloud.ListOptions{})
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.ErrorContains(t, err, `"ghost"`)
	require.Nil(t, c.Servers("ghost"))
}

func TestDeepCopy(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	ctx := context.Background()
	tags := map[string]string{"k": "v"}
	op := launch(t, c, "acct", cloud.LaunchRequest{Tags: tags})
	tags["k"] = "changed by caller"
	id := op.ResourceID

	mutate := func(s cloud.Server) {
		s.Tags["k"] = "mutated"
		s.Tags["extra"] = "x"
		s.PrivateIPs[0] = "0.0.0.0"
	}
	check := func(name string) {
		s := get(t, c, "acct", id)
		require.Equal(t, map[string]string{"k": "v"}, s.Tags, name)
		require.NotEqual(t, "0.0.0.0", s.PrivateIPs[0], name)
	}
	check("LaunchRequest tags")

	mutate(get(t, c, "acct", id))
	check("GetServer")
	c.Servers("acct")[0].Tags["k"] = "mutated"
	check("Servers")
	found, err := c.FindServersByTag(ctx, "acct", "k", "v")
	require.NoError(t, err)
	mutate(found[0])
	check("FindServersByTag")
	page, err := c.ListServers(ctx, "acct", cloud.ListOptions{})
	require.NoError(t, err)
	mutate(page.Servers[0])
	check("ListServers")

	seeded := cloud.Server{Tags: map[string]string{"k": "v"}, PrivateIPs: []string{"10.9.9.9", "10.9.9.10"}}
	added, err := c.AddServer("acct", seeded)
	require.NoError(t, err)
	seeded.Tags["k"], seeded.PrivateIPs[0] = "caller", "caller"
	added.Tags["k"], added.PrivateIPs[0] = "caller", "caller"
	again := get(t, c, "acct", added.ID)
	require.Equal(t, map[string]string{"k": "v"}, again.Tags)
	require.Equal(t, []string{"10.9.9.9", "10.9.9.10"}, again.PrivateIPs)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c, clk := setup(t, sim.Config{ConsistencyDelay: time.Second, Seed: 3})
	ctx := context.Background()
	accounts := []string{"acct", "b", "c"}
	for _, a := range accounts {
		seed(t, c, a, 200)
		_, err := c.AddFirewall(a, cloud.Firewall{Name: "fw"})
		require.NoError(t, err)
	}
	const workers, rounds = 8, 40
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				account := accounts[w%len(accounts)]
				for r := range rounds {
					switch (w + r) % 5 {
					case 0:
						op, err := c.Launch(ctx, account, cloud.LaunchRequest{Image: "rhel-9", Tags: map[string]string{"w": fmt.Sprint(w)}})
						if err != nil {
							return err
						}
						if _, err := c.Operation(ctx, account, op.ID); err != nil {
							return err
						}
					case 1:
						opts := cloud.ListOptions{PageSize: 50}
						for {
							page, err := c.ListServers(ctx, account, opts)
							if err != nil {
								return err
							}
							if opts.PageToken = page.NextToken; opts.PageToken == "" {
								break
							}
						}
					case 2:
						if _, err := c.ListServerStatus(ctx, account, cloud.ListOptions{PageSize: 1000}); err != nil {
							return err
						}
						if _, err := c.FindServersByTag(ctx, account, "w", "1"); err != nil {
							return err
						}
					case 3:
						servers := c.Servers(account)
						if _, err := c.Terminate(ctx, account, servers[r%len(servers)].ID); err != nil {
							return err
						}
					case 4:
						c.Drift(3)
						clk.Advance(100 * time.Millisecond)
						if _, err := c.ListFirewalls(ctx, account, cloud.ListOptions{}); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
	total := 0
	for _, a := range accounts {
		total += len(c.Servers(a))
	}
	require.Equal(t, 600+c.Calls(sim.APILaunch), total, "nothing lost (terminated servers are not gone yet)")
}

func TestListedAddressesDoNotAlias(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	seed(t, c, "acct", 3)
	page, err := c.ListServers(context.Background(), "acct", cloud.ListOptions{})
	require.NoError(t, err)
	second := slices.Clone(page.Servers[1].PrivateIPs)
	page.Servers[0].PrivateIPs = append(page.Servers[0].PrivateIPs, "192.0.2.1")
	page.Servers[0].PrivateIPs[0] = "192.0.2.2"
	require.Equal(t, second, page.Servers[1].PrivateIPs, "servers of a page share no slice")
}
