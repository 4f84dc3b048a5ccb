//go:build unix

package poller

import (
	"container/heap"
	"context"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stratusworks/worker/state"
)

// BenchmarkLatenessRealTime measures, on the real clock, how late due targets
// are dispatched: 100,000 targets due uniformly over one second, each
// dispatched once. It reports p50 and p99 lateness (dispatch time − due time)
// and the process CPU time per dispatched target (all goroutines, GC
// included), for the Schedule's Run loop and for the two baselines. With
// -benchtime=1x it takes about 1.5 s per sub-benchmark.
func BenchmarkLatenessRealTime(b *testing.B) {
	const (
		n      = 100_000
		window = time.Second
		lead   = 300 * time.Millisecond // setup happens before the first due time
	)
	type result struct{ late []time.Duration }
	report := func(b *testing.B, runs []result, cpu time.Duration) {
		var all []time.Duration
		for _, r := range runs {
			all = append(all, r.late...)
		}
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2])/1e6, "p50-lateness-ms")
		b.ReportMetric(float64(all[len(all)*99/100])/1e6, "p99-lateness-ms")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(all)), "cpu-ns/due")
	}

	b.Run("Schedule", func(b *testing.B) {
		var runs []result
		var cpu time.Duration
		for range b.N {
			clock := newStartClock(time.Now().Add(lead))
			s, err := New(Config{Clock: clock, Seed: 1, InitialSpread: window, Budget: Unlimited})
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				t := state.Target{Account: accountID(i % 1000), Kind: "server", Resource: resourceID(i)}
				if err := s.Set(t, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			clock.frozen.Store(false)
			late := make([]time.Duration, 0, n)
			ctx, cancel := context.WithCancel(context.Background())
			c0 := cpuTime()
			_ = s.Run(ctx, func(_ context.Context, ds []Dispatch) error {
				now := time.Now()
				for _, d := range ds {
					late = append(late, now.Sub(d.DueAt))
					s.Report(d, Outcome{})
				}
				if len(late) == n {
					cancel()
				}
				return nil
			})
			cpu += cpuTime() - c0
			runs = append(runs, result{late})
		}
		report(b, runs, cpu)
	})

	b.Run("AfterFunc", func(b *testing.B) {
		var runs []result
		var cpu time.Duration
		for range b.N {
			rng := newTestRand(1)
			start := time.Now().Add(lead)
			late := make([]time.Duration, n)
			done := make(chan struct{})
			var fired atomic.Int64
			c0 := cpuTime()
			for i := range n {
				due := start.Add(time.Duration(rng.Int64N(int64(window))))
				time.AfterFunc(time.Until(due), func() {
					late[i] = time.Since(due)
					if fired.Add(1) == n {
						close(done)
					}
				})
			}
			<-done
			cpu += cpuTime() - c0
			runs = append(runs, result{late})
		}
		report(b, runs, cpu)
	})

	b.Run("BareHeap", func(b *testing.B) {
		var runs []result
		var cpu time.Duration
		for range b.N {
			rng := newTestRand(1)
			start := time.Now().Add(lead)
			h := make(bareHeap, 0, n)
			for i := range n {
				heap.Push(&h, &bareItem{
					target: state.Target{Account: accountID(i % 1000), Kind: "server", Resource: resourceID(i)},
					every:  int64(time.Hour),
					due:    start.UnixNano() + rng.Int64N(int64(window)),
				})
			}
			late := make([]time.Duration, 0, n)
			c0 := cpuTime()
			timer := time.NewTimer(time.Until(time.Unix(0, h[0].due)))
			for len(late) < n {
				<-timer.C
				now := time.Now()
				t := now.UnixNano()
				for len(h) > 0 && h[0].due <= t {
					it := heap.Pop(&h).(*bareItem)
					late = append(late, time.Duration(t-it.due))
					it.due = t + it.every
					heap.Push(&h, it)
				}
				timer.Reset(time.Until(time.Unix(0, h[0].due)))
			}
			timer.Stop()
			cpu += cpuTime() - c0
			runs = append(runs, result{late})
		}
		report(b, runs, cpu)
	})
}

// startClock is the real clock, except that both readings are pinned to
// start while frozen is set: targets registered during setup are spread from
// the pinned start time.
type startClock struct {
	start  time.Time // carries a monotonic reading
	frozen atomic.Bool
}

func newStartClock(start time.Time) *startClock {
	c := &startClock{start: start}
	c.frozen.Store(true)
	return c
}

func (c *startClock) Now() time.Time {
	if c.frozen.Load() {
		return c.start
	}
	return time.Now()
}

func (c *startClock) Monotonic() time.Duration {
	if c.frozen.Load() {
		return RealClock().Monotonic() - time.Since(c.start) // the monotonic reading at start
	}
	return RealClock().Monotonic()
}

func (c *startClock) NewTimer(d time.Duration) Timer { return RealClock().NewTimer(d) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
