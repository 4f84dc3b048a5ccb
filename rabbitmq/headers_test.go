package rabbitmq

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

func TestHeaderString(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"String", "a<b>&c", "a<b>&c"},
		{"Nil", nil, ""},
		{"True", true, "true"},
		{"False", false, "false"},
		{"Int8", int8(-8), "-8"},
		{"Uint8", uint8(200), "200"},
		{"Int16", int16(-300), "-300"},
		{"Int32", int32(3), "3"},
		{"Int64", int64(math.MinInt64), "-9223372036854775808"},
		{"Int", 42, "42"},
		{"Uint64", uint64(math.MaxUint64), "18446744073709551615"},
		{"Float32", float32(0.1), "0.1"},
		{"Float64", 0.1, "0.1"},
		{"Float64Big", 1e21, "1e+21"},
		{"Float64Integral", 2.0, "2"},
		{"NaN", math.NaN(), "NaN"},
		{"Inf", math.Inf(-1), "-Inf"},
		{"Decimal", amqp.Decimal{Scale: 2, Value: 12345}, "123.45"},
		{"DecimalNegative", amqp.Decimal{Scale: 2, Value: -12345}, "-123.45"},
		{"DecimalSmall", amqp.Decimal{Scale: 4, Value: -5}, "-0.0005"},
		{"DecimalScale0", amqp.Decimal{Value: 7}, "7"},
		{"Time", at, "2026-03-04T04:06:07Z"},
		{"BytesUTF8", []byte("héllo"), "héllo"},
		{"BytesBinary", []byte{0xff, 0x00, 0x01}, "base64:/wAB"},
		{"BytesWithMarker", []byte("base64:x"), "base64:YmFzZTY0Ong="},
		{"BytesEmpty", []byte{}, ""},
		{"Array", []any{int32(1), "two", nil, true, 1.5}, `[1,"two",null,true,1.5]`},
		{"EmptyArray", []any{}, `[]`},
		{"Table", amqp.Table{"b": int64(2), "a": "x", "c": amqp.Table{"z": false, "y": []any{}}}, `{"a":"x","b":2,"c":{"y":[],"z":false}}`},
		{"TableNested", amqp.Table{"t": at, "d": amqp.Decimal{Scale: 1, Value: 5}, "f": math.Inf(1), "bin": []byte{0xff}, "h": "<&>"},
			`{"bin":"base64:/w==","d":0.5,"f":"+Inf","h":"<&>","t":"2026-03-04T04:06:07Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, HeaderString(tt.v))
			require.Equal(t, tt.want, HeaderString(tt.v), "deterministic")
		})
	}
}

// TestHeaderStringJSONIsValid: nested values are valid JSON whatever they hold.
func TestHeaderStringJSONIsValid(t *testing.T) {
	t.Parallel()
	v := amqp.Table{"k": []any{amqp.Table{"n": math.NaN(), "big": 1e300, "small": float32(1e-30), "s": "\"\\\n\u2028"}}}
	require.True(t, json.Valid([]byte(HeaderString(v))), HeaderString(v))
}

// TestRabbitMQForeignHeaders: a delivery from a non-Go client, with headers
// of every AMQP type and an x-death table as RabbitMQ writes it after
// dead-lettering, becomes one message with every header as documented by
// HeaderString, and nothing marks it malformed.
func TestRabbitMQForeignHeaders(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	_, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	require.NoError(t, sub.SubscribeInitialize(q))
	conn, err := amqp.Dial(cfg.URL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	xDeath := []any{amqp.Table{
		"count": int64(2), "exchange": "", "queue": "orders.wait.1s", "reason": "expired",
		"routing-keys": []any{"orders.wait.1s"}, "time": at,
	}}
	require.NoError(t, ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{
		MessageId: "m-1", Body: []byte("body"), Headers: amqp.Table{
			"int": int32(3), "long": int64(-9), "bool": true, "float": 2.5, "nil": nil,
			"table": amqp.Table{"b": "2", "a": int32(1)}, "array": []any{"x", int32(1)},
			"bytes": []byte("raw"), "binary": []byte{0xff, 0xfe}, "time": at, "ok": "yes",
			"x-death": xDeath, "x-first-death-reason": "expired",
		},
	}))
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	m := next(t, msgs)
	require.Equal(t, "m-1", m.UUID)
	require.Equal(t, "body", string(m.Payload))
	require.Equal(t, map[string]string{
		"int": "3", "long": "-9", "bool": "true", "float": "2.5", "nil": "",
		"table": `{"a":1,"b":"2"}`, "array": `["x",1]`,
		"bytes": "raw", "binary": "base64://4=", "time": "2026-01-02T03:04:05Z", "ok": "yes",
		"x-death":              `[{"count":2,"exchange":"","queue":"orders.wait.1s","reason":"expired","routing-keys":["orders.wait.1s"],"time":"2026-01-02T03:04:05Z"}]`,
		"x-first-death-reason": "expired",
	}, map[string]string(m.Metadata))
	require.NotContains(t, m.Metadata, MetadataMalformed)
	m.Ack()
	requireNothingHandedOut(t, msgs)
}
