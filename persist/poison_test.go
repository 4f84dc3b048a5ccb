package persist

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPoison(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()

		msgs := []Parked{
			{MessageUUID: "m-1", Topic: "actions", ActionType: "server.launch", Metadata: map[string]string{"correlation_id": "c-1"},
				Payload: []byte(`{"size":"m1"}`), Reason: "quota exceeded", Attempts: 5, FailedAt: t0},
			{MessageUUID: "m-2", Topic: "actions", ActionType: "server.launch", Payload: []byte{0, 1, 2, 255}, Reason: "bad payload", Attempts: 1,
				FailedAt: t0.Add(time.Minute)},
			{MessageUUID: "m-3", Topic: "polls", ActionType: "poll", Reason: "panic", Attempts: 3}, // FailedAt: now
		}
		clock.Set(t0.Add(time.Hour + 500*time.Microsecond))
		for _, m := range msgs {
			require.NoError(t, s.AddPoison(ctx, m))
		}

		list, err := s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Len(t, list, 3)
		require.Equal(t, []string{"m-3", "m-2", "m-1"}, uuids(list), "newest failure first")
		for i := range list {
			require.NotZero(t, list[i].ID)
		}
		want := msgs[0]
		want.ID = list[2].ID
		require.Equal(t, want, list[2], "round trip")
		require.Equal(t, []byte{0, 1, 2, 255}, list[1].Payload)
		require.Nil(t, list[1].Metadata)
		require.Equal(t, t0.Add(time.Hour+500*time.Microsecond), list[0].FailedAt)
		require.Nil(t, list[0].Payload)

		got, err := s.GetPoison(ctx, list[2].ID)
		require.NoError(t, err)
		require.Equal(t, want, got)
		_, err = s.GetPoison(ctx, 987654)
		require.ErrorIs(t, err, ErrNotFound)

		limited, err := s.ListPoison(ctx, PoisonFilter{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, []string{"m-3", "m-2"}, uuids(limited))

		clock.Set(t0.Add(2 * time.Hour))
		require.NoError(t, s.MarkPoisonReplayed(ctx, list[2].ID, list[1].ID, 987654))
		require.NoError(t, s.MarkPoisonReplayed(ctx))
		list, err = s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"m-3"}, uuids(list))
		all, err := s.ListPoison(ctx, PoisonFilter{IncludeReplayed: true})
		require.NoError(t, err)
		require.Equal(t, []string{"m-3", "m-2", "m-1"}, uuids(all))
		require.NotNil(t, all[2].ReplayedAt)
		require.Equal(t, t0.Add(2*time.Hour), *all[2].ReplayedAt)
		m1ID := all[2].ID

		// The replayed message fails again: same row, new reason, listed again.
		again := msgs[0]
		again.Reason, again.Attempts, again.FailedAt = "still over quota", 7, t0.Add(3*time.Hour)
		require.NoError(t, s.AddPoison(ctx, again))
		got, err = s.GetPoison(ctx, m1ID)
		require.NoError(t, err)
		require.Equal(t, "still over quota", got.Reason)
		require.Equal(t, 7, got.Attempts)
		require.Equal(t, t0.Add(3*time.Hour), got.FailedAt)
		require.Nil(t, got.ReplayedAt)
		list, err = s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"m-1", "m-3"}, uuids(list))
		require.Equal(t, m1ID, list[0].ID)

		err = s.AddPoison(ctx, Parked{Topic: "x"})
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorContains(t, err, "MessageUUID is required")
	})
}

func uuids(ps []Parked) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.MessageUUID
	}
	return out
}
