package poller

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

var errDown = errors.New("connection refused")

func fail(mevent) *Outcome { return &Outcome{Err: errDown} }

// TestBackoffBoundedByInterval fails one target of each interval for a long
// time on the default Config: the first retry comes within the interval, the
// waits grow to the cap max(interval, min(15m, 10 × interval)) and never
// exceed it, jitter included.
func TestBackoffBoundedByInterval(t *testing.T) {
	tests := []struct {
		every, cap time.Duration
	}{
		{500 * time.Millisecond, 5 * time.Second},
		{15 * time.Second, 150 * time.Second},
		{time.Minute, 10 * time.Minute},
		{15 * time.Minute, 15 * time.Minute},
		{time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.every.String(), func(t *testing.T) {
			s, clock := newDefaultSchedule(t)
			require.NoError(t, s.Set(target("a", "server", ""), tt.every))
			at := dispatchTimes(drive(t, s, clock, 15*tt.cap, fail))[target("a", "server", "")]
			first := min(DefaultBackoffInitial, tt.every)
			// no later than the next healthy poll would come: one interval, ± jitter
			require.LessOrEqual(t, at[1]-at[0], first+first/10, "first retry")
			require.LessOrEqual(t, at[1]-at[0], tt.every+tt.every/10, "first retry within the interval")
			capped := 0
			for i := 1; i < len(at); i++ {
				gap := at[i] - at[i-1]
				require.LessOrEqual(t, gap, tt.cap, "wait %d", i)
				if gap >= tt.cap-tt.cap/10 {
					capped++
				} else {
					require.Zero(t, capped, "wait %d shrank after reaching the cap", i)
				}
			}
			require.GreaterOrEqual(t, capped, 5, "the waits reach the cap")
		})
	}
}

// TestRecoveryAfterOutage: on the default Config, an account's provider fails
// for 10 minutes, then answers again. A 500 ms target on its own is polled
// again within 10 intervals of the recovery; a 500 ms target whose sibling is
// the first to reach the recovered provider is polled again within one
// interval of the sibling's success.
func TestRecoveryAfterOutage(t *testing.T) {
	const outage = 10 * time.Minute
	fast := 500 * time.Millisecond
	s, clock := newDefaultSchedule(t)
	solo := target("solo", "status", "")
	pairFast, pairSlow := target("pair", "status", ""), target("pair", "server", "")
	require.NoError(t, s.Set(solo, fast))
	require.NoError(t, s.Set(pairFast, fast))
	require.NoError(t, s.Set(pairSlow, 2*time.Second))

	pairUp := time.Duration(0) // when the pair's provider came back: at the slow sibling's first poll after the outage
	log := drive(t, s, clock, 20*time.Minute, func(ev mevent) *Outcome {
		switch {
		case ev.D.Target.Account == "solo" && ev.At >= outage:
			return &Outcome{}
		case ev.D.Target.Account == "pair" && pairUp == 0 && ev.At >= outage && ev.D.Target == pairSlow:
			pairUp = ev.At
			return &Outcome{}
		case ev.D.Target.Account == "pair" && pairUp != 0:
			return &Outcome{}
		}
		return &Outcome{Err: errDown}
	})
	times := dispatchTimes(log)

	// solo: its own backoff, bounded by 10 intervals
	at := times[solo]
	i, _ := slices.BinarySearch(at, outage)
	require.Less(t, i, len(at))
	require.LessOrEqual(t, at[i]-outage, 10*fast, "solo: first poll after the recovery")
	requireOnGrid(t, at[i:], fast, "solo after the recovery")

	// pair: the sibling's success makes the fast target due within one interval
	require.NotZero(t, pairUp)
	at = times[pairFast]
	i, _ = slices.BinarySearch(at, pairUp+1)
	require.Less(t, i, len(at))
	require.LessOrEqual(t, at[i]-pairUp, fast, "pair: fast target after its sibling's success")
	requireOnGrid(t, at[i:], fast, "pair after the recovery")
	e, _ := s.Lookup(pairFast)
	require.Zero(t, e.Failures)
}

// requireOnGrid checks that times are one interval apart, ± twice the default
// jitter, and that there are enough of them to say so.
func requireOnGrid(t *testing.T, at []time.Duration, every time.Duration, msg string) {
	t.Helper()
	require.GreaterOrEqual(t, len(at), 5, msg)
	lo, hi := gaps(at)
	require.GreaterOrEqual(t, lo, every-every/5, "%s: shortest gap", msg)
	require.LessOrEqual(t, hi, every+every/5, "%s: longest gap", msg)
}

