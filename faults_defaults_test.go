//go:build faults

// Fault tests of issue 10, "Reliable on defaults": the worker runs with the
// zero-value Config but for where its services are (MQ.URL, Store DSNs,
// Topology prefix, Logger), and real outages are injected: MariaDB killed,
// frozen and made read-only, RabbitMQ stopped. Each prints one summary line.
package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
	"github.com/stretchr/testify/require"
)

// defaultsConfig is the zero-value Config pointed at the test's services.
func (e faultEnv) defaultsConfig(log *slog.Logger) Config {
	return Config{
		MQ:       MQConfig{URL: e.url},
		Store:    persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: e.dsn}, Logger: log},
		Topology: e.top,
		Logger:   log,
	}
}

func (e faultEnv) poisonedCount(t *testing.T, w *Worker) int {
	t.Helper()
	var n int
	require.Eventually(t, func() bool {
		ps, err := w.Poisoned(context.Background(), PoisonQuery{Limit: 10000, IncludeReplayed: true})
		n = len(ps)
		return err == nil
	}, time.Minute, 250*time.Millisecond)
	return n
}

// publishPaced publishes n actions, one every gap, and returns the keys of
// those whose Publish returned nil.
func publishPaced(t *testing.T, w *Worker, n int, gap time.Duration) []string {
	t.Helper()
	var published []string
	for i := range n {
		key := fmt.Sprintf("%s-%06d", t.Name(), i)
		if err := w.Publish(context.Background(), Action{Type: effectType, Key: key}); err == nil {
			published = append(published, key)
		}
		time.Sleep(gap)
	}
	return published
}

// TestFaultsMariaDBKilledOnDefaults: MariaDB is killed with SIGKILL three
// times during a stream of host actions and restarted after 3, 7 and 10 s.
// With the default retry policy nothing is poisoned and nothing is lost.
func TestFaultsMariaDBKilledOnDefaults(t *testing.T) {
	e := newFaultEnv(t)
	maria := testenv.SharedMariaDB(t)
	logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelInfo})
	w := newTestWorker(t, e.defaultsConfig(logs.Logger()))
	require.NoError(t, w.Handle(effectType, effect(e.db, 0)))
	runWorker(t, w)

	var outages sync.WaitGroup
	outages.Add(1)
	go func() {
		defer outages.Done()
		for _, down := range []time.Duration{3 * time.Second, 7 * time.Second, 10 * time.Second} {
			time.Sleep(4 * time.Second)
			maria.Kill(t)
			time.Sleep(down)
			maria.Start(t)
		}
	}()
	published := publishPaced(t, w, 3000, 15*time.Millisecond)
	outages.Wait()
	poisoned := -1
	e.verify(t, published, 5*time.Minute, func() string {
		poisoned = e.poisonedCount(t, w)
		return fmt.Sprintf("poisoned=%d outages=3 (3s, 7s, 10s) %s", poisoned, logs.Counts())
	})
	require.Zero(t, poisoned, "outages shorter than the retry budget poison nothing")
}

// TestFaultsBrokerDownOnDefaults: RabbitMQ is stopped for 60 s while the
// subscriber holds deliveries whose handlers keep failing (their downstream
// is away for the whole time). Nothing is poisoned or lost, and no action
// goes round in a tight loop: deliveries per action are counted.
func TestFaultsBrokerDownOnDefaults(t *testing.T) {
	e := newFaultEnv(t)
	rabbit := testenv.SharedRabbitMQ(t)
	logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelInfo})
	cfg := e.defaultsConfig(logs.Logger())
	var mu sync.Mutex
	calls := map[string]int{}
	var failing atomic.Bool
	failing.Store(true)
	w := newTestWorker(t, cfg)
	inner := effect(e.db, 0)
	require.NoError(t, w.HandleFunc(effectType, func(ctx context.Context, a Action) error {
		mu.Lock()
		calls[a.Key]++
		mu.Unlock()
		if failing.Load() {
			return fmt.Errorf("downstream API unavailable")
		}
		return inner(ctx, a)
	}))
	runWorker(t, w)
	published := publishPaced(t, w, 300, 2*time.Millisecond)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == len(published) },
		time.Minute, 50*time.Millisecond, "every action reached its handler")
	time.Sleep(1500 * time.Millisecond) // some are parked, some retry in place
	rabbit.Stop(t)
	time.Sleep(60 * time.Second)
	rabbit.Start(t)
	time.Sleep(5 * time.Second)
	failing.Store(false)
	poisoned, most, total := -1, 0, 0
	e.verify(t, published, 5*time.Minute, func() string {
		poisoned = e.poisonedCount(t, w)
		mu.Lock()
		defer mu.Unlock()
		for _, n := range calls {
			most = max(most, n)
			total += n
		}
		return fmt.Sprintf("poisoned=%d broker_down=60s deliveries=%d max_per_action=%d %s", poisoned, total, most, logs.Counts())
	})
	require.Zero(t, poisoned)
	// About 12 attempts fit in the ~75 s of failures on the default backoff;
	// a redelivery loop would run to thousands.
	require.LessOrEqual(t, most, 20, "no tight redelivery loop")
}

