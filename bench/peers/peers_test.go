package peers

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// callers is the enqueue concurrency of the end-to-end pairs, as in ../
// (BENCH_CALLERS default 256); batchCallers and batchSize are those of the
// batch pairs (../ BenchmarkPublishBatch uses the same).
var (
	callers      = envInt("BENCH_CALLERS", 256)
	batchCallers = envInt("BENCH_BATCH_CALLERS", 4)
	batchSize    = envInt("BENCH_BATCH", 1000)
)

// handlers is the peers' handler concurrency: our default Concurrency.
const handlers = 64

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type benchArgs struct {
	Image    string `json:"image"`
	Size     string `json:"size"`
	N        int    `json:"n"`
	Customer string `json:"customer"`
	Account  string `json:"account"`
	Resource string `json:"resource"`
}

func (benchArgs) Kind() string { return "bench.noop" }

func args(i int) benchArgs {
	return benchArgs{Image: "debian-13", Size: "m1.small", N: i, Customer: "cust-0042", Account: "acct-0042",
		Resource: fmt.Sprintf("i-0abc%08x", i)}
}

func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func reportRate(b *testing.B, n int, elapsed time.Duration) {
	b.ReportMetric(float64(n)/max(elapsed, time.Nanosecond).Seconds(), "msg/s")
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Value
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	err, _ := first.Load().(error)
	return err
}

// pgPool connects to BENCH_PG_URL with a fresh schema of the benchmark's own
// on the search path (dropped at the end), River's tables migrated into it.
func pgPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	url := os.Getenv("BENCH_PG_URL")
	if url == "" {
		b.Skip("River on PostgreSQL: BENCH_PG_URL unset (bench/run sets it when 127.0.0.1:5432 answers)")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Skipf("River on PostgreSQL: cannot connect to BENCH_PG_URL: %v", err)
	}
	defer admin.Close(ctx)
	schema := uniqueName("bench_")
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			_ = c.Close(context.Background())
		}
	})
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler), Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	return pool
}

type riverWorker struct {
	river.WorkerDefaults[benchArgs]
	pool *pgxpool.Pool // nil: a no-op
	done func()
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[benchArgs]) error {
	if w.pool != nil {
		body, _ := json.Marshal(job.Args)
		if _, err := w.pool.Exec(ctx, "INSERT INTO bench_rows (id, body, created_at) VALUES ($1, $2, $3)",
			strconv.FormatInt(job.ID, 10), body, time.Now().UTC()); err != nil {
			return err
		}
	}
	w.done()
	return nil
}

// BenchmarkRiverPG is River v0.51.2 on PostgreSQL (synchronous_commit on:
// every commit durable):
//
//	batch-insert  batchCallers goroutines insert b.N jobs in batches of
//	              batchSize with InsertManyFast (COPY FROM): River's
//	              fastest enqueue, the peer of ../ PublishBatch
//	durable-row   `callers` goroutines insert b.N jobs one per call; a
//	              client with 64 workers works them, each inserting one
//	              row into PostgreSQL; the clock runs from the first insert
//	              to the last job worked. Settings in River's favour: fetch
//	              polling every 10 ms with a 1 ms cooldown (defaults 1 s and
//	              100 ms).
func BenchmarkRiverPG(b *testing.B) {
	b.Run("batch-insert", func(b *testing.B) {
		pool := pgPool(b)
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		batches := (b.N + batchSize - 1) / batchSize
		params := make([][]river.InsertManyParams, batches)
		for i := range params {
			for j := i * batchSize; j < min(b.N, (i+1)*batchSize); j++ {
				params[i] = append(params[i], river.InsertManyParams{Args: args(j)})
			}
		}
		ctx := context.Background()
		b.ResetTimer()
		begin := time.Now()
		if err := parallel(batches, batchCallers, func(i int) error {
			_, err := client.InsertManyFast(ctx, params[i])
			return err
		}); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(begin)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
	})
	b.Run("durable-row", func(b *testing.B) {
		pool := pgPool(b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := pool.Exec(ctx, "CREATE TABLE bench_rows (id TEXT PRIMARY KEY, body BYTEA NOT NULL, created_at TIMESTAMPTZ NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		var handled atomic.Int64
		all := make(chan struct{})
		warm := make(chan struct{}, 1)
		n := int64(b.N) + 1 // the warm-up job first
		w := &riverWorker{pool: pool, done: func() {
			switch handled.Add(1) {
			case 1:
				warm <- struct{}{}
			case n:
				close(all)
			}
		}}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: handlers}},
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
		// A first job through the client before the clock starts, as for asynq.
		if _, err := client.Insert(ctx, args(-1), nil); err != nil {
			b.Fatal(err)
		}
		select {
		case <-warm:
		case <-time.After(30 * time.Second):
			b.Fatal("River did not work the warm-up job in 30s")
		}
		b.ResetTimer()
		begin := time.Now()
		if err := parallel(b.N, callers, func(i int) error {
			_, err := client.Insert(ctx, args(i), nil)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-all:
		case <-time.After(5 * time.Minute):
			b.Fatalf("River worked %d of %d jobs in 5 minutes", handled.Load()-1, b.N)
		}
		elapsed := time.Since(begin)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
		b.ReportMetric(pgDurable(b, pool), "durable-queue")
	})
}

// pgDurable is 1 when the PostgreSQL server flushes every commit to disk
// before it returns (fsync on, synchronous_commit anything but off), else 0.
func pgDurable(b *testing.B, pool *pgxpool.Pool) float64 {
	var fsync, commit string
	ctx := context.Background()
	if err := pool.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err == nil {
		err = pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&commit)
		if err == nil && fsync == "on" && commit != "off" {
			return 1
		}
	}
	b.Logf("River: PostgreSQL as found is not durable per commit (fsync %q, synchronous_commit %q)", fsync, commit)
	return 0
}

