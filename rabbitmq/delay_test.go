package rabbitmq

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// delayTopic is a unique queue name whose wait queues are deleted with it.
func delayTopic(t *testing.T, amqpURL string) string {
	q := testenv.UniqueName(t)
	names := []string{q}
	for _, b := range delayBuckets {
		names = append(names, waitQueue(q, b))
	}
	testenv.DeleteQueuesOnCleanup(t, amqpURL, names...)
	return q
}

func TestBucketFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		delay time.Duration
		want  time.Duration
	}{
		{-time.Second, time.Second},
		{0, time.Second},
		{300 * time.Millisecond, time.Second},
		{time.Second, time.Second},
		{1999 * time.Millisecond, time.Second},
		{2 * time.Second, 2 * time.Second},
		{2500 * time.Millisecond, 2 * time.Second},
		{time.Minute, 45 * time.Second},
		{59 * time.Minute, 30 * time.Minute},
		{time.Hour, time.Hour},
		{48 * time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.delay.String(), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, bucketFor(tt.delay).delay)
		})
	}
}

// TestDelayBuckets: at most 12, from 1s to 1h, about geometric (each at
// most 2.5 times the one before, so a delay is covered in few hops), names
// as time.Duration would say them, but shorter.
func TestDelayBuckets(t *testing.T) {
	t.Parallel()
	require.LessOrEqual(t, len(delayBuckets), 12)
	require.Equal(t, time.Second, delayBuckets[0].delay)
	require.Equal(t, time.Hour, delayBuckets[len(delayBuckets)-1].delay)
	for i, b := range delayBuckets {
		d, err := time.ParseDuration(b.name)
		require.NoError(t, err)
		require.Equal(t, b.delay, d, b.name)
		if i > 0 {
			ratio := float64(b.delay) / float64(delayBuckets[i-1].delay)
			require.True(t, ratio >= 1.5 && ratio <= 2.5, "%s after %s", b.name, delayBuckets[i-1].name)
		}
	}
	require.Equal(t, "orders.wait.45s", waitQueue("orders", bucketFor(50*time.Second)))
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	for _, b := range delayBuckets {
		require.Contains(t, string(doc), waitQueue("<topic>", b), "doc.go lists every wait queue")
	}
	_, _, err = waitQueueFor(strings.Repeat("q", 250), time.Second)
	require.ErrorContains(t, err, "AMQP allows 255")
}

// TestRabbitMQPublishDelayed: a delayed message comes back to its topic
// after its bucket (the largest not longer than the delay, at least 1s),
// never much later than asked, with its body, UUID and headers, and with
// RabbitMQ's x-death header as a string.
func TestRabbitMQPublishDelayed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		delay  time.Duration
		bucket time.Duration
	}{
		{"Zero", 0, time.Second},
		{"300ms", 300 * time.Millisecond, time.Second},
		{"1s", time.Second, time.Second},
		{"2500ms", 2500 * time.Millisecond, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			pub, sub := newPair(t, cfg)
			q := delayTopic(t, cfg.URL)
			msgs, err := sub.Subscribe(context.Background(), q)
			require.NoError(t, err)
			m := message.NewMessage("m-1", []byte("body"))
			m.Metadata.Set("worker_not_before", "2026-01-01T00:00:00Z")
			m.Metadata.Set("k", "v")
			start := time.Now()
			require.NoError(t, pub.PublishDelayed(q, tt.delay, m))
			got := next(t, msgs)
			took := time.Since(start)
			got.Ack()
			require.GreaterOrEqual(t, took, tt.bucket-50*time.Millisecond, "not before its bucket")
			require.Less(t, took, max(tt.delay, tt.bucket)+1500*time.Millisecond, "not much later than asked (the bucket for shorter delays)")
			require.Equal(t, "m-1", got.UUID)
			require.Equal(t, "body", string(got.Payload))
			require.Equal(t, "v", got.Metadata.Get("k"))
			require.Equal(t, "2026-01-01T00:00:00Z", got.Metadata.Get("worker_not_before"))
			wq := waitQueue(q, bucketFor(tt.delay))
			requireXDeath(t, got, wq, "expired", 1)
			require.Equal(t, wq, got.Metadata.Get("x-first-death-queue"))
			require.Zero(t, readyMessages(t, cfg.URL, wq))
			t.Logf("delay %v came back after %v", tt.delay, took.Round(time.Millisecond))
		})
	}
}

