package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/rabbitmq"
)

// BenchmarkPublishConfirmed is pair 2: publishing to a durable RabbitMQ
// queue, persistent messages, every one confirmed by the broker before the
// caller's Publish returns. `callers` goroutines publish one message per call
// on both sides.
//
//	ours       a publisher Worker with its defaults, as production runs it:
//	           worker.Publisher (validation, defaults, JSON encoding) on
//	           rabbitmq.Publisher (one confirm channel, pipelined confirms,
//	           mandatory, no headers: the body says it all)
//	baseline   raw amqp091-go: one confirm channel, deferred confirms
//	baseline-samehdrs
//	           raw amqp091-go sending the in-process metadata (version and
//	           type) as headers with a message id: what ours sent before
//	           issue 16 (reference: the broker's cost of two headers)
//	transport  rabbitmq.Publisher alone with pre-encoded messages (reference)
//	wmamqp-pool1, wmamqp-pool0
//	           watermill-amqp's publisher with ConfirmDelivery and a channel
//	           pool of 1, and of 0 (its default: a channel per Publish)
func BenchmarkPublishConfirmed(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		url := amqpURL(b)
		topo := worker.Topology{Prefix: testenv.UniqueName(b)}
		testenv.DeleteQueuesOnCleanup(b, url, topo.Topics()...)
		ctx := timeoutCtx(b)
		w, err := worker.New(ctx, worker.Config{
			Role:     worker.RolePublisher,
			MQ:       worker.MQConfig{URL: url},
			Store:    persist.Config{Provisioning: persist.DBConfig{Driver: persist.SQLite, DSN: persist.MemoryDSN}, Logger: quiet},
			Topology: topo,
			Logger:   quiet,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		actions := make([]worker.Action, b.N)
		for i := range actions {
			actions[i] = benchAction(i)
		}
		timeParallel(b, func(i int) error { return w.Publish(ctx, actions[i]) })
	})
	b.Run("baseline", func(b *testing.B) {
		url := amqpURL(b)
		c := rawConn(b, url)
		q := rawQueue(b, url, c)
		p := newRawPublisher(b, c)
		pub := rawPublishing(encodedMessages(b, 1)[0].Payload)
		ctx := timeoutCtx(b)
		timeParallel(b, func(int) error { return p.publish(ctx, q, false, pub) })
	})
	b.Run("baseline-samehdrs", func(b *testing.B) {
		url := amqpURL(b)
		c := rawConn(b, url)
		q := rawQueue(b, url, c)
		p := newRawPublisher(b, c)
		msgs := encodedMessages(b, b.N)
		ctx := timeoutCtx(b)
		timeParallel(b, func(i int) error { return p.publish(ctx, q, true, sameAsOurs(msgs[i])) })
	})
	b.Run("transport", func(b *testing.B) {
		url := amqpURL(b)
		q := testenv.UniqueName(b)
		testenv.DeleteQueuesOnCleanup(b, url, q)
		rp, err := rabbitmq.NewPublisher(context.Background(), rabbitmq.Config{URL: url, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer rp.Close()
		if err := rp.SubscribeInitialize(q); err != nil {
			b.Fatal(err)
		}
		msgs := encodedMessages(b, b.N)
		timeParallel(b, func(i int) error { return rp.Publish(q, msgs[i]) })
	})
	for _, pool := range []int{1, 0} {
		b.Run("wmamqp-pool"+string(rune('0'+pool)), func(b *testing.B) {
			url := amqpURL(b)
			q := testenv.UniqueName(b)
			testenv.DeleteQueuesOnCleanup(b, url, q)
			cfg := wmamqp.NewDurableQueueConfig(url)
			cfg.Publish.ConfirmDelivery = true
			cfg.Publish.ChannelPoolSize = pool
			p, err := wmamqp.NewPublisher(cfg, watermill.NopLogger{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			msgs := encodedMessages(b, b.N+1)
			if err := p.Publish(q, msgs[b.N]); err != nil { // declares the queue
				b.Fatal(err)
			}
			timeParallel(b, func(i int) error { return p.Publish(q, msgs[i]) })
		})
	}
}

// timeParallel times b.N calls of publish spread over `callers` goroutines
// and reports msg/s.
func timeParallel(b *testing.B, publish func(i int) error) {
	b.Helper()
	b.ResetTimer()
	begin := time.Now()
	err := parallel(b.N, callers, publish)
	elapsed := time.Since(begin)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	reportRate(b, b.N, elapsed, "msg/s")
}

var _ message.Publisher = (*rabbitmq.Publisher)(nil)