// redisOpt is BENCH_REDIS_ADDR, or skips.
func redisOpt(b *testing.B) asynq.RedisClientOpt {
	b.Helper()
	addr := os.Getenv("BENCH_REDIS_ADDR")
	if addr == "" {
		b.Skip("asynq: BENCH_REDIS_ADDR unset (bench/run sets it when 127.0.0.1:6379 answers)")
	}
	return asynq.RedisClientOpt{Addr: addr, PoolSize: callers}
}

// BenchmarkAsynq is asynq v0.26.0 on Redis (as found: here without
// persistence, so a Redis crash loses what it holds). durable-row reports
// durable-queue 1 only when the Redis it found writes every command to its
// append-only file before answering (appendonly yes, appendfsync always):
// only then is an enqueued task on disk when Enqueue returns, as an action
// is when Publish returns (a confirmed persistent message on a durable
// queue). bench/run compares ours with the best peer that is durable:
//
//	durable-row  `callers` goroutines enqueue b.N tasks one per call
//	             (Client.Enqueue, on a queue of the run's own); a server
//	             with Concurrency 64 handles them, each with one autocommit
//	             INSERT into MariaDB (as ../ pair 3b's baseline); the clock
//	             runs from the first enqueue to the last task handled. In
//	             asynq's favour: an idle server looks for tasks every 10 ms
//	             (TaskCheckInterval; default 1 s), and a warm-up task goes
//	             through before the clock starts (River's side has one too)
//	enqueue      only the enqueue, one task per call (reference)
func BenchmarkAsynq(b *testing.B) {
	b.Run("durable-row", func(b *testing.B) {
		opt := redisOpt(b)
		dsn := os.Getenv("WORKER_TEST_MYSQL_DSN")
		if dsn == "" {
			b.Skip("asynq durable-row: WORKER_TEST_MYSQL_DSN unset (bench/run sets it when 127.0.0.1:3306 answers)")
		}
		db := mariaDB(b, dsn)
		if _, err := db.Exec(`CREATE TABLE bench_rows (id VARCHAR(64) NOT NULL PRIMARY KEY, body LONGTEXT NOT NULL,
			created_at DATETIME(6) NOT NULL) ENGINE=InnoDB`); err != nil {
			b.Fatal(err)
		}
		queue := uniqueName("bench")
		defer deleteQueue(opt, queue)
		var handled atomic.Int64
		all := make(chan struct{})
		srv := asynq.NewServer(opt, asynq.Config{Concurrency: handlers, Queues: map[string]int{queue: 1},
			TaskCheckInterval: 10 * time.Millisecond, // in asynq's favour, as River's polling (default 1s)
			LogLevel:          asynq.FatalLevel, Logger: quietLogger{}})
		mux := asynq.NewServeMux()
		mux.HandleFunc("bench.noop", func(ctx context.Context, t *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			if _, err := db.ExecContext(ctx, "INSERT INTO bench_rows (id, body, created_at) VALUES (?, ?, ?)",
				id, t.Payload(), time.Now().UTC()); err != nil {
				return err
			}
			if handled.Add(1) == int64(b.N) {
				close(all)
			}
			return nil
		})
		warm := make(chan struct{}, 1)
		mux.HandleFunc("bench.warm", func(context.Context, *asynq.Task) error { warm <- struct{}{}; return nil })
		if err := srv.Start(mux); err != nil {
			b.Fatal(err)
		}
		defer srv.Shutdown()
		client := asynq.NewClient(opt)
		defer client.Close()
		tasks := asynqTasks(b.N)
		ctx := context.Background()
		// A first task through the server before the clock starts: an
		// idle asynq server looks for work about once a second, which
		// would otherwise be timed (and keep b.N at 1).
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench.warm", nil), asynq.Queue(queue)); err != nil {
			b.Fatal(err)
		}
		select {
		case <-warm:
		case <-time.After(30 * time.Second):
			b.Fatal("asynq did not handle the warm-up task in 30s")
		}
		b.ResetTimer()
		begin := time.Now()
		if err := parallel(b.N, callers, func(i int) error {
			_, err := client.EnqueueContext(ctx, tasks[i], asynq.Queue(queue))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-all:
		case <-time.After(5 * time.Minute):
			b.Fatalf("asynq handled %d of %d tasks in 5 minutes", handled.Load(), b.N)
		}
		elapsed := time.Since(begin)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
		b.ReportMetric(redisDurable(b, opt.Addr), "durable-queue")
	})
	b.Run("enqueue", func(b *testing.B) {
		opt := redisOpt(b)
		queue := uniqueName("bench")
		defer deleteQueue(opt, queue)
		client := asynq.NewClient(opt)
		defer client.Close()
		tasks := asynqTasks(b.N)
		ctx := context.Background()
		b.ResetTimer()
		begin := time.Now()
		if err := parallel(b.N, callers, func(i int) error {
			_, err := client.EnqueueContext(ctx, tasks[i], asynq.Queue(queue))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(begin)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
	})
}

// redisDurable is 1 when the Redis at addr fsyncs its append-only file on
// every write (appendonly yes, appendfsync always), else 0.
func redisDurable(b *testing.B, addr string) float64 {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	conf := map[string]string{}
	for _, key := range []string{"appendonly", "appendfsync"} {
		v, err := c.ConfigGet(context.Background(), key).Result()
		if err != nil {
			b.Logf("asynq: CONFIG GET %s: %v (counted as not durable)", key, err)
			return 0
		}
		conf[key] = v[key]
	}
	if conf["appendonly"] == "yes" && conf["appendfsync"] == "always" {
		return 1
	}
	b.Logf("asynq: Redis as found is not durable per task (appendonly %q, appendfsync %q)", conf["appendonly"], conf["appendfsync"])
	return 0
}

func asynqTasks(n int) []*asynq.Task {
	tasks := make([]*asynq.Task, n)
	for i := range tasks {
		p, _ := json.Marshal(args(i))
		tasks[i] = asynq.NewTask("bench.noop", p, asynq.MaxRetry(25))
	}
	return tasks
}

func deleteQueue(opt asynq.RedisClientOpt, queue string) {
	in := asynq.NewInspector(opt)
	defer in.Close()
	_ = in.DeleteQueue(queue, true)
}

// mariaDB opens a fresh database on the server of dsn, dropped at the end.
func mariaDB(b *testing.B, dsn string) *sql.DB {
	b.Helper()
	root, err := sql.Open("mysql", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	name := uniqueName("bench_")
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		b.Skipf("asynq durable-row: cannot create a database on WORKER_TEST_MYSQL_DSN: %v", err)
	}
	b.Cleanup(func() {
		if r, err := sql.Open("mysql", dsn); err == nil {
			_, _ = r.Exec("DROP DATABASE " + name)
			_ = r.Close()
		}
	})
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.DBName = name
	base := cfg.FormatDSN()
	db, err := sql.Open("mysql", base)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(handlers)
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// quietLogger drops asynq's logs.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}
