//go:build faults

// Fault tests: they stop and restart RabbitMQ and MariaDB, and kill worker
// processes, so they run alone, in their own serial step of .ci/run:
//
//	go test -tags faults -run '^TestFaults' -p 1 -count=1 -v .
//
// Each prints one summary line: published=N handled=N duplicates_absorbed=N lost=0.
package worker

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

const (
	childEnv       = "WORKER_FAULTS_CHILD"
	childURLEnv    = "WORKER_FAULTS_URL"
	childDSNEnv    = "WORKER_FAULTS_DSN"
	childPrefixEnv = "WORKER_FAULTS_PREFIX"
	childDelayEnv  = "WORKER_FAULTS_DELAY"
	effectType     = "fault.effect"
)

type faultEnv struct {
	url, dsn string
	top      Topology
	db       *sql.DB
}

func newFaultEnv(t *testing.T) faultEnv {
	t.Helper()
	e := faultEnv{url: testenv.AMQPURL(t), dsn: testenv.MySQLDSN(t)}
	e.top = Topology{Prefix: testenv.UniqueName(t)}
	e.top.setDefaults()
	testenv.DeleteQueuesOnCleanup(t, e.url, e.top.Topics()...)
	db, err := sql.Open("mysql", e.dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Exec("CREATE TABLE effects (k VARCHAR(191) PRIMARY KEY, n INT NOT NULL)")
	require.NoError(t, err)
	e.db = db
	return e
}

func (e faultEnv) config(role Role) Config {
	return Config{
		Role:     role,
		MQ:       MQConfig{URL: e.url},
		Store:    persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: e.dsn}, Logger: discardLogger()},
		Topology: e.top,
		Retry:    RetryPolicy{MaxAttempts: 12, InitialInterval: 200 * time.Millisecond, MaxInterval: 2 * time.Second, InlineMax: 5 * time.Second},
		Logger:   discardLogger(),
	}
}

// effect is the handler every fault test uses: its effect is a row per
// idempotency key; a redelivery only bumps the row's counter.
func effect(db *sql.DB, delay time.Duration) HandlerFunc {
	return func(ctx context.Context, a Action) error {
		if delay > 0 && !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
		_, err := db.ExecContext(ctx, "INSERT INTO effects (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1", a.Key)
		return err
	}
}

// effects returns the keys with an effect and the number of deliveries.
func (e faultEnv) effects(t *testing.T) (map[string]int, error) {
	rows, err := e.db.Query("SELECT k, n FROM effects")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}

// verify waits until every published key has its effect, then prints the
// summary line, with what more adds, and fails if anything was lost.
func (e faultEnv) verify(t *testing.T, published []string, timeout time.Duration, more ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]int
	lost := len(published)
	for time.Now().Before(deadline) {
		var err error
		if got, err = e.effects(t); err == nil {
			lost = 0
			for _, k := range published {
				if got[k] == 0 {
					lost++
				}
			}
			if lost == 0 {
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	handled, deliveries := 0, 0
	for _, k := range published {
		if n := got[k]; n > 0 {
			handled++
			deliveries += n
		}
	}
	line := fmt.Sprintf("%s: published=%d handled=%d duplicates_absorbed=%d lost=%d", t.Name(), len(published), handled, deliveries-handled, lost)
	for _, m := range more {
		line += " " + m()
	}
	t.Log(line)
	require.Zero(t, lost, "actions whose Publish returned nil but that were never handled")
}

// publishN publishes n actions from several goroutines and returns the keys of
// those whose Publish returned nil. hook(i) runs before the i-th publish.
func publishN(t *testing.T, w *Worker, n, workers int, hook func(i int)) []string {
	t.Helper()
	var (
		next      atomic.Int64
		mu        sync.Mutex
		published []string
		failed    atomic.Int64
		wg        sync.WaitGroup
	)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if hook != nil {
					hook(i)
				}
				key := fmt.Sprintf("%s-%06d", t.Name(), i)
				if err := w.Publish(context.Background(), Action{Type: effectType, Key: key}); err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				published = append(published, key)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Logf("%d publish call(s) returned an error (not counted as published)", f)
	}
	return published
}

func runWorker(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Running():
	case err := <-done:
		t.Fatalf("worker did not start: %v", err)
	}
	t.Cleanup(func() { cancel(); <-done })
}

func ciScript(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(".ci", args[0]), args[1:]...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", args, out)
}

// TestFaultsBrokerRestart: 10,000 actions are published while RabbitMQ is
// restarted twice. Every publish that returned nil is handled.
func TestFaultsBrokerRestart(t *testing.T) {
	e := newFaultEnv(t)
	w := newTestWorker(t, e.config(RoleAll))
	require.NoError(t, w.Handle(effectType, effect(e.db, 0)))
	runWorker(t, w)
	rabbit := testenv.SharedRabbitMQ(t) // its cleanup brings the broker back if a restart fails half-way
	var restarts sync.WaitGroup
	published := publishN(t, w, 10000, 16, func(i int) {
		if i == 3333 || i == 6666 {
			restarts.Add(1)
			go func() { defer restarts.Done(); rabbit.Restart(t) }()
		}
	})
	restarts.Wait()
	e.verify(t, published, 3*time.Minute)
}

