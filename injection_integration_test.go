package worker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// injected is one message published by a foreign (non-Go-worker) client.
type injected struct {
	name    string
	id      string // AMQP message id
	body    []byte
	headers amqp091.Table
	reason  string // expected in the poison reason; "" means: handled normally
}

// TestRabbitMQInjectedBadMessages publishes, with a raw amqp091 client, every
// kind of bad message a production queue sees — broken bodies, broken
// encodings, oversized parts, foreign and malformed headers — to a worker
// with the default configuration on RabbitMQ and MariaDB. Each is poisoned
// once with its reason, or, for foreign headers, handled normally; the queue
// drains; no delivery is seen more than twice.
func TestRabbitMQInjectedBadMessages(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	dsn := testenv.MySQLDSN(t)
	top := uniqueTopology(t, url)

	valid := func(id string) []byte { return []byte(`{"v":1,"id":"` + id + `","type":"t","customer":"acme"}`) }
	big := strings.Repeat("x", 20<<20) // larger than MariaDB's 16 MiB max_allowed_packet
	cases := []injected{
		// Items 3-5 of the issue.
		// An AMQP message id is at most 255 bytes; the poison store's id column is shorter.
		{name: "LongMessageID", id: strings.Repeat("m", 250), body: []byte(`{"v":1,"type":"nobody.handles.this"}`), reason: `"nobody.handles.this"`},
		{name: "TypeHeaderInvalidUTF8", id: "type-utf8", body: valid("type-utf8"), headers: amqp091.Table{MetaType: "t\xff"}, reason: "header action_type"},
		{name: "BodyOverPacketLimit", id: "huge", body: []byte(`{"v":1,"id":"huge","type":"t","payload":"` + big + `"}`), reason: "limit is 1048576"},
		{name: "InvalidUTF8InString", id: "utf8-str", body: []byte("{\"v\":1,\"id\":\"utf8-str\",\"type\":\"t\",\"customer\":\"acme\xff\"}"), reason: "not valid UTF-8"},
		{name: "ForeignIntHeader", id: "int-hdr", body: valid("int-hdr"), headers: amqp091.Table{"retries": int32(3), "prio": int64(9)}},
		{name: "ForeignBoolHeader", id: "bool-hdr", body: valid("bool-hdr"), headers: amqp091.Table{"urgent": true}},
		{name: "XDeathTable", id: "xdeath", body: valid("xdeath"), headers: amqp091.Table{"x-death": []any{amqp091.Table{
			"count": int64(1), "reason": "expired", "queue": "elsewhere", "time": time.Unix(1_700_000_000, 0)}}}},
		{name: "ForeignFloatNilBytes", id: "misc-hdr", body: valid("misc-hdr"), headers: amqp091.Table{"f": 1.5, "n": nil, "b": []byte{0xff, 0}}},
		// Ten and more of our own.
		{name: "EmptyBody", id: "empty", body: nil, reason: "empty body"},
		{name: "BinaryGarbage", id: "garbage", body: []byte{0x00, 0x9f, 0x92, 0x96, 0xff}, reason: "not valid UTF-8"},
		{name: "NotJSON", id: "notjson", body: []byte(`hello`), reason: "not a JSON action"},
		{name: "JSONArray", id: "array", body: []byte(`[{"v":1,"type":"t"}]`), reason: "not a JSON action"},
		{name: "TruncatedJSON", id: "trunc", body: []byte(`{"v":1,"id":"trunc","type":"t","payload":{"a":`), reason: "not a JSON action"},
		{name: "FutureWireVersion", id: "v99", body: []byte(`{"v":99,"id":"v99","type":"t"}`), reason: "wire version 99"},
		{name: "NoVersion", id: "nov", body: []byte(`{"id":"nov","type":"t"}`), reason: "wire version 0"},
		{name: "UnknownType", id: "unknown", body: []byte(`{"v":1,"id":"unknown","type":"nobody.handles"}`), reason: "no handler"},
		{name: "BadTypeSyntax", id: "badtype", body: []byte(`{"v":1,"id":"badtype","type":"Server Launch"}`), reason: "must be 1-128 bytes"},
		{name: "LoneSurrogate", id: "surrogate", body: []byte(`{"v":1,"id":"surrogate","type":"t","customer":"\ud800"}`), reason: "lone UTF-16 surrogate"},
		{name: "LongCustomer", id: "longcust", body: []byte(`{"v":1,"id":"longcust","type":"t","customer":"` + strings.Repeat("c", 10_000) + `"}`), reason: "Customer"},
		{name: "AttemptHeaderNotANumber", id: "attempt", body: valid("attempt"), headers: amqp091.Table{MetaAttempt: "abc"}, reason: "header worker_attempt"},
		{name: "VersionHeaderMismatch", id: "vhdr", body: valid("vhdr"), headers: amqp091.Table{MetaVersion: int32(7)}, reason: "header worker_version"},
		{name: "DeepNesting", id: "deep", body: []byte(`{"v":1,"id":"deep","type":"t","payload":` + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + `}`), reason: "not a JSON action"},
		{name: "BadCreatedAt", id: "badtime", body: []byte(`{"v":1,"id":"badtime","type":"t","created_at":"yesterday"}`), reason: "not a JSON action"},
		{name: "HugeForeignHeaderOnBadBody", id: "bighdr", body: []byte(`{"v":1`), headers: amqp091.Table{"x-trace": strings.Repeat("h", 100_000), "k\xff": "v\xfe"}, reason: "not a JSON action"},
		{name: "InvalidUTF8MessageID", id: "id-\xff\xfe", body: []byte(`{"v":1,"type":"t","customer":"acme"}`), reason: "not valid UTF-8"},
		{name: "NoMessageID", id: "", body: valid("no-amqp-id")},
		{name: "PayloadNotJSONInside", id: "payload", body: []byte(`{"v":1,"id":"payload","type":"t","payload":undefined}`), reason: "not a JSON action"},
	}

	var mu sync.Mutex
	deliveries := map[string]int{}
	handled := make(chan string, len(cases))
	countDeliveries := func(h message.HandlerFunc) message.HandlerFunc {
		return func(m *message.Message) ([]*message.Message, error) {
			mu.Lock()
			deliveries[m.UUID]++
			mu.Unlock()
			return h(m)
		}
	}
	w := newTestWorker(t, Config{
		MQ:         MQConfig{URL: url},
		Store:      persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, Logger: discardLogger()},
		Topology:   top,
		Middleware: []message.HandlerMiddleware{countDeliveries},
	})
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		handled <- a.ID
		return nil
	}))
	ctx := runWorkerUntilCleanup(t, w)
	ch := rawChannel(t, url)
	queue := top.Topic(QueueActions)
	wantPoison, wantHandled := 0, map[string]bool{}
	for _, c := range cases {
		require.NoError(t, ch.PublishWithContext(ctx, "", queue, false, false, amqp091.Publishing{
			MessageId: c.id, Body: c.body, Headers: c.headers, DeliveryMode: amqp091.Persistent,
		}), c.name)
		if c.reason == "" {
			id := c.id
			if id == "" {
				id = "no-amqp-id"
			}
			wantHandled[id] = true
		} else {
			wantPoison++
		}
	}

	gotHandled := map[string]bool{}
	for len(gotHandled) < len(wantHandled) {
		gotHandled[recv(t, handled)] = true
	}
	require.Equal(t, wantHandled, gotHandled)
	var poisoned []persist.Parked
	require.Eventually(t, func() bool {
		var err error
		poisoned, err = w.db.ListPoison(ctx, persist.PoisonFilter{Limit: 1000, IncludeReplayed: true})
		return err == nil && len(poisoned) >= wantPoison
	}, 30*time.Second, 50*time.Millisecond)
	require.Len(t, poisoned, wantPoison, "each bad message poisoned once")
	for _, c := range cases {
		if c.reason == "" {
			continue
		}
		found := false
		for _, p := range poisoned {
			if strings.Contains(p.Reason, c.reason) {
				found = true
			}
			require.True(t, utf8.ValidString(p.MessageUUID) && utf8.ValidString(p.Reason) && utf8.ValidString(p.ActionType), "record %d is valid UTF-8", p.ID)
			require.LessOrEqual(t, len(p.MessageUUID), 255)
			for k, v := range p.Metadata {
				require.True(t, utf8.ValidString(k) && utf8.ValidString(v))
			}
		}
		require.True(t, found, "%s: no poison record says %q", c.name, c.reason)
	}

	// The queue drains, and nothing goes round more than twice.
	require.Eventually(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == 0
	}, 30*time.Second, 100*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, n := range deliveries {
		require.LessOrEqual(t, n, 2, "message %q delivered %d times", shorten(id), n)
	}
	t.Logf("injected=%d poisoned=%d handled=%d max_deliveries=%d", len(cases), len(poisoned), len(gotHandled), maxOf(deliveries))
}

func maxOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
}