// requireXDeath checks m's x-death metadata: RabbitMQ's table as JSON.
func requireXDeath(t *testing.T, m *message.Message, queue, reason string, count int) {
	t.Helper()
	var deaths []struct {
		Count  int    `json:"count"`
		Queue  string `json:"queue"`
		Reason string `json:"reason"`
		Time   string `json:"time"`
	}
	require.NoError(t, json.Unmarshal([]byte(m.Metadata.Get("x-death")), &deaths), m.Metadata.Get("x-death"))
	require.NotEmpty(t, deaths)
	require.Equal(t, queue, deaths[0].Queue)
	require.Equal(t, reason, deaths[0].Reason)
	require.Equal(t, count, deaths[0].Count)
	_, err := time.Parse(time.RFC3339, deaths[0].Time)
	require.NoError(t, err)
	require.Equal(t, reason, m.Metadata.Get("x-first-death-reason"))
	require.NotContains(t, m.Metadata, MetadataMalformed)
}

// TestRabbitMQPublishDelayedLongDoesNotHoldUpShort: a message delayed by
// an hour, published first, does not hold up one delayed by a second
// published after it: they wait in different queues.
func TestRabbitMQPublishDelayedLongDoesNotHoldUpShort(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, sub := newPair(t, cfg)
	q := delayTopic(t, cfg.URL)
	require.NoError(t, pub.PublishDelayed(q, 2*time.Hour, message.NewMessage("long", []byte("x"))))
	start := time.Now()
	require.NoError(t, pub.PublishDelayed(q, time.Second, message.NewMessage("short", []byte("x"))))
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	got := next(t, msgs)
	require.Equal(t, "short", got.UUID)
	require.Less(t, time.Since(start), 2500*time.Millisecond)
	got.Ack()
	require.Equal(t, 1, readyMessages(t, cfg.URL, waitQueue(q, bucketFor(time.Hour))), "the long one still waits")
	requireNothingHandedOut(t, msgs)
}

// TestRabbitMQPublishDelayedAgain: a message that came back is delayed
// again as it was received (its x-death metadata a string): it comes back
// again with the broker's own fresh x-death, and the headers it had.
func TestRabbitMQPublishDelayedAgain(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, sub := newPair(t, cfg)
	q := delayTopic(t, cfg.URL)
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	m := message.NewMessage("m-1", []byte("x"))
	m.Metadata.Set("k", "v")
	require.NoError(t, pub.PublishDelayed(q, time.Second, m))
	first := next(t, msgs)
	requireXDeath(t, first, waitQueue(q, bucketFor(time.Second)), "expired", 1)
	require.NoError(t, pub.PublishDelayed(q, 2*time.Second, first))
	first.Ack()
	again := next(t, msgs)
	again.Ack()
	require.Equal(t, "m-1", again.UUID)
	require.Equal(t, "v", again.Metadata.Get("k"))
	requireXDeath(t, again, waitQueue(q, bucketFor(2*time.Second)), "expired", 1)
}

// TestRabbitMQWaitQueueArguments: a wait queue has the TTL of its bucket,
// dead-letters to its topic, and does not expire (a declaration with
// exactly these arguments succeeds only if the queue has exactly them).
func TestRabbitMQWaitQueueArguments(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, _ := newPair(t, cfg)
	q := delayTopic(t, cfg.URL)
	require.NoError(t, pub.PublishDelayed(q, time.Hour, message.NewMessage("m", []byte("x"))))
	conn, err := amqp.Dial(cfg.URL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(waitQueue(q, bucketFor(time.Hour)), true, false, false, false, amqp.Table{
		"x-message-ttl": int64(time.Hour / time.Millisecond), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": q,
	})
	require.NoError(t, err)
}

// TestRabbitMQPublishDelayedAfterReconnect: wait queues are declared again
// on a new connection: one deleted meanwhile is back, not unroutable.
func TestRabbitMQPublishDelayedAfterReconnect(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	cfg, proxy := throughProxy(t, base)
	pub, err := NewPublisher(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	q := delayTopic(t, base.URL)
	require.NoError(t, pub.PublishDelayed(q, time.Hour, message.NewMessage("a", []byte("x"))))

	conn, err := amqp.Dial(base.URL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	wq := waitQueue(q, bucketFor(time.Hour))
	_, err = ch.QueueDelete(wq, false, false, false)
	require.NoError(t, err)

	proxy.Cut()
	time.Sleep(100 * time.Millisecond)
	proxy.Restore()
	require.NoError(t, pub.PublishDelayed(q, time.Hour, message.NewMessage("b", []byte("x"))))
	require.Equal(t, 1, readyMessages(t, base.URL, wq))
}
