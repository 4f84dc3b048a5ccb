package worker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

func TestActionValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 256)
	tests := []struct {
		name  string
		a     Action
		field string // "" = valid
	}{
		{"Valid", Action{Type: "server.launch", Payload: json.RawMessage(`{"a":1}`)}, ""},
		{"ValidNoPayload", Action{Type: "poll"}, ""},
		{"MissingType", Action{}, "Type"},
		{"UpperCaseType", Action{Type: "Server.Launch"}, "Type"},
		{"TypeStartsWithDot", Action{Type: ".x"}, "Type"},
		{"TypeWithSpace", Action{Type: "a b"}, "Type"},
		{"TypeTooLong", Action{Type: strings.Repeat("a", 129)}, "Type"},
		{"IDTooLong", Action{Type: "a", ID: long}, "ID"},
		{"AccountTooLong", Action{Type: "a", Account: long}, "Account"},
		{"KeyTooLong", Action{Type: "a", Key: long}, "Key"},
		{"PayloadNotJSON", Action{Type: "a", Payload: json.RawMessage(`{"a":`)}, "Payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.a.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidAction)
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			require.Equal(t, tt.field, ve.Field)
			require.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestActionRoundTrip(t *testing.T) {
	t.Parallel()
	a := Action{
		ID: "id-1", Type: "server.launch", Customer: "acme", Account: "acct", Resource: "i-1",
		Key: "k-1", CorrelationID: "c-1", CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		Payload: json.RawMessage(`{"image":"debian"}`),
	}
	m, err := encode(a, defaultMaxPayload)
	require.NoError(t, err)
	require.Equal(t, "id-1", m.UUID)
	require.Equal(t, message.Metadata{MetaVersion: "1", MetaType: "server.launch"}, m.Metadata,
		"only version and type: the rest is in the body")
	require.Contains(t, string(m.Payload), `"v":1`)

	got, err := decode(m, defaultMaxPayload)
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempt)
	got.Attempt = 0
	require.Equal(t, a, got)

	m.Metadata.Set(MetaAttempt, "3")
	got, err = decode(m, defaultMaxPayload)
	require.NoError(t, err)
	require.Equal(t, 3, got.Attempt)

	fillMetadata(m, defaultMaxPayload)
	require.Equal(t, message.Metadata{MetaVersion: "1", MetaType: "server.launch", MetaCustomer: "acme",
		MetaAccount: "acct", MetaKey: "k-1", MetaCorrelationID: "c-1", MetaAttempt: "3"}, m.Metadata)
	bad := message.NewMessage("bad", []byte(`{"v":1,"type":`))
	fillMetadata(bad, defaultMaxPayload)
	require.Empty(t, bad.Metadata, "a body that does not decode adds nothing")
}

func TestDecodeBadMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		max  int
		want error
		text string
	}{
		{"EmptyBody", "", 0, ErrInvalidAction, "empty body"},
		{"MalformedJSON", `{"v":1,"type":`, 0, ErrInvalidAction, "not a JSON action"},
		{"NotAnObject", `[1,2]`, 0, ErrInvalidAction, "not a JSON action"},
		{"MissingType", `{"v":1,"id":"x"}`, 0, ErrInvalidAction, "Type is required"},
		{"FutureVersion", `{"v":2,"type":"a"}`, 0, ErrInvalidAction, "wire version 2"},
		{"NoVersion", `{"type":"a"}`, 0, ErrInvalidAction, "wire version 0"},
		{"Oversized", `{"v":1,"type":"a","payload":"` + strings.Repeat("x", 100) + `"}`, 50, ErrPayloadTooLarge, "limit is 50"},
		// encoding/json would silently turn these into U+FFFD: "acme\xff" handled as "acme\uFFFD".
		{"InvalidUTF8InString", "{\"v\":1,\"type\":\"a\",\"customer\":\"acme\xff\"}", 0, ErrInvalidAction, "not valid UTF-8 (first bad byte at offset 34)"},
		{"InvalidUTF8InPayload", "{\"v\":1,\"type\":\"a\",\"payload\":{\"n\":\"\xc3\x28\"}}", 0, ErrInvalidAction, "not valid UTF-8"},
		{"OverlongUTF8", "{\"v\":1,\"type\":\"a\",\"key\":\"\xc0\xaf\"}", 0, ErrInvalidAction, "not valid UTF-8"},
		{"LoneHighSurrogate", `{"v":1,"type":"a","customer":"acme\ud800"}`, 0, ErrInvalidAction, "lone UTF-16 surrogate at offset 34"},
		{"LoneLowSurrogate", `{"v":1,"type":"a","payload":"\udc00x"}`, 0, ErrInvalidAction, "lone UTF-16 surrogate"},
		{"ReversedSurrogates", `{"v":1,"type":"a","payload":"\udc00\ud800"}`, 0, ErrInvalidAction, "lone UTF-16 surrogate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			max := tt.max
			if max == 0 {
				max = defaultMaxPayload
			}
			_, err := decode(message.NewMessage("m-1", []byte(tt.body)), max)
			require.ErrorIs(t, err, tt.want)
			require.Contains(t, err.Error(), tt.text)
			require.Contains(t, err.Error(), "m-1")
		})
	}
}