// saver writes a changing observation of one resource per call, as a poll
// handler would: every save commits a change and its event to the outbox.
type saver struct {
	store *persist.Store
	n     atomic.Int64
}

func (s *saver) save(ctx context.Context) error {
	i := s.n.Add(1)
	_, err := s.store.Save(ctx, state.Target{Account: "acct-1", Customer: "acme", Kind: "server"}, state.Snapshot{
		Observations: []state.Observation{{ID: fmt.Sprintf("srv-%d", i%50), Attributes: json.RawMessage(fmt.Sprintf(`{"cpu":%d}`, i))}},
	})
	return err
}

// eventCounter counts change events by id and by second of arrival.
type eventCounter struct {
	mu      sync.Mutex
	byID    map[string]int
	arrived []time.Time
}

func newEventCounter() *eventCounter { return &eventCounter{byID: map[string]int{}} }

func (c *eventCounter) handle(_ context.Context, a Action) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[a.ID]++
	c.arrived = append(c.arrived, time.Now())
	return nil
}

func (c *eventCounter) rate(from, to time.Time) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, at := range c.arrived {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

func (c *eventCounter) maxDeliveries() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	most := 0
	for _, n := range c.byID {
		most = max(most, n)
	}
	return most, len(c.byID)
}

// produce saves every gap until ctx is done.
func (s *saver) produce(ctx context.Context, gap time.Duration) {
	t := time.NewTicker(gap)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = s.save(wctx)
			cancel()
		}
	}
}

// TestFaultsAnalyticsFrozen: the analytics database (its own MariaDB
// server) is frozen with SIGSTOP for 30 s. Change events keep flowing at
// their normal rate, a warning names the stalled duty, and the history
// arrives once the server is thawed.
func TestFaultsAnalyticsFrozen(t *testing.T) {
	e := newFaultEnv(t)
	analytics := testenv.PrivateMariaDB(t)
	anaDSN := analytics.NewDatabase(t)
	logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelInfo})
	cfg := e.defaultsConfig(logs.Logger())
	cfg.Store.Analytics = persist.DBConfig{Driver: persist.MySQL, DSN: anaDSN}
	w := newTestWorker(t, cfg)
	events := newEventCounter()
	require.NoError(t, w.HandleFunc("server.changed", events.handle))
	runWorker(t, w)
	s := &saver{store: w.db}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go s.produce(ctx, 50*time.Millisecond) // 20 changes a second

	time.Sleep(10 * time.Second)
	before := events.rate(time.Now().Add(-8*time.Second), time.Now())
	frozeAt := time.Now()
	analytics.Freeze(t)
	time.Sleep(30 * time.Second)
	during := events.rate(frozeAt.Add(2*time.Second), time.Now())
	analytics.Thaw(t)
	time.Sleep(5 * time.Second)
	stop()
	// Looked for after the thaw: a run that began stalling late in the
	// freeze is warned about 10 s into it, which may be just after.
	stalled := logs.Find(func(r testenv.LogRecord) bool {
		d, _ := r.Attr("duty")
		return strings.Contains(r.Message, "stalled") && d.String() == "copying history to the analytics database"
	})

	// The history of every save reaches the analytics database after the thaw.
	ana, err := sql.Open("mysql", anaDSN)
	require.NoError(t, err)
	defer ana.Close()
	saves := s.n.Load()
	var copied int64
	require.Eventually(t, func() bool {
		return ana.QueryRow("SELECT COUNT(*) FROM worker_resource_history").Scan(&copied) == nil && copied >= saves-5
	}, 3*time.Minute, time.Second, "history copied after the thaw: %d of about %d", copied, saves)
	t.Logf("%s: frozen=30s events_per_s_before=%.1f events_per_s_during=%.1f stall_warnings=%d history_copied=%d/%d %s",
		t.Name(), before, during, len(stalled), copied, saves, logs.Counts())
	require.Greater(t, before, 10.0)
	require.GreaterOrEqual(t, during, 0.8*before, "events keep flowing while the analytics database is frozen")
	require.NotEmpty(t, stalled, "a warning names the stalled duty")
}

