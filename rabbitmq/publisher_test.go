package rabbitmq

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// rawGet takes the next message of q with plain amqp091 (acking it).
func rawGet(t *testing.T, amqpURL, q string) amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	var d amqp.Delivery
	require.Eventually(t, func() bool {
		var ok bool
		d, ok, err = ch.Get(q, true)
		require.NoError(t, err)
		return ok
	}, 10*time.Second, 10*time.Millisecond)
	return d
}

// TestRabbitMQWireHeaders: the UUID travels as the AMQP message id, and in
// UUIDHeader too with SendUUIDHeader; Headers selects the metadata sent as
// headers.
func TestRabbitMQWireHeaders(t *testing.T) {
	t.Parallel()
	t.Run("Default", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		pub, _ := newPair(t, cfg)
		q := queue(t, cfg.URL)
		m := message.NewMessage("id-1", []byte("x"))
		m.Metadata.Set("a", "1")
		require.NoError(t, pub.Publish(q, m))
		d := rawGet(t, cfg.URL, q)
		require.Equal(t, "id-1", d.MessageId)
		require.Equal(t, amqp.Table{"a": "1"}, d.Headers)
	})
	t.Run("SendUUIDHeader", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.SendUUIDHeader = true
		pub, _ := newPair(t, cfg)
		q := queue(t, cfg.URL)
		require.NoError(t, pub.Publish(q, message.NewMessage("id-1", []byte("x"))))
		d := rawGet(t, cfg.URL, q)
		require.Equal(t, "id-1", d.MessageId)
		require.Equal(t, amqp.Table{UUIDHeader: "id-1"}, d.Headers)
	})
	t.Run("Selected", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.Headers = func(k string) bool { return k == "keep" }
		pub, sub := newPair(t, cfg)
		q := queue(t, cfg.URL)
		m := message.NewMessage("id-1", []byte("x"))
		m.Metadata.Set("keep", "1")
		m.Metadata.Set("drop", "2")
		require.NoError(t, pub.Publish(q, m))
		d := rawGet(t, cfg.URL, q)
		require.Equal(t, "id-1", d.MessageId)
		require.Equal(t, amqp.Table{"keep": "1"}, d.Headers)

		require.NoError(t, pub.Publish(q, m))
		msgs, err := sub.Subscribe(context.Background(), q)
		require.NoError(t, err)
		got := next(t, msgs)
		require.Equal(t, "id-1", got.UUID)
		require.Equal(t, message.Metadata{"keep": "1"}, got.Metadata)
		got.Ack()
	})
}

// TestRabbitMQUUIDNotAMessageID: a UUID another message awaiting its confirm
// has, or one too long for an AMQP message id, travels in UUIDHeader and
// reaches the subscriber intact.
func TestRabbitMQUUIDNotAMessageID(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Headers = func(string) bool { return false }
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	long := strings.Repeat("u", 300)
	require.NoError(t, pub.Publish(q,
		message.NewMessage("same", []byte("1")), message.NewMessage("same", []byte("2")), message.NewMessage(long, []byte("3"))))
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	got := map[string]string{}
	for i := 0; i < 3; i++ {
		m := next(t, msgs)
		got[string(m.Payload)] = m.UUID
		m.Ack()
	}
	require.Equal(t, map[string]string{"1": "same", "2": "same", "3": long}, got)
}

// TestRabbitMQUnroutableSameUUID: returns are matched to their messages even
// when several messages in flight share a UUID.
func TestRabbitMQUnroutableSameUUID(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Headers = func(string) bool { return false }
	pub, _ := newPair(t, cfg)
	q := queue(t, cfg.URL)
	require.NoError(t, pub.SubscribeInitialize(q))
	conn, err := amqp.Dial(cfg.URL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(q, false, false, false)
	require.NoError(t, err)
	err = pub.Publish(q, message.NewMessage("same", []byte("1")), message.NewMessage("same", []byte("2")))
	require.ErrorIs(t, err, ErrUnroutable)
}

// TestConfirmChannelUniqueMessageIDs: returns name their message by message
// id, so no two messages awaiting a confirm on a channel share one.
func TestConfirmChannelUniqueMessageIDs(t *testing.T) {
	t.Parallel()
	cc := &confirmChannel{pending: map[uint64]*waiter{}, ids: map[string]int{}}
	publishing := func(id string) *amqp.Publishing {
		return &amqp.Publishing{MessageId: id, Headers: amqp.Table{}}
	}
	p1, w1 := publishing("same"), &waiter{done: make(chan struct{})}
	require.True(t, cc.add(1, w1, p1))
	require.Equal(t, "same", p1.MessageId)
	require.NotContains(t, p1.Headers, UUIDHeader)

	p2 := publishing("same")
	require.True(t, cc.add(2, &waiter{done: make(chan struct{})}, p2))
	require.NotEqual(t, "same", p2.MessageId)
	require.Equal(t, "same", p2.Headers[UUIDHeader])

	p3 := publishing(p2.MessageId) // a UUID that happens to equal the made-up id
	require.True(t, cc.add(3, &waiter{done: make(chan struct{})}, p3))
	require.NotEqual(t, p2.MessageId, p3.MessageId)
	require.Equal(t, p2.MessageId, p3.Headers[UUIDHeader])

	long := publishing(strings.Repeat("u", 256))
	require.True(t, cc.add(4, &waiter{done: make(chan struct{})}, long))
	require.LessOrEqual(t, len(long.MessageId), 255)
	require.Equal(t, strings.Repeat("u", 256), long.Headers[UUIDHeader])

	// Once the first is confirmed its UUID is free again (the second is
	// pending under its made-up id).
	cc.mu.Lock()
	delete(cc.pending, 1)
	cc.resolved(w1)
	cc.mu.Unlock()
	p5 := publishing("same")
	require.True(t, cc.add(5, &waiter{done: make(chan struct{})}, p5))
	require.Equal(t, "same", p5.MessageId)
}

// TestPublishingExpiration: MetadataExpiration becomes the message's TTL
// (the AMQP expiration property), not a header; a delayed message keeps
// the delay's own TTL handling.
func TestPublishingExpiration(t *testing.T) {
	t.Parallel()
	m := message.NewMessage("id-1", []byte("{}"))
	m.Metadata.Set(MetadataExpiration, "30000")
	m.Metadata.Set("k", "v")
	cfg := Config{}
	p := toPublishing(m, &cfg, false)
	require.Equal(t, "30000", p.Expiration)
	require.NotContains(t, p.Headers, MetadataExpiration)
	require.Equal(t, "v", p.Headers["k"])
	require.Empty(t, toPublishing(m, &cfg, true).Expiration)
}
