package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/state"
)

const grace = 10 * time.Minute

func seenSet(ids ...string) func(string) bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return func(id string) bool { return m[id] }
}

func requireMissingSince(t *testing.T, s *Store, id string, want *time.Time) {
	t.Helper()
	r, err := s.Resource(context.Background(), "acct-1", "server", id)
	require.NoError(t, err)
	require.Equal(t, want, r.MissingSince, id)
}

func ptr[T any](v T) *T { return &v }

// sweepScenario is one behaviour of Sweep, run against every backend with
// i-1, i-2 and i-3 saved at t0.
type sweepScenario struct {
	name string
	run  func(t *testing.T, s *Store, clock *testClock)
}

var sweepScenarios = []sweepScenario{
	{"MarkedThenDeletedAfterGrace", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		changes, err := s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		require.Empty(t, changes, "first miss: marked only")
		requireMissingSince(t, s, "i-3", ptr(t0))
		requireMissingSince(t, s, "i-1", nil)

		clock.Set(t0.Add(grace - time.Second))
		changes, err = s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		require.Empty(t, changes, "not deleted before the grace period")
		requireMissingSince(t, s, "i-3", ptr(t0))

		clock.Set(t0.Add(grace))
		changes, err = s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		want := state.Change{
			Op:      state.Deleted,
			Target:  state.Target{Account: "acct-1", Customer: "cust-1", Kind: "server", Resource: "i-3"},
			Before:  &state.Observation{Kind: "server", ID: "i-3", Attributes: json.RawMessage(`{"n":3}`), ObservedAt: t0},
			Version: 2,
		}
		require.Equal(t, []state.Change{want}, changes)
		_, err = s.Resource(ctx, "acct-1", "server", "i-3")
		require.ErrorIs(t, err, ErrNotFound)

		h, err := s.History(ctx, "acct-1", "server", "i-3")
		require.NoError(t, err)
		require.Len(t, h, 2)
		require.Equal(t, state.Deleted, h[1].Op)
		require.EqualValues(t, 2, h[1].Version)
		require.Equal(t, t0.Add(grace), h[1].RecordedAt)

		evs, err := s.PendingEvents(ctx, 0)
		require.NoError(t, err)
		last := evs[len(evs)-1]
		require.Equal(t, "server.deleted", last.Type)
		require.Equal(t, "i-3", last.ResourceID)
		var ch state.Change
		require.NoError(t, json.Unmarshal(last.Payload, &ch))
		require.Equal(t, want, ch)

		// Deleted resources are not swept again.
		clock.Set(t0.Add(2 * grace))
		changes, err = s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		require.Empty(t, changes)
	}},

	{"ReappearsBeforeGrace", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		_, err := s.Sweep(ctx, target, seenSet(), grace)
		require.NoError(t, err)
		for _, id := range []string{"i-1", "i-2", "i-3"} {
			requireMissingSince(t, s, id, ptr(t0))
		}
		clock.Set(t0.Add(time.Minute))
		// Seen by a listing: Sweep clears the mark.
		changes, err := s.Sweep(ctx, target, seenSet("i-1"), grace)
		require.NoError(t, err)
		require.Empty(t, changes)
		requireMissingSince(t, s, "i-1", nil)
		requireMissingSince(t, s, "i-2", ptr(t0))
		// Observed again, unchanged: Save clears the mark without a change.
		changes, err = s.Save(ctx, target, snapshot(obs("i-2", `{"n":2}`, t0.Add(time.Minute))))
		require.NoError(t, err)
		require.Empty(t, changes)
		requireMissingSince(t, s, "i-2", nil)
		// Observed again, changed: an update that also clears the mark.
		changes, err = s.Save(ctx, target, snapshot(obs("i-3", `{"n":33}`, t0.Add(time.Minute))))
		require.NoError(t, err)
		require.Len(t, changes, 1)
		require.Equal(t, state.Updated, changes[0].Op)
		requireMissingSince(t, s, "i-3", nil)

		clock.Set(t0.Add(2 * grace))
		changes, err = s.Sweep(ctx, target, seenSet("i-1", "i-2", "i-3"), grace)
		require.NoError(t, err)
		require.Empty(t, changes, "nothing was deleted")
		h, err := s.History(ctx, "acct-1", "server", "i-2")
		require.NoError(t, err)
		require.Len(t, h, 1)
	}},

	{"ReappearsAfterDeletion", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		_, err := s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		clock.Set(t0.Add(grace))
		changes, err := s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		require.Len(t, changes, 1)

		// An observation from before the deletion does not resurrect it.
		changes, err = s.Save(ctx, target, snapshot(obs("i-3", `{"n":3}`, t0.Add(time.Minute))))
		require.NoError(t, err)
		require.Empty(t, changes)
		_, err = s.Resource(ctx, "acct-1", "server", "i-3")
		require.ErrorIs(t, err, ErrNotFound)

		// A later one re-creates it, same attributes or not, and the
		// version sequence goes on.
		clock.Set(t0.Add(grace + time.Minute))
		changes, err = s.Save(ctx, target, snapshot(obs("i-3", `{"n":3}`, time.Time{})))
		require.NoError(t, err)
		require.Len(t, changes, 1)
		require.Equal(t, state.Created, changes[0].Op)
		require.Nil(t, changes[0].Before)
		require.EqualValues(t, 3, changes[0].Version)
		r, err := s.Resource(ctx, "acct-1", "server", "i-3")
		require.NoError(t, err)
		require.EqualValues(t, 3, r.Version)
		require.Nil(t, r.MissingSince)
		h, err := s.History(ctx, "acct-1", "server", "i-3")
		require.NoError(t, err)
		require.Equal(t, []state.ChangeOp{state.Created, state.Deleted, state.Created}, []state.ChangeOp{h[0].Op, h[1].Op, h[2].Op})
		require.Equal(t, []int64{1, 2, 3}, []int64{h[0].Version, h[1].Version, h[2].Version})
		evs, err := s.PendingEvents(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, "server.changed", evs[len(evs)-1].Type)

		// A partial observation of a deleted resource creates it with just
		// its own attributes.
		_, err = s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		clock.Set(t0.Add(3 * grace))
		changes, err = s.Sweep(ctx, target, seenSet("i-1", "i-2"), grace)
		require.NoError(t, err)
		require.Len(t, changes, 1)
		changes, err = s.Save(ctx, target, snapshot(partial("i-3", `{"state":"running"}`, time.Time{})))
		require.NoError(t, err)
		require.Equal(t, state.Created, changes[0].Op)
		require.Equal(t, `{"state":"running"}`, string(changes[0].After.Attributes))
		require.EqualValues(t, 5, changes[0].Version)
	}},

	{"SteadyStateWritesNothing", func(t *testing.T, s *Store, clock *testClock) {
		writes := countWrites(t, s.DB())
		clock.Set(t0.Add(time.Hour))
		changes, err := s.Sweep(context.Background(), target, seenSet("i-1", "i-2", "i-3"), grace)
		require.NoError(t, err)
		require.Empty(t, changes)
		require.Zero(t, writes.Load())
	}},

	{"OneResource", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		one := target
		one.Resource = "i-2"
		_, err := s.Sweep(ctx, one, seenSet(), grace)
		require.NoError(t, err)
		requireMissingSince(t, s, "i-2", ptr(t0))
		requireMissingSince(t, s, "i-1", nil)
		requireMissingSince(t, s, "i-3", nil)
		clock.Set(t0.Add(grace))
		changes, err := s.Sweep(ctx, one, seenSet(), grace)
		require.NoError(t, err)
		require.Len(t, changes, 1)
		require.Equal(t, "i-2", changes[0].Target.Resource)
	}},

	{"OtherAccountsAndKindsUntouched", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		other := state.Target{Account: "acct-2", Kind: "server"}
		_, err := s.Save(ctx, other, snapshot(obs("i-1", `{}`, t0)))
		require.NoError(t, err)
		vol := obs("v-1", `{}`, t0)
		vol.Kind = "volume"
		_, err = s.Save(ctx, target, snapshot(vol))
		require.NoError(t, err)
		_, err = s.Sweep(ctx, target, seenSet(), 0)
		require.NoError(t, err)
		changes, err := s.Sweep(ctx, target, seenSet(), 0)
		require.NoError(t, err)
		require.Len(t, changes, 3, "zero grace: deleted on the second miss")
		_, err = s.Resource(ctx, "acct-2", "server", "i-1")
		require.NoError(t, err)
		_, err = s.Resource(ctx, "acct-1", "volume", "v-1")
		require.NoError(t, err)
	}},

	{"Invalid", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		for _, tc := range []struct {
			name  string
			t     state.Target
			seen  func(string) bool
			grace time.Duration
		}{
			{"NoAccount", state.Target{Kind: "server"}, seenSet(), grace},
			{"NoKind", state.Target{Account: "a"}, seenSet(), grace},
			{"NilSeen", target, nil, grace},
			{"NegativeGrace", target, seenSet(), -time.Second},
		} {
			_, err := s.Sweep(ctx, tc.t, tc.seen, tc.grace)
			require.ErrorIs(t, err, ErrInvalid, tc.name)
		}
	}},
}

