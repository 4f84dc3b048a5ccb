package poller

import (
	"errors"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestEntrySize(t *testing.T) {
	require.Equal(t, uintptr(72), unsafe.Sizeof(entry{}), "entries are packed: keep them small")
	require.Equal(t, uintptr(16), unsafe.Sizeof(hitem{}))
}

// TestConcurrentUse has a dispatcher, two subscribers and an operator use one
// schedule at once (run it with -race).
func TestConcurrentUse(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Budget: Limit{PerSecond: 20, Burst: 5}, InFlightTimeout: 3 * time.Second})
	require.NoError(t, s.Register("server", time.Second))
	require.NoError(t, s.Register("firewall", 2*time.Second))
	for i := range 20 {
		require.NoError(t, s.Watch(accountID(i), "c"))
	}
	polls := make(chan Dispatch, 64)
	var subs sync.WaitGroup
	for range 2 {
		subs.Go(func() {
			n := 0
			for d := range polls {
				if !s.Current(d) {
					continue // stale: dropped, not executed
				}
				n++
				var o Outcome
				switch n % 7 {
				case 0:
					o.Err = errors.New("x")
				case 3:
					o.Throttled, o.RetryAfter = true, time.Second
				case 5:
					continue // lost: the lease expires
				}
				s.Report(d, o)
			}
		})
	}
	var ops sync.WaitGroup
	ops.Go(func() {
		for i := range 300 {
			a := accountID(i % 25)
			switch i % 3 {
			case 0:
				_ = s.Set(target(a, "server", resourceID(i)), time.Second)
			case 1:
				s.Unwatch(a)
			case 2:
				_ = s.Watch(a, "c")
			}
		}
	})
	for range 400 {
		clock.Advance(50 * time.Millisecond)
		for _, d := range s.Due(clock.Now(), 0) {
			polls <- d
		}
	}
	ops.Wait()
	close(polls)
	subs.Wait()
	checkInvariants(t, s)
}
