package persist

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stratusworks/worker/state"
	"github.com/stretchr/testify/require"
)

// TestSaveGroupCommit: concurrent saves of different resources (some of
// them the same resource, which never share a group) are coalesced into
// shared transactions, and each save still gets its own changes; every row,
// history entry and event is written once.
func TestSaveGroupCommit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		const workers, rounds = 32, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for g := range workers {
			wg.Go(func() {
				for r := range rounds {
					acct := fmt.Sprintf("acct-%d", g%3)
					id := fmt.Sprintf("i-%d-%d", g, r)
					if g%8 == 0 {
						id = "shared" // the same resource from several workers: a new version each time
					}
					tg := state.Target{Account: acct, Customer: "acme", Kind: "server"}
					changes, err := s.Save(ctx, tg, snapshot(obs(id, fmt.Sprintf(`{"g":%d,"r":%d}`, g, r), t0)))
					if err == nil && len(changes) != 1 {
						err = fmt.Errorf("save %s/%s: %d changes, want 1", acct, id, len(changes))
					}
					if err == nil && changes[0].Target.Resource != id {
						err = fmt.Errorf("save %s: got the change of %s", id, changes[0].Target.Resource)
					}
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		var events, history int64
		require.NoError(t, s.DB().Table(tblEvents).Count(&events).Error)
		require.NoError(t, s.DB().Table(tblHistory).Count(&history).Error)
		require.EqualValues(t, workers*rounds, events, "one event per save")
		require.EqualValues(t, workers*rounds, history, "one history row per save")
		for g := range workers {
			if g%8 == 0 {
				continue
			}
			_, err := s.Resource(ctx, fmt.Sprintf("acct-%d", g%3), "server", fmt.Sprintf("i-%d-%d", g, rounds-1))
			require.NoError(t, err)
		}
		t.Logf("%s: %d of %d saves written in groups", b.name, s.saves.grouped.Load(), workers*rounds)
		require.Positive(t, s.saves.grouped.Load(), "concurrent saves share transactions")
	})
}