// TestDecodeValidUnicode: what the UTF-8 and surrogate checks must accept.
func TestDecodeValidUnicode(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"SurrogatePair":    `{"v":1,"type":"a","customer":"\ud83d\ude00"}`,
		"EscapedBackslash": `{"v":1,"type":"a","customer":"\\ud800"}`,
		"ReplacementChar":  `{"v":1,"type":"a","customer":"\ufffd ï¿½"}`,
		"MultiByte":        `{"v":1,"type":"a","customer":"Zürich 東京"}`,
		"BMPEscape":        `{"v":1,"type":"a","payload":"\u00e9\u4e2d"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decode(message.NewMessage("m-1", []byte(body)), defaultMaxPayload)
			require.NoError(t, err)
		})
	}
}

// TestDecodeHeaders: only the headers the worker owns are checked; any
// other header, whatever its value, is left alone.
func TestDecodeHeaders(t *testing.T) {
	t.Parallel()
	body := []byte(`{"v":1,"type":"t","id":"m-1","customer":"acme"}`)
	tests := []struct {
		name string
		md   map[string]string
		text string // "" means accepted
	}{
		{"NoHeaders", nil, ""},
		{"OwnHeadersMatch", map[string]string{MetaVersion: "1", MetaType: "t", MetaAttempt: "3"}, ""},
		{"ForeignInt", map[string]string{"x-retries": "7", "priority": "true"}, ""},
		{"XDeath", map[string]string{"x-death": `[{"count":1,"queue":"w.actions.wait.1s","reason":"expired"}]`}, ""},
		{"ForeignInvalidUTF8", map[string]string{"x-app": "\xff\xfe"}, ""},
		{"ForeignCustomerCopyDisagrees", map[string]string{MetaCustomer: "other"}, ""},
		{"VersionMismatch", map[string]string{MetaVersion: "2"}, `header worker_version "2" does not match the body's wire version 1`},
		{"TypeMismatch", map[string]string{MetaType: "other"}, `header action_type "other" does not match the body's type "t"`},
		{"TypeInvalidUTF8", map[string]string{MetaType: "t\xff"}, "header action_type"},
		{"AttemptNotANumber", map[string]string{MetaAttempt: "abc"}, "header worker_attempt"},
		{"AttemptZero", map[string]string{MetaAttempt: "0"}, "header worker_attempt"},
		{"BadNotBefore", map[string]string{MetaNotBefore: "tomorrow"}, "header worker_not_before"},
		{"BadRetrySince", map[string]string{MetaRetrySince: "1999"}, "header worker_retry_since"},
		{"BadReplayOf", map[string]string{MetaReplayOf: "x"}, "header worker_replay_of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message.NewMessage("m-1", body)
			for k, v := range tt.md {
				m.Metadata.Set(k, v)
			}
			a, err := decode(m, defaultMaxPayload)
			if tt.text == "" {
				require.NoError(t, err)
				require.Equal(t, "acme", a.Customer)
				fillMetadata(m, defaultMaxPayload)
				require.Equal(t, "acme", m.Metadata.Get(MetaCustomer), "the body wins over a header copy")
				return
			}
			require.ErrorIs(t, err, ErrInvalidAction)
			require.Contains(t, err.Error(), tt.text)
			require.True(t, utf8.ValidString(err.Error()))
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	t.Parallel()
	a := Action{ID: "x", Type: "a", Payload: json.RawMessage(`"` + strings.Repeat("x", 200) + `"`)}
	_, err := encode(a, 100)
	require.ErrorIs(t, err, ErrPayloadTooLarge)
	require.Contains(t, err.Error(), "MaxPayloadBytes")
}

func TestNewAction(t *testing.T) {
	t.Parallel()
	a, err := NewAction("server.launch", map[string]int{"n": 1})
	require.NoError(t, err)
	require.NotEmpty(t, a.ID)
	require.Equal(t, a.ID, a.Key)
	require.False(t, a.CreatedAt.IsZero())
	var v map[string]int
	require.NoError(t, a.Decode(&v))
	require.Equal(t, 1, v["n"])

	_, err = NewAction("Bad Type", nil)
	require.ErrorIs(t, err, ErrInvalidAction)
	_, err = NewAction("a", func() {})
	require.ErrorIs(t, err, ErrInvalidAction)
	require.ErrorIs(t, Action{Type: "a"}.Decode(&v), ErrInvalidAction)
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	require.Nil(t, Permanent(nil))
	base := errors.New("boom")
	p := Permanent(base)
	require.True(t, IsPermanent(p))
	require.ErrorIs(t, p, base)
	require.Equal(t, "boom", p.Error())
	require.True(t, IsPermanent(errors.Join(errors.New("ctx"), p)))
	require.Same(t, p, Permanent(p))
	require.False(t, IsPermanent(base))
}

func TestTopologyQueueFor(t *testing.T) {
	t.Parallel()
	top := Topology{Routes: map[string]Queue{"poll": QueuePolls, "job.*": QueueEvents, "*.changed": QueueEvents, "job.check": QueuePolls, "job.special.*": QueueActions}}
	top.setDefaults()
	tests := map[string]Queue{
		"poll": QueuePolls, "job.check": QueuePolls, "job.completed": QueueEvents,
		"server.changed": QueueEvents, "server.launch": QueueActions, "job.special.x": QueueActions,
		"polling": QueueActions,
	}
	for typ, want := range tests {
		require.Equal(t, want, top.QueueFor(typ), typ)
	}
	top.compile()
	for typ, want := range tests {
		require.Equal(t, want, top.QueueFor(typ), typ)
	}
	require.Equal(t, []string{"worker.actions", "worker.polls", "worker.events", "worker.schedule", "worker.poison"}, top.Topics())
}

func TestTopologyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		top  Topology
		text string
	}{
		{"BadPrefix", Topology{Prefix: "Has Space"}, "Topology.Prefix"},
		{"BadQueue", Topology{Routes: map[string]Queue{"a": "nope"}}, "not a queue"},
		{"BadPattern", Topology{Routes: map[string]Queue{"*a*": QueuePolls}}, "Topology.Routes"},
		{"BareStar", Topology{Routes: map[string]Queue{"*": QueuePolls}}, "Topology.Routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.top.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.text)
		})
	}
	require.NoError(t, Topology{Routes: DefaultRoutes()}.Validate())
}