// TestFaultsProvisioningFrozen: the provisioning database is frozen with
// SIGSTOP for 20 s while actions flow. After SIGCONT everything converges
// (every action handled once in effect, nothing poisoned), and a second
// worker whose shutdown starts during the freeze returns within its
// ShutdownTimeout. That worker's ShutdownTimeout is 5 s, shorter than the
// freeze, so that the freeze outlasts it: the bound, not its value, is
// what is tested.
func TestFaultsProvisioningFrozen(t *testing.T) {
	e := newFaultEnv(t)
	maria := testenv.SharedMariaDB(t)
	logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelInfo})
	w := newTestWorker(t, e.defaultsConfig(logs.Logger()))
	require.NoError(t, w.Handle(effectType, effect(e.db, 0)))
	runWorker(t, w)

	other := e.defaultsConfig(discardLogger())
	other.ShutdownTimeout = 5 * time.Second
	w2 := newTestWorker(t, other)
	require.NoError(t, w2.Handle(effectType, effect(e.db, 0)))
	ctx2, cancel2 := context.WithCancel(context.Background())
	ran2 := make(chan error, 1)
	go func() { ran2 <- w2.Run(ctx2) }()
	<-w2.Running()

	var freeze sync.WaitGroup
	freeze.Add(1)
	var shutdownTook time.Duration
	go func() {
		defer freeze.Done()
		time.Sleep(3 * time.Second)
		maria.Freeze(t)
		time.Sleep(3 * time.Second)
		start := time.Now()
		cancel2()
		<-ran2
		shutdownTook = time.Since(start)
		time.Sleep(17*time.Second - shutdownTook)
		maria.Thaw(t)
	}()
	published := publishPaced(t, w, 2000, 10*time.Millisecond)
	freeze.Wait()
	poisoned := -1
	e.verify(t, published, 5*time.Minute, func() string {
		poisoned = e.poisonedCount(t, w)
		return fmt.Sprintf("poisoned=%d frozen=20s shutdown_during_freeze=%v (ShutdownTimeout 5s) %s",
			poisoned, shutdownTook.Round(time.Millisecond), logs.Counts())
	})
	require.Zero(t, poisoned)
	require.Less(t, shutdownTook, 5*time.Second+500*time.Millisecond, "shutdown bounded by ShutdownTimeout")
}

// TestFaultsProvisioningReadOnly: the provisioning database turns read-only
// for 20 s while changes are being relayed. No event is delivered more than
// twice, and the log stays quiet (lines per second printed). The worker
// logs in as a user without SUPER, whom read_only binds.
func TestFaultsProvisioningReadOnly(t *testing.T) {
	e := newFaultEnv(t)
	maria := testenv.SharedMariaDB(t)
	logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelInfo})
	cfg := e.defaultsConfig(logs.Logger())
	cfg.Store.Provisioning.DSN = testenv.RestrictedDSN(t, e.dsn)
	w := newTestWorker(t, cfg)
	events := newEventCounter()
	require.NoError(t, w.HandleFunc("server.changed", events.handle))
	runWorker(t, w)
	s := &saver{store: w.db}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go s.produce(ctx, 20*time.Millisecond)

	time.Sleep(5 * time.Second)
	before := logs.Counts()
	maria.SetReadOnly(t, true)
	time.Sleep(20 * time.Second)
	maria.SetReadOnly(t, false)
	during := logs.Counts().Sub(before)
	time.Sleep(10 * time.Second)
	stop()
	require.Eventually(t, func() bool {
		var pending int
		err := e.db.QueryRow("SELECT COUNT(*) FROM worker_outbox WHERE sent_at IS NULL").Scan(&pending)
		return err == nil && pending == 0
	}, 2*time.Minute, 500*time.Millisecond, "the outbox drains")
	time.Sleep(2 * time.Second)
	most, distinct := events.maxDeliveries()
	t.Logf("%s: read_only=20s events=%d max_deliveries_per_event=%d log_during=%s", t.Name(), distinct, most, during)
	require.LessOrEqual(t, most, 2, "no event delivered more than twice")
	if during.PerSecond() >= 2.0 {
		byMsg := map[string]int{}
		for _, r := range logs.Records() {
			if r.Level >= slog.LevelWarn {
				byMsg[r.Message]++
			}
		}
		t.Logf("warnings by message (whole run): %v", byMsg)
	}
	require.Less(t, during.PerSecond(), 2.0, "the log stays quiet during the outage")
}
