//go:build faults

// Fault tests of issue 16 on packed traffic: every Publish call carries a
// batch of actions, which travel packed (MQ.PackActions, default 256), and
// the handler's effect is written with HandleTx, so that an action of a
// redelivered pack that was already handled is absorbed by its key. Run
// alone, as the other fault tests:
//
//	go test -tags faults -run '^TestFaultsPacked' -p 1 -count=1 -v .
package worker

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// packedBatch is how many actions each Publish call of these tests sends.
const packedBatch = 100

// effectTx is the effect of an action written in the inbox's transaction:
// a row per key whose counter a second effect would bump.
func effectTx(delay time.Duration) func(ctx context.Context, tx *gorm.DB, a Action) error {
	return func(ctx context.Context, tx *gorm.DB, a Action) error {
		if delay > 0 && !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
		return tx.Exec("INSERT INTO effects (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1", a.Key).Error
	}
}

// publishPacked publishes n actions in batches of packedBatch from several
// goroutines, and returns the keys of the batches whose Publish returned nil.
// hook(b) runs before the b-th batch.
func publishPacked(t *testing.T, w *Worker, n, workers int, hook func(b int)) []string {
	t.Helper()
	var (
		next      atomic.Int64
		mu        sync.Mutex
		published []string
		failed    atomic.Int64
		wg        sync.WaitGroup
	)
	batches := (n + packedBatch - 1) / packedBatch
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1)) - 1
				if b >= batches {
					return
				}
				if hook != nil {
					hook(b)
				}
				as := make([]Action, 0, packedBatch)
				keys := make([]string, 0, packedBatch)
				for i := b * packedBatch; i < min(n, (b+1)*packedBatch); i++ {
					key := fmt.Sprintf("%s-%06d", t.Name(), i)
					as = append(as, Action{Type: effectType, Key: key})
					keys = append(keys, key)
				}
				if err := w.Publish(context.Background(), as...); err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				published = append(published, keys...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Logf("%d batch publish call(s) returned an error (not counted as published)", f)
	}
	return published
}

// requireOnce fails if any published action had its effect more than once.
func (e faultEnv) requireOnce(t *testing.T, published []string) func() string {
	return func() string {
		got, err := e.effects(t)
		require.NoError(t, err)
		twice := 0
		for _, k := range published {
			if got[k] > 1 {
				twice++
			}
		}
		require.Zero(t, twice, "actions whose effect happened more than once")
		return fmt.Sprintf("effects_twice=%d", twice)
	}
}

// TestFaultsPackedBrokerRestart: 20,000 actions are published in batches
// of 100 (packed) while RabbitMQ is restarted twice. Every action of a
// batch whose Publish returned nil is handled, and its effect happens once.
func TestFaultsPackedBrokerRestart(t *testing.T) {
	e := newFaultEnv(t)
	w := newTestWorker(t, e.config(RoleAll))
	require.NoError(t, w.HandleTx(effectType, effectTx(0)))
	runWorker(t, w)
	rabbit := testenv.SharedRabbitMQ(t) // its cleanup brings the broker back if a restart fails half-way
	var restarts sync.WaitGroup
	published := publishPacked(t, w, 20000, 8, func(b int) {
		if b == 66 || b == 133 {
			restarts.Add(1)
			go func() { defer restarts.Done(); rabbit.Restart(t) }()
		}
	})
	restarts.Wait()
	e.verify(t, published, 3*time.Minute, e.requireOnce(t, published))
}

// TestFaultsChildPackedSubscriber is the subscriber process
// TestFaultsPackedSubscriberKilled starts and kills. It does nothing unless
// started by it.
func TestFaultsChildPackedSubscriber(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("helper process for the fault tests")
	}
	db, err := sql.Open("mysql", os.Getenv(childDSNEnv))
	require.NoError(t, err)
	defer db.Close()
	delay, _ := time.ParseDuration(os.Getenv(childDelayEnv))
	e := faultEnv{url: os.Getenv(childURLEnv), dsn: os.Getenv(childDSNEnv), top: Topology{Prefix: os.Getenv(childPrefixEnv)}, db: db}
	cfg := e.config(RoleSubscriber)
	cfg.ShutdownTimeout = 20 * time.Second
	w, err := New(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, w.HandleTx(effectType, effectTx(delay)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	require.NoError(t, w.Run(ctx))
}

func startPackedChild(t *testing.T, e faultEnv, delay time.Duration) *exec.Cmd {
	t.Helper()
	return startChildTest(t, "TestFaultsChildPackedSubscriber", e, delay)
}

// TestFaultsPackedSubscriberKilled: 6,000 actions wait in packs of 100; the
// subscriber process is SIGKILLed in the middle of handling them, three
// times, with packs half done. Every action is handled, and its effect
// happens once: the handled actions of a redelivered pack are absorbed by
// their keys.
func TestFaultsPackedSubscriberKilled(t *testing.T) {
	e := newFaultEnv(t)
	pub := newTestWorker(t, e.config(RolePublisher))
	published := publishPacked(t, pub, 6000, 4, nil)
	for kill := 1; kill <= 3; kill++ {
		child := startPackedChild(t, e, 5*time.Millisecond)
		e.waitEffects(t, kill*1200)
		require.NoError(t, child.Process.Signal(syscall.SIGKILL))
		_ = child.Wait()
	}
	final := startPackedChild(t, e, 0)
	e.verify(t, published, 3*time.Minute, e.requireOnce(t, published))
	require.NoError(t, final.Process.Signal(syscall.SIGTERM))
	require.NoError(t, final.Wait())
}