func TestSweep(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, sc := range sweepScenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				clock := newTestClock()
				s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
				_, err := s.Save(context.Background(), target, snapshot(
					obs("i-1", `{"n":1}`, t0), obs("i-2", `{"n":2}`, t0), obs("i-3", `{"n":3}`, t0)))
				require.NoError(t, err)
				sc.run(t, s, clock)
			})
		}
	})
}

// TestSweepManyBatches sweeps 2,500 stored resources in batches of 300.
func TestSweepManyBatches(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		s.sweepBatch = 300
		ctx := context.Background()
		const n = 2500
		seedResources(t, s, n)
		gone := func(id string) bool { // every 25th resource, across every batch
			var i int
			_, _ = fmt.Sscanf(id, "i-%05d", &i)
			return i%25 == 7
		}
		var reads int
		name := "persist_test:count_sweep_reads"
		require.NoError(t, s.DB().Callback().Query().Before("gorm:query").Register(name, func(db *gorm.DB) {
			if db.Statement.Table == tblResources {
				reads++
			}
		}))
		seen := func(id string) bool { return !gone(id) }
		changes, err := s.Sweep(ctx, target, seen, grace)
		require.NoError(t, err)
		require.Empty(t, changes)
		require.EqualValues(t, n/25, countWhere(t, s, "missing_since IS NOT NULL"))
		if b.name == "SQLiteMemory" || b.name == "MySQL" { // the file backend reads through its read pool
			require.GreaterOrEqual(t, reads, n/300, "read in batches")
		}

		clock.Set(t0.Add(grace))
		changes, err = s.Sweep(ctx, target, seen, grace)
		require.NoError(t, err)
		require.Len(t, changes, n/25)
		for _, ch := range changes {
			require.Equal(t, state.Deleted, ch.Op)
			require.True(t, gone(ch.Target.Resource))
		}
		require.EqualValues(t, n/25, countWhere(t, s, "deleted_at IS NOT NULL"))
		require.Zero(t, countWhere(t, s, "missing_since IS NOT NULL"))

		writes := countWrites(t, s.DB())
		changes, err = s.Sweep(ctx, target, seen, grace)
		require.NoError(t, err)
		require.Empty(t, changes)
		require.Zero(t, writes.Load(), "steady state")
	})
}

