//go:build faults

package rabbitmq

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stratusworks/worker/internal/testenv"
)

// TestFaultsRabbitMQWatermillReconnect runs Watermill's reconnect conformance
// test: 10,000 messages from 100 publishers while the broker is restarted
// twice for real by the same script .ci/run uses. It runs in the serial faults
// step of .ci/run.
//
// The harness counts a message as sent once Publish has returned, and compares
// sent with received as soon as the 10,000th message arrives. Our Publish
// returns only after the broker's confirm, which for a persistent message
// comes after the broker has written it to disk; the broker may deliver it to
// the consumer before that. Then the harness sees the last message received
// before it was "sent" and reports it as extra, although nothing was lost. The
// test's subscriber therefore hands a message to the harness only once its
// Publish returned (plus a few milliseconds for the harness's own bookkeeping
// goroutine), which is the ordering the harness assumes.
func TestFaultsRabbitMQWatermillReconnect(t *testing.T) {
	url := testenv.AMQPURL(t)
	prefix := testenv.UniqueName(t)
	deleteQueuesWithPrefix(t, url, prefix)
	features := conformanceFeatures(prefix)
	features.RestartServiceCommand = []string{"../.ci/restart-rabbitmq"}
	base := conformanceConstructor(url, 0)
	constructor := func(t *testing.T) (message.Publisher, message.Subscriber) {
		pub, sub := base(t)
		sent := &sentSet{at: map[string]time.Time{}}
		return &recordingPublisher{Publisher: pub, sent: sent}, &orderedSubscriber{Subscriber: sub, sent: sent}
	}
	tests.TestReconnect(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, constructor)
}

type sentSet struct {
	mu sync.Mutex
	at map[string]time.Time
}

type recordingPublisher struct {
	message.Publisher
	sent *sentSet
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	err := p.Publisher.Publish(topic, msgs...)
	if err == nil {
		p.sent.mu.Lock()
		for _, m := range msgs {
			p.sent.at[m.UUID] = time.Now()
		}
		p.sent.mu.Unlock()
	}
	return err
}

type orderedSubscriber struct {
	message.Subscriber
	sent *sentSet
}

func (s *orderedSubscriber) SubscribeInitialize(topic string) error {
	return s.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic)
}

func (s *orderedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for m := range in {
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
				s.sent.mu.Lock()
				at, ok := s.sent.at[m.UUID]
				s.sent.mu.Unlock()
				if ok && time.Since(at) > 5*time.Millisecond {
					break
				}
				time.Sleep(time.Millisecond)
			}
			out <- m
		}
	}()
	return out, nil
}
