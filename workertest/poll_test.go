package workertest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// TestPollPagesIntoTheStore: a listing of five servers in pages of two is
// three pages, the last complete; the first poll creates five, a poll of an
// unchanged cloud changes nothing, and a changed server comes back as one
// update of its state.
func TestPollPagesIntoTheStore(t *testing.T) {
	t.Parallel()
	c, err := sim.New(sim.Config{})
	require.NoError(t, err)
	var servers []cloud.Server
	for range 5 {
		s, err := c.AddServer("acct-1", cloud.Server{Name: "web", Image: "debian-12", State: cloud.StateRunning})
		require.NoError(t, err)
		servers = append(servers, s)
	}
	compute, err := c.Compute()
	require.NoError(t, err)
	p := cloud.ServerPoller{Compute: compute, PageSize: 2}
	target := state.Target{Account: "acct-1", Customer: "acme", Kind: "server"}

	pages := workertest.Pages(t, p, target)
	require.Len(t, pages, 3)
	require.Len(t, pages[0].Observations, 2)
	require.False(t, pages[0].Complete)
	require.True(t, pages[2].Complete)

	store := workertest.NewStore(t)
	changes := workertest.Poll(t, p, target, store)
	require.Len(t, changes, 5)
	for _, ch := range changes {
		require.Equal(t, state.Created, ch.Op)
	}
	require.Empty(t, workertest.Poll(t, p, target, store), "unchanged: nothing written")

	require.NoError(t, c.SetServerState("acct-1", servers[3].ID, cloud.StateStopped))
	changes = workertest.Poll(t, p, target, store)
	require.Len(t, changes, 1)
	require.Equal(t, state.Updated, changes[0].Op)
	require.Equal(t, servers[3].ID, changes[0].After.ID)
	require.Equal(t, []string{"state"}, changes[0].Fields)
	r, err := store.Resource(context.Background(), "acct-1", "server", servers[3].ID)
	require.NoError(t, err)
	require.Equal(t, int64(2), r.Version)
}

// TestPollFailsTheTest: a failing poller, a cursor that never ends and a
// missing sink fail the test with what went wrong.
func TestPollFailsTheTest(t *testing.T) {
	t.Parallel()
	target := state.Target{Account: "acct-1", Kind: "thing"}
	obs := state.Snapshot{Observations: []state.Observation{{ID: "x", Attributes: []byte(`{}`)}}}
	tests := []struct {
		name string
		p    worker.Poller
		sink worker.StateSink
		want string
	}{
		{name: "PollerError", want: "page 2: cloud said no",
			p: worker.PollerFunc("thing", func(_ context.Context, _ state.Target, cursor string) (state.Snapshot, string, error) {
				if cursor == "" {
					return obs, "next", nil
				}
				return state.Snapshot{}, "", errors.New("cloud said no")
			})},
		{name: "EndlessCursor", want: "cursor never ends",
			p: worker.PollerFunc("thing", func(context.Context, state.Target, string) (state.Snapshot, string, error) {
				return state.Snapshot{}, "again", nil
			})},
		{name: "NilSink", want: "sink is nil", sink: nil,
			p: worker.PollerFunc("thing", func(context.Context, state.Target, string) (state.Snapshot, string, error) {
				return obs, "", nil
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink := tt.sink
			if sink == nil && tt.name != "NilSink" {
				sink = workertest.NewStore(t)
			}
			require.Contains(t, failure(t, func(tb testing.TB) { workertest.Poll(tb, tt.p, target, sink) }), tt.want)
		})
	}
}
