package poller

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type batch struct {
	at time.Time
	ds []Dispatch
}

// startRun runs s.Run in a goroutine; dispatch's batches arrive on the
// returned channel. stop cancels Run and waits for it to return.
func startRun(t *testing.T, s *Schedule, clock *FakeClock, dispatch func(context.Context, []Dispatch) error) (<-chan batch, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	batches := make(chan batch, 100)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ctx context.Context, ds []Dispatch) error {
			batches <- batch{at: clock.Now(), ds: ds}
			return dispatch(ctx, ds)
		})
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return batches, stop
}

func TestRun(t *testing.T) {
	t.Run("DispatchesOnTime", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		require.NoError(t, s.Register("firewall", 15*time.Second))
		require.NoError(t, s.Register("server", time.Minute))
		require.NoError(t, s.Watch("a", "c"))
		batches, stop := startRun(t, s, clock, func(_ context.Context, ds []Dispatch) error {
			for _, d := range ds {
				s.Report(d, Outcome{}) // a fast subscriber
			}
			return nil
		})
		b := <-batches
		require.Equal(t, t0, b.at)
		require.Len(t, b.ds, 2)
		for i := 1; i <= 8; i++ {
			clock.BlockUntilTimers(1) // Run sleeps on its timer
			clock.Advance(15 * time.Second)
			b := <-batches
			require.Equal(t, t0.Add(time.Duration(i)*15*time.Second), b.at)
			want := 1
			if i%4 == 0 {
				want = 2 // the server target joins every minute
			}
			require.Len(t, b.ds, want, "tick %d", i)
		}
		stop()
		require.Empty(t, batches)
	})
	t.Run("WokenEarlyBySet", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		require.NoError(t, s.Set(target("a", "server", ""), time.Hour))
		batches, _ := startRun(t, s, clock, func(_ context.Context, ds []Dispatch) error {
			for _, d := range ds {
				s.Report(d, Outcome{})
			}
			return nil
		})
		<-batches
		clock.BlockUntilTimers(1) // sleeping for an hour
		require.NoError(t, s.Set(target("b", "server", ""), time.Hour))
		b := <-batches // the new target is due now: Run wakes without the clock moving
		require.Equal(t, t0, b.at)
		require.Equal(t, "b", b.ds[0].Target.Account)
	})
	t.Run("StopsOnCancel", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		_, stop := startRun(t, s, clock, func(context.Context, []Dispatch) error { return nil })
		stop() // returns: nothing scheduled, Run waits on ctx and its wake channel
		require.False(t, s.running.Load())
	})
	t.Run("SecondRunRefused", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		require.NoError(t, s.Set(target("a", "server", ""), time.Hour))
		batches, _ := startRun(t, s, clock, func(context.Context, []Dispatch) error { return nil })
		<-batches
		require.ErrorIs(t, s.Run(context.Background(), func(context.Context, []Dispatch) error { return nil }), ErrRunning)
		require.Error(t, (&Schedule{}).Run(context.Background(), nil))
	})
	t.Run("CallbackErrorRedispatches", func(t *testing.T) {
		s, clock := newTestSchedule(t, Config{Jitter: -1, InitialSpread: -1, BatchSize: 2})
		for _, r := range []string{"i-1", "i-2", "i-3"} {
			require.NoError(t, s.Set(target("a", "server", r), time.Hour))
		}
		fail := true
		batches, _ := startRun(t, s, clock, func(_ context.Context, ds []Dispatch) error {
			if fail {
				return errors.New("broker down")
			}
			for _, d := range ds {
				s.Report(d, Outcome{})
			}
			return nil
		})
		b1, b2 := <-batches, <-batches // batches of at most 2
		require.Len(t, b1.ds, 2)
		require.Len(t, b2.ds, 1)
		clock.BlockUntilTimers(1)
		st := s.Stats()
		require.Equal(t, 0, st.InFlight, "failed dispatches are not left in flight")
		for _, d := range append(b1.ds, b2.ds...) {
			require.False(t, s.Current(d))
			e, _ := s.Lookup(d.Target)
			require.Equal(t, 1, e.Failures)
			require.Equal(t, t0.Add(DefaultBackoffInitial), e.NextDue, "retried after the backoff")
		}
		fail = false // read by Run's goroutine only after Advance below
		clock.Advance(DefaultBackoffInitial)
		got := map[string]bool{}
		for len(got) < 3 {
			b := <-batches
			require.Equal(t, t0.Add(DefaultBackoffInitial), b.at)
			for _, d := range b.ds {
				got[d.Target.Resource] = true
			}
		}
		clock.BlockUntilTimers(1)
		require.Equal(t, 0, s.Stats().InFlight)
	})
}

// jumpClock is a fake clock that jumps forward by jump inside the first
// timer Reset after jumpNext is set: a test that saw the schedule idle
// moving the clock on while Run sets its timer. jumped is closed once that
// Reset has returned.
type jumpClock struct {
	*FakeClock
	jump     time.Duration
	jumpNext atomic.Bool
	jumped   chan struct{}
}

func (c *jumpClock) NewTimer(d time.Duration) Timer {
	return &jumpTimer{Timer: c.FakeClock.NewTimer(d), c: c}
}

type jumpTimer struct {
	Timer
	c *jumpClock
}

func (t *jumpTimer) Reset(d time.Duration) bool {
	if !t.c.jumpNext.CompareAndSwap(true, false) {
		return t.Timer.Reset(d)
	}
	t.c.Advance(t.c.jump)
	defer close(t.c.jumped)
	return t.Timer.Reset(d)
}

// TestRunTimerNotLateAfterAJump: a fake clock moved between Run reading the
// time and setting its timer does not leave the timer late: the next target
// is dispatched when it is due, not a jump later.
func TestRunTimerNotLateAfterAJump(t *testing.T) {
	clk := &jumpClock{FakeClock: NewFakeClock(t0), jump: 10 * time.Second, jumped: make(chan struct{})}
	s, err := New(Config{Clock: clk, Jitter: -1, InitialSpread: -1, Budget: Unlimited, Seed: 1})
	require.NoError(t, err)
	require.NoError(t, s.Set(target("a", "server", ""), time.Minute))
	batches, _ := startRun(t, s, clk.FakeClock, func(context.Context, []Dispatch) error { return nil })
	first := <-batches
	require.Equal(t, t0, first.at)
	clk.BlockUntilTimers(1) // Run sleeps until the lease expires
	clk.jumpNext.Store(true)
	s.Report(first.ds[0], Outcome{}) // wakes it: next due at t0+1m
	<-clk.jumped                     // the clock moved 10s while Run set its timer
	clk.Advance(50 * time.Second)    // t0+1m: due
	select {
	case b := <-batches:
		require.Equal(t, t0.Add(time.Minute), b.at)
	case <-time.After(10 * time.Second):
		t.Fatal("the target due at t0+1m was not dispatched: Run's timer is late by the jump")
	}
}
