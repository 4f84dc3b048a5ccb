package bench

import (
	"context"
	"testing"
	"time"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
)

// batchCallers and batchSize are the batch pairs' settings, the same as the
// peers' (bench/peers): batchCallers goroutines publish batches of
// batchSize actions.
var (
	batchCallers = envInt("BENCH_BATCH_CALLERS", 4)
	batchSize    = envInt("BENCH_BATCH", 1000)
)

// BenchmarkPublishBatch is the batch-enqueue pair: batchCallers goroutines
// publish b.N actions in batches of batchSize, each Publish returning once
// the broker confirmed its messages (durable queue, persistent messages).
//
//	ours      a publisher Worker on RabbitMQ with its defaults: each batch
//	          travels as packed messages of up to 256 actions (MQ.PackActions)
//	unpacked  the same with MQ.PackActions 1: a message per action (reference:
//	          the broker's cost per message bounds it)
//
// The peer is River on PostgreSQL's InsertManyFast with the same batches
// (bench/peers BenchmarkRiverPG/batch-insert).
func BenchmarkPublishBatch(b *testing.B) {
	b.Run("ours", func(b *testing.B) { publishBatch(b, 0) })
	b.Run("unpacked", func(b *testing.B) { publishBatch(b, 1) })
}

func publishBatch(b *testing.B, pack int) {
	url := amqpURL(b)
	topo := worker.Topology{Prefix: testenv.UniqueName(b)}
	testenv.DeleteQueuesOnCleanup(b, url, topo.Topics()...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, worker.Config{
		Role:     worker.RolePublisher,
		MQ:       worker.MQConfig{URL: url, PackActions: pack},
		Store:    persist.Config{Provisioning: persist.DBConfig{Driver: persist.SQLite, DSN: persist.MemoryDSN}, Logger: quiet},
		Topology: topo,
		Logger:   quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	batches := make([][]worker.Action, (b.N+batchSize-1)/batchSize)
	for i := range batches {
		for j := i * batchSize; j < min(b.N, (i+1)*batchSize); j++ {
			batches[i] = append(batches[i], benchAction(j))
		}
	}
	pctx := timeoutCtx(b)
	b.ResetTimer()
	begin := time.Now()
	if err := parallel(len(batches), batchCallers, func(i int) error { return w.Publish(pctx, batches[i]...) }); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	reportRate(b, b.N, elapsed, "msg/s")
}
