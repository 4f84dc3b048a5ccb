package persist

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testenv"
)

// t0 is the base time of the tests' clocks.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testClock is an injectable, settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: t0} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// backend is one database the shared scenarios run against.
type backend struct {
	name       string
	db         func(t testing.TB) DBConfig // a fresh, empty database
	reopenable bool                        // a second Open sees the same data
}

var backends = []backend{
	{name: "SQLiteFile", reopenable: true, db: func(t testing.TB) DBConfig {
		return DBConfig{Driver: SQLite, DSN: filepath.Join(t.TempDir(), "worker.db")}
	}},
	{name: "SQLiteMemory", db: func(t testing.TB) DBConfig {
		return DBConfig{DSN: MemoryDSN}
	}},
	{name: "MySQL", reopenable: true, db: func(t testing.TB) DBConfig {
		return DBConfig{Driver: MySQL, DSN: testenv.MySQLDSN(t)}
	}},
}

// forEachBackend runs fn as a parallel subtest per backend. The MySQL one
// skips, with the reason, when WORKER_TEST_MYSQL_DSN is not set.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openStore opens cfg with a test logger (and clock, when cfg has none) and
// closes the store when the test ends.
func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Now == nil {
		cfg.Now = newTestClock().Now
	}
	s, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// countWrites counts the INSERT, UPDATE, DELETE and raw statements issued
// through db from now on.
func countWrites(t *testing.T, db *gorm.DB) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	inc := func(*gorm.DB) { n.Add(1) }
	name := "persist_test:count_writes"
	cb := db.Callback()
	require.NoError(t, cb.Create().Before("gorm:create").Register(name, inc))
	require.NoError(t, cb.Update().Before("gorm:update").Register(name, inc))
	require.NoError(t, cb.Delete().Before("gorm:delete").Register(name, inc))
	require.NoError(t, cb.Raw().Before("gorm:raw").Register(name, inc))
	return &n
}

// countRows counts the rows of a table in db.
func countRows(t *testing.T, db *gorm.DB, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Table(table).Count(&n).Error)
	return n
}