// seedResources stores resources i-00000 … of target in one statement:
// saving them one by one is slow under the race detector (the SQLite driver
// is Go code), and the sweep tests need only the rows.
func seedResources(t *testing.T, s *Store, n int) {
	t.Helper()
	require.Less(t, n, 10000)
	digits := "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " +
		"UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	id := map[Driver]string{SQLite: "printf('i-%05d', seq.n)", MySQL: "CONCAT('i-', LPAD(seq.n, 5, '0'))"}[Driver(s.DB().Dialector.Name())]
	err := s.DB().Exec(`INSERT INTO `+tblResources+` (account, kind, resource_id, customer, hash, version, attributes, observed_at, updated_at)
SELECT ?, ?, `+id+`, ?, ?, 1, '{}', ?, ?
FROM (SELECT a.n + 10*b.n + 100*c.n + 1000*d.n AS n FROM `+digits+` a, `+digits+` b, `+digits+` c, `+digits+` d) seq
WHERE seq.n < ?`, target.Account, target.Kind, target.Customer, sha256Hex("{}"), t0, t0, n).Error
	require.NoError(t, err)
	require.EqualValues(t, n, countRows(t, s.DB(), tblResources))
}

func countWhere(t *testing.T, s *Store, cond string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.DB().Table(tblResources).Where(cond).Count(&n).Error)
	return n
}

// TestSweepSeparateAnalytics: with a separate analytics database, a
// deletion's history goes through the history outbox like any change.
func TestSweepSeparateAnalytics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, Config{
		Provisioning: DBConfig{DSN: dir + "/prov.db"},
		Analytics:    DBConfig{DSN: dir + "/ana.db"},
	})
	ctx := context.Background()
	_, err := s.Save(ctx, target, snapshot(obs("i-1", `{}`, t0)))
	require.NoError(t, err)
	for range 2 {
		_, err = s.Sweep(ctx, target, seenSet(), 0)
		require.NoError(t, err)
	}
	require.EqualValues(t, 2, countRows(t, s.DB(), tblOutbox))
	n, err := s.FlushHistory(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	h, err := s.History(ctx, "acct-1", "server", "i-1")
	require.NoError(t, err)
	require.Equal(t, []state.ChangeOp{state.Created, state.Deleted}, []state.ChangeOp{h[0].Op, h[1].Op})
}
