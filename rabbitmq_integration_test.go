package worker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// TestRabbitMQMalformedDeliveries: deliveries that are not valid actions —
// malformed JSON, an empty body — are poisoned with the reason and the
// actions behind them are still handled; a valid action with a foreign
// non-string header is handled like any other (issue 10, item 4: before,
// it was poisoned).
func TestRabbitMQMalformedDeliveries(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := uniqueTopology(t, url)
	w := newTestWorker(t, Config{
		MQ:       MQConfig{URL: url},
		Store:    persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()},
		Topology: top,
	})
	handled := make(chan string, 2)
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		handled <- a.ID
		return nil
	}))
	ctx := runWorkerUntilCleanup(t, w)
	ch := rawChannel(t, url)
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
	handledIDs := []string{recv(t, handled), recv(t, handled)}
	require.ElementsMatch(t, []string{"int-header", ok.ID}, handledIDs)

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
		return len(ps) == 2
	}, 20*time.Second, 20*time.Millisecond)
	require.Len(t, reasons, 2, "%v", reasons)
	require.Contains(t, reasons["empty"], "empty body")
	// The broker's poison queue holds a copy of each, with the reason.
	require.Eventually(t, func() bool {
		pq, err := ch.QueueDeclarePassive(top.Topic(QueuePoison), true, false, false, false, nil)
		return err == nil && pq.Messages == 2
	}, 10*time.Second, 10*time.Millisecond)
	d, got, err := ch.Get(top.Topic(QueuePoison), false)
	require.NoError(t, err)
	require.True(t, got)
	require.NotEmpty(t, d.Headers[MetaPoisonReason])
	for id, r := range reasons {
		if id != "empty" {
			require.True(t, strings.Contains(r, "not a JSON action"), "%s: %s", id, r)
		}
	}
}

// TestRabbitMQCompetingSubscribers: two subscriber-only workers (as two
// processes would) consume the same queue; they share the work and every
// action is handled once.
func TestRabbitMQCompetingSubscribers(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := uniqueTopology(t, url)
	base := Config{MQ: MQConfig{URL: url}, Topology: top}

	const n = 400
	var mu sync.Mutex
	byWorker := map[int]int{}
	seen := map[string]int{}
	all := make(chan struct{})
	for i := 0; i < 2; i++ {
		cfg := base
		cfg.Role = RoleSubscriber
		cfg.Store = persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()}
		w := newTestWorker(t, cfg)
		require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
			time.Sleep(time.Millisecond) // a little work, so both get some
			mu.Lock()
			defer mu.Unlock()
			byWorker[i]++
			seen[a.ID]++
			if len(seen) == n {
				close(all)
			}
			return nil
		}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		<-w.Running()
		t.Cleanup(func() { cancel(); <-done })
	}
	pubCfg := base
	pubCfg.Role = RolePublisher
	pubCfg.Store = persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()}
	pub := newTestWorker(t, pubCfg)
	for i := 0; i < n; i++ {
		require.NoError(t, pub.Publish(context.Background(), Action{Type: "t"}))
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d", len(seen), n)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, byWorker[0], 0, "both subscribers take work")
	require.Greater(t, byWorker[1], 0, "both subscribers take work")
	for id, c := range seen {
		require.Equal(t, 1, c, "action %s handled twice", id)
	}
	t.Logf("worker 0 handled %d, worker 1 handled %d", byWorker[0], byWorker[1])
}

// TestRabbitMQWireFormat: on RabbitMQ an action travels as its JSON body,
// with its ID as the AMQP message id and only the version and type as
// headers; the rest of the metadata is in the body.
func TestRabbitMQWireFormat(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := uniqueTopology(t, url)
	w := newTestWorker(t, Config{
		Role:     RolePublisher,
		MQ:       MQConfig{URL: url},
		Store:    persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()},
		Topology: top,
	})
	a := Action{ID: "a-1", Type: "t", Customer: "acme", Account: "acct", Resource: "i-1", Key: "k-1", CorrelationID: "c-1"}
	require.NoError(t, w.Publish(context.Background(), a))

	ch := rawChannel(t, url)
	d, ok, err := ch.Get(top.Topic(QueueActions), true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "a-1", d.MessageId)
	require.Empty(t, d.Headers, "the body says it all: no header costs the broker")
	got, err := decode(message.NewMessage(d.MessageId, d.Body), defaultMaxPayload)
	require.NoError(t, err)
	got.CreatedAt, got.Attempt = time.Time{}, 0
	require.Equal(t, a, got)
}

// TestCleanShutdownLogsNoError: a worker that handled actions, polled and
// relayed events, then is stopped, logs nothing at ERROR and no "context
// canceled" above DEBUG — on embedded defaults and on RabbitMQ + MariaDB.
func TestCleanShutdownLogsNoError(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"Embedded", "RabbitMQMariaDB"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			logs := testenv.NewLogRecorder(testenv.LogRecorderConfig{Level: slog.LevelDebug})
			cfg := Config{Store: sqliteConfig(t), Logger: logs.Logger()}
			cfg.Store.Logger = logs.Logger()
			if mode != "Embedded" {
				url, dsn := testenv.AMQPURL(t), testenv.MySQLDSN(t)
				top := uniqueTopology(t, url)
				cfg.MQ.URL, cfg.Topology = url, top
				cfg.Store.Provisioning = persist.DBConfig{Driver: persist.MySQL, DSN: dsn}
			}
			w := newTestWorker(t, cfg)
			handled := make(chan struct{}, 10)
			require.NoError(t, w.HandleFunc("t", func(ctx context.Context, a Action) error {
				handled <- struct{}{}
				return nil
			}))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			<-w.Running()
			for range 5 {
				require.NoError(t, w.Publish(ctx, Action{Type: "t"}))
			}
			for range 5 {
				recv(t, handled)
			}
			time.Sleep(1500 * time.Millisecond) // the duties have run
			cancel()
			require.NoError(t, <-done)
			for _, r := range logs.Records() {
				require.NotEqual(t, slog.LevelError, r.Level, "%s", r)
				if r.Level > slog.LevelDebug {
					require.NotContains(t, r.String(), "context canceled")
				}
			}
		})
	}
}
