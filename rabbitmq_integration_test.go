package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// TestRabbitMQMalformedDeliveries: deliveries that are not valid actions —
// malformed JSON, an empty body, a non-string header — are poisoned with the
// reason and the actions behind them are still handled.
func TestRabbitMQMalformedDeliveries(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := Topology{Prefix: testenv.UniqueName(t)}
	top.setDefaults()
	testenv.DeleteQueuesOnCleanup(t, url, top.Topics()...)
	w := newTestWorker(t, Config{
		MQ:       MQConfig{URL: url},
		Store:    persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()},
		Topology: top,
	})
	handled := make(chan string, 1)
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		handled <- a.ID
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	conn, err := amqp091.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	queue := top.Topic(QueueActions)
	raw := func(id string, body string, headers amqp091.Table) {
		require.NoError(t, ch.PublishWithContext(ctx, "", queue, false, false, amqp091.Publishing{
			MessageId: id, Body: []byte(body), Headers: headers, DeliveryMode: amqp091.Persistent,
		}))
	}
	raw("bad-json", `{"v":1,"type":`, nil)
	raw("empty", ``, amqp091.Table{"_watermill_message_uuid": "empty"})
	raw("int-header", `{"v":1,"id":"int-header","type":"t"}`, amqp091.Table{"_watermill_message_uuid": "int-header", "attempt": int32(3)})
	ok, err := NewAction("t", nil)
	require.NoError(t, err)
	require.NoError(t, w.Publish(ctx, ok))
	require.Equal(t, ok.ID, recv(t, handled))

	var reasons map[string]string
	require.Eventually(t, func() bool {
		ps, err := w.Poisoned(ctx, PoisonQuery{})
		if err != nil {
			return false
		}
		reasons = map[string]string{}
		for _, p := range ps {
			reasons[p.Action.ID] = p.Reason
		}
		return len(ps) == 3
	}, 20*time.Second, 20*time.Millisecond)
	require.Len(t, reasons, 3, "%v", reasons)
	for id, want := range map[string]string{"empty": "empty body", "int-header": "headers are not strings: [attempt (int32)]"} {
		require.Contains(t, reasons[id], want, id)
	}
	for id, r := range reasons {
		if id != "empty" && id != "int-header" {
			require.True(t, strings.Contains(r, "not a JSON action"), "%s: %s", id, r)
		}
	}
}
