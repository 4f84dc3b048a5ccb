package persist

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLeases: the lease steps of the shared schedule. Of many claimers at
// one generation exactly one wins; a held, unexpired lease cannot be
// claimed; renewal extends every lease of its owner in one statement; a
// release leaves a handoff that the next holder takes once; presence rows
// long expired are purged; bad input is refused with ErrInvalid.
func TestLeases(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		require.NoError(t, s.EnsureLeases(ctx, "shard/0000", "shard/0001", "relay"))
		require.NoError(t, s.EnsureLeases(ctx, "shard/0000")) // again: nothing changes
		ls, err := s.Leases(ctx, "shard/")
		require.NoError(t, err)
		require.Len(t, ls, 2)
		require.Equal(t, Lease{Name: "shard/0000", ExpiresAt: time.Unix(0, 0).UTC()}, ls[0])

		// Ten claimers at generation 0: one wins.
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.ClaimLease(ctx, "shard/0000", fmt.Sprintf("p%d", i), 0, t0, t0.Add(time.Minute))
				require.NoError(t, err)
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int64(1), wins.Load())
		ls, err = s.Leases(ctx, "shard/0000")
		require.NoError(t, err)
		owner := ls[0].Owner
		require.Equal(t, int64(1), ls[0].Generation)

		ok, err := s.ClaimLease(ctx, "shard/0000", "late", 1, t0.Add(time.Second), t0.Add(time.Minute))
		require.NoError(t, err)
		require.False(t, ok, "held and not expired")
		ok, err = s.ClaimLease(ctx, "shard/0001", owner, 0, t0, t0.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		n, err := s.RenewLeases(ctx, owner, t0.Add(2*time.Minute))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		ok, err = s.ClaimLease(ctx, "shard/0000", "late", 1, t0.Add(90*time.Second), t0.Add(3*time.Minute))
		require.NoError(t, err)
		require.False(t, ok, "renewed")
		ok, err = s.ClaimLease(ctx, "shard/0000", "late", 1, t0.Add(3*time.Minute), t0.Add(4*time.Minute))
		require.NoError(t, err)
		require.True(t, ok, "expired: taken over")

		// Release with a handoff; the next holder takes it once.
		released, err := s.ReleaseLease(ctx, "shard/0000", owner, `[{"t":{}}]`)
		require.NoError(t, err)
		require.False(t, released, "no longer its lease")
		released, err = s.ReleaseLease(ctx, "shard/0000", "late", `[{"t":{}}]`)
		require.NoError(t, err)
		require.True(t, released)
		ok, err = s.ClaimLease(ctx, "shard/0000", "next", 2, t0.Add(3*time.Minute), t0.Add(4*time.Minute))
		require.NoError(t, err)
		require.True(t, ok, "released: free at once")
		h, err := s.TakeHandoff(ctx, "shard/0000", "next", 3)
		require.NoError(t, err)
		require.Equal(t, `[{"t":{}}]`, h)
		h, err = s.TakeHandoff(ctx, "shard/0000", "next", 3)
		require.NoError(t, err)
		require.Empty(t, h, "taken once")

		// Presence: created, deleted by its owner, purged when long expired.
		require.NoError(t, s.CreateLease(ctx, "member/a", "a", t0))
		require.NoError(t, s.CreateLease(ctx, "member/b", "b", t0.Add(time.Hour)))
		purged, err := s.PurgeLeases(ctx, "member/", t0.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, 1, purged)
		require.NoError(t, s.DeleteLease(ctx, "member/b", "b"))
		ls, err = s.Leases(ctx, "member/")
		require.NoError(t, err)
		require.Empty(t, ls)

		// Forwarded reports: written, read by shard, deleted.
		require.NoError(t, s.ForwardReports(ctx, ForwardedReport{Shard: 1, Generation: 3, Body: []byte(`{"a":1}`)},
			ForwardedReport{Shard: 2, Generation: 1, Body: []byte(`{"b":2}`)}))
		rs, err := s.ForwardedReports(ctx, []int{1}, 0)
		require.NoError(t, err)
		require.Len(t, rs, 1)
		require.Equal(t, int64(3), rs[0].Generation)
		require.JSONEq(t, `{"a":1}`, string(rs[0].Body))
		require.NoError(t, s.DeleteForwardedReports(ctx, rs[0].ID))
		rs, err = s.ForwardedReports(ctx, []int{1, 2}, 0)
		require.NoError(t, err)
		require.Len(t, rs, 1)

		for _, err := range []error{
			s.EnsureLeases(ctx, ""),
			s.CreateLease(ctx, "member/x", "", t0),
			func() error { _, err := s.ClaimLease(ctx, "shard/0000", "", 0, t0, t0); return err }(),
			func() error { _, err := s.RenewLeases(ctx, "", t0); return err }(),
			func() error { _, err := s.PurgeLeases(ctx, "", t0); return err }(),
			s.ForwardReports(ctx, ForwardedReport{Body: make([]byte, maxReportLen+1)}),
		} {
			require.ErrorIs(t, err, ErrInvalid)
		}
	})
}
