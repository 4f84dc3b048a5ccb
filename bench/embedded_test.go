package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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
// action: the handler inserts a row into the store's SQLite file (the
// store's writer connection, autocommit, database/sql as on River's side)
// before it returns.
func BenchmarkEmbeddedDurable(b *testing.B) {
	b.Run("memory", func(b *testing.B) { embeddedEndToEnd(b, "", true) })
	b.Run("sqlite", func(b *testing.B) { embeddedEndToEnd(b, "sqlite", true) })
}

func embeddedEndToEnd(b *testing.B, mq string, row bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, worker.Config{
		MQ:     worker.MQConfig{URL: mq},
		Store:  persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(b.TempDir(), "worker.db")}, Logger: quiet},
		Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	// The store's own pool (one writer connection), through database/sql
	// as River's side writes its row.
	db, err := w.Store().DB().DB()
	if err != nil {
		b.Fatal(err)
	}
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
