package persist

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/state"
)

func eventIDs(evs []Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func TestEvents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()

		changes, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":1}`, t0), obs("i-2", `{"a":2}`, t0)))
		require.NoError(t, err)
		clock.Set(t0.Add(time.Minute))
		more, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":3}`, t0.Add(time.Second)), obs("i-2", `{"a":2}`, t0.Add(time.Second))))
		require.NoError(t, err)
		changes = append(changes, more...)
		require.Len(t, changes, 3)

		evs, err := s.PendingEvents(ctx, 0)
		require.NoError(t, err)
		require.Len(t, evs, 3, "one event per change; the unchanged i-2 has none")
		seen := map[string]bool{}
		for i, e := range evs {
			require.Len(t, e.ID, 36)
			require.False(t, seen[e.ID], "event ids are unique")
			seen[e.ID] = true
			require.Equal(t, "server.changed", e.Type)
			require.Equal(t, "acct-1", e.Account)
			require.Equal(t, "cust-1", e.Customer)
			require.Equal(t, "server", e.Kind)
			require.Equal(t, changes[i].Target.Resource, e.ResourceID, "oldest first")
			var ch state.Change
			require.NoError(t, json.Unmarshal(e.Payload, &ch))
			require.Equal(t, changes[i], ch)
		}
		require.Equal(t, t0, evs[0].CreatedAt)
		require.Equal(t, t0.Add(time.Minute), evs[2].CreatedAt)

		page, err := s.PendingEvents(ctx, 2)
		require.NoError(t, err)
		require.Equal(t, eventIDs(evs[:2]), eventIDs(page))

		// Marking is idempotent and ignores unknown ids.
		require.NoError(t, s.MarkEventsSent(ctx, evs[0].ID))
		require.NoError(t, s.MarkEventsSent(ctx, evs[0].ID, evs[1].ID, "no-such-event"))
		require.NoError(t, s.MarkEventsSent(ctx))
		left, err := s.PendingEvents(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, eventIDs(evs[2:]), eventIDs(left))

		// Purge deletes sent events marked before the cutoff, never unsent ones.
		n, err := s.PurgeSentEvents(ctx, t0.Add(time.Minute))
		require.NoError(t, err)
		require.Zero(t, n, "marked at t0+1m: not before the cutoff")
		n, err = s.PurgeSentEvents(ctx, t0.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.EqualValues(t, 1, countRows(t, s.DB(), tblEvents))
		left, err = s.PendingEvents(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, eventIDs(evs[2:]), eventIDs(left))
	})
}

// TestSaveEventsAtomic fails Save's transaction after its outbox insert has
// run: neither the state, nor history, nor the event may remain.
func TestSaveEventsAtomic(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom after the outbox insert")
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		name := "persist_test:fail_after_outbox"
		inserted := 0
		require.NoError(t, s.DB().Callback().Raw().After("gorm:raw").Register(name, func(db *gorm.DB) {
			if db.Statement.Table == tblEvents && db.Error == nil {
				inserted++
				_ = db.AddError(errBoom)
			}
		}))
		_, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":1}`, t0)))
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, 1, inserted, "the event was inserted before the failure")
		for _, table := range []string{tblResources, tblHistory, tblEvents} {
			require.Zero(t, countRows(t, s.DB(), table), table)
		}

		require.NoError(t, s.DB().Callback().Raw().Remove(name))
		changes, err := s.Save(ctx, target, snapshot(obs("i-1", `{"a":1}`, t0)))
		require.NoError(t, err)
		require.Len(t, changes, 1)
		evs, err := s.PendingEvents(ctx, 0)
		require.NoError(t, err)
		require.Len(t, evs, 1)
	})
}

func TestPurgeSentEventsBatches(t *testing.T) {
	t.Parallel()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	s.purgeBatch = 10
	ctx := context.Background()
	rows := make([]eventRow, 25)
	for i := range rows {
		sent := t0
		rows[i] = eventRow{EventID: newEventID(), Type: "x.changed", Account: "a", Kind: "x", Payload: "{}", CreatedAt: t0, SentAt: &sent}
	}
	require.NoError(t, insertEvents(s.DB(), rows))
	n, err := s.PurgeSentEvents(ctx, t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 25, n)
	require.Zero(t, countRows(t, s.DB(), tblEvents))
}

func TestChangePayloadMatchesMarshal(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	ob := func(kind, id, attrs string, at time.Time) *state.Observation {
		return &state.Observation{Kind: kind, ID: id, Attributes: json.RawMessage(attrs), ObservedAt: at}
	}
	target := state.Target{Account: "acct-1", Customer: "cust-1", Kind: "server", Resource: "i-1"}
	tests := []struct {
		name string
		ch   state.Change
	}{
		{"Created", state.Change{Op: state.Created, Target: target, After: ob("server", "i-1", `{"a":1}`, at), Version: 1}},
		{"Updated", state.Change{Op: state.Updated, Target: target, Before: ob("server", "i-1", `{"a":1}`, t0),
			After: ob("server", "i-1", `{"a":2,"b":[1,{"c":null}]}`, at), Fields: []string{"a", "b"}, Version: 2}},
		{"Deleted", state.Change{Op: state.Deleted, Target: target, Before: ob("server", "i-1", `{}`, at), Version: 3}},
		{"NoCustomerNoResource", state.Change{Op: state.Created, Target: state.Target{Account: "a", Kind: "k"}, After: ob("", "x", `{}`, at)}},
		{"Partial", state.Change{Op: state.Created, Target: target, After: &state.Observation{ID: "i-1", Attributes: json.RawMessage(`{}`), ObservedAt: at, Partial: true}}},
		{"HTMLInAttributes", state.Change{Op: state.Created, Target: target, After: ob("server", "i-1", `{"h":"<a&b>"}`, at)}},
		{"LineSeparator", state.Change{Op: state.Created, Target: target, After: ob("server", "i-1", "{\"s\":\"\u2028\"}", at)}},
		{"EscapedStrings", state.Change{Op: state.Updated, Target: state.Target{Account: "a\"<>", Customer: "é", Kind: "k\\", Resource: "r\n"},
			Before: ob("k\\", "r\n", `{"a":"\"q\""}`, at), After: ob("k\\", "r\n", `{"a":"é"}`, at), Fields: []string{"a&b", "ü"}, Version: 9}},
		{"NotUTC", state.Change{Op: state.Created, Target: target, After: ob("server", "i-1", `{}`, at.In(time.FixedZone("X", 3600)))}},
		{"ZeroTime", state.Change{Op: state.Created, Target: target, After: ob("server", "i-1", `{}`, time.Time{}.UTC())}},
		{"NilAttributes", state.Change{Op: state.Created, Target: target, After: &state.Observation{ID: "i-1", ObservedAt: at}}},
		{"EmptyFields", state.Change{Op: state.Updated, Target: target, Before: ob("", "i-1", `{}`, at), After: ob("", "i-1", `{}`, at), Fields: []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tt.ch)
			require.NoError(t, err)
			require.Equal(t, string(want), changePayload(tt.ch))
		})
	}
	require.Equal(t, `[]`, jsonStrings(nil))
	require.Equal(t, `["a","\u003c"]`, jsonStrings([]string{"a", "<"}))
}
