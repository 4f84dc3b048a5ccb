package poller

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

// clockSteps are the wall-clock steps the tests below take in the middle of a
// run, as an NTP step or an operator would.
var clockSteps = []struct {
	name string
	step time.Duration
}{
	{"Back", -time.Hour},
	{"Forward", time.Hour},
}

// TestClockStep steps the wall clock by an hour, back and forward, in the
// middle of a run on the default Config: every target keeps its interval
// (the same dispatch counts in the windows before and after the step, and no
// gap between two polls of a target is shorter or longer than its interval
// spread by the jitter), and the times the schedule returns follow the
// stepped wall clock.
func TestClockStep(t *testing.T) {
	const (
		half   = 10 * time.Minute // run before and after the step, of monotonic time
		window = 8 * time.Minute  // counted on either side of the step
	)
	for _, tt := range clockSteps {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newDefaultSchedule(t)
			require.NoError(t, s.Register("firewall", 15*time.Second))
			require.NoError(t, s.Register("server", time.Minute))
			var targets []state.Target
			for a := range 2 {
				require.NoError(t, s.Watch(accountID(a), "c"))
				targets = append(targets,
					state.Target{Account: accountID(a), Customer: "c", Kind: "firewall"},
					state.Target{Account: accountID(a), Customer: "c", Kind: "server"})
				for r := range 3 {
					tg := state.Target{Account: accountID(a), Customer: "c", Kind: "status", Resource: resourceID(r)}
					require.NoError(t, s.Set(tg, 2*time.Second))
					targets = append(targets, tg)
				}
			}
			log := drive(t, s, clock, half, okAt)

			clock.Step(tt.step)
			for _, tg := range targets { // what Lookup returns follows the stepped wall clock
				e, found := s.Lookup(tg)
				require.True(t, found)
				require.False(t, e.NextDue.Before(clock.Now()), "%v: due in the past", tg)
				require.LessOrEqual(t, e.NextDue.Sub(clock.Now()), e.Every+e.Every/10, "%v: due after more than one interval", tg)
			}
			next, _ := s.NextWake()
			require.LessOrEqual(t, next.Sub(clock.Now()), 2*time.Second+200*time.Millisecond)
			log = append(log, drive(t, s, clock, half, okAt)...)

			times := dispatchTimes(log)
			require.Len(t, times, len(targets))
			for _, tg := range targets {
				at := times[tg]
				e, _ := s.Lookup(tg)
				want := int(window / e.Every)
				before, after := countIn(at, half-window, half), countIn(at, half, half+window)
				require.InDelta(t, want, before, 1, "%v before the step", tg)
				require.InDelta(t, want, after, 1, "%v after the step", tg)
				lo, hi := gaps(at) // no burst, no stall: on the jittered grid
				require.GreaterOrEqual(t, lo, e.Every-e.Every/5, "%v: shortest gap", tg)
				require.LessOrEqual(t, hi, e.Every+e.Every/5, "%v: longest gap", tg)
			}
			lo, hi := time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
			for _, ev := range log { // DueAt is on the wall clock of the dispatch
				late := ev.Wall.Sub(ev.D.DueAt)
				lo, hi = min(lo, late), max(hi, late)
			}
			require.GreaterOrEqual(t, lo, time.Duration(0), "least late")
			require.Less(t, hi, time.Second, "most late")
		})
	}
}

// TestClockStepKeepsBudget saturates two accounts' budgets and steps the wall
// clock in the middle: a step neither refills a bucket (no second gets more
// than its rate) nor drains it (every 10 s get their full share).
func TestClockStepKeepsBudget(t *testing.T) {
	lim := Limit{PerSecond: 5, Burst: 5}
	for _, tt := range clockSteps {
		t.Run(tt.name, func(t *testing.T) {
			clock := NewFakeClock(t0)
			s, err := New(Config{Clock: clock, Seed: 42, Budget: lim}) // Budget: tight, so that it binds
			require.NoError(t, err)
			for a := range 2 {
				for r := range 20 { // 20 polls a second wanted, 5 allowed
					require.NoError(t, s.Set(target(accountID(a), "status", resourceID(r)), time.Second))
				}
			}
			log := drive(t, s, clock, time.Minute, okAt)
			clock.Step(tt.step)
			log = append(log, drive(t, s, clock, time.Minute, okAt)...)

			for a := range 2 {
				var at []time.Duration
				for _, ev := range log {
					if ev.D.Target.Account == accountID(a) {
						at = append(at, ev.At)
					}
				}
				requireWithinBudget(t, at, lim, accountID(a))
				for sec := time.Duration(2); sec < 120; sec++ { // once the initial burst is spent
					n := countIn(at, sec*time.Second, (sec+1)*time.Second)
					require.LessOrEqual(t, n, 5+1, "%s: second %d", accountID(a), sec) // +1: a token on the boundary
				}
				for w := time.Duration(1); w < 12; w++ {
					n := countIn(at, w*10*time.Second, (w+1)*10*time.Second)
					require.InDelta(t, 50, n, 1, "%s: 10 s from %v", accountID(a), w*10*time.Second)
				}
			}
		})
	}
}