// TestRecoveryWithinBudget: an account of 400 targets (within its default
// budget when healthy) fails for 10 minutes, retrying faster than its budget
// allows at first, then recovers. Its first success resets every failing
// target: all of them are polled again within about one interval, at their
// interval from then on, and the budget holds throughout, the recovery
// included.
func TestRecoveryWithinBudget(t *testing.T) {
	const outage = 10 * time.Minute
	s, clock := newDefaultSchedule(t)
	var targets []state.Target
	for r := range 400 { // 6.7 polls a second when healthy, 10 allowed
		tg := target("big", "server", resourceID(r))
		require.NoError(t, s.Set(tg, time.Minute))
		targets = append(targets, tg)
	}
	log := drive(t, s, clock, 20*time.Minute, func(ev mevent) *Outcome {
		if ev.At < outage {
			return &Outcome{Err: errDown}
		}
		return &Outcome{}
	})
	var all []time.Duration
	for _, ev := range log {
		all = append(all, ev.At)
	}
	requireWithinBudget(t, all, DefaultBudget, "big")
	i, _ := slices.BinarySearch(all, outage)
	up := all[i] // the first success
	require.Less(t, up-outage, 2*time.Minute, "the first retry after the recovery")
	times := dispatchTimes(log)
	for _, tg := range targets {
		at := times[tg]
		j, _ := slices.BinarySearch(at, up+1)
		if at[j-1] == up {
			continue // the first success itself
		}
		require.Less(t, j, len(at), "%v", tg)
		require.LessOrEqual(t, at[j]-up, time.Minute+5*time.Second, "%v: polled again within an interval of the account's first success", tg)
		requireOnGrid(t, at[j:], time.Minute, tg.String())
		e, _ := s.Lookup(tg)
		require.Zero(t, e.Failures)
	}
	require.Zero(t, s.Stats().Waiting)
}

// TestRecoveryResets covers what a sibling's success resets, and what it
// does not.
func TestRecoveryResets(t *testing.T) {
	t.Run("NotThrottled", func(t *testing.T) {
		s, clock := newDefaultSchedule(t)
		throttled, failing, ok := target("a", "server", "1"), target("a", "server", "2"), target("a", "server", "3")
		for _, tg := range []state.Target{throttled, failing, ok} {
			require.NoError(t, s.Set(tg, time.Hour))
		}
		clock.Advance(time.Hour)
		ds := s.Due(clock.Now(), 0)
		require.Len(t, ds, 3)
		byTarget := map[state.Target]Dispatch{}
		for _, d := range ds {
			byTarget[d.Target] = d
		}
		require.True(t, s.Report(byTarget[throttled], Outcome{Throttled: true, RetryAfter: 10 * time.Minute}))
		require.True(t, s.Report(byTarget[failing], Outcome{Err: errDown}))
		before, _ := s.Lookup(throttled)
		require.True(t, s.Report(byTarget[ok], Outcome{}))
		after, _ := s.Lookup(throttled)
		require.Equal(t, before, after, "a throttled target keeps its pause and count")
		e, _ := s.Lookup(failing)
		require.Zero(t, e.Failures, "an erroring sibling is reset")
		require.False(t, e.NextDue.After(clock.Now().Add(time.Hour)))
	})
	t.Run("OnlyThatAccount", func(t *testing.T) {
		s, clock := newDefaultSchedule(t)
		for _, a := range []string{"a", "b"} {
			for r := range 3 {
				require.NoError(t, s.Set(target(a, "server", resourceID(r)), time.Hour))
			}
		}
		clock.Advance(time.Hour)
		ds := s.Due(clock.Now(), 0)
		require.Len(t, ds, 6)
		var success Dispatch
		for _, d := range ds {
			if d.Target.Account == "a" && d.Target.Resource == resourceID(0) {
				success = d
				continue
			}
			require.True(t, s.Report(d, Outcome{Err: errDown}))
		}
		require.True(t, s.Report(success, Outcome{}))
		for r := 1; r < 3; r++ {
			e, _ := s.Lookup(target("a", "server", resourceID(r)))
			require.Zero(t, e.Failures)
			e, _ = s.Lookup(target("b", "server", resourceID(r)))
			require.Equal(t, 1, e.Failures, "another account's failing target is left alone")
		}
	})
	t.Run("BrokenTargetNotHammered", func(t *testing.T) {
		// One target of a healthy account always fails: a sibling's success
		// resets it once; then its errors are its own and it backs off.
		s, clock := newDefaultSchedule(t)
		broken := target("a", "server", "broken")
		require.NoError(t, s.Set(broken, time.Minute))
		for r := range 5 {
			require.NoError(t, s.Set(target("a", "server", resourceID(r)), 2*time.Second))
		}
		log := drive(t, s, clock, time.Hour, func(ev mevent) *Outcome {
			if ev.D.Target == broken {
				return &Outcome{Err: errDown}
			}
			return &Outcome{}
		})
		at := dispatchTimes(log)[broken]
		// 5 s, then 5 s (after the reset), 10 s, 20 s, …, 320 s, then every
		// 10 min: about 14 polls in the hour (every 5 s would be 700)
		require.LessOrEqual(t, len(at), 16, "retries %v", at)
		require.GreaterOrEqual(t, at[len(at)-1]-at[len(at)-2], 9*time.Minute, "backed off to the cap")
		e, _ := s.Lookup(broken)
		require.Greater(t, e.Failures, 5)
	})
	t.Run("FailingListBounded", func(t *testing.T) {
		// Failing targets removed and added again, with no success in the
		// account: the list of failing slots stays proportional to the targets.
		s, clock := newDefaultSchedule(t)
		for round := range 50 {
			for r := range 10 {
				require.NoError(t, s.Set(target("a", "server", resourceID(r)), time.Second))
			}
			clock.Advance(time.Second)
			for _, d := range s.Due(clock.Now(), 0) {
				require.True(t, s.Report(d, Outcome{Err: errDown}))
			}
			for r := range 10 - round%3 {
				require.True(t, s.Remove(target("a", "server", resourceID(r))))
			}
			checkInvariants(t, s)
			s.mu.Lock()
			if a := s.accounts["a"]; a != nil { // freed with its last target
				require.LessOrEqual(t, len(a.failing), 2*a.n+16, "round %d", round)
			}
			s.mu.Unlock()
		}
	})
}
