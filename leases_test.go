package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// fakeShards records what a lease keeper tells its schedule.
type fakeShards struct {
	mu       sync.Mutex
	owned    map[int]int64
	handoffs map[int]string // received
	lost     int
}

func newFakeShards() *fakeShards {
	return &fakeShards{owned: map[int]int64{}, handoffs: map[int]string{}}
}

func (f *fakeShards) acquire(shard int, gen int64, handoff string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owned[shard] = gen
	if handoff != "" {
		f.handoffs[shard] = handoff
	}
}

func (f *fakeShards) lose(shard int, release bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.owned, shard)
	f.lost++
	if release {
		return fmt.Sprintf("handoff of %d", shard)
	}
	return ""
}

func (f *fakeShards) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.owned)
}

// leaseBackends are the stores the keeper tests run on: a SQLite file, and
// a MariaDB database of their own (skipped without one).
var leaseBackends = []struct {
	name string
	cfg  func(t *testing.T) persist.Config
}{
	{"SQLite", sqliteConfig},
	{"MariaDB", func(t *testing.T) persist.Config {
		return persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}, Logger: discardLogger()}
	}},
}

// TestLeaseKeepers: publishers sharing one lease table split the shards
// fairly, take a silent one's shards over once its leases expire, hand
// shards over with their handoff when they let them go, and never hold a
// shard at the same time: a keeper that could not renew stops owning its
// shards (fencing) before another can claim them.
func TestLeaseKeepers(t *testing.T) {
	t.Parallel()
	for _, b := range leaseBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store, err := persist.Open(ctx, b.cfg(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = store.Close() })

			var mu sync.Mutex
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
			advance := func(d time.Duration) { mu.Lock(); at = at.Add(d); mu.Unlock() }
			cfg := ScaleConfig{Mode: ScaleShared, Shards: 8, LeasePeriod: 3 * time.Second}
			type pub struct {
				k *leaseKeeper
				s *fakeShards
			}
			var pubs []pub
			join := func(name string) pub {
				s := newFakeShards()
				p := pub{newLeaseKeeper(store, name, cfg, now, s, discardLogger()), s}
				pubs = append(pubs, p)
				return p
			}
			// No shard is owned by two keepers, as the keepers see it.
			exclusive := func() {
				t.Helper()
				for sh := range cfg.Shards {
					n := 0
					for _, p := range pubs {
						if _, ok := p.k.owns(sh); ok {
							n++
						}
					}
					require.LessOrEqual(t, n, 1, "shard %d owned twice", sh)
				}
			}
			round := func(ps ...pub) {
				t.Helper()
				for _, p := range ps {
					require.NoError(t, p.k.round(ctx))
					exclusive()
				}
			}

			a := join("a")
			round(a)
			require.Equal(t, 8, a.s.count(), "alone, it owns every shard")
			_, relay := a.k.holds(relayLease)
			require.True(t, relay, "and the relay")

			b2 := join("b")
			round(b2, a, b2)
			require.Equal(t, 4, a.s.count())
			require.Equal(t, 4, b2.s.count(), "two share fairly")
			require.Len(t, b2.s.handoffs, 4, "what a released, b received with its handoff")

			c := join("c")
			round(c, a, b2, c)
			require.Equal(t, 8, a.s.count()+b2.s.count()+c.s.count())
			require.LessOrEqual(t, max(a.s.count(), b2.s.count(), c.s.count()), 3, "ceil(8/3)")
			require.Equal(t, 1, countRelays(a.k, b2.k, c.k), "one relay")

			// c goes silent (SIGKILL): its leases expire, and a and b take
			// its shards; c's own view says it no longer owns them either.
			advance(cfg.LeasePeriod + time.Second)
			for _, p := range []pub{a, b2} { // their renewal restarts their deadline
				require.NoError(t, p.k.round(ctx))
			}
			round(a, b2, a)
			require.Equal(t, 8, a.s.count()+b2.s.count(), "c's shards taken over")
			for sh := range cfg.Shards {
				_, ok := c.k.owns(sh)
				require.False(t, ok, "c, paused past its lease, is fenced")
			}
			// c wakes up (SIGCONT): one round and it learns it lost them.
			round(c)
			require.Zero(t, c.s.count())
			round(a, b2, c, a, b2)
			require.Equal(t, 8, a.s.count()+b2.s.count()+c.s.count())

			// b shuts down: it hands its shards over.
			b2.k.releaseAll()
			pubs = []pub{a, c}
			round(a, c, a)
			require.Equal(t, 8, a.s.count()+c.s.count())
			require.Equal(t, 4, a.s.count())
			require.Equal(t, 1, countRelays(a.k, c.k))
		})
	}
}

func countRelays(ks ...*leaseKeeper) int {
	n := 0
	for _, k := range ks {
		if _, ok := k.holds(relayLease); ok {
			n++
		}
	}
	return n
}

func TestScaleConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cfg   ScaleConfig
		field string
	}{
		{"Mode", ScaleConfig{Mode: "both"}, "Scale.Mode"},
		{"ShortLease", ScaleConfig{LeasePeriod: time.Millisecond}, "Scale.LeasePeriod"},
		{"LongLease", ScaleConfig{LeasePeriod: time.Hour}, "Scale.LeasePeriod"},
		{"Shards", ScaleConfig{Shards: MaxShards + 1}, "Scale.Shards"},
		{"NegativeShards", ScaleConfig{Shards: -1}, "Scale.Shards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{Scale: tc.cfg}.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.field)
		})
	}
	require.NoError(t, Config{}.Validate(), "the zero value is valid")
}

// capturePub records what a part publishes.
type capturePub struct {
	mu      sync.Mutex
	actions []Action
}

func (p *capturePub) Publish(_ context.Context, as ...Action) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.actions = append(p.actions, as...)
	return nil
}

func (p *capturePub) take() []Action {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.actions
	p.actions = nil
	return out
}

// TestSchedulerFencing: a scheduler that shares the schedule follows only
// the accounts of its shards; its dispatches carry its instance and the
// shard's lease generation; once its lease has run out without a renewal
// (the process was paused) it sends nothing for the shard, counts what it
// fenced and drops the shard; a report of an older generation is rejected
// and counted.
func TestSchedulerFencing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openSQLiteStore(t)
	var mu sync.Mutex
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	advance := func(d time.Duration) { mu.Lock(); at = at.Add(d); mu.Unlock() }
	clk := poller.NewFakeClock(at)

	cfg := ScaleConfig{Mode: ScaleShared, Shards: 4, LeasePeriod: 3 * time.Second}
	newSched := func(self string) (*scheduler, *leaseKeeper, *capturePub) {
		pub := &capturePub{}
		s, err := newScheduler(poller.Config{Clock: clk}, pub, clk.Now, discardLogger())
		require.NoError(t, err)
		require.NoError(t, s.register("thing", time.Minute))
		k := newLeaseKeeper(store, self, cfg, now, s, discardLogger())
		s.share(k, store, self, cfg, 5*time.Minute)
		return s, k, pub
	}
	a, ka, pubA := newSched("a")
	b, kb, _ := newSched("b")
	const n = 40
	for i := range n {
		acct := accounts.Account{ID: fmt.Sprintf("acct-%02d", i), Customer: "c"}
		require.NoError(t, a.follow(acct))
		require.NoError(t, b.follow(acct))
	}
	require.Zero(t, a.sched.Stats().Targets, "no shard owned yet: nothing scheduled")
	require.NoError(t, ka.round(ctx))
	require.NoError(t, kb.round(ctx))
	require.NoError(t, ka.round(ctx)) // a lets half go
	require.NoError(t, kb.round(ctx)) // b takes it
	require.Equal(t, n, a.sched.Stats().Targets+b.sched.Stats().Targets, "each account on one schedule")
	require.NotZero(t, b.sched.Stats().Targets)

	// a dispatches what is due, carrying its generation.
	clk.Advance(time.Minute)
	due := a.sched.Due(clk.Now(), 0)
	require.NotEmpty(t, due)
	require.NoError(t, a.dispatch(ctx, due))
	sent := pubA.take()
	require.Len(t, sent, len(due))
	var wd wireDispatch
	require.NoError(t, sent[0].Decode(&wd))
	require.Equal(t, "a", wd.Owner)
	gen, ok := ka.owns(shardOf(wd.Target.Account, cfg.Shards))
	require.True(t, ok)
	require.Equal(t, gen, wd.Gen)
	require.True(t, a.apply(wd, poller.Outcome{}), "its own current report applies")
	for _, act := range sent[1:] {
		var d wireDispatch
		require.NoError(t, act.Decode(&d))
		require.True(t, a.apply(d, poller.Outcome{}))
	}

	// A report of an older generation is rejected, and counted.
	old := wd
	old.Gen--
	require.False(t, a.apply(old, poller.Outcome{Throttled: true, RetryAfter: time.Hour}))
	require.Equal(t, int64(1), a.rejected.Load())
	// What it says of the account still counts: the cloud asked for an
	// hour, so the account's next dispatch waits for it.
	clk.Advance(2 * time.Minute)
	for _, d := range a.sched.Due(clk.Now(), 0) {
		require.NotEqual(t, old.Target.Account, d.Target.Account, "the throttled account is paused")
		a.sched.Report(d, poller.Outcome{})
	}

	// a is paused past its lease: its next dispatches are fenced.
	advance(cfg.LeasePeriod)
	clk.Advance(2 * time.Minute)
	due = a.sched.Due(clk.Now(), 0)
	require.NotEmpty(t, due)
	require.NoError(t, a.dispatch(ctx, due))
	require.Empty(t, pubA.take(), "nothing sent after the lease ran out")
	require.Equal(t, int64(len(due)), a.fenced.Load(), "every fenced dispatch counted")
	require.Zero(t, a.sched.Stats().Targets, "its shards dropped")

	// b takes them over once they expire; a, back, learns it lost them.
	advance(time.Second)
	require.NoError(t, kb.round(ctx))
	require.Equal(t, n, b.sched.Stats().Targets)
	require.NoError(t, ka.round(ctx)) // a is back: live again
	require.NoError(t, kb.round(ctx)) // b lets half go
	require.NoError(t, ka.round(ctx)) // a takes it
	require.Equal(t, n, a.sched.Stats().Targets+b.sched.Stats().Targets, "rebalanced, each account once")
	require.NotZero(t, a.sched.Stats().Targets)
}