// TestRunAcrossClockStep runs Run on its timer while the wall clock is
// stepped: Run sleeps for durations, so it keeps dispatching every target at
// its interval.
func TestRunAcrossClockStep(t *testing.T) {
	for _, tt := range clockSteps {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newDefaultSchedule(t)
			for r := range 10 { // 6 polls a second per account: within the default budget
				acct := accountID(r % 2)
				require.NoError(t, s.Set(target(acct, "status", resourceID(r)), time.Second))
				require.NoError(t, s.Set(target(acct, "server", resourceID(r)), 5*time.Second))
			}
			var mu sync.Mutex
			times := map[state.Target][]time.Duration{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- s.Run(ctx, func(_ context.Context, ds []Dispatch) error {
					mu.Lock()
					defer mu.Unlock()
					for _, d := range ds {
						times[d.Target] = append(times[d.Target], clock.Monotonic())
						s.Report(d, Outcome{})
					}
					return nil
				})
			}()
			const step = 100 * time.Millisecond
			for clock.Monotonic() < 2*time.Minute {
				if clock.Monotonic() == time.Minute {
					clock.Step(tt.step)
				}
				clock.BlockUntilTimers(1) // Run sleeps on its timer
				clock.Advance(step)
			}
			cancel()
			require.NoError(t, <-done)

			mu.Lock()
			defer mu.Unlock()
			require.Len(t, times, 20)
			for tg, at := range times {
				every := time.Second
				if tg.Kind == "server" {
					every = 5 * time.Second
				}
				want := int(50 * time.Second / every)
				require.InDelta(t, want, countIn(at, 10*time.Second, time.Minute), 1, "%v before the step", tg)
				require.InDelta(t, want, countIn(at, time.Minute, 110*time.Second), 1, "%v after the step", tg)
			}
		})
	}
}

// TestLeasesUniqueAcrossRestart: leases count on from the wall-clock
// creation time, through a step of the wall clock, and a schedule started
// after a step back (a restart) hands out none of its predecessor's leases:
// every poll the old one dispatched is stale for the new one.
func TestLeasesUniqueAcrossRestart(t *testing.T) {
	s1, clock := newDefaultSchedule(t)
	require.NoError(t, s1.Register("server", time.Second))
	for a := range 5 {
		require.NoError(t, s1.Watch(accountID(a), "c"))
	}
	log := drive(t, s1, clock, 10*time.Second, okAt)
	clock.Step(-time.Hour)
	log = append(log, drive(t, s1, clock, 10*time.Second, okAt)...)
	var old []uint64
	for _, ev := range log {
		old = append(old, ev.D.Lease)
	}
	require.True(t, slices.IsSorted(old), "leases only grow, through the step")
	require.Greater(t, old[0], uint64(t0.UnixNano()))

	s2, err := New(Config{Clock: clock, Seed: 7}) // the restarted process, on the stepped clock
	require.NoError(t, err)
	require.NoError(t, s2.Register("server", time.Second))
	for a := range 5 {
		require.NoError(t, s2.Watch(accountID(a), "c"))
	}
	seen := map[uint64]bool{}
	for _, l := range old {
		seen[l] = true
	}
	for _, ev := range drive(t, s2, clock, 10*time.Second, okAt) {
		require.False(t, seen[ev.D.Lease], "lease %d reused", ev.D.Lease)
	}
	for _, ev := range log[len(log)-5:] { // as carried by queued poll actions
		b, err := json.Marshal(ev.D)
		require.NoError(t, err)
		var d Dispatch
		require.NoError(t, json.Unmarshal(b, &d))
		require.False(t, s2.Current(d))
		require.False(t, s2.Report(d, Outcome{}))
	}
}

// gaps returns the shortest and the longest gap between consecutive times.
func gaps(at []time.Duration) (lo, hi time.Duration) {
	lo, hi = math.MaxInt64, math.MinInt64
	for i := 1; i < len(at); i++ {
		lo, hi = min(lo, at[i]-at[i-1]), max(hi, at[i]-at[i-1])
	}
	return lo, hi
}
