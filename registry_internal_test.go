package worker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/persist"
)

// followLog is an accountSchedule that records what it is told.
type followLog struct{ followed map[string]bool }

func (f *followLog) follow(a accounts.Account) error { f.followed[a.ID] = true; return nil }
func (f *followLog) unfollow(account string) int     { delete(f.followed, account); return 0 }

// TestRegistryStaleReadAfterDelete: a sync page read before an in-process
// delete, applied after it, does not put the deleted account back on the
// schedule; re-creating the account (a newer revision) does.
func TestRegistryStaleReadAfterDelete(t *testing.T) {
	t.Parallel()
	st, err := persist.Open(t.Context(), persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	sched := &followLog{followed: map[string]bool{}}
	r, err := newRegistry(st, nil, sched, newProviders(nil, st, nil, nil, discardLogger()), time.Now, discardLogger())
	require.NoError(t, err)

	live := accounts.Account{ID: "acme-prod", Customer: "acme", Revision: 1}
	r.changed(live)
	require.True(t, sched.followed["acme-prod"])

	deleted := live
	deleted.Revision, deleted.DeletedAt = 2, time.Now()
	r.changed(deleted) // Delete in this process
	require.False(t, sched.followed["acme-prod"])
	r.apply(live, false) // the change feed's page, read before the delete
	require.False(t, sched.followed["acme-prod"], "a stale read does not bring a deleted account back")

	again := live
	again.Revision = 3
	r.apply(again, false) // put again, seen by the change feed
	require.True(t, sched.followed["acme-prod"])
}
