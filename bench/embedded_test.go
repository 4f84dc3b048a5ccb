package bench

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // driver "sqlite", as the store uses
	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
)

// BenchmarkEmbedded is pair 7: the embedded transports end to end, publish
// -> handle -> ack, `callers` goroutines publishing one action per call, a
// no-op handler, the store a SQLite file (never written). The clock runs
// from the first publish to the last handled action.
//
//	memory  MQ.URL "" (the default): gochannel, nothing survives a crash
//	sqlite  MQ.URL "sqlite": the durable queue (package sqlitemq, SyncFull),
//	        every action committed before Publish returns
//
// River on SQLite, the peer, runs the same work in ../river (its own module:
// River's SQLite driver wants a newer SQLite than the SDK pins).
func BenchmarkEmbedded(b *testing.B) {
	b.Run("memory", func(b *testing.B) { embeddedEndToEnd(b, "", false) })
	b.Run("sqlite", func(b *testing.B) { embeddedEndToEnd(b, "sqlite", false) })
}

// BenchmarkEmbeddedDurable is pair 7b: the same, with one durable row per
// action: the handler inserts a row into the store's SQLite file (one
// writer connection, autocommit, database/sql as on River's side) before it
// returns.
func BenchmarkEmbeddedDurable(b *testing.B) {
	b.Run("memory", func(b *testing.B) { embeddedEndToEnd(b, "", true) })
	b.Run("sqlite", func(b *testing.B) { embeddedEndToEnd(b, "sqlite", true) })
}

func embeddedEndToEnd(b *testing.B, mq string, row bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	storeFile := filepath.Join(b.TempDir(), "worker.db")
	w, err := worker.New(ctx, worker.Config{
		MQ:     worker.MQConfig{URL: mq},
		Store:  persist.Config{Provisioning: persist.DBConfig{DSN: storeFile}, Logger: quiet},
		Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	// The rows go to the store's file through one writer connection of
	// their own, opened as the store opens its writer (WAL, synchronous
	// NORMAL), through database/sql as on River's side.
	db, err := sql.Open("sqlite", storeFile+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if row {
		if _, err := db.Exec("CREATE TABLE bench_rows (id TEXT NOT NULL PRIMARY KEY, body BLOB NOT NULL, created_at DATETIME NOT NULL)"); err != nil {
			b.Fatal(err)
		}
	}
	c := newCounter(b.N)
	if err := w.Handle(noopType, worker.HandlerFunc(func(ctx context.Context, a worker.Action) error {
		if row {
			if _, err := db.ExecContext(ctx, "INSERT INTO bench_rows (id, body, created_at) VALUES (?, ?, ?)",
				a.ID, []byte(a.Payload), time.Now().UTC()); err != nil {
				return err
			}
		}
		c.inc()
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Running():
	case err := <-done:
		b.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	actions := make([]worker.Action, b.N)
	for i := range actions {
		actions[i] = benchAction(i)
	}
	pctx := timeoutCtx(b)

	b.ResetTimer()
	begin := time.Now()
	if err := parallel(b.N, callers, func(i int) error { return w.Publish(pctx, actions[i]) }); err != nil {
		b.Fatal(err)
	}
	c.wait(b, 5*time.Minute)
	elapsed := time.Since(begin)
	b.StopTimer()
	reportRate(b, b.N, elapsed, "msg/s")
}
