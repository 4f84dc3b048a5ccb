package persist

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLaunchIntents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()
		req := json.RawMessage(`{"image":"ubuntu","size":"m1"}`)

		// Several deliveries of one action claim at once: exactly one wins.
		var wins atomic.Int32
		var wg sync.WaitGroup
		results := make([]LaunchIntent, 6)
		errs := make([]error, 6)
		for i := range 6 {
			wg.Go(func() {
				var claimed bool
				results[i], claimed, errs[i] = s.ClaimLaunch(ctx, LaunchIntent{Key: "key-1", Account: "acct-1", Customer: "cust-1", Request: req})
				if claimed {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		for i := range 6 {
			require.NoError(t, errs[i])
			require.Equal(t, LaunchClaimed, results[i].State)
			require.Equal(t, "key-1", results[i].Key)
		}
		require.EqualValues(t, 1, wins.Load())

		want := LaunchIntent{Key: "key-1", Account: "acct-1", Customer: "cust-1", Request: req, State: LaunchClaimed,
			ClaimedAt: t0, UpdatedAt: t0}
		got, err := s.LaunchIntent(ctx, "key-1")
		require.NoError(t, err)
		require.Equal(t, want, got)

		clock.Set(t0.Add(time.Minute))
		require.NoError(t, s.RecordLaunch(ctx, "key-1", "i-1", "op-1", "job-1"))
		require.NoError(t, s.RecordLaunch(ctx, "key-1", "i-1", "op-1", "job-1"), "recording the same again")
		want.State, want.ServerID, want.OperationID, want.JobID, want.UpdatedAt = LaunchLaunched, "i-1", "op-1", "job-1", t0.Add(time.Minute)
		got, err = s.LaunchIntent(ctx, "key-1")
		require.NoError(t, err)
		require.Equal(t, want, got)

		// A redelivery after the launch finds it launched.
		got, claimed, err := s.ClaimLaunch(ctx, LaunchIntent{Key: "key-1", Account: "acct-1"})
		require.NoError(t, err)
		require.False(t, claimed)
		require.Equal(t, want, got)

		require.ErrorIs(t, s.RecordLaunch(ctx, "key-2", "i-2", "", ""), ErrNotFound)
		_, err = s.LaunchIntent(ctx, "key-2")
		require.ErrorIs(t, err, ErrNotFound)

		in, claimed, err := s.ClaimLaunch(ctx, LaunchIntent{Key: "key-3", Account: "acct-1"})
		require.NoError(t, err)
		require.True(t, claimed)
		require.Nil(t, in.Request)

		for name, in := range map[string]LaunchIntent{
			"NoKey":      {Account: "a"},
			"NoAccount":  {Key: "k"},
			"BadRequest": {Key: "k", Account: "a", Request: json.RawMessage(`{"x":`)},
			"LongKey":    {Key: string(make([]byte, maxKeyLen+1)), Account: "a"},
		} {
			_, _, err := s.ClaimLaunch(ctx, in)
			require.ErrorIs(t, err, ErrInvalid, name)
		}
	})
}

// TestLaunchKeysAreExact: keys that differ only in trailing spaces or case
// are different launches on every engine (MySQL's PAD SPACE made "k" and
// "k " one key before v11), and a key as long as an Action.Key is taken.
func TestLaunchKeysAreExact(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		for _, key := range []string{"k", "k ", "K", "k  ", strings.Repeat("x", 255)} {
			_, fresh, err := s.ClaimLaunch(ctx, LaunchIntent{Key: key, Account: "a"})
			require.NoError(t, err, "%q", key)
			require.True(t, fresh, "%q is a launch of its own", key)
		}
		_, fresh, err := s.ClaimLaunch(ctx, LaunchIntent{Key: "k ", Account: "a"})
		require.NoError(t, err)
		require.False(t, fresh, "the same key again is a redelivery")
		_, _, err = s.ClaimLaunch(ctx, LaunchIntent{Key: strings.Repeat("x", 256), Account: "a"})
		require.ErrorIs(t, err, ErrInvalid)
	})
}