// TestFaultsChildSubscriber is the subscriber process the other fault tests
// start and kill. It does nothing unless started by them.
func TestFaultsChildSubscriber(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("helper process for the fault tests")
	}
	db, err := sql.Open("mysql", os.Getenv(childDSNEnv))
	require.NoError(t, err)
	delay, _ := time.ParseDuration(os.Getenv(childDelayEnv))
	e := faultEnv{url: os.Getenv(childURLEnv), dsn: os.Getenv(childDSNEnv), top: Topology{Prefix: os.Getenv(childPrefixEnv)}, db: db}
	cfg := e.config(RoleSubscriber)
	cfg.ShutdownTimeout = 20 * time.Second
	w, err := New(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, w.Handle(effectType, effect(db, delay)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	require.NoError(t, w.Run(ctx))
}

func startChild(t *testing.T, e faultEnv, delay time.Duration) *exec.Cmd {
	t.Helper()
	return startChildTest(t, "TestFaultsChildSubscriber", e, delay)
}

// startChildTest starts this test binary again as a child process running
// only the test named test, with e's broker, database and prefix and the
// handler delay in its environment.
func startChildTest(t *testing.T, test string, e faultEnv, delay time.Duration) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURLEnv+"="+e.url, childDSNEnv+"="+e.dsn,
		childPrefixEnv+"="+e.top.Prefix, childDelayEnv+"="+delay.String())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// waitEffects waits until at least n effects exist.
func (e faultEnv) waitEffects(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var c int
		return e.db.QueryRow("SELECT COUNT(*) FROM effects").Scan(&c) == nil && c >= n
	}, 2*time.Minute, 20*time.Millisecond, "waiting for %d effects", n)
}

// TestFaultsSubscriberKilled: the subscriber process is SIGKILLed in the
// middle of handling, three times. Every action is handled at least once and
// has exactly one effect.
func TestFaultsSubscriberKilled(t *testing.T) {
	e := newFaultEnv(t)
	pub := newTestWorker(t, e.config(RolePublisher))
	published := publishN(t, pub, 3000, 8, nil)
	for kill := 1; kill <= 3; kill++ {
		child := startChild(t, e, 5*time.Millisecond)
		e.waitEffects(t, kill*600)
		require.NoError(t, child.Process.Signal(syscall.SIGKILL))
		_ = child.Wait()
	}
	final := startChild(t, e, 0)
	e.verify(t, published, 2*time.Minute)
	require.NoError(t, final.Process.Signal(syscall.SIGTERM))
	require.NoError(t, final.Wait())
}

// TestFaultsGracefulShutdown: SIGTERM mid-stream. The subscriber stops taking
// actions, finishes (or requeues) those in flight and exits 0; none is acked
// without its effect.
func TestFaultsGracefulShutdown(t *testing.T) {
	e := newFaultEnv(t)
	pub := newTestWorker(t, e.config(RolePublisher))
	published := publishN(t, pub, 2000, 8, nil)
	child := startChild(t, e, 20*time.Millisecond)
	e.waitEffects(t, 300)
	require.NoError(t, child.Process.Signal(syscall.SIGTERM))
	require.NoError(t, child.Wait(), "the subscriber exits 0 after a graceful shutdown")
	final := startChild(t, e, 0)
	e.verify(t, published, 2*time.Minute)
	require.NoError(t, final.Process.Signal(syscall.SIGTERM))
	require.NoError(t, final.Wait())
}

// TestFaultsMariaDBDown: MariaDB is stopped for about 10 s while actions flow.
// Handlers fail and retry; nothing is acked before its effect is durable.
func TestFaultsMariaDBDown(t *testing.T) {
	e := newFaultEnv(t)
	w := newTestWorker(t, e.config(RoleAll))
	require.NoError(t, w.Handle(effectType, effect(e.db, 0)))
	runWorker(t, w)
	t.Cleanup(func() { ciScript(t, "mariadb", "start") }) // bring it back even on failure
	var outage sync.WaitGroup
	outage.Add(1)
	published := publishN(t, w, 3000, 4, func(i int) {
		if i == 500 {
			go func() {
				defer outage.Done()
				ciScript(t, "mariadb", "stop")
				time.Sleep(10 * time.Second)
				ciScript(t, "mariadb", "start")
			}()
		}
		if i > 500 && i%50 == 0 {
			time.Sleep(200 * time.Millisecond) // keep publishing through the outage
		}
	})
	outage.Wait()
	e.verify(t, published, 3*time.Minute)
	poisoned, err := w.Poisoned(context.Background(), PoisonQuery{})
	require.NoError(t, err)
	require.Empty(t, poisoned, "an outage shorter than the retry budget poisons nothing")
}
