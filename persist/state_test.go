package persist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/state"
)

var target = state.Target{Account: "acct-1", Customer: "cust-1", Kind: "server"}

func obs(id, attrs string, at time.Time) state.Observation {
	return state.Observation{ID: id, Attributes: json.RawMessage(attrs), ObservedAt: at}
}

func snapshot(o ...state.Observation) state.Snapshot { return state.Snapshot{Observations: o} }

// saveScenario is one behaviour of Save, run against every backend.
type saveScenario struct {
	name string
	run  func(t *testing.T, s *Store, clock *testClock)
}

var saveScenarios = []saveScenario{
	{"Created", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		changes, err := s.Save(ctx, target, snapshot(
			obs("i-1", `{"state": "pending", "size": "m1"}`, t0),
			obs("i-2", ``, t0.Add(time.Second)),
		))
		require.NoError(t, err)
		require.Equal(t, []state.Change{
			{
				Op:      state.Created,
				Target:  state.Target{Account: "acct-1", Customer: "cust-1", Kind: "server", Resource: "i-1"},
				After:   &state.Observation{Kind: "server", ID: "i-1", Attributes: json.RawMessage(`{"size":"m1","state":"pending"}`), ObservedAt: t0},
				Version: 1,
			},
			{
				Op:      state.Created,
				Target:  state.Target{Account: "acct-1", Customer: "cust-1", Kind: "server", Resource: "i-2"},
				After:   &state.Observation{Kind: "server", ID: "i-2", Attributes: json.RawMessage(`{}`), ObservedAt: t0.Add(time.Second)},
				Version: 1,
			},
		}, changes)

		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Equal(t, Resource{
			Account: "acct-1", Customer: "cust-1", Kind: "server", ID: "i-1",
			Hash:       sha256Hex(`{"size":"m1","state":"pending"}`),
			Version:    1,
			Attributes: json.RawMessage(`{"size":"m1","state":"pending"}`),
			ObservedAt: t0, UpdatedAt: t0,
		}, r)

		h, err := s.History(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Equal(t, []HistoryEntry{{
			Account: "acct-1", Customer: "cust-1", Kind: "server", ID: "i-1", Op: state.Created, Version: 1,
			Attributes: json.RawMessage(`{"size":"m1","state":"pending"}`), ObservedAt: t0, RecordedAt: t0,
		}}, h)
	}},

	{"UnchangedWritesNothing", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":1,"b":{"y":2,"x":[1,2]}}`, t0)))
		require.NoError(t, err)
		writes := countWrites(t, s.DB())
		clock.Set(t0.Add(time.Hour))
		// same content, other key order and spacing, newer observation
		changes, err := s.Save(ctx, target, snapshot(obs("i-1", "{ \"b\": {\"x\": [1, 2], \"y\": 2},\n \"a\": 1 }", t0.Add(time.Minute))))
		require.NoError(t, err)
		require.Empty(t, changes)
		require.Zero(t, writes.Load(), "steady state must not write")
		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.EqualValues(t, 1, r.Version)
		require.Equal(t, t0, r.UpdatedAt)
		h, err := s.History(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Len(t, h, 1)
	}},

	{"KeyOrderInsensitiveHash", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(
			obs("i-1", `{"a":1,"b":[{"k":"v","j":true}],"n":12345678901234567890123}`, t0),
			obs("i-2", `{ "n" : 12345678901234567890123, "b" : [ { "j" : true, "k" : "v" } ], "a" : 1 }`, t0),
		))
		require.NoError(t, err)
		r1, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		r2, err := s.Resource(ctx, "acct-1", "server", "i-2")
		require.NoError(t, err)
		require.Equal(t, r1.Hash, r2.Hash)
		require.JSONEq(t, string(r1.Attributes), string(r2.Attributes))
		require.Equal(t, `{"a":1,"b":[{"j":true,"k":"v"}],"n":12345678901234567890123}`, string(r1.Attributes))
	}},

	{"UpdatedFields", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":1,"b":2,"c":3,"nested":{"x":1}}`, t0)))
		require.NoError(t, err)
		clock.Set(t0.Add(time.Hour))
		changes, err := s.Save(ctx, target, snapshot(obs("i-1", `{"nested":{"x":1},"a":1,"b":20,"d":4}`, t0.Add(time.Minute))))
		require.NoError(t, err)
		require.Len(t, changes, 1)
		ch := changes[0]
		require.Equal(t, state.Updated, ch.Op)
		require.EqualValues(t, 2, ch.Version)
		require.Equal(t, []string{"b", "c", "d"}, ch.Fields, "changed, removed and added keys")
		require.Equal(t, `{"a":1,"b":2,"c":3,"nested":{"x":1}}`, string(ch.Before.Attributes))
		require.Equal(t, t0, ch.Before.ObservedAt)
		require.Equal(t, `{"a":1,"b":20,"d":4,"nested":{"x":1}}`, string(ch.After.Attributes))
		require.Equal(t, t0.Add(time.Minute), ch.After.ObservedAt)

		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.EqualValues(t, 2, r.Version)
		require.Equal(t, t0.Add(time.Hour), r.UpdatedAt)
		h, err := s.History(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Len(t, h, 2)
		require.Equal(t, state.Updated, h[1].Op)
		require.EqualValues(t, 2, h[1].Version)
		require.Equal(t, []string{"b", "c", "d"}, h[1].Fields)
		require.Equal(t, t0.Add(time.Hour), h[1].RecordedAt)
	}},

	{"OlderObservationIgnored", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"state":"running"}`, t0.Add(time.Minute))))
		require.NoError(t, err)
		changes, err := s.Save(ctx, target, snapshot(obs("i-1", `{"state":"pending"}`, t0)))
		require.NoError(t, err)
		require.Empty(t, changes)
		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Equal(t, `{"state":"running"}`, string(r.Attributes))
		require.EqualValues(t, 1, r.Version)
		// sub-second precision survives the round trip
		changes, err = s.Save(ctx, target, snapshot(obs("i-1", `{"state":"stopping"}`, t0.Add(time.Minute+time.Microsecond))))
		require.NoError(t, err)
		require.Len(t, changes, 1)
	}},

	{"DuplicateIDsNewestWins", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		changes, err := s.Save(ctx, target, snapshot(
			obs("i-1", `{"v":"a"}`, t0.Add(time.Second)),
			obs("i-2", `{"v":"x"}`, t0),
			obs("i-1", `{"v":"b"}`, t0),                  // older: loses
			obs("i-1", `{"v":"c"}`, t0.Add(time.Second)), // tie with the first: the last wins
		))
		require.NoError(t, err)
		require.Len(t, changes, 2)
		require.Equal(t, "i-1", changes[0].Target.Resource)
		require.Equal(t, `{"v":"c"}`, string(changes[0].After.Attributes))
		require.Equal(t, "i-2", changes[1].Target.Resource)
		h, err := s.History(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Len(t, h, 1)
	}},

	{"ZeroObservedAtIsNow", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		now := t0.Add(3*time.Hour + 123456789*time.Nanosecond)
		clock.Set(now)
		changes, err := s.Save(ctx, target, snapshot(obs("i-1", `{}`, time.Time{})))
		require.NoError(t, err)
		require.Equal(t, now.Truncate(time.Microsecond), changes[0].After.ObservedAt)
		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Equal(t, now.Truncate(time.Microsecond), r.ObservedAt)
	}},

	{"ObservationKindOverridesTarget", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		o := obs("vol-1", `{"gb":10}`, t0)
		o.Kind = "volume"
		changes, err := s.Save(ctx, target, snapshot(o, obs("vol-1", `{"cpu":2}`, t0)))
		require.NoError(t, err)
		require.Len(t, changes, 2, "same id, different kinds: two resources")
		r, err := s.Resource(ctx, "acct-1", "volume", "vol-1")
		require.NoError(t, err)
		require.Equal(t, `{"gb":10}`, string(r.Attributes))
		r, err = s.Resource(ctx, "acct-1", "server", "vol-1")
		require.NoError(t, err)
		require.Equal(t, `{"cpu":2}`, string(r.Attributes))
	}},

	{"CaseSensitiveIDs", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		changes, err := s.Save(ctx, target, snapshot(obs("abc", `{"n":1}`, t0), obs("ABC", `{"n":2}`, t0)))
		require.NoError(t, err)
		require.Len(t, changes, 2)
		r, err := s.Resource(ctx, "acct-1", "server", "ABC")
		require.NoError(t, err)
		require.Equal(t, `{"n":2}`, string(r.Attributes))
	}},

	{"NotFound", func(t *testing.T, s *Store, clock *testClock) {
		_, err := s.Resource(context.Background(), "acct-1", "server", "nope")
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorContains(t, err, "acct-1/server/nope")
		h, err := s.History(context.Background(), "acct-1", "server", "nope")
		require.NoError(t, err)
		require.Empty(t, h)
	}},

	{"InvalidInputSavesNothing", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		good := obs("i-1", `{}`, t0)
		tests := []struct {
			name   string
			target state.Target
			snap   state.Snapshot
			want   string
		}{
			{"NoAccount", state.Target{Kind: "server"}, snapshot(good), "Target.Account is required"},
			{"NoKind", state.Target{Account: "a"}, snapshot(good), "Target.Kind is required"},
			{"NoID", target, snapshot(good, obs("", `{}`, t0)), `observation 1 (id ""): ID is required`},
			{"LongID", target, snapshot(obs(string(make([]byte, 256)), `{}`, t0)), "ID is longer than 255 bytes"},
			{"TrailingSpace", target, snapshot(obs("i-1 ", `{}`, t0)), `observation 0 (id "i-1 "): ID ends with a space`},
			{"LongKind", state.Target{Account: "a", Kind: string(make([]byte, 65))}, snapshot(good), "Target.Kind is longer than 64 bytes"},
			{"Array", target, snapshot(good, obs("i-2", `[1,2]`, t0)), `observation 1 (id "i-2"): attributes: must be a JSON object, got an array`},
			{"String", target, snapshot(obs("i-3", `"x"`, t0)), `observation 0 (id "i-3"): attributes: must be a JSON object, got a string`},
			{"Null", target, snapshot(obs("i-4", `null`, t0)), `attributes: must be a JSON object, got null`},
			{"Broken", target, snapshot(obs("i-5", `{"a":`, t0)), `observation 0 (id "i-5"): attributes: invalid JSON`},
			{"Trailing", target, snapshot(obs("i-6", `{} {}`, t0)), `attributes: invalid JSON: data after the top-level value`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				changes, err := s.Save(ctx, tt.target, tt.snap)
				require.ErrorIs(t, err, ErrInvalid)
				require.ErrorContains(t, err, tt.want)
				require.Nil(t, changes)
			})
		}
		_, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.ErrorIs(t, err, ErrNotFound, "a bad observation rejects the whole snapshot")
	}},

	{"ManyIDs", func(t *testing.T, s *Store, clock *testClock) {
		ctx := context.Background()
		const n = 1234 // several IN chunks and insert batches
		page := func(changed int) state.Snapshot {
			var snap state.Snapshot
			for i := range n {
				v := 0
				if i == changed {
					v = 1
				}
				snap.Observations = append(snap.Observations, obs(fmt.Sprintf("i-%04d", i), fmt.Sprintf(`{"i":%d,"v":%d}`, i, v), t0.Add(time.Duration(v)*time.Second)))
			}
			return snap
		}
		changes, err := s.Save(ctx, target, page(-1))
		require.NoError(t, err)
		require.Len(t, changes, n)
		require.EqualValues(t, n, countRows(t, s.DB(), tblResources))

		writes := countWrites(t, s.DB())
		changes, err = s.Save(ctx, target, page(-1))
		require.NoError(t, err)
		require.Empty(t, changes)
		require.Zero(t, writes.Load())

		changes, err = s.Save(ctx, target, page(1000))
		require.NoError(t, err)
		require.Len(t, changes, 1)
		require.Equal(t, "i-1000", changes[0].Target.Resource)
		require.Equal(t, []string{"v"}, changes[0].Fields)
	}},

	{"StalePlanConflicts", func(t *testing.T, s *Store, clock *testClock) {
		// A plan made from rows that another writer has since changed must not
		// be applied: the write reports errConflict and Save starts over.
		ctx := context.Background()
		prepared := func(attrs string, at time.Time) []observation {
			o, err := prepareSnapshot(target, snapshot(obs("i-1", attrs, at)), t0)
			require.NoError(t, err)
			return o
		}
		staleCreate := planSave(target, prepared(`{"v":1}`, t0), nil, t0)
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"v":0}`, t0)))
		require.NoError(t, err)
		err = s.DB().Transaction(func(tx *gorm.DB) error { return staleCreate.write(tx, tblHistory) })
		require.ErrorIs(t, err, errConflict)

		stored, err := loadStored(s.DB(), target.Account, prepared(`{}`, t0))
		require.NoError(t, err)
		staleUpdate := planSave(target, prepared(`{"v":2}`, t0.Add(time.Second)), stored, t0)
		_, err = s.Save(ctx, target, snapshot(obs("i-1", `{"v":3}`, t0.Add(time.Second))))
		require.NoError(t, err)
		err = s.DB().Transaction(func(tx *gorm.DB) error { return staleUpdate.write(tx, tblHistory) })
		require.ErrorIs(t, err, errConflict)

		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Equal(t, `{"v":3}`, string(r.Attributes))
		require.EqualValues(t, 2, r.Version)
		h, err := s.History(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Len(t, h, 2, "the rolled-back writes left no history")
	}},

	{"StaleBatchWritesNothing", func(t *testing.T, s *Store, clock *testClock) {
		// One stale row in a batch of creations and updates fails the whole
		// multi-row upsert: nothing of the batch is written.
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"v":1}`, t0), obs("i-2", `{"v":1}`, t0)))
		require.NoError(t, err)
		batch, err := prepareSnapshot(target, snapshot(
			obs("i-1", `{"v":2}`, t0.Add(time.Second)),
			obs("i-2", `{"v":2}`, t0.Add(time.Second)),
			obs("i-3", `{"v":2}`, t0.Add(time.Second)),
		), t0)
		require.NoError(t, err)
		stored, err := loadStored(s.DB(), target.Account, batch)
		require.NoError(t, err)
		plan := planSave(target, batch, stored, t0)
		require.Len(t, plan.writes, 3)

		_, err = s.Save(ctx, target, snapshot(obs("i-2", `{"v":9}`, t0.Add(time.Millisecond))))
		require.NoError(t, err)
		err = s.DB().Transaction(func(tx *gorm.DB) error { return plan.write(tx, tblHistory) })
		require.ErrorIs(t, err, errConflict)

		for id, want := range map[string]string{"i-1": `{"v":1}`, "i-2": `{"v":9}`} {
			r, err := s.Resource(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Equal(t, want, string(r.Attributes), id)
		}
		_, err = s.Resource(ctx, "acct-1", "server", "i-3")
		require.ErrorIs(t, err, ErrNotFound)
		require.EqualValues(t, 3, countRows(t, s.DB(), tblHistory))
		require.EqualValues(t, 3, countRows(t, s.DB(), tblEvents))
	}},

	{"MixedBatch", func(t *testing.T, s *Store, clock *testClock) {
		// Creations, updates, partial observations and unchanged resources
		// in one save; changes come back in snapshot order.
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(
			obs("i-1", `{"ip":"10.0.0.1","state":"running"}`, t0),
			obs("i-2", `{"ip":"10.0.0.2","state":"running"}`, t0),
			obs("i-3", `{"ip":"10.0.0.3","state":"running"}`, t0),
		))
		require.NoError(t, err)
		clock.Set(t0.Add(time.Hour))
		at := t0.Add(time.Minute)
		changes, err := s.Save(ctx, target, snapshot(
			obs("i-4", `{"ip":"10.0.0.4"}`, at),
			partial("i-1", `{"state":"stopped"}`, at),
			obs("i-2", `{"ip":"10.0.0.2","state":"running"}`, at), // unchanged
			partial("i-3", `{"state":"running"}`, at),             // unchanged once merged
			obs("i-3", `{"ip":"10.0.0.3","state":"running"}`, t0), // older duplicate: loses
			partial("i-5", `{"state":"pending"}`, at),
			obs("i-6", `{"ip":"10.0.0.6"}`, at),
		))
		require.NoError(t, err)
		type summary struct {
			id      string
			op      state.ChangeOp
			version int64
			fields  []string
			before  string
			after   string
		}
		var got []summary
		for _, ch := range changes {
			sm := summary{id: ch.Target.Resource, op: ch.Op, version: ch.Version, fields: ch.Fields, after: string(ch.After.Attributes)}
			if ch.Before != nil {
				sm.before = string(ch.Before.Attributes)
				require.Equal(t, t0, ch.Before.ObservedAt)
			}
			require.Equal(t, at, ch.After.ObservedAt)
			got = append(got, sm)
		}
		require.Equal(t, []summary{
			{id: "i-4", op: state.Created, version: 1, after: `{"ip":"10.0.0.4"}`},
			{id: "i-1", op: state.Updated, version: 2, fields: []string{"state"},
				before: `{"ip":"10.0.0.1","state":"running"}`, after: `{"ip":"10.0.0.1","state":"stopped"}`},
			{id: "i-5", op: state.Created, version: 1, after: `{"state":"pending"}`},
			{id: "i-6", op: state.Created, version: 1, after: `{"ip":"10.0.0.6"}`},
		}, got)
		for id, want := range map[string]int64{"i-1": 2, "i-2": 1, "i-3": 1, "i-4": 1, "i-5": 1, "i-6": 1} {
			r, err := s.Resource(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Equal(t, want, r.Version, id)
			require.Equal(t, sha256Hex(string(r.Attributes)), r.Hash, id)
			h, err := s.History(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Len(t, h, int(want), id)
		}
		r, err := s.Resource(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Equal(t, t0.Add(time.Hour), r.UpdatedAt)
		evs, err := s.PendingEvents(ctx, 0)
		require.NoError(t, err)
		require.Len(t, evs, 3+4)
		for i, ch := range changes {
			require.Equal(t, ch.Target.Resource, evs[3+i].ResourceID, "events in snapshot order")
		}
	}},

	{"ConcurrentSaves", func(t *testing.T, s *Store, clock *testClock) {
		// Several goroutines save overlapping observations of the same
		// resources; every save must succeed and versions must stay a gapless
		// sequence matching history, ending on the newest observation.
		ctx := context.Background()
		const workers, rounds = 6, 8
		ids := []string{"i-1", "i-2", "i-3"}
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for g := range workers {
			wg.Go(func() {
				for r := range rounds {
					seq := r*workers + g
					var snap state.Snapshot
					for _, id := range ids {
						snap.Observations = append(snap.Observations, obs(id, fmt.Sprintf(`{"seq":%d}`, seq), t0.Add(time.Duration(seq)*time.Millisecond)))
					}
					_, err := s.Save(ctx, target, snap)
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		last := workers*rounds - 1
		for _, id := range ids {
			r, err := s.Resource(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf(`{"seq":%d}`, last), string(r.Attributes))
			require.Equal(t, t0.Add(time.Duration(last)*time.Millisecond), r.ObservedAt)
			h, err := s.History(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Len(t, h, int(r.Version))
			for i, e := range h {
				require.EqualValues(t, i+1, e.Version)
				if i > 0 {
					require.True(t, e.ObservedAt.After(h[i-1].ObservedAt), "history moves forward in time")
				}
			}
			require.Equal(t, string(r.Attributes), string(h[len(h)-1].Attributes))
		}
	}},
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestSave(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, sc := range saveScenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				clock := newTestClock()
				s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
				sc.run(t, s, clock)
			})
		}
	})
}

// TestSaveTwoStoresOneSQLiteFile runs concurrent saves through two
// stores on one SQLite file: two writers, as two processes would have, which
// must queue on the busy timeout instead of failing with SQLITE_BUSY.
func TestSaveTwoStoresOneSQLiteFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.db")
	clock := newTestClock()
	s1 := openStore(t, Config{Provisioning: DBConfig{DSN: path}, Now: clock.Now})
	s2 := openStore(t, Config{Provisioning: DBConfig{DSN: path}, Now: clock.Now})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g, s := range []*Store{s1, s2, s1, s2} {
		wg.Go(func() {
			for r := range 25 {
				seq := r*4 + g
				_, err := s.Save(ctx, target, snapshot(obs("i-1", fmt.Sprintf(`{"seq":%d}`, seq), t0.Add(time.Duration(seq)*time.Millisecond))))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	r, err := s1.Resource(ctx, "acct-1", "server", "i-1")
	require.NoError(t, err)
	require.Equal(t, `{"seq":99}`, string(r.Attributes))
	h, err := s2.History(ctx, "acct-1", "server", "i-1")
	require.NoError(t, err)
	require.Len(t, h, int(r.Version))
}

func TestCanonicalObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want, err string
	}{
		{name: "Empty", in: "", want: "{}"},
		{name: "Spaces", in: " \n ", want: "{}"},
		{name: "SortsNestedKeys", in: `{"b":{"d":1,"c":[{"z":1,"y":2}]},"a":null}`, want: `{"a":null,"b":{"c":[{"y":2,"z":1}],"d":1}}`},
		{name: "KeepsBigNumbers", in: `{"n":123456789012345678901234567890,"f":1.50}`, want: `{"f":1.50,"n":123456789012345678901234567890}`},
		{name: "NoHTMLEscaping", in: `{"html":"<a&b>"}`, want: `{"html":"<a&b>"}`},
		{name: "Unicode", in: `{"s":"h\u00e9llo ☃"}`, want: `{"s":"héllo ☃"}`},
		{name: "Array", in: `[]`, err: "must be a JSON object, got an array"},
		{name: "Number", in: `1`, err: "got a number"},
		{name: "Bool", in: `true`, err: "got a boolean"},
		{name: "Invalid", in: `{x}`, err: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := canonicalObject(json.RawMessage(tt.in))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDiffFields(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"a", "c", "d"}, diffFields(`{"a":1,"b":2,"c":3}`, `{"a":2,"b":2,"d":4}`))
	require.Empty(t, diffFields(`{"a":[1]}`, `{"a":[1]}`))
	require.Equal(t, []string{"a"}, diffFields(`{}`, `{"a":{}}`))
}

// TestSeparateAnalytics keeps history in its own database: Save writes it to
// the outbox, FlushHistory moves it, and flushing twice (or after a crash
// between copy and delete) does not duplicate it.
func TestSeparateAnalytics(t *testing.T) {
	t.Parallel()
	pairs := []struct {
		name string
		dbs  func(t *testing.T) (prov, ana DBConfig)
	}{
		{"SQLiteFiles", func(t *testing.T) (DBConfig, DBConfig) {
			dir := t.TempDir()
			return DBConfig{DSN: filepath.Join(dir, "prov.db")}, DBConfig{DSN: filepath.Join(dir, "ana.db")}
		}},
		{"MySQL", func(t *testing.T) (DBConfig, DBConfig) {
			return DBConfig{Driver: MySQL, DSN: testenv.MySQLDSN(t)}, DBConfig{Driver: MySQL, DSN: testenv.MySQLDSN(t)}
		}},
		{"MySQLProvisioningSQLiteAnalytics", func(t *testing.T) (DBConfig, DBConfig) {
			return DBConfig{Driver: MySQL, DSN: testenv.MySQLDSN(t)}, DBConfig{DSN: filepath.Join(t.TempDir(), "ana.db")}
		}},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			prov, ana := p.dbs(t)
			clock := newTestClock()
			s := openStore(t, Config{Provisioning: prov, Analytics: ana, Now: clock.Now})
			require.NotSame(t, s.prov, s.ana)
			ctx := context.Background()

			_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":1}`, t0), obs("i-2", `{"a":1}`, t0)))
			require.NoError(t, err)
			_, err = s.Save(ctx, target, snapshot(obs("i-1", `{"a":2}`, t0.Add(time.Second))))
			require.NoError(t, err)
			require.EqualValues(t, 3, countRows(t, s.DB(), tblOutbox))
			require.False(t, s.DB().Migrator().HasTable(tblHistory), "history lives only in analytics")
			h, err := s.History(ctx, "acct-1", "server", "i-1")
			require.NoError(t, err)
			require.Empty(t, h, "not flushed yet")

			// A crash after copying but before deleting leaves rows in both.
			var first historyRow
			require.NoError(t, s.DB().Table(tblOutbox).Order("id").First(&first).Error)
			first.ID = 0
			require.NoError(t, s.ana.writer.Table(tblHistory).Create(&first).Error)

			n, err := s.FlushHistory(ctx)
			require.NoError(t, err)
			require.Equal(t, 3, n)
			require.Zero(t, countRows(t, s.DB(), tblOutbox))
			require.EqualValues(t, 3, countRows(t, s.ana.writer, tblHistory))

			n, err = s.FlushHistory(ctx)
			require.NoError(t, err)
			require.Zero(t, n)

			h, err = s.History(ctx, "acct-1", "server", "i-1")
			require.NoError(t, err)
			require.Len(t, h, 2)
			require.Equal(t, []state.ChangeOp{state.Created, state.Updated}, []state.ChangeOp{h[0].Op, h[1].Op})
			require.Equal(t, []string{"a"}, h[1].Fields)
		})
	}
}

