package river

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite"
)

// callers is the publisher concurrency, as in ../ (BENCH_CALLERS default).
const callers = 256

type benchArgs struct {
	Image    string `json:"image"`
	Size     string `json:"size"`
	N        int    `json:"n"`
	Customer string `json:"customer"`
	Account  string `json:"account"`
	Resource string `json:"resource"`
}

func (benchArgs) Kind() string { return "bench.noop" }

type benchWorker struct {
	river.WorkerDefaults[benchArgs]
	db   *sql.DB // nil: a no-op
	done func()
}

func (w *benchWorker) Work(ctx context.Context, job *river.Job[benchArgs]) error {
	if w.db != nil {
		body, _ := json.Marshal(job.Args)
		if _, err := w.db.ExecContext(ctx, "INSERT INTO bench_rows (id, body, created_at) VALUES (?, ?, ?)",
			fmt.Sprint(job.ID), body, time.Now().UTC()); err != nil {
			return err
		}
	}
	w.done()
	return nil
}

// BenchmarkRiverSQLite is River's side of pair 7: `callers` goroutines
// insert b.N jobs, one per call (client.Insert), and a client with 64
// workers (our Concurrency) works them; "durable-row" inserts one row per
// job into the same SQLite file. The clock runs from the first insert to
// the last job worked. Settings in River's favour: synchronous NORMAL (our
// queue runs FULL), polling every 10 ms with a 1 ms fetch cooldown
// (defaults: 1 s and 100 ms), and one connection, as River's SQLite driver
// advises.
func BenchmarkRiverSQLite(b *testing.B) {
	b.Run("noop", func(b *testing.B) { riverEndToEnd(b, false) })
	b.Run("durable-row", func(b *testing.B) { riverEndToEnd(b, true) })
}

func riverEndToEnd(b *testing.B, row bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(b.TempDir(), "river.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	w := &benchWorker{}
	if row {
		if _, err := db.Exec("CREATE TABLE bench_rows (id TEXT NOT NULL PRIMARY KEY, body BLOB NOT NULL, created_at DATETIME NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		w.db = db
	}
	var handled atomic.Int64
	all := make(chan struct{})
	w.done = func() {
		if handled.Add(1) == int64(b.N) {
			close(all)
		}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := river.NewClient(driver, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 64}},
		Workers:           workers,
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: 10 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = client.Stop(sctx)
	}()
	args := make([]benchArgs, b.N)
	for i := range args {
		args[i] = benchArgs{Image: "debian-13", Size: "m1.small", N: i, Customer: "cust-0042", Account: "acct-0042",
			Resource: fmt.Sprintf("i-0abc%08x", i)}
	}

	b.ResetTimer()
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range min(callers, b.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := client.Insert(ctx, args[i], nil); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d jobs worked within 5m", handled.Load(), b.N)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}
