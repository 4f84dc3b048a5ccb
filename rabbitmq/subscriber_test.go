package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// publishN publishes messages id-0 … id-(n-1) to q.
func publishN(t *testing.T, pub *Publisher, q, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		require.NoError(t, pub.Publish(q, message.NewMessage(fmt.Sprintf("%s-%d", prefix, i), []byte("x"))))
	}
}

func next(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		require.True(t, ok, "subscription closed")
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

// requireNothingHandedOut checks that no message comes for a while. It can
// only pass wrongly (too short a wait), never fail wrongly.
func requireNothingHandedOut(t *testing.T, msgs <-chan *message.Message) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("message %s handed out beyond MaxInFlight", m.UUID)
	case <-time.After(100 * time.Millisecond):
	}
}

// consumers is how many consumers q has.
func consumers(t *testing.T, amqpURL, q string) int {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	require.NoError(t, err)
	return st.Consumers
}

// readyMessages is how many messages of q wait in the queue (not unacked).
func readyMessages(t *testing.T, amqpURL, q string) int {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	require.NoError(t, err)
	return st.Messages
}

// TestRabbitMQInFlightOutOfOrder: with MaxInFlight 4 a subscription hands out
// four messages before any verdict; acks and a nack in another order than
// the deliveries' go to the broker one by one (a nack requeues only its own
// message), and the channel stays healthy: every message ends acked.
func TestRabbitMQInFlightOutOfOrder(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Prefetch = 10
	cfg.MaxInFlight = 4
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	publishN(t, pub, q, "m", 6)
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)

	held := map[string]*message.Message{}
	for i := 0; i < 4; i++ {
		m := next(t, msgs)
		held[m.UUID] = m
	}
	require.Len(t, held, 4)
	requireNothingHandedOut(t, msgs)

	// Verdicts in reverse order, one of them a nack.
	require.True(t, held["m-3"].Ack())
	require.True(t, held["m-1"].Ack())
	require.True(t, held["m-2"].Nack())
	require.True(t, held["m-0"].Ack())

	// The two not yet handed out and the nacked one come, in some order.
	rest := map[string]int{}
	for i := 0; i < 3; i++ {
		m := next(t, msgs)
		rest[m.UUID]++
		m.Ack()
	}
	require.Equal(t, map[string]int{"m-2": 1, "m-4": 1, "m-5": 1}, rest)
	// Close returns every unacked delivery to the queue: none may be left.
	require.NoError(t, sub.Close())
	require.Zero(t, readyMessages(t, cfg.URL, q), "every message was acked on the broker")
}

// TestRabbitMQInFlightDrain: when the subscription's ctx is done with
// several messages in hand, their later verdicts still reach the broker, and
// then the channel closes.
func TestRabbitMQInFlightDrain(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxInFlight = 8
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	publishN(t, pub, q, "m", 3)
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, q)
	require.NoError(t, err)
	var held []*message.Message
	for i := 0; i < 3; i++ {
		held = append(held, next(t, msgs))
	}
	cancel()
	held[0].Ack()
	held[1].Nack()
	held[2].Ack()
	for m := range msgs { // closes once the verdicts are in; nothing new comes
		t.Fatalf("message %s handed out after ctx was done", m.UUID)
	}

	again, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	m := next(t, again)
	require.Equal(t, held[1].UUID, m.UUID, "only the nacked message comes back")
	m.Ack()
	require.NoError(t, sub.Close())
	require.Zero(t, readyMessages(t, cfg.URL, q))
}

// TestRabbitMQInFlightClose: Close nacks every message in hand.
func TestRabbitMQInFlightClose(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxInFlight = 8
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	publishN(t, pub, q, "m", 3)
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		next(t, msgs)
	}
	require.NoError(t, sub.Close())
	require.Equal(t, 3, readyMessages(t, cfg.URL, q))
}

// TestRabbitMQInFlightAcrossReconnect: messages in hand when the connection
// drops are acked after the subscription consumed again on a new channel.
// Those acks go to the dead channel and are lost, so the broker redelivers
// the messages; above all they must not reach the new channel, where their
// delivery tags name other deliveries (a wrong or doubled ack would close it).
func TestRabbitMQInFlightAcrossReconnect(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	cfg, proxy := throughProxy(t, base)
	cfg.ReconnectInitialInterval = 10 * time.Millisecond
	cfg.ReconnectMaxInterval = 100 * time.Millisecond
	cfg.MaxInFlight = 4
	sub, err := NewSubscriber(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	pub, err := NewPublisher(context.Background(), base)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	q := queue(t, base.URL)
	publishN(t, pub, q, "old", 4)

	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	var old []*message.Message
	for i := 0; i < 4; i++ {
		old = append(old, next(t, msgs))
	}
	proxy.Cut()
	require.Eventually(t, func() bool { return consumers(t, base.URL, q) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the broker sees the connection gone")
	proxy.Restore()
	require.Eventually(t, func() bool { return consumers(t, base.URL, q) == 1 }, 10*time.Second, 10*time.Millisecond,
		"the subscription consumes again")
	// The old messages hold all four slots; their acks go to the dead channel.
	for _, m := range old {
		m.Ack()
	}
	// So the broker redelivers them, on the new channel.
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		m := next(t, msgs)
		seen[m.UUID]++
		m.Ack()
	}
	// More traffic on the new channel: it must still be healthy.
	publishN(t, pub, q, "later", 2)
	for i := 0; i < 2; i++ {
		m := next(t, msgs)
		seen[m.UUID]++
		m.Ack()
	}
	require.Equal(t, map[string]int{"old-0": 1, "old-1": 1, "old-2": 1, "old-3": 1, "later-0": 1, "later-1": 1}, seen)
	require.NoError(t, sub.Close())
	require.Zero(t, readyMessages(t, base.URL, q), "every message was acked on the new channel")
}
