package bench

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// latencyRate is the paced publish rate of BenchmarkLatency (actions/s).
var latencyRate = envInt("BENCH_LATENCY_RATE", 300)

// BenchmarkLatency is the tail pair: a Worker in production mode (RabbitMQ
// + MariaDB, default settings) handles actions published one at a time at
// latencyRate (300/s) for b.N actions (bench/run: 3000, 10 s); each
// handler saves one observation (durable-row: one durable row, as pair
// 3b) or does nothing (noop). Latency is from just before Publish to the
// end of the handler (the effect durable).
// It reports p50, p99 and their ratio, p99/p50 (target <= 10).
func BenchmarkLatency(b *testing.B) {
	if os.Getenv("BENCH_LATENCY") == "" {
		// Paced, so b.N sets how long it runs, not how precise it is:
		// bench/run runs it on its own with a fixed count.
		b.Skip("BENCH_LATENCY unset: run BENCH_LATENCY=1 go test -bench Latency -benchtime 3000x (bench/run does)")
	}
	b.Run("durable-row", func(b *testing.B) { latency(b, true) })
	b.Run("noop", func(b *testing.B) { latency(b, false) })
	b.Run("raw-noop", latencyRaw)
}

// latencyRaw is the noop case on raw amqp091-go (reference): a confirmed
// persistent publish per action, one consumer with prefetch 100 and a
// manual ack; latency from before the publish to the delivery's handling.
func latencyRaw(b *testing.B) {
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
	n := b.N
	var mu sync.Mutex
	sent := make([]time.Time, n)
	took := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		for d := range deliveries {
			i, _ := strconv.Atoi(d.MessageId)
			mu.Lock()
			took = append(took, time.Since(sent[i]))
			if len(took) == n {
				close(done)
			}
			mu.Unlock()
			_ = d.Ack(false)
		}
	}()
	msgs := encodedMessages(b, n)
	ctx := timeoutCtx(b)
	gap := time.Second / time.Duration(latencyRate)
	b.ResetTimer()
	start := time.Now()
	var pubs sync.WaitGroup
	for i := range msgs {
		if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
			time.Sleep(d)
		}
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		pub := rawPublishing(msgs[i].Payload)
		pub.MessageId = strconv.Itoa(i)
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			if err := p.publish(ctx, q, false, pub); err != nil {
				b.Error(err)
			}
		}()
	}
	pubs.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("not every message was consumed within 2 minutes")
	}
	b.StopTimer()
	reportLatency(b, took)
}

func reportLatency(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	p50, p99 := took[len(took)/2], took[min(len(took)-1, len(took)*99/100)]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(p99)/float64(max(p50, 1)), "p99/p50")
}

func latency(b *testing.B, row bool) {
	url := amqpURL(b)
	dsn := testenv.MySQLDSN(b)
	topo := worker.Topology{Prefix: testenv.UniqueName(b)}
	testenv.DeleteQueuesOnCleanup(b, url, topo.Topics()...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, worker.Config{
		MQ:       worker.MQConfig{URL: url},
		Store:    persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, Logger: quiet},
		Topology: topo,
		Logger:   quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	var mu sync.Mutex
	sent := make([]time.Time, n)
	took := make([]time.Duration, 0, n)
	done := make(chan struct{})
	attrs := json.RawMessage(`{"image":"debian-13","size":"m1.small","state":"running"}`)
	if err := w.HandleFunc(noopType, func(ctx context.Context, a worker.Action) error {
		if row {
			_, err := w.Sink().Save(ctx, state.Target{Account: a.Account, Customer: a.Customer, Kind: "server"},
				state.Snapshot{Observations: []state.Observation{{ID: a.Resource, Attributes: attrs}}})
			if err != nil {
				return err
			}
		}
		i, _ := strconv.Atoi(a.CorrelationID)
		mu.Lock()
		took = append(took, time.Since(sent[i]))
		if len(took) == n {
			close(done)
		}
		mu.Unlock()
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	run := make(chan error, 1)
	go func() { run <- w.Run(ctx) }()
	select {
	case <-w.Running():
	case err := <-run:
		b.Fatal(err)
	}
	defer func() { cancel(); <-run }()
	actions := make([]worker.Action, n)
	for i := range actions {
		actions[i] = benchAction(i)
		actions[i].CorrelationID = strconv.Itoa(i)
	}
	pctx := timeoutCtx(b)
	gap := time.Second / time.Duration(latencyRate)
	b.ResetTimer()
	start := time.Now()
	var pubs sync.WaitGroup
	for i := range actions {
		if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
			time.Sleep(d)
		}
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		pubs.Add(1)
		go func() { // paced, not closed-loop: a slow publish does not hold back the next
			defer pubs.Done()
			if err := w.Publish(pctx, actions[i]); err != nil {
				b.Error(err)
			}
		}()
	}
	pubs.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("not every action was handled within 2 minutes")
	}
	b.StopTimer()
	reportLatency(b, took)
}
