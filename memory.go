package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// memoryPubSub is the embedded transport: Watermill's gochannel, plus the one
// thing gochannel lacks for a work queue. gochannel drops a message published to
// a topic nobody subscribes to yet; a queue keeps it. Topics declared with
// SubscribeInitialize (the Publisher declares its topics) hold such messages in
// order until the first subscriber arrives, as a RabbitMQ queue would.
//
// Like every in-memory transport it keeps nothing across a restart.
type memoryPubSub struct {
	gc *gochannel.GoChannel

	mu       sync.Mutex
	declared map[string]bool
	subs     map[string]int
	backlog  map[string][]*message.Message
	timers   map[*time.Timer]struct{} // delayed publishes not yet due
	closed   bool
}

func newMemoryPubSub(logger watermill.LoggerAdapter) *memoryPubSub {
	return &memoryPubSub{
		gc:       gochannel.NewGoChannel(gochannel.Config{}, logger),
		declared: map[string]bool{},
		subs:     map[string]int{},
		backlog:  map[string][]*message.Message{},
		timers:   map[*time.Timer]struct{}{},
	}
}

// SubscribeInitialize declares topic: from now on nothing published to it is lost
// for want of a subscriber.
func (m *memoryPubSub) SubscribeInitialize(topic string) error {
	m.mu.Lock()
	m.declared[topic] = true
	m.mu.Unlock()
	return nil
}

func (m *memoryPubSub) Publish(topic string, msgs ...*message.Message) error {
	m.mu.Lock()
	if m.declared[topic] && m.subs[topic] == 0 {
		for _, msg := range msgs {
			m.backlog[topic] = append(m.backlog[topic], msg.Copy())
		}
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	return m.gc.Publish(topic, msgs...)
}

func (m *memoryPubSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, err := m.gc.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	m.subs[topic]++
	if held := m.backlog[topic]; len(held) > 0 {
		delete(m.backlog, topic)
		if err := m.gc.Publish(topic, held...); err != nil {
			return nil, err
		}
	}
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		m.subs[topic]--
		m.mu.Unlock()
	}()
	return ch, nil
}

// PublishDelayed publishes msgs to topic after delay (a timer: like
// everything in memory, it does not survive the process).
func (m *memoryPubSub) PublishDelayed(topic string, delay time.Duration, msgs ...*message.Message) error {
	copies := make([]*message.Message, len(msgs))
	for i, msg := range msgs {
		copies[i] = msg.Copy()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("worker: memory transport closed")
	}
	var t *time.Timer
	t = time.AfterFunc(max(delay, 0), func() {
		m.mu.Lock()
		_, pending := m.timers[t]
		delete(m.timers, t)
		m.mu.Unlock()
		if pending {
			_ = m.Publish(topic, copies...)
		}
	})
	m.timers[t] = struct{}{}
	return nil
}

func (m *memoryPubSub) Close() error {
	m.mu.Lock()
	m.closed = true
	for t := range m.timers {
		t.Stop()
	}
	clear(m.timers)
	m.mu.Unlock()
	return m.gc.Close()
}
