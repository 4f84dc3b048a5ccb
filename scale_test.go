package worker

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// pollLog records when each account was polled, across every subscriber.
type pollLog struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (p *pollLog) poller(kind string) Poller {
	return PollerFunc(kind, func(_ context.Context, t state.Target, _ string) (state.Snapshot, string, error) {
		p.mu.Lock()
		p.at[t.Account] = append(p.at[t.Account], time.Now())
		p.mu.Unlock()
		return state.Snapshot{}, "", nil
	})
}

// between returns each account's polls in [from, to).
func (p *pollLog) between(from, to time.Time) map[string][]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]time.Time{}
	for a, ts := range p.at {
		for _, t := range ts {
			if !t.Before(from) && t.Before(to) {
				out[a] = append(out[a], t)
			}
		}
	}
	return out
}

// all returns every account's polls, in order.
func (p *pollLog) all() map[string][]time.Time {
	return p.between(time.Time{}, time.Now().Add(time.Hour))
}

// scaleBackends: a SQLite file with the embedded durable queue (its
// publishers share the schedule because Scale.Mode says so), and MariaDB
// with RabbitMQ (shared by default).
var scaleBackends = []struct {
	name string
	cfg  func(t *testing.T) Config
}{
	{"SQLite", func(t *testing.T) Config {
		return Config{MQ: MQConfig{URL: "sqlite"}, Scale: ScaleConfig{Mode: ScaleShared},
			Store: persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}, Logger: discardLogger()}}
	}},
	{"MariaDB", func(t *testing.T) Config {
		url := testenv.AMQPURL(t)
		dsn := testenv.MySQLDSN(t)
		return Config{MQ: MQConfig{URL: url}, Topology: uniqueTopology(t, url),
			Store: persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, Logger: discardLogger()}}
	}},
}

// runStoppable runs w until stop is called, which waits for Run to return
// nil (or the test's end).
func runStoppable(t *testing.T, w *Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Running():
	case err := <-done:
		cancel()
		t.Fatalf("worker did not start: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestSharedSchedule: three publishers and two subscribers share one
// database and one queue. Every target is owned by exactly one publisher
// and polled once per interval, with no duplicate; when a publisher shuts
// down (a rolling restart) the others take its shards over with their due
// times and no target misses an interval; the outbox is relayed by one
// publisher only.
func TestSharedSchedule(t *testing.T) {
	t.Parallel()
	for _, b := range scaleBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const (
				kind     = "thing"
				every    = 2 * time.Second
				accounts = 60
				lease    = 3 * time.Second // short, so the test is short
			)
			base := b.cfg(t)
			base.Scale.LeasePeriod = lease
			base.Scale.Shards = 16
			log := &pollLog{at: map[string][]time.Time{}}
			newW := func(role Role) *Worker {
				cfg := base
				cfg.Role = role
				w := newTestWorker(t, cfg)
				require.NoError(t, w.Register(log.poller(kind), every))
				return w
			}
			subs := []*Worker{newW(RoleSubscriber), newW(RoleSubscriber)}
			pubs := []*Worker{newW(RolePublisher), newW(RolePublisher), newW(RolePublisher)}
			for i := range accounts {
				require.NoError(t, pubs[0].Watch(fmt.Sprintf("acct-%03d", i), "cust"))
			}
			for _, s := range subs {
				runStoppable(t, s)
			}
			var stops []func()
			for _, p := range pubs {
				stops = append(stops, runStoppable(t, p))
			}

			// Every target ends up owned by exactly one publisher.
			owners := func(ps []*Worker) map[string]int {
				out := map[string]int{}
				for i := range accounts {
					a := fmt.Sprintf("acct-%03d", i)
					for _, p := range ps {
						if _, ok := p.sched.sched.Lookup(state.Target{Account: a, Kind: kind}); ok {
							out[a]++
						}
					}
				}
				return out
			}
			require.Eventually(t, func() bool {
				for _, p := range pubs {
					if p.sched.sched.Stats().Targets == 0 {
						return false // not balanced yet
					}
				}
				o := owners(pubs)
				for _, n := range o {
					if n != 1 {
						return false
					}
				}
				return len(o) == accounts
			}, 4*lease, 50*time.Millisecond, "each target on one publisher's schedule, each publisher with some")

			// Steady state: over three intervals each target is polled
			// about three times, never twice within half an interval.
			settle := time.Now().Add(every)
			time.Sleep(every + 3*every)
			window := log.between(settle, settle.Add(3*every))
			for i := range accounts {
				a := fmt.Sprintf("acct-%03d", i)
				require.GreaterOrEqual(t, len(window[a]), 2, "%s polled at its interval", a)
				require.LessOrEqual(t, len(window[a]), 4, "%s not polled more often", a)
			}
			require.Zero(t, duplicates(log.all(), every/2), "no duplicate polls")

			// A rolling restart: one publisher stops; the others take its
			// shards over with their due times.
			stopped := time.Now()
			stops[2]()
			require.Eventually(t, func() bool {
				o := owners(pubs[:2])
				for _, n := range o {
					if n != 1 {
						return false
					}
				}
				return len(o) == accounts
			}, 2*lease, 50*time.Millisecond, "the stopped publisher's targets taken over")
			time.Sleep(3 * every)
			all := log.all()
			require.Zero(t, duplicates(all, every/2), "no duplicate polls across the handover")
			for a, ts := range all {
				gap := maxGap(ts, stopped.Add(-every), time.Now())
				// One interval, its jitter, and the poll report's trip.
				require.Less(t, gap, every+every/5+time.Second, "%s: no interval lost in the handover", a)
			}

			var relays int
			for _, p := range pubs[:2] {
				if _, ok := p.leases.holds(relayLease); ok {
					relays++
				}
			}
			require.Equal(t, 1, relays, "one publisher relays the outbox")
			var rejected, fenced int64
			for _, p := range pubs {
				rejected += p.sched.rejected.Load()
				fenced += p.sched.fenced.Load()
			}
			t.Logf("reports rejected as an earlier owner's: %d; dispatches fenced: %d", rejected, fenced)
		})
	}
}

// duplicates counts polls of an account closer than min to the one before.
func duplicates(at map[string][]time.Time, min time.Duration) int {
	n := 0
	for _, ts := range at {
		ts = append([]time.Time(nil), ts...)
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		for i := 1; i < len(ts); i++ {
			if ts[i].Sub(ts[i-1]) < min {
				n++
			}
		}
	}
	return n
}

// maxGap is the longest time without a poll within [from, to].
func maxGap(ts []time.Time, from, to time.Time) time.Duration {
	ts = append([]time.Time(nil), ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	last := from
	var gap time.Duration
	for _, t := range ts {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		gap = max(gap, t.Sub(last))
		last = t
	}
	return max(gap, to.Sub(last))
}
