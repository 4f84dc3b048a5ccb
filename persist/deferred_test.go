package persist

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDeferred(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		due := func(d time.Duration) time.Time { return t0.Add(d) }

		for _, m := range []struct {
			uuid string
			at   time.Duration
		}{{"m-1", 3 * time.Second}, {"m-2", time.Second}, {"m-3", 2 * time.Second}, {"m-4", time.Hour}} {
			require.NoError(t, s.Defer(ctx, Parked{MessageUUID: m.uuid, Topic: "actions", Metadata: map[string]string{"k": m.uuid},
				Payload: []byte("p-" + m.uuid), Attempts: 1}, due(m.at)))
		}

		got, err := s.DueDeferred(ctx, due(3*time.Second), 0)
		require.NoError(t, err)
		require.Equal(t, []string{"m-2", "m-3", "m-1"}, deferredUUIDs(got), "due_at order; due exactly now is due")
		require.Equal(t, due(time.Second), got[0].DueAt)
		require.Equal(t, Parked{ID: got[0].ID, MessageUUID: "m-2", Topic: "actions", Metadata: map[string]string{"k": "m-2"},
			Payload: []byte("p-m-2"), Attempts: 1}, got[0].Parked)

		got, err = s.DueDeferred(ctx, due(time.Minute), 2)
		require.NoError(t, err)
		require.Equal(t, []string{"m-2", "m-3"}, deferredUUIDs(got))

		none, err := s.DueDeferred(ctx, due(0), 10)
		require.NoError(t, err)
		require.Empty(t, none)

		// Deferring again is an upsert: same row, new due time and attempts.
		first, err := s.DueDeferred(ctx, due(time.Hour), 10)
		require.NoError(t, err)
		m1 := first[2]
		require.Equal(t, "m-1", m1.MessageUUID)
		require.NoError(t, s.Defer(ctx, Parked{MessageUUID: "m-1", Topic: "actions", Payload: []byte("v2"), Attempts: 2},
			due(500*time.Millisecond)))
		got, err = s.DueDeferred(ctx, due(3*time.Second), 0)
		require.NoError(t, err)
		require.Equal(t, []string{"m-1", "m-2", "m-3"}, deferredUUIDs(got))
		require.Equal(t, m1.ID, got[0].ID)
		require.Equal(t, 2, got[0].Attempts)
		require.Equal(t, []byte("v2"), got[0].Payload)
		require.Nil(t, got[0].Metadata)

		require.NoError(t, s.DeleteDeferred(ctx, got[0], got[1], Deferred{Parked: Parked{ID: 424242}}))
		require.NoError(t, s.DeleteDeferred(ctx))
		got, err = s.DueDeferred(ctx, due(24*time.Hour), 0)
		require.NoError(t, err)
		require.Equal(t, []string{"m-3", "m-4"}, deferredUUIDs(got))

		// m-3 is republished, fails again and is deferred anew before the
		// republisher deletes the row it read: the new deferral survives.
		require.NoError(t, s.Defer(ctx, Parked{MessageUUID: "m-3", Topic: "t", Attempts: 7}, due(48*time.Hour)))
		require.NoError(t, s.DeleteDeferred(ctx, got[0]))
		again, err := s.DueDeferred(ctx, due(72*time.Hour), 0)
		require.NoError(t, err)
		require.Equal(t, []string{"m-4", "m-3"}, deferredUUIDs(again))
		require.Equal(t, 7, again[1].Attempts)

		require.ErrorIs(t, s.Defer(ctx, Parked{}, due(0)), ErrInvalid)
		require.ErrorIs(t, s.Defer(ctx, Parked{MessageUUID: "m-9"}, time.Time{}), ErrInvalid)
	})
}

func deferredUUIDs(ds []Deferred) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageUUID
	}
	return out
}
