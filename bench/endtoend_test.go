package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// rawHandlers is the baseline consumer's handler concurrency in the
// durable-row pair: the same number of actions in progress as our default
// (Config.Concurrency 64 handlers, fed by one consumer with prefetch 128).
const rawHandlers = 64

// BenchmarkEndToEnd is pair 3: publish -> handle -> ack through RabbitMQ,
// durable queue, persistent messages, confirms; `callers` goroutines
// publish, one message per call, on both sides. The clock runs from the
// first publish to the last handled message.
//
//	ours      worker.Worker with its default MQ settings and a no-op handler
//	          (poison/defer store: SQLite in memory, never written)
//	baseline  raw amqp091-go: the pair-2 publisher on one connection, and on
//	          another one consumer, prefetch 100, manual ack after the no-op
func BenchmarkEndToEnd(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		endToEndOurs(b, persist.DBConfig{Driver: persist.SQLite, DSN: persist.MemoryDSN}, nil)
	})
	b.Run("baseline", func(b *testing.B) {
		endToEndRaw(b, 1, nil)
	})
}

// BenchmarkEndToEndDurable is pair 3b: the same, but every action writes one
// row durably to MariaDB (InnoDB, innodb_flush_log_at_trx_commit=1) before
// it is acked: the fsync-bound reality.
//
//	ours      the handler saves one observation with the Worker's
//	          Store().Save (the StateSink: read, then one transaction that
//	          inserts the resource row, its history row and its outbox row)
//	baseline  raw consumer (prefetch 100, rawHandlers goroutines) doing one
//	          autocommit INSERT per message
func BenchmarkEndToEndDurable(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		amqpURL(b) // skip before creating a database
		dsn := testenv.MySQLDSN(b)
		var w *worker.Worker
		attrs := json.RawMessage(`{"image":"debian-13","size":"m1.small","state":"running"}`)
		endToEndOurs(b, persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, func(ww *worker.Worker) worker.HandlerFunc {
			w = ww
			return func(ctx context.Context, a worker.Action) error {
				_, err := w.Sink().Save(ctx, state.Target{Account: a.Account, Customer: a.Customer, Kind: "server"},
					state.Snapshot{Observations: []state.Observation{{ID: a.Resource, Attributes: attrs}}})
				return err
			}
		})
	})
	b.Run("baseline", func(b *testing.B) {
		amqpURL(b)
		db, err := sql.Open("mysql", testenv.MySQLDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(rawHandlers)
		if _, err := db.Exec(`CREATE TABLE bench_rows (id VARCHAR(64) NOT NULL PRIMARY KEY, body LONGTEXT NOT NULL,
			created_at DATETIME(6) NOT NULL) ENGINE=InnoDB`); err != nil {
			b.Fatal(err)
		}
		endToEndRaw(b, rawHandlers, func(ctx context.Context, d amqp.Delivery) error {
			_, err := db.ExecContext(ctx, "INSERT INTO bench_rows (id, body, created_at) VALUES (?, ?, ?)",
				d.MessageId, d.Body, time.Now().UTC())
			return err
		})
	})
}

// endToEndOurs runs a Worker on RabbitMQ with store db; handler (nil: a
// no-op) builds the handler once the worker exists.
func endToEndOurs(b *testing.B, db persist.DBConfig, handler func(*worker.Worker) worker.HandlerFunc) {
	url := amqpURL(b)
	prefix := testenv.UniqueName(b)
	topo := worker.Topology{Prefix: prefix}
	testenv.DeleteQueuesOnCleanup(b, url, topo.Topics()...) // every queue the worker may declare
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, worker.Config{
		// BENCH_CONSUMERS and BENCH_PREFETCH override the defaults (0) for tuning runs.
		MQ:       worker.MQConfig{URL: url, Consumers: envInt("BENCH_CONSUMERS", 0), Prefetch: envInt("BENCH_PREFETCH", 0)},
		Store:    persist.Config{Provisioning: db, Logger: quiet},
		Topology: topo,
		Logger:   quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	c := newCounter(b.N)
	h := worker.HandlerFunc(func(context.Context, worker.Action) error { return nil })
	if handler != nil {
		h = handler(w)
	}
	if err := w.Handle(noopType, worker.HandlerFunc(func(ctx context.Context, a worker.Action) error {
		if err := h(ctx, a); err != nil {
			return err
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

// endToEndRaw is the hand-rolled equivalent: the raw publisher on one
// connection, and on another one consumer (prefetch 100, manual acks) whose
// deliveries `handlers` goroutines take; handle nil is a no-op.
func endToEndRaw(b *testing.B, handlers int, handle func(context.Context, amqp.Delivery) error) {
	url := amqpURL(b)
	pc := rawConn(b, url)
	q := rawQueue(b, url, pc)
	p := newRawPublisher(b, pc)
	cc := rawConn(b, url)
	ch, err := cc.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Qos(100, 0, false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := timeoutCtx(b)
	c := newCounter(b.N)
	for range handlers {
		go func() {
			for d := range deliveries {
				if handle != nil {
					if err := handle(ctx, d); err != nil {
						b.Error(err)
						_ = d.Nack(false, true)
						continue
					}
				}
				if err := d.Ack(false); err != nil {
					b.Error(err)
				}
				c.inc()
			}
		}()
	}
	msgs := encodedMessages(b, b.N)
	pubs := make([]amqp.Publishing, b.N)
	for i, m := range msgs {
		pubs[i] = rawPublishing(m.Payload)
		pubs[i].MessageId = m.UUID
	}

	b.ResetTimer()
	begin := time.Now()
	if err := parallel(b.N, callers, func(i int) error { return p.publish(ctx, q, false, pubs[i]) }); err != nil {
		b.Fatal(err)
	}
	c.wait(b, 5*time.Minute)
	elapsed := time.Since(begin)
	b.StopTimer()
	reportRate(b, b.N, elapsed, "msg/s")
}
