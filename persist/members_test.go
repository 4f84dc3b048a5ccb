package persist

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInstances: a heartbeat creates the instance's row and the next one
// replaces it (one row per instance, ids compared byte for byte); a clean
// stop marks it; the purge deletes instances whose last beat is old, with
// their probes.
func TestInstances(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		in := Instance{ID: "i-1", Host: "h", PID: 42, Roles: []string{"publisher", "subscriber"}, Version: "v1.2.3",
			StartedAt: t0, BeatAt: t0, Interval: 10 * time.Second,
			Dependencies: []Dependency{{Name: "mq", OK: true, CheckedAt: t0}, {Name: "km", Error: "down", CheckedAt: t0}}}
		require.NoError(t, s.PutInstance(ctx, in))
		in.BeatAt = t0.Add(10 * time.Second)
		in.Dependencies[1] = Dependency{Name: "km", OK: true, CheckedAt: in.BeatAt}
		require.NoError(t, s.PutInstance(ctx, in))
		other := Instance{ID: "i-1 ", Host: "h2", PID: 7, Roles: []string{"pinger"}, StartedAt: t0, BeatAt: t0, Interval: time.Second}
		require.NoError(t, s.PutInstance(ctx, other)) // trailing space: another instance

		got, err := s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, in, got[0])
		require.Equal(t, "i-1 ", got[1].ID)
		require.Empty(t, got[1].Dependencies)

		require.NoError(t, s.StopInstance(ctx, "i-1", t0.Add(11*time.Second)))
		got, err = s.Instances(ctx)
		require.NoError(t, err)
		require.Equal(t, t0.Add(11*time.Second), got[0].StoppedAt)
		require.True(t, got[1].StoppedAt.IsZero())

		require.NoError(t, s.PutProbes(ctx, Probe{Instance: "i-1 ", Account: "a", CheckedAt: t0.Add(time.Hour), OK: true, AuthOK: true}))
		n, err := s.PurgeInstances(ctx, t0.Add(5*time.Second))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got, err = s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "i-1", got[0].ID)
		ps, err := s.Probes(ctx, "")
		require.NoError(t, err)
		require.Empty(t, ps, "the purged instance's probes go with it")

		require.Error(t, s.PutInstance(ctx, Instance{ID: "", Interval: time.Second}))
		require.Error(t, s.PutInstance(ctx, Instance{ID: "x"}), "an instance needs its interval")
	})
}

// TestProbes: several pingers probing the same accounts at once each keep
// one row per account (no duplicates, no conflicts), and a probe again
// replaces the pinger's row.
func TestProbes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		var wg sync.WaitGroup
		for p := range 3 {
			wg.Go(func() {
				for round := range 3 {
					var ps []Probe
					for a := range 5 {
						ps = append(ps, Probe{Instance: fmt.Sprintf("pinger-%d", p), Account: fmt.Sprintf("acct-%d", a),
							CheckedAt: t0.Add(time.Duration(round) * time.Minute), Latency: time.Duration(round+1) * time.Millisecond,
							OK: a != 0, AuthOK: a != 0, Error: map[bool]string{true: "refused"}[a == 0]})
					}
					require.NoError(t, s.PutProbes(ctx, ps...))
				}
			})
		}
		wg.Wait()
		all, err := s.Probes(ctx, "")
		require.NoError(t, err)
		require.Len(t, all, 15)
		one, err := s.Probes(ctx, "acct-0")
		require.NoError(t, err)
		require.Len(t, one, 3)
		for i, p := range one {
			require.Equal(t, Probe{Instance: fmt.Sprintf("pinger-%d", i), Account: "acct-0", CheckedAt: t0.Add(2 * time.Minute),
				Latency: 3 * time.Millisecond, Error: "refused"}, p)
		}
		none, err := s.Probes(ctx, "acct-0 ")
		require.NoError(t, err)
		require.Empty(t, none, "accounts are compared byte for byte")
	})
}

// TestPing: both databases answer.
func TestPing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		p, a := s.Ping(context.Background())
		require.NoError(t, p)
		require.NoError(t, a)
	})
}
