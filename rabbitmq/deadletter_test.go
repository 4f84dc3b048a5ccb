package rabbitmq

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// deadLetterTo is a Config.DeadLetter that gives q, and only q, the
// dead-letter queue q+".dead".
func deadLetterTo(q string) func(string) string {
	return func(name string) string {
		if name == q {
			return q + ".dead"
		}
		return ""
	}
}

// TestRabbitMQRejectDeadLetters: with Config.DeadLetter, the queue and its
// dead-letter queue are declared (by the Publisher too, with the same
// arguments: no conflict, no warning), and a message nacked with
// MetadataReject moves to the dead-letter queue with RabbitMQ's x-death
// saying "rejected"; it is not requeued.
func TestRabbitMQRejectDeadLetters(t *testing.T) {
	t.Parallel()
	var got logs
	cfg := testConfig(t)
	q := queue(t, cfg.URL)
	dlq := queue(t, cfg.URL)
	cfg.DeadLetter = func(name string) string {
		if name == q {
			return dlq
		}
		return ""
	}
	cfg.Logger = got.logger()
	pub, sub := newPair(t, cfg)
	require.NoError(t, pub.Publish(q, message.NewMessage("m-1", []byte("body"))))
	require.False(t, sub.DeadLettering(q), "not declared by the Subscriber yet")
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	require.True(t, sub.DeadLettering(q))
	require.False(t, sub.DeadLettering(dlq), "the dead-letter queue has none of its own")

	m := next(t, msgs)
	m.Metadata.Set(MetadataReject, "cannot be handled")
	m.Nack()
	requireNothingHandedOut(t, msgs)

	dead, err := sub.Subscribe(context.Background(), dlq)
	require.NoError(t, err)
	d := next(t, dead)
	d.Ack()
	require.Equal(t, "m-1", d.UUID)
	require.Equal(t, "body", string(d.Payload))
	require.NotContains(t, d.Metadata, MetadataReject, "the verdict is not data")
	requireXDeath(t, d, q, "rejected", 1)
	require.Empty(t, got.atLeast(slog.LevelWarn))
}

// TestRabbitMQRejectWithoutDeadLettering: a queue declared earlier without
// the dead-letter arguments is used as it is, with one warning that names
// it and says what to do, however often it is declared again; a message
// nacked with MetadataReject is then requeued, not lost, and an ERROR says
// why. Without Config.DeadLetter the same: requeued, and an ERROR.
func TestRabbitMQRejectWithoutDeadLettering(t *testing.T) {
	t.Parallel()
	t.Run("DeclaredEarlier", func(t *testing.T) {
		t.Parallel()
		var got logs
		cfg := testConfig(t)
		q := queue(t, cfg.URL)
		cfg.DeadLetter = deadLetterTo(q)
		t.Cleanup(func() { deleteQueues(t, cfg.URL, q+".dead") })
		cfg.Logger = got.logger()
		declareRaw(t, cfg.URL, q, nil)
		pub, sub := newPair(t, cfg)
		require.NoError(t, sub.SubscribeInitialize(q))
		require.False(t, sub.DeadLettering(q))
		require.NoError(t, pub.Publish(q, message.NewMessage("m-1", []byte("body"))))
		msgs, err := sub.Subscribe(context.Background(), q)
		require.NoError(t, err)
		require.NoError(t, sub.SubscribeInitialize(q))

		warns := got.find(slog.LevelWarn, "without the dead-letter arguments")
		require.Len(t, warns, 1, "%v", got.atLeast(slog.LevelWarn))
		require.Equal(t, q, warns[0].attrs["queue"])
		require.Contains(t, warns[0].attrs["to_do"], "delete queue "+q)
		require.Len(t, got.atLeast(slog.LevelWarn), 1, "%v", got.atLeast(slog.LevelWarn))
		require.Len(t, got.find(slog.LevelInfo, "without the dead-letter arguments"), 1, "the Publisher's line is INFO")

		m := next(t, msgs)
		m.Metadata.Set(MetadataReject, "cannot be handled")
		m.Nack()
		again := next(t, msgs)
		require.Equal(t, "m-1", again.UUID, "requeued, not lost")
		again.Ack()
		errs := got.find(slog.LevelError, "requeued instead")
		require.Len(t, errs, 1)
		require.Equal(t, "m-1", errs[0].attrs["message_uuid"])
		require.Contains(t, errs[0].attrs["why"], "without the dead-letter arguments")
	})
	t.Run("NoDeadLetterQueue", func(t *testing.T) {
		t.Parallel()
		var got logs
		cfg := testConfig(t)
		cfg.Logger = got.logger()
		pub, sub := newPair(t, cfg)
		q := queue(t, cfg.URL)
		require.NoError(t, pub.Publish(q, message.NewMessage("m-1", []byte("body"))))
		msgs, err := sub.Subscribe(context.Background(), q)
		require.NoError(t, err)
		require.False(t, sub.DeadLettering(q))
		m := next(t, msgs)
		m.Metadata.Set(MetadataReject, "cannot be handled")
		m.Nack()
		again := next(t, msgs)
		require.Equal(t, "m-1", again.UUID, "requeued, not lost")
		again.Ack()
		errs := got.find(slog.LevelError, "requeued instead")
		require.Len(t, errs, 1)
		require.Contains(t, errs[0].attrs["why"], "Config.DeadLetter")
		require.Len(t, got.atLeast(slog.LevelWarn), 1, "the ERROR and nothing else: %v", got.atLeast(slog.LevelWarn))
	})
}

// TestRabbitMQRejectHeaderIsNotData: the Publisher never sends
// MetadataReject, and the Subscriber drops such a header from other
// clients: only the consumer's own nack verdict rejects.
func TestRabbitMQRejectHeaderIsNotData(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	m := message.NewMessage("m-1", []byte("x"))
	m.Metadata.Set(MetadataReject, "stale")
	require.NoError(t, pub.Publish(q, m))
	require.NotContains(t, rawGet(t, cfg.URL, q).Headers, MetadataReject)

	conn, err := amqp.Dial(cfg.URL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{
		MessageId: "m-2", Body: []byte("x"), Headers: amqp.Table{MetadataReject: "from elsewhere"},
	}))
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	got := next(t, msgs)
	require.Equal(t, "m-2", got.UUID)
	require.NotContains(t, got.Metadata, MetadataReject)
	got.Ack()
}

// declareRaw declares a durable queue with plain amqp091, as another
// application (or an earlier version) would have.
func declareRaw(t *testing.T, amqpURL, q string, args amqp.Table) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(q, true, false, false, false, args)
	require.NoError(t, err)
}

func deleteQueues(t *testing.T, amqpURL string, qs ...string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range qs {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
}
