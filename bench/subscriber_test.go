package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	worker "github.com/stratusworks/worker"
)

// pubWindow is how many messages a gochannel benchmark keeps in flight.
const pubWindow = 1000

// BenchmarkSubscriberGoChannel is pair 1: the subscriber path alone on
// Watermill's gochannel, one subscription, a no-op handler. Messages are
// encoded by our Publisher before the timer starts and published by one
// goroutine that keeps pubWindow in flight.
//
//	ours      worker.Subscriber with its default middleware: concurrency
//	          limit, timeout, panic recovery, retry policy, poison store,
//	          action decoding and dispatch by type
//	baseline  a bare message.Router with a no-op handler
//	stock     the same Router with Watermill's Recoverer, Timeout, Retry and
//	          PoisonQueue middleware (a reference line, not part of the pair)
func BenchmarkSubscriberGoChannel(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		runGoChannel(b, func(b *testing.B, gc *gochannel.GoChannel, topic string, handled func()) func() {
			s, err := worker.NewSubscriber(worker.SubscriberConfig{
				Subscriber: gc, Poison: &memPoison{}, Logger: quiet,
			})
			if err != nil {
				b.Fatal(err)
			}
			err = s.Handle(noopType, worker.HandlerFunc(func(context.Context, worker.Action) error {
				handled()
				return nil
			}))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			select {
			case <-s.Running():
			case err := <-done:
				b.Fatal(err)
			}
			return func() { cancel(); <-done }
		})
	})
	b.Run("baseline", func(b *testing.B) {
		runGoChannel(b, func(b *testing.B, gc *gochannel.GoChannel, topic string, handled func()) func() {
			return runRouter(b, gc, topic, handled)
		})
	})
	b.Run("stock", func(b *testing.B) {
		runGoChannel(b, func(b *testing.B, gc *gochannel.GoChannel, topic string, handled func()) func() {
			poisonPub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
			poison, err := middleware.PoisonQueue(poisonPub, "poison")
			if err != nil {
				b.Fatal(err)
			}
			retry := middleware.Retry{MaxRetries: 4, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Minute, Multiplier: 2, RandomizationFactor: 0.2}
			return runRouter(b, gc, topic, handled,
				poison, retry.Middleware, middleware.Timeout(time.Minute), middleware.Recoverer)
		})
	})
}

// runRouter starts a bare Router on topic with a no-op handler and the given
// middleware (first outermost) and returns its stop function.
func runRouter(b *testing.B, sub message.Subscriber, topic string, handled func(), mw ...message.HandlerMiddleware) func() {
	b.Helper()
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	r.AddMiddleware(mw...)
	r.AddConsumerHandler("noop", topic, sub, func(*message.Message) error {
		handled()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-done:
		b.Fatal(err)
	}
	return func() { cancel(); _ = r.Close(); <-done }
}

// runGoChannel times b.N messages through the consumer that start sets up on
// a fresh gochannel; start returns its stop function.
func runGoChannel(b *testing.B, start func(b *testing.B, gc *gochannel.GoChannel, topic string, handled func()) (stop func())) {
	const topic = "worker.actions" // our default topology's actions queue
	msgs := encodedMessages(b, b.N)
	gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer gc.Close()
	c := newCounter(b.N)
	stop := start(b, gc, topic, c.inc)
	defer stop()

	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for i, m := range msgs {
		c.waitBelow(i, pubWindow)
		if err := gc.Publish(topic, m); err != nil {
			b.Fatal(err)
		}
	}
	c.wait(b, time.Minute)
	elapsed := time.Since(begin)
	b.StopTimer()
	reportRate(b, b.N, elapsed, "msg/s")
}