func TestFlushHistorySameDatabase(t *testing.T) {
	t.Parallel()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	_, err := s.Save(context.Background(), target, snapshot(obs("i-1", `{}`, t0)))
	require.NoError(t, err)
	n, err := s.FlushHistory(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	require.EqualValues(t, 0, countRows(t, s.DB(), tblOutbox))
	require.EqualValues(t, 1, countRows(t, s.DB(), tblHistory))
}

// TestSaveConflictRetries changes a resource from a second store after Save
// has read it and before it writes: the conditional upsert sees the newer
// version, and Save starts over, reading under its write transaction, and
// records its change on top of the other one.
func TestSaveConflictRetries(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		if !b.reopenable {
			t.Skip("needs a second store on the same database")
		}
		cfg := Config{Provisioning: b.db(t)}
		s := openStore(t, cfg)
		other := openStore(t, cfg)
		ctx := context.Background()
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"v":1}`, t0), obs("i-2", `{"v":1}`, t0)))
		require.NoError(t, err)

		// After Save's first read, the other store updates i-2.
		var once sync.Once
		s.afterRead = func() {
			once.Do(func() {
				_, err := other.Save(ctx, target, snapshot(obs("i-2", `{"v":"other"}`, t0.Add(time.Second))))
				require.NoError(t, err)
			})
		}
		writes := countWrites(t, s.DB())
		changes, err := s.Save(ctx, target, snapshot(
			obs("i-1", `{"v":2}`, t0.Add(2*time.Second)),
			obs("i-2", `{"v":2}`, t0.Add(2*time.Second)),
			obs("i-3", `{"v":2}`, t0.Add(2*time.Second)),
		))
		require.NoError(t, err)
		require.EqualValues(t, 1+3, writes.Load(), "the first attempt's upsert, then upsert, history and events")

		require.Len(t, changes, 3)
		require.Equal(t, state.Updated, changes[1].Op)
		require.EqualValues(t, 3, changes[1].Version)
		require.Equal(t, `{"v":"other"}`, string(changes[1].Before.Attributes), "Before is what the other store wrote")
		require.Equal(t, state.Created, changes[2].Op)
		for id, want := range map[string]int64{"i-1": 2, "i-2": 3, "i-3": 1} {
			r, err := s.Resource(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Equal(t, `{"v":2}`, string(r.Attributes), id)
			require.Equal(t, want, r.Version, id)
			h, err := s.History(ctx, "acct-1", "server", id)
			require.NoError(t, err)
			require.Len(t, h, int(want), id)
		}
		require.EqualValues(t, 2+1+3, countRows(t, s.DB(), tblEvents), "no events of the failed attempt")
	})
}

// TestSaveConflictWithClientFoundRows checks that a DSN asking for found
// rows cannot hide a conflicting creation from the conditional upsert.
func TestSaveConflictWithClientFoundRows(t *testing.T) {
	t.Parallel()
	dsn, err := mysql.ParseDSN(testenv.MySQLDSN(t))
	require.NoError(t, err)
	dsn.ClientFoundRows = true
	s := openStore(t, Config{Provisioning: DBConfig{Driver: MySQL, DSN: dsn.FormatDSN()}})
	ctx := context.Background()
	batch, err := prepareSnapshot(target, snapshot(obs("i-1", `{"v":1}`, t0)), t0)
	require.NoError(t, err)
	staleCreate := planSave(target, batch, nil, t0)
	_, err = s.Save(ctx, target, snapshot(obs("i-1", `{"v":0}`, t0)))
	require.NoError(t, err)
	err = s.DB().Transaction(func(tx *gorm.DB) error { return staleCreate.write(tx, tblHistory) })
	require.ErrorIs(t, err, errConflict)
}
