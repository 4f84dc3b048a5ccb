package poller

import (
	"container/heap"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stratusworks/worker/state"
)

// The million-target benchmarks compare the Schedule with two baselines in
// the same run, on the same workload: 1,000,000 targets (1000 accounts × 2
// kinds × 500 resources) whose first due times are spread over 10 s, each due
// once in those 10 s. They report
//
//	B/target  heap bytes per target after GC, index maps and resource ids included
//	ns/due    CPU time per due target while a fake clock is advanced through
//	          the 10 s in 10 ms steps and every due target is popped and
//	          rescheduled (for the Schedule: Due + Report, budget included)
//
// Baselines: BareHeap is container/heap over pointers to items holding the
// target, with pop + push per due target (it would sleep on one timer);
// AfterFunc arms one runtime timer per target (memory only here; its firing
// cost and lateness are in BenchmarkLatenessRealTime).
const (
	benchAccounts  = 1000
	benchResources = 500 // per account and kind
	benchTargets   = benchAccounts * 2 * benchResources
	benchSpread    = 10 * time.Second
	benchStep      = 10 * time.Millisecond
)

var benchKinds = [2]struct {
	name  string
	every time.Duration
}{{"server", 30 * time.Second}, {"firewall", 15 * time.Second}}

// forEachBenchTarget calls f for every target of the workload, making its
// strings as a caller would (fresh resource ids, shared account names).
func forEachBenchTarget(f func(i int, t state.Target, every time.Duration)) {
	i := 0
	for a := range benchAccounts {
		acct, cust := accountID(a), fmt.Sprintf("cust-%04d", a%300)
		for _, k := range benchKinds {
			for r := range benchResources {
				f(i, state.Target{Account: acct, Customer: cust, Kind: k.name, Resource: fmt.Sprintf("i-0abc%05x%08x", a, r)}, k.every)
				i++
			}
		}
	}
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func BenchmarkScheduleMillion(b *testing.B) {
	b.Run("Schedule", func(b *testing.B) {
		var bytes, nsDue float64
		for range b.N {
			before := heapInUse()
			clock := NewFakeClock(t0)
			s, err := New(Config{
				Clock: clock, Seed: 1, InitialSpread: benchSpread,
				Budget: Limit{PerSecond: 500, Burst: 500}, // spent, never short
			})
			if err != nil {
				b.Fatal(err)
			}
			forEachBenchTarget(func(_ int, t state.Target, every time.Duration) {
				if err := s.Set(t, every); err != nil {
					b.Fatal(err)
				}
			})
			bytes += float64(heapInUse()-before) / benchTargets

			n := 0
			start := time.Now()
			for now := t0; !now.After(t0.Add(benchSpread)); now = now.Add(benchStep) {
				clock.Set(now)
				for _, d := range s.Due(now, 0) {
					s.Report(d, Outcome{})
					n++
				}
			}
			elapsed := time.Since(start)
			if n != benchTargets {
				b.Fatalf("dispatched %d targets, want %d", n, benchTargets)
			}
			nsDue += float64(elapsed.Nanoseconds()) / float64(n)
			runtime.KeepAlive(s)
		}
		b.ReportMetric(bytes/float64(b.N), "B/target")
		b.ReportMetric(nsDue/float64(b.N), "ns/due")
	})

	b.Run("BareHeap", func(b *testing.B) {
		var bytes, nsDue float64
		for range b.N {
			before := heapInUse()
			rng := newTestRand(1)
			h := make(bareHeap, 0, benchTargets)
			forEachBenchTarget(func(_ int, t state.Target, every time.Duration) {
				heap.Push(&h, &bareItem{target: t, every: int64(every), due: t0.UnixNano() + rng.Int64N(int64(benchSpread))})
			})
			bytes += float64(heapInUse()-before) / benchTargets

			n := 0
			start := time.Now()
			for now := t0; !now.After(t0.Add(benchSpread)); now = now.Add(benchStep) {
				t := now.UnixNano()
				for len(h) > 0 && h[0].due <= t {
					it := heap.Pop(&h).(*bareItem)
					it.due = t + it.every
					heap.Push(&h, it)
					n++
				}
			}
			elapsed := time.Since(start)
			if n != benchTargets {
				b.Fatalf("dispatched %d targets, want %d", n, benchTargets)
			}
			nsDue += float64(elapsed.Nanoseconds()) / float64(n)
			runtime.KeepAlive(h)
		}
		b.ReportMetric(bytes/float64(b.N), "B/target")
		b.ReportMetric(nsDue/float64(b.N), "ns/due")
	})

	b.Run("AfterFunc", func(b *testing.B) {
		var bytes float64
		for range b.N {
			before := heapInUse()
			timers := make([]*time.Timer, 0, benchTargets)
			rng := newTestRand(1)
			forEachBenchTarget(func(_ int, t state.Target, every time.Duration) {
				d := time.Hour + time.Duration(rng.Int64N(int64(benchSpread))) // never fires here
				timers = append(timers, time.AfterFunc(d, func() { _ = t; _ = every }))
			})
			bytes += float64(heapInUse()-before) / benchTargets
			for _, t := range timers {
				t.Stop()
			}
		}
		b.ReportMetric(bytes/float64(b.N), "B/target")
	})
}

// bareItem is the item of container/heap's own PriorityQueue example, holding
// the target.
type bareItem struct {
	target state.Target
	every  int64 // ns
	due    int64 // unix ns
	index  int
}

type bareHeap []*bareItem

func (h bareHeap) Len() int           { return len(h) }
func (h bareHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h bareHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *bareHeap) Push(x any) {
	it := x.(*bareItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *bareHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}
