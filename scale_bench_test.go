package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// statementCounter counts the statements a gorm.DB runs.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) install(tb testing.TB, db *gorm.DB) {
	count := func(*gorm.DB) { c.n.Add(1) }
	cb := db.Callback()
	require.NoError(tb, cb.Create().After("*").Register("bench:count_create", count))
	require.NoError(tb, cb.Query().After("*").Register("bench:count_query", count))
	require.NoError(tb, cb.Update().After("*").Register("bench:count_update", count))
	require.NoError(tb, cb.Delete().After("*").Register("bench:count_delete", count))
	require.NoError(tb, cb.Row().After("*").Register("bench:count_row", count))
	require.NoError(tb, cb.Raw().After("*").Register("bench:count_raw", count))
}

// reportSink is the publisher side of the benchmark's subscribers: every
// dispatched poll is reported at once, as a poll.report that reaches a
// random publisher (as competing consumers of the schedule queue do).
type reportSink struct {
	mu         sync.Mutex
	pending    []Action
	dispatched atomic.Int64
}

func (r *reportSink) Publish(_ context.Context, as ...Action) error {
	r.dispatched.Add(int64(len(as)))
	r.mu.Lock()
	r.pending = append(r.pending, as...)
	r.mu.Unlock()
	return nil
}

func (r *reportSink) take() []Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.pending
	r.pending = nil
	return out
}

// BenchmarkSharedDispatch measures the shared schedule: due polls
// dispatched per second by 1 and by 3 publishers (schedulers with their
// lease keepers, in this process) on 100,000 targets due every second,
// each poll reported back through a random publisher (forwarded through the
// database to its owner when it is not), and the database statements per
// dispatched poll (leases, forwarded reports). It needs MariaDB
// (WORKER_TEST_MYSQL_DSN); run it with
//
//	go test -run '^$' -bench BenchmarkSharedDispatch -benchtime 400000x .
//
// The three publishers share this process's CPU: the ratio shows the cost
// of sharing, not the gain of more machines.
func BenchmarkSharedDispatch(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("publishers=%d", n), func(b *testing.B) { benchSharedDispatch(b, n, 100_000) })
	}
}

func benchSharedDispatch(b *testing.B, pubs, targets int) {
	ctx := context.Background()
	store, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(b)}, Logger: discardLogger()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = store.Close() })
	var stmts statementCounter
	stmts.install(b, store.DB())

	cfg := ScaleConfig{Mode: ScaleShared, Shards: DefaultShards, LeasePeriod: DefaultLeasePeriod}
	sink := &reportSink{}
	type member struct {
		s *scheduler
		k *leaseKeeper
	}
	var ms []member
	for i := range pubs {
		self := fmt.Sprintf("bench-%d", i)
		s, err := newScheduler(poller.Config{Budget: poller.Limit{PerSecond: 1e6, Burst: 1 << 20}, BatchSize: 1000}, sink, time.Now, discardLogger())
		require.NoError(b, err)
		require.NoError(b, s.register("thing", time.Second))
		k := newLeaseKeeper(store, self, cfg, time.Now, s, discardLogger())
		s.share(k, store, self, cfg, poller.DefaultInFlightTimeout)
		for a := range targets {
			require.NoError(b, s.follow(accounts.Account{ID: fmt.Sprintf("a%06d", a), Customer: "c"}))
		}
		ms = append(ms, member{s, k})
	}
	// Balance the shards before measuring.
	for range 3 {
		for _, m := range ms {
			require.NoError(b, m.k.round(ctx))
		}
	}
	total := 0
	for _, m := range ms {
		total += m.s.sched.Stats().Targets
	}
	require.Equal(b, targets, total)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(3)
		go func() { defer wg.Done(); _ = m.s.run(runCtx) }()
		go func() { defer wg.Done(); _ = m.k.run(runCtx) }()
		go func() { // the forwarded-reports duty
			defer wg.Done()
			t := time.NewTicker(forwardEvery)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					_ = m.s.applyForwarded(runCtx)
				}
			}
		}()
	}
	// The schedule queue's consumers: 64 concurrent handlers of poll.report
	// (the subscriber's default concurrency), each report reaching a
	// random publisher.
	reports := make(chan Action, 4096)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := range reports {
				_ = ms[rand.IntN(len(ms))].s.handleReport(runCtx, rep)
			}
		}()
	}
	wg.Add(1)
	go func() { // the subscribers: every dispatch reported at once
		defer wg.Done()
		defer close(reports)
		for runCtx.Err() == nil {
			as := sink.take()
			if len(as) == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			for _, a := range as {
				var wd wireDispatch
				if a.Decode(&wd) != nil {
					continue
				}
				rep, _ := NewAction(TypePollReport, pollReport{Dispatch: wd})
				select {
				case reports <- rep:
				case <-runCtx.Done():
					return
				}
			}
		}
	}()

	start := time.Now()
	d0, s0 := sink.dispatched.Load(), stmts.n.Load()
	b.ResetTimer()
	for sink.dispatched.Load()-d0 < int64(b.N) {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	took := time.Since(start)
	d, s := sink.dispatched.Load()-d0, stmts.n.Load()-s0
	var fenced, rejected int64 // before the shutdown, which fences and rejects what is left
	for _, m := range ms {
		fenced += m.s.fenced.Load()
		rejected += m.s.rejected.Load()
	}
	stop()
	wg.Wait()
	b.ReportMetric(float64(d)/took.Seconds(), "polls/s")
	b.ReportMetric(float64(s)/float64(d), "stmts/poll")
	b.Logf("%d publishers, %d targets: %d dispatched in %v (%.0f/s), %d statements (%.4f per poll), %d fenced, %d rejected",
		pubs, targets, d, took.Round(time.Millisecond), float64(d)/took.Seconds(), s, float64(s)/float64(d), fenced, rejected)
}
