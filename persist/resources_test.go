package persist

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

func TestResourcesPagesLiveResources(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()
		tgt := state.Target{Account: "acct-r", Kind: "server", Customer: "acme"}
		var all []state.Observation
		for i := range 25 {
			all = append(all, obs(fmt.Sprintf("i-%02d", i), fmt.Sprintf(`{"n":%d}`, i), t0))
		}
		_, err := s.Save(ctx, tgt, state.Snapshot{Observations: all})
		require.NoError(t, err)
		// Another kind and another account are not listed.
		_, err = s.Save(ctx, state.Target{Account: "acct-r", Kind: "firewall"}, snapshot(obs("fw-1", `{}`, t0)))
		require.NoError(t, err)
		_, err = s.Save(ctx, state.Target{Account: "acct-other", Kind: "server"}, snapshot(obs("i-99", `{}`, t0)))
		require.NoError(t, err)
		// i-03 is deleted: a complete listing without it, past the grace.
		clock.Set(t0.Add(time.Minute))
		notThree := func(id string) bool { return id != "i-03" }
		_, err = s.Sweep(ctx, tgt, notThree, 0)
		require.NoError(t, err)
		_, err = s.Sweep(ctx, tgt, notThree, 0)
		require.NoError(t, err)

		var ids []string
		after := ""
		pages := 0
		for {
			page, err := s.Resources(ctx, "acct-r", "server", after, 10)
			require.NoError(t, err)
			pages++
			for _, r := range page {
				require.Equal(t, "acme", r.Customer)
				require.Equal(t, "server", r.Kind)
				require.NotEmpty(t, r.Attributes)
				ids = append(ids, r.ID)
			}
			if len(page) < 10 {
				break
			}
			after = page[len(page)-1].ID
		}
		require.Equal(t, 3, pages)
		require.Len(t, ids, 24)
		require.NotContains(t, ids, "i-03")
		require.IsIncreasing(t, ids)

		none, err := s.Resources(ctx, "no-such-account", "server", "", 0)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}
