package worker

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/sqlitemq"
	"github.com/stretchr/testify/require"
)

var _ DelayPublisher = (*sqlitemq.PubSub)(nil)

// TestScenarioSQLiteQueue runs the scenario on the embedded durable queue
// with the classic split: a publisher-only process publishes and is gone
// before a subscriber-only process starts on the same files.
func TestScenarioSQLiteQueue(t *testing.T) {
	t.Parallel()
	base := Config{
		MQ:    MQConfig{URL: "sqlite"},
		Store: sqliteConfig(t),
		Retry: RetryPolicy{InitialInterval: time.Millisecond}, // as the other scenarios: the flaky handler's waits stay short
	}
	pubCfg := base
	pubCfg.Role = RolePublisher
	pub := newTestWorker(t, pubCfg)
	require.Contains(t, pub.describeMQ(), "worker-queue.db")
	scenario(t, pub, func() *Worker {
		require.NoError(t, pub.Close())
		subCfg := base
		subCfg.Role = RoleSubscriber
		return newTestWorker(t, subCfg)
	})
}

// TestSQLiteQueueRetries checks retries on the durable queue: a handler
// that fails twice is called a third time, through the parked-retry path.
func TestSQLiteQueueRetries(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{
		MQ:    MQConfig{URL: "sqlite"},
		Store: sqliteConfig(t),
		// Short waits, parked rather than held in place, so the test is quick.
		Retry:            RetryPolicy{InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond, InlineMax: time.Millisecond},
		DeferredInterval: 10 * time.Millisecond,
	})
	attempts := make(chan int, 5)
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		attempts <- a.Attempt
		if a.Attempt < 3 {
			return errors.New("throttled")
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	require.NoError(t, w.Publish(ctx, Action{Type: "t"}))
	for want := 1; want <= 3; want++ {
		require.Equal(t, want, recv(t, attempts))
	}
	cancel()
	require.NoError(t, <-done)
}

func TestSQLiteQueuePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		cfg   Config
		path  string
		error string
	}{
		{name: "DefaultStore", cfg: Config{MQ: MQConfig{URL: "sqlite"}}, path: "worker-queue.db"},
		{name: "NextToStore", cfg: Config{MQ: MQConfig{URL: "sqlite"},
			Store: persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(dir, "w.sqlite")}}}, path: filepath.Join(dir, "w-queue.sqlite")},
		{name: "OwnFile", cfg: Config{MQ: MQConfig{URL: "sqlite:" + filepath.Join(dir, "q.db")}}, path: filepath.Join(dir, "q.db")},
		{name: "EmptyPath", cfg: Config{MQ: MQConfig{URL: "sqlite:"}}, error: "MQ.URL \"sqlite:\""},
		{name: "MemoryPath", cfg: Config{MQ: MQConfig{URL: "sqlite::memory:"}}, error: "Path \":memory:\""},
		{name: "MemoryStore", cfg: Config{MQ: MQConfig{URL: "sqlite"},
			Store: persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}}}, error: "the store is in memory"},
		{name: "MySQLStore", cfg: Config{MQ: MQConfig{URL: "sqlite"},
			Store: persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: "u:p@tcp(h:3306)/db"}}}, error: "Store.Provisioning.Driver is \"mysql\""},
		{name: "NotAURL", cfg: Config{MQ: MQConfig{URL: "sqlitex"}}, error: "sqlite:<path>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.error != "" {
				require.ErrorIs(t, err, ErrInvalidConfig)
				require.ErrorContains(t, err, "MQ.URL")
				require.ErrorContains(t, err, tc.error)
				return
			}
			require.NoError(t, err)
			path, err := tc.cfg.sqliteQueuePath()
			require.NoError(t, err)
			require.Equal(t, tc.path, path)
		})
	}
}
