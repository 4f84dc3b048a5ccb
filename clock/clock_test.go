package clock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeClock(t *testing.T) {
	t.Run("AdvanceFiresInOrder", func(t *testing.T) {
		c := NewFake(t0)
		a, b := c.NewTimer(2*time.Second), c.NewTimer(time.Second)
		require.Equal(t, 2, c.Timers())
		c.Advance(500 * time.Millisecond)
		require.Empty(t, a.C())
		require.Empty(t, b.C())
		c.Advance(time.Second)
		require.Equal(t, t0.Add(1500*time.Millisecond), <-b.C())
		require.Empty(t, a.C())
		c.Set(t0.Add(time.Minute))
		require.Equal(t, t0.Add(time.Minute), <-a.C())
		require.Equal(t, 0, c.Timers())
	})
	t.Run("StopAndReset", func(t *testing.T) {
		c := NewFake(t0)
		tm := c.NewTimer(time.Second)
		require.True(t, tm.Stop())
		require.False(t, tm.Stop())
		c.Advance(time.Hour)
		require.Empty(t, tm.C())
		require.False(t, tm.Reset(time.Second))
		require.True(t, tm.Reset(2*time.Second))
		c.Advance(2 * time.Second)
		require.Len(t, tm.C(), 1)
		require.False(t, tm.Reset(time.Second), "Reset drains the stale fire")
		require.Empty(t, tm.C())
	})
	t.Run("NonPositiveFiresAtOnce", func(t *testing.T) {
		c := NewFake(t0)
		require.Equal(t, t0, <-c.NewTimer(0).C())
		require.Equal(t, t0, <-c.NewTimer(-time.Second).C())
	})
	t.Run("BlockUntilTimers", func(t *testing.T) {
		c := NewFake(t0)
		done := make(chan struct{})
		go func() {
			c.BlockUntilTimers(2)
			close(done)
		}()
		c.NewTimer(time.Second)
		c.NewTimer(time.Second)
		<-done
	})
	t.Run("StepMovesOnlyTheWallClock", func(t *testing.T) {
		c := NewFake(t0)
		tm := c.NewTimer(time.Second)
		for _, step := range []time.Duration{time.Hour, -2 * time.Hour} {
			c.Step(step)
			require.Equal(t, time.Duration(0), c.Monotonic())
			require.Empty(t, tm.C(), "a step fires no timer")
			require.Equal(t, 1, c.Timers())
		}
		require.Equal(t, t0.Add(-time.Hour), c.Now())
		c.Advance(time.Second)
		require.Equal(t, time.Second, c.Monotonic())
		require.Equal(t, t0.Add(-time.Hour+time.Second), <-tm.C(), "fires on monotonic time, sends the wall clock")
	})
	t.Run("SetForwardIsAdvanceBackwardIsStep", func(t *testing.T) {
		c := NewFake(t0)
		tm := c.NewTimer(time.Minute)
		c.Set(t0.Add(time.Minute))
		require.Equal(t, time.Minute, c.Monotonic())
		require.Equal(t, t0.Add(time.Minute), <-tm.C())
		tm.Reset(time.Second)
		c.Set(t0) // back: a step
		require.Equal(t, t0, c.Now())
		require.Equal(t, time.Minute, c.Monotonic())
		require.Empty(t, tm.C())
		c.Set(t0.Add(time.Second))
		require.Equal(t, t0.Add(time.Second), <-tm.C())
	})
	t.Run("AdvanceBackwardsPanics", func(t *testing.T) {
		c := NewFake(t0)
		require.Panics(t, func() { c.Advance(-time.Nanosecond) })
		require.Equal(t, t0, c.Now())
	})
	t.Run("Real", func(t *testing.T) {
		c := Real()
		m := c.Monotonic()
		require.GreaterOrEqual(t, m, time.Duration(0))
		require.GreaterOrEqual(t, c.Monotonic(), m)
		require.WithinDuration(t, time.Now(), c.Now(), time.Second)
		tm := c.NewTimer(time.Hour)
		require.True(t, tm.Stop())
		require.False(t, tm.Reset(0))
		<-tm.C()
	})
}