// TestScaleModes: the embedded transports keep one in-process schedule
// with no lease (no extra statement); ScaleShared shares it on any of
// them; a host's store without leases cannot share, and the error says so.
func TestScaleModes(t *testing.T) {
	t.Parallel()
	mem := newTestWorker(t, Config{Role: RolePublisher, Store: sqliteConfig(t)})
	require.Nil(t, mem.leases, "memory transport: a single schedule")
	sq := newTestWorker(t, Config{Role: RolePublisher, MQ: MQConfig{URL: "sqlite"}, Store: sqliteConfig(t)})
	require.Nil(t, sq.leases, "the SQLite queue: a single schedule by default")
	shared := newTestWorker(t, Config{Role: RolePublisher, MQ: MQConfig{URL: "sqlite"}, Store: sqliteConfig(t), Scale: ScaleConfig{Mode: ScaleShared}})
	require.NotNil(t, shared.leases, "ScaleShared: leases")
	sub := newTestWorker(t, Config{Role: RoleSubscriber, MQ: MQConfig{URL: "sqlite"}, Store: sqliteConfig(t), Scale: ScaleConfig{Mode: ScaleShared}})
	require.Nil(t, sub.leases, "a subscriber has no schedule")

	store := openSQLiteStore(t)
	_, err := New(context.Background(), Config{Role: RolePublisher, Storage: noLeases{store}, Scale: ScaleConfig{Mode: ScaleShared}, Logger: discardLogger()})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "Scale.Mode")
}

// noLeases is a host's store that keeps no leases.
type noLeases struct{ Store }

// TestSinglePublisherWarns: a publisher that owns the whole schedule (the
// SQLite queue's default) warns nothing while alone; with a second one
// beside it, each warns that the other runs too (issue 14: before, nothing
// did).
func TestSinglePublisherWarns(t *testing.T) {
	t.Parallel()
	store := sqliteConfig(t)
	var recs []*testenv.LogRecorder
	for i := range 2 {
		rec := testenv.NewLogRecorder(testenv.LogRecorderConfig{})
		recs = append(recs, rec)
		w := newTestWorker(t, Config{Role: RolePublisher, MQ: MQConfig{URL: "sqlite"}, Store: store,
			Heartbeat: HeartbeatConfig{Interval: 100 * time.Millisecond}, Logger: rec.Logger()})
		runWorkerUntilCleanup(t, w)
		if i == 0 {
			time.Sleep(time.Second) // several looks, alone
			require.Empty(t, rec.FindMessage("another publisher process is running"), "alone: no warning")
		}
	}
	require.Eventually(t, func() bool {
		return len(recs[0].FindMessage("another publisher process is running")) > 0 &&
			len(recs[1].FindMessage("another publisher process is running")) > 0
	}, 10*time.Second, 50*time.Millisecond)
}

// refusingReleases is a lease store whose releases fail, as when the
// provisioning database is down at shutdown.
type refusingReleases struct {
	leaseStore
	calls int
}

func (r *refusingReleases) ReleaseLease(context.Context, string, string, string) (bool, error) {
	r.calls++
	return false, fmt.Errorf("%w: connection refused", persist.ErrUnavailable)
}

// TestReleaseFailuresAreOneLine: a publisher that cannot release its shards
// at shutdown (the database is down) lets every one go here and says so in
// one warning for all of them, not one per shard. Default scale settings.
func TestReleaseFailuresAreOneLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := ScaleConfig{Mode: ScaleShared}
	cfg.setDefaults()
	s := newFakeShards()
	rec := testenv.NewLogRecorder(testenv.LogRecorderConfig{})
	refusing := &refusingReleases{leaseStore: openSQLiteStore(t)}
	k := newLeaseKeeper(refusing, "a", cfg, time.Now, s, rec.Logger())
	require.NoError(t, k.round(ctx))
	require.Equal(t, DefaultShards, s.count(), "alone, it owns every shard")

	k.releaseAll()
	require.Zero(t, s.count(), "every shard let go here")
	require.Equal(t, DefaultShards, s.lost)
	require.Equal(t, DefaultShards+1, refusing.calls, "each shard and the relay tried once")
	warns := rec.FindMessage("schedule shards could not be released")
	require.Len(t, warns, 1, "one line for all of them: %v", rec.Records())
	n, _ := warns[0].Attr("shards")
	first, _ := warns[0].Attr("first")
	last, _ := warns[0].Attr("last")
	require.Equal(t, []int64{DefaultShards, 0, DefaultShards - 1}, []int64{n.Int64(), first.Int64(), last.Int64()})
	require.Equal(t, 1, rec.Counts().Warn, "and nothing else warned: %v", rec.Records())
}
