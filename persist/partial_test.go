package persist

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

func partial(id, attrs string, at time.Time) state.Observation {
	o := obs(id, attrs, at)
	o.Partial = true
	return o
}

// TestSavePartial saves a sequence of full and status-only (partial)
// observations of one resource and checks each step's change and the stored
// attributes: the resource never flaps between its two shapes.
func TestSavePartial(t *testing.T) {
	t.Parallel()
	const full = `{"ip":"10.0.0.1","size":"m1","state":"running"}`
	steps := []struct {
		name     string
		obs      state.Observation
		op       state.ChangeOp // "" means no change
		fields   []string
		stored   string
		version  int64
		noWrites bool
	}{
		{"Full", obs("i-1", full, t0), state.Created, nil, full, 1, false},
		{"PartialSameState", partial("i-1", `{"state":"running"}`, t0.Add(time.Second)), "", nil, full, 1, true},
		{"FullAgain", obs("i-1", full, t0.Add(2*time.Second)), "", nil, full, 1, true},
		{"PartialNewState", partial("i-1", `{"state":"stopped"}`, t0.Add(3*time.Second)), state.Updated, []string{"state"},
			`{"ip":"10.0.0.1","size":"m1","state":"stopped"}`, 2, false},
		{"FullMatchingMerged", obs("i-1", `{"state":"stopped","size":"m1","ip":"10.0.0.1"}`, t0.Add(4*time.Second)), "", nil,
			`{"ip":"10.0.0.1","size":"m1","state":"stopped"}`, 2, true},
		{"PartialOlderIgnored", partial("i-1", `{"state":"pending"}`, t0), "", nil,
			`{"ip":"10.0.0.1","size":"m1","state":"stopped"}`, 2, true},
		{"PartialNewKeyNoEscaping", partial("i-1", `{"note":"<a&b>","state":"stopped"}`, t0.Add(5*time.Second)), state.Updated, []string{"note"},
			`{"ip":"10.0.0.1","note":"<a&b>","size":"m1","state":"stopped"}`, 3, false},
		{"FullDropsKey", obs("i-1", `{"ip":"10.0.0.1","size":"m1","state":"stopped"}`, t0.Add(6*time.Second)), state.Updated, []string{"note"},
			`{"ip":"10.0.0.1","size":"m1","state":"stopped"}`, 4, false},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		for _, st := range steps {
			writes := countWrites(t, s.DB())
			before, _ := s.Resource(ctx, "acct-1", "server", "i-1")
			changes, err := s.Save(ctx, target, snapshot(st.obs))
			require.NoError(t, err, st.name)
			if st.op == "" {
				require.Empty(t, changes, st.name)
			} else {
				require.Len(t, changes, 1, st.name)
				ch := changes[0]
				require.Equal(t, st.op, ch.Op, st.name)
				require.Equal(t, st.fields, ch.Fields, st.name)
				require.Equal(t, st.stored, string(ch.After.Attributes), st.name)
				require.False(t, ch.After.Partial, st.name)
				if st.op == state.Updated {
					require.Equal(t, string(before.Attributes), string(ch.Before.Attributes), st.name)
				}
			}
			r, err := s.Resource(ctx, "acct-1", "server", "i-1")
			require.NoError(t, err, st.name)
			require.Equal(t, st.stored, string(r.Attributes), st.name)
			require.Equal(t, sha256Hex(st.stored), r.Hash, st.name)
			require.Equal(t, st.version, r.Version, st.name)
			if st.noWrites {
				require.Zero(t, writes.Load(), "%s: must not write", st.name)
			} else {
				require.NotZero(t, writes.Load(), "%s: the counter counts", st.name)
			}
			unregisterCountWrites(t, s)
		}
		h, err := s.History(ctx, "acct-1", "server", "i-1")
		require.NoError(t, err)
		require.Len(t, h, 4)
	})
}

func TestSavePartialCreates(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		changes, err := s.Save(ctx, target, snapshot(partial("i-9", `{"state":"running"}`, t0)))
		require.NoError(t, err)
		require.Equal(t, []state.Change{{
			Op:      state.Created,
			Target:  state.Target{Account: "acct-1", Customer: "cust-1", Kind: "server", Resource: "i-9"},
			After:   &state.Observation{Kind: "server", ID: "i-9", Attributes: json.RawMessage(`{"state":"running"}`), ObservedAt: t0},
			Version: 1,
		}}, changes)
		// The full shape arriving later is an ordinary update.
		changes, err = s.Save(ctx, target, snapshot(obs("i-9", `{"state":"running","size":"m1"}`, t0.Add(time.Second))))
		require.NoError(t, err)
		require.Len(t, changes, 1)
		require.Equal(t, []string{"size"}, changes[0].Fields)
	})
}

// unregisterCountWrites removes the callbacks countWrites registered, so
// that a test can count again.
func unregisterCountWrites(t *testing.T, s *Store) {
	t.Helper()
	cb := s.DB().Callback()
	name := "persist_test:count_writes"
	require.NoError(t, cb.Create().Remove(name))
	require.NoError(t, cb.Update().Remove(name))
	require.NoError(t, cb.Delete().Remove(name))
	require.NoError(t, cb.Raw().Remove(name))
}
