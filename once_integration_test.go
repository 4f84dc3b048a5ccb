//go:build unix

package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
)

// Environment of the subscriber process TestHandleTxAckLost starts.
const (
	onceChildEnv   = "WORKER_ONCE_CHILD"   // "1" in the child
	onceURLEnv     = "WORKER_ONCE_URL"     // the broker
	onceDriverEnv  = "WORKER_ONCE_DRIVER"  // persist.Driver of the store
	onceDSNEnv     = "WORKER_ONCE_DSN"     // its DSN
	oncePrefixEnv  = "WORKER_ONCE_PREFIX"  // Topology.Prefix
	onceHandlerEnv = "WORKER_ONCE_HANDLER" // "HandleTx" or "HandleFunc"
	onceKillEnv    = "WORKER_ONCE_KILL"    // "1": SIGKILL itself after the handler returned nil
	onceReportEnv  = "WORKER_ONCE_REPORT"  // file the child appends a line to per call and per delivery
	onceType       = "once.effect"
)

// onceEffect is the row the handler writes: one per call that committed.
type onceEffect struct {
	ID  int64  `gorm:"primaryKey;autoIncrement"`
	Key string `gorm:"column:effect_key;size:255;not null"`
	PID int    `gorm:"not null"`
}

func (onceEffect) TableName() string { return "once_effects" }

// TestHandleTxAckLost: a handler writes a row, its transaction commits, and
// the subscriber process is SIGKILLed before it acknowledges the message
// (from inside, by middleware, right after the handler returned nil). RabbitMQ
// redelivers the action to a new process. With HandleTx there is exactly one
// row and the handler ran once; the same handler registered with HandleFunc,
// writing through the store's own *gorm.DB outside any inbox (what a host
// had to invent before HandleTx), leaves two rows, which shows the kill
// landed between the commit and the ack. On a SQLite file and on MariaDB,
// with the shipped defaults.
func TestHandleTxAckLost(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	for _, store := range []struct {
		name string
		db   func(t *testing.T) persist.DBConfig
	}{
		{name: "SQLiteFile", db: func(t *testing.T) persist.DBConfig {
			return persist.DBConfig{Driver: persist.SQLite, DSN: filepath.Join(t.TempDir(), "worker.db")}
		}},
		{name: "MariaDB", db: func(t *testing.T) persist.DBConfig {
			return persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}
		}},
	} {
		for _, tc := range []struct {
			handler string
			rows    int // after the redelivery
			calls   int
		}{
			{handler: "HandleTx", rows: 1, calls: 1},
			{handler: "HandleFunc", rows: 2, calls: 2}, // the control: no inbox
		} {
			t.Run(store.name+"/"+tc.handler, func(t *testing.T) {
				db := store.db(t)
				top := uniqueTopology(t, url)
				report := filepath.Join(t.TempDir(), "report")

				// The publisher process publishes one action and creates the host's table.
				pub := newTestWorker(t, Config{Role: RolePublisher, MQ: MQConfig{URL: url}, Topology: top,
					Store: persist.Config{Provisioning: db, Logger: discardLogger()}})
				require.NoError(t, pub.db.DB().AutoMigrate(&onceEffect{}))
				a := Action{Type: onceType, Key: "charge-" + testenv.Suffix()}
				require.NoError(t, pub.Publish(context.Background(), a))

				start := func(kill string) *exec.Cmd {
					cmd := exec.Command(os.Args[0], "-test.run=^TestHandleTxAckLostChild$", "-test.count=1")
					cmd.Env = append(os.Environ(), onceChildEnv+"=1", onceURLEnv+"="+url,
						onceDriverEnv+"="+string(db.Driver), onceDSNEnv+"="+db.DSN, oncePrefixEnv+"="+top.Prefix,
						onceHandlerEnv+"="+tc.handler, onceKillEnv+"="+kill,
						onceReportEnv+"="+report)
					cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
					require.NoError(t, cmd.Start())
					t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
					return cmd
				}

				// First process: handles, commits, and dies before the ack.
				first := start("1")
				err := waitExit(first, 2*time.Minute)
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee, "the first subscriber must die by its own SIGKILL")
				ws := ee.Sys().(syscall.WaitStatus)
				require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "first subscriber: %v", err)
				require.Equal(t, 1, countEffects(t, pub.db, a.Key), "the first delivery's row committed before the kill")
				lines := readReport(t, report)
				require.Equal(t, []string{"call", "delivered <nil>"}, kinds(lines), "first process: %v", lines)

				// Second process: the broker redelivers the unacked action to it.
				second := start("0")
				require.Eventually(t, func() bool { return delivered(readReport(t, report)) == 2 },
					2*time.Minute, 20*time.Millisecond, "waiting for the redelivery")
				require.NoError(t, second.Process.Signal(syscall.SIGTERM))
				require.NoError(t, waitExit(second, time.Minute), "the second subscriber exits 0 after SIGTERM")

				lines = readReport(t, report)
				calls, deliveries := 0, 0
				for _, k := range kinds(lines) {
					switch {
					case k == "call":
						calls++
					case strings.HasPrefix(k, "delivered"):
						require.Equal(t, "delivered <nil>", k)
						deliveries++
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				q, err := testenv.QueueCounts(ctx, url, top.Topic(QueueActions))
				require.NoError(t, err)
				rows := countEffects(t, pub.db, a.Key)
				t.Logf("%s/%s: deliveries=%d handler_calls=%d rows=%d first_process=%s queue_left=%d",
					store.name, tc.handler, deliveries, calls, rows, ws.Signal(), q.Messages)
				require.Equal(t, 2, deliveries, "one delivery per process: %v", lines)
				require.Equal(t, tc.calls, calls, "handler calls: %v", lines)
				require.Equal(t, tc.rows, rows, "effect rows")
				require.Zero(t, q.Messages, "the redelivery was acknowledged")
			})
		}
	}
}

