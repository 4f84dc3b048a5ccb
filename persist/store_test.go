package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/state"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "Memory", cfg: Config{Provisioning: DBConfig{DSN: MemoryDSN}}, want: "sqlite :memory:"},
		{name: "File", cfg: Config{Provisioning: DBConfig{DSN: a}}, want: "sqlite " + a},
		{name: "SameAnalytics", cfg: Config{Provisioning: DBConfig{DSN: a}, Analytics: DBConfig{DSN: a}}, want: "sqlite " + a},
		{name: "SeparateAnalytics", cfg: Config{Provisioning: DBConfig{DSN: a}, Analytics: DBConfig{DSN: b}},
			want: "sqlite " + a + " (analytics: sqlite " + b + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// not parallel: subtests share the files
			s := openStore(t, tt.cfg)
			require.Equal(t, tt.want, s.Describe())
		})
	}
}

// TestDefaultPathIsAbsolute opens the zero Config: "worker.db" in the working
// directory, described by its absolute path. It changes directory, so it does
// not run in parallel.
func TestDefaultPathIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	wd, err := os.Getwd()
	require.NoError(t, err)
	s := openStore(t, Config{})
	require.Equal(t, "sqlite "+filepath.Join(wd, "worker.db"), s.Describe())
	require.FileExists(t, filepath.Join(dir, "worker.db"))
}

func TestDescribeMySQL(t *testing.T) {
	t.Parallel()
	dsn := testenv.MySQLDSN(t)
	mc, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	s := openStore(t, Config{Provisioning: DBConfig{Driver: MySQL, DSN: dsn}})
	require.Equal(t, fmt.Sprintf("mysql %s@%s/%s", mc.User, mc.Addr, mc.DBName), s.Describe())
	if mc.Passwd != "" {
		require.NotContains(t, s.Describe(), mc.Passwd)
	}
}

// TestOpenUnreachableMySQL needs no server: nothing listens on port 1.
func TestOpenUnreachableMySQL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{
		Provisioning: DBConfig{Driver: MySQL, DSN: "app:s3cretpw@tcp(127.0.0.1:1)/x"},
		Logger:       testLogger(t),
	})
	require.Error(t, err)
	require.ErrorContains(t, err, "mysql app@127.0.0.1:1/x")
	require.NotContains(t, err.Error(), "s3cretpw")
	t.Log(err)
}

func TestOpenSQLiteMissingDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "worker.db")
	_, err := Open(context.Background(), Config{Provisioning: DBConfig{DSN: path}, Logger: testLogger(t)})
	require.Error(t, err)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "no such file or directory")
	require.NoFileExists(t, path)
}

func TestSQLiteConnections(t *testing.T) {
	t.Parallel()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: filepath.Join(t.TempDir(), "w.db"), MaxOpenConns: 3}})
	require.NotSame(t, s.prov.writer, s.prov.reader)
	require.Len(t, s.prov.pools, 2)
	require.Equal(t, 1, s.prov.pools[0].Stats().MaxOpenConnections, "exactly one writer")
	require.Equal(t, 3, s.prov.pools[1].Stats().MaxOpenConnections, "read pool")

	pragma := func(name string) string {
		var v string
		require.NoError(t, s.prov.reader.Raw("PRAGMA "+name).Scan(&v).Error)
		return v
	}
	require.Equal(t, "wal", pragma("journal_mode"))
	require.Equal(t, "10000", pragma("busy_timeout"))
	require.Equal(t, "1", pragma("foreign_keys"))
	require.Equal(t, "1", pragma("synchronous")) // NORMAL
	require.Equal(t, "1", pragma("query_only"), "the read pool cannot write")
	require.Error(t, s.prov.reader.Exec("DELETE FROM worker_resources").Error)
}

// TestMemoryIsOneDatabase guards against ":memory:" giving each pooled
// connection its own empty database: many goroutines must all see the schema
// and each other's writes.
func TestMemoryIsOneDatabase(t *testing.T) {
	t.Parallel()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN, MaxOpenConns: 8}})
	require.Same(t, s.prov.writer, s.prov.reader)
	require.Equal(t, 1, s.prov.pools[0].Stats().MaxOpenConnections)

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			id := fmt.Sprintf("i-%d", g)
			_, err := s.Save(ctx, state.Target{Account: "a", Kind: "server"}, state.Snapshot{Observations: []state.Observation{
				{ID: id, Attributes: json.RawMessage(`{"n":1}`)},
			}})
			if err == nil {
				_, err = s.Resource(ctx, "a", "server", id)
			}
			if err == nil {
				err = s.AddPoison(ctx, Parked{MessageUUID: id})
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 16, countRows(t, s.DB(), tblResources))
	list, err := s.ListPoison(ctx, PoisonFilter{})
	require.NoError(t, err)
	require.Len(t, list, 16)
}

// A transaction whose context is cancelled before it ends makes
// database/sql close its connection; the in-memory database must outlive
// that (it once vanished with its only connection, and ExampleWorker_HandleTx
// then found no charges table under load), and two stores stay two databases.
func TestMemorySurvivesACancelledTransaction(t *testing.T) {
	t.Parallel()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	other := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	bg := context.Background()
	save := func(ctx context.Context, id string) error {
		_, err := s.Save(ctx, state.Target{Account: "a", Kind: "server"}, state.Snapshot{Observations: []state.Observation{
			{ID: id, Attributes: json.RawMessage(`{"n":1}`)},
		}})
		return err
	}
	require.NoError(t, save(bg, "i-1"))

	ctx, cancel := context.WithCancel(bg)
	inside, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			close(inside)
			<-ctx.Done()
			return tx.Exec("DELETE FROM " + tblResources).Error
		})
	}()
	<-inside
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	require.NoError(t, save(bg, "i-2"))
	require.EqualValues(t, 2, countRows(t, s.DB(), tblResources), "the rows before the cancelled transaction and after it")
	require.EqualValues(t, 0, countRows(t, other.DB(), tblResources), "another store's in-memory database is its own")
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	require.True(t, retryable(errConflict))
	require.True(t, retryable(fmt.Errorf("x: %w", mysql.ErrInvalidConn)))
	require.True(t, retryable(&mysql.MySQLError{Number: 1213, Message: "deadlock"}))
	require.False(t, retryable(&mysql.MySQLError{Number: 1062, Message: "duplicate"}))
	require.False(t, retryable(ErrInvalid))
	require.False(t, retryable(errors.New("boom")))
}

func TestRetry(t *testing.T) {
	t.Parallel()
	calls := 0
	err := retry(context.Background(), func() error { calls++; return errConflict })
	require.ErrorIs(t, err, errConflict)
	require.ErrorContains(t, err, "gave up after 5 attempts")
	require.Equal(t, maxAttempts, calls)

	calls = 0
	err = retry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return errConflict
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls)

	calls = 0
	err = retry(context.Background(), func() error { calls++; return ErrInvalid })
	require.ErrorIs(t, err, ErrInvalid)
	require.Equal(t, 1, calls, "permanent errors are not retried")

	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = retry(ctx, func() error { calls++; cancel(); return errConflict })
	require.ErrorIs(t, err, errConflict)
	require.Equal(t, 1, calls, "no retry once the context is done")
}