// TestHandleTxAckLostChild is the subscriber process TestHandleTxAckLost
// starts. It does nothing unless started by it.
func TestHandleTxAckLostChild(t *testing.T) {
	if os.Getenv(onceChildEnv) == "" {
		t.Skip("helper process for TestHandleTxAckLost")
	}
	report := func(line string) {
		f, err := os.OpenFile(os.Getenv(onceReportEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		require.NoError(t, err)
		_, err = fmt.Fprintf(f, "%d %s\n", os.Getpid(), line)
		require.NoError(t, errors.Join(err, f.Close()))
	}
	kill := os.Getenv(onceKillEnv) == "1"
	// Runs around each attempt, inside the subscriber: after it returns nil
	// the subscriber acks. Killing the process here loses exactly the ack.
	killAfterCommit := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			report(fmt.Sprintf("delivered %v", err))
			if err == nil && kill {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the ack never comes
			}
			return out, err
		}
	}
	cfg := Config{
		Role:       RoleSubscriber,
		MQ:         MQConfig{URL: os.Getenv(onceURLEnv)},
		Store:      persist.Config{Provisioning: persist.DBConfig{Driver: persist.Driver(os.Getenv(onceDriverEnv)), DSN: os.Getenv(onceDSNEnv)}, Logger: testLogger(t)},
		Topology:   Topology{Prefix: os.Getenv(oncePrefixEnv)},
		Middleware: []message.HandlerMiddleware{killAfterCommit},
		Logger:     testLogger(t),
	}
	w, err := New(context.Background(), cfg)
	require.NoError(t, err)
	effect := func(db *gorm.DB, a Action) error {
		report("call")
		return db.Create(&onceEffect{Key: a.Key, PID: os.Getpid()}).Error
	}
	switch os.Getenv(onceHandlerEnv) {
	case "HandleTx":
		require.NoError(t, w.HandleTx(onceType, func(ctx context.Context, tx *gorm.DB, a Action) error { return effect(tx, a) }))
	case "HandleFunc":
		require.NoError(t, w.HandleFunc(onceType, func(ctx context.Context, a Action) error {
			return effect(w.db.DB().WithContext(ctx), a)
		}))
	default:
		t.Fatalf("%s=%q", onceHandlerEnv, os.Getenv(onceHandlerEnv))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	require.NoError(t, w.Run(ctx))
}

// waitExit waits for cmd to exit, killing it after timeout.
func waitExit(cmd *exec.Cmd, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%v did not exit within %v: %w", cmd.Args, timeout, <-done)
	}
}

func countEffects(t *testing.T, s *persist.Store, key string) int {
	t.Helper()
	var n int64
	require.NoError(t, s.DB().Model(&onceEffect{}).Where("effect_key = ?", key).Count(&n).Error)
	return int(n)
}

// readReport returns the child's report lines ("<pid> <what>").
func readReport(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	return lines
}

// delivered counts the deliveries in report lines.
func delivered(lines []string) int {
	n := 0
	for _, k := range kinds(lines) {
		if strings.HasPrefix(k, "delivered") {
			n++
		}
	}
	return n
}

// kinds strips the pids off report lines.
func kinds(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		_, out[i], _ = strings.Cut(l, " ")
	}
	return out
}
