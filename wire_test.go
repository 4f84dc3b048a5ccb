package worker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/internal/jsonscan"
	"github.com/stretchr/testify/require"
)

// requireSameAsJSON checks that unmarshalWire gives what encoding/json gives
// for body: the same wireAction, or an error with the same text.
func requireSameAsJSON(t *testing.T, body []byte) {
	t.Helper()
	var want, got wireAction
	wantErr := json.Unmarshal(body, &want)
	lone, gotErr := unmarshalWire(body, &got)
	if wantErr != nil {
		require.Error(t, gotErr, "encoding/json fails on %q: %v", body, wantErr)
		require.Equal(t, wantErr.Error(), gotErr.Error(), "body %q", body)
		return
	}
	require.NoError(t, gotErr, "body %q", body)
	require.Equal(t, want, got, "body %q", body)
	require.True(t, want.CreatedAt.Equal(got.CreatedAt))
	require.Equal(t, jsonscan.FirstLoneSurrogate(body), lone, "the lone surrogate the reader reports, body %q", body)
}

// wireBodies are bodies of every kind: as encode writes them, unusual but
// valid, and malformed.
var wireBodies = []string{
	// What encode writes.
	`{"v":1,"id":"id-1","type":"server.launch","customer":"acme","account":"acct","resource":"i-1","key":"k-1","correlation_id":"c-1","created_at":"2026-11-25T10:00:00Z","payload":{"image":"debian"}}`,
	`{"v":1,"id":"x","type":"poll","created_at":"0001-01-01T00:00:00Z"}`,
	`{"v":1,"id":"x","type":"a","created_at":"2026-11-25T10:00:00.123456789Z","payload":"\u003cb\u003e"}`,
	// Valid, written differently.
	` { "v" : 1 , "type" : "a" , "payload" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] , "x\"y\\u00e9" ] } ` + "\n",
	`{"v":1,"type":"a","created_at":"2026-11-25T10:00:00+02:00"}`,
	`{"v":1,"type":"a","customer":"Müller 🙂"}`,
	`{"v":1,"type":"a","customer":"a\"b"}`,
	`{"v":1,"type":"a","customer":"\u00fc\ud83d\ude42"}`,
	`{"v":1,"type":"a","customer":"bad \ud800 surrogate"}`,
	`{"v":1,"type":"a","payload":["\ud83d\ude00x",{"k\udc00":"\ud800"}],"other":"\udfff"}`,
	`{"v":1,"type":"a","customer":null,"created_at":null}`,
	`{"v":1,"type":"a","payload":null}`,
	`{"v":1,"type":"a","payload":"x","payload":{"y":2}}`,
	`{"v":1,"type":"a","type":"b"}`,
	`{"V":1,"TYPE":"a","Id":"x","Correlation_ID":"c"}`,
	`{"v":1,"type":"a","ſ":1,"Key":"k","\u006b\u0065\u0079":"esc"}`,
	`{"v":1,"type":"a","unknown":{"deep":[1,{"x":null}]},"Attempt":7,"-":1}`,
	`{"v":-0,"type":"a"}`,
	`{"v":1.0,"type":"a"}`,
	`{"v":1e0,"type":"a"}`,
	`{}`,
	`null`,
	"{\"v\":1,\"type\":\"a\",\"customer\":\"\xff\xfe\"}",
	"{\"v\":1,\"type\":\"a\",\"payload\":\"\xff\"}",
	`{"v":1,"type":"a","payload":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	// Malformed.
	`{"v":1,"type":`,
	`{"v":1,"type":"a"`,
	`{"v":1,"type":"a"}x`,
	`{"v":1,"type":"a"}{}`,
	`{"v":1,"type":"a",}`,
	`{"v":1 "type":"a"}`,
	`{"v":01,"type":"a"}`,
	`{"v":"1","type":"a"}`,
	`{"v":99999999999999999999,"type":"a"}`,
	`{"v":1,"type":1}`,
	`{"v":1,"type":"a","created_at":"yesterday"}`,
	`{"v":1,"type":"a","created_at":"2026-11-25 10:00:00Z"}`,
	`{"v":1,"type":"a","created_at":5}`,
	`{"v":1,"type":"a","payload":{"a":}}`,
	`{"v":1,"type":"a","payload":{"a" 1}}`,
	`{"v":1,"type":"a","payload":[1,]}`,
	`{"v":1,"type":"a","payload":01}`,
	`{"v":1,"type":"a","payload":1.}`,
	`{"v":1,"type":"a","payload":-}`,
	`{"v":1,"type":"a","payload":tru}`,
	`{"v":1,"type":"a","payload":"\x"}`,
	`{"v":1,"type":"a","payload":"\u12"}`,
	"{\"v\":1,\"type\":\"a\",\"payload\":\"tab\there\"}",
	`{"v":1,"type":"a","payload":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`[1,2]`,
	`"str"`,
	`{"v":1,"type":"a","customer":"unterminated}`,
	`{'v':1}`,
}

func TestUnmarshalWireSameAsJSON(t *testing.T) {
	t.Parallel()
	for _, body := range wireBodies {
		requireSameAsJSON(t, []byte(body))
	}
}

// TestUnmarshalWireFastPath: what encode writes is read without encoding/json.
func TestUnmarshalWireFastPath(t *testing.T) {
	t.Parallel()
	for _, a := range []Action{
		{ID: "id-1", Type: "server.launch", Customer: "acme", Account: "acct", Resource: "i-1", Key: "k-1",
			CorrelationID: "c-1", CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 123, time.UTC),
			Payload: json.RawMessage(`{"image":"debian","n":[1,2.5,-3e2,true,null]}`)},
		{ID: "x", Type: "poll"},
		{ID: "x", Type: "t", Customer: "Müller", Payload: json.RawMessage(`"é"`)},
	} {
		m, err := encode(a, defaultMaxPayload)
		require.NoError(t, err)
		var w wireAction
		_, ok := fastUnmarshalWire(m.Payload, &w)
		require.True(t, ok, "%s", m.Payload)
		require.Equal(t, WireVersion, w.V)
		require.Equal(t, a, w.Action)
	}
}

// TestDecodeMalformedReasons: a body that does not decode is reported with
// encoding/json's error, as before the hand-written reader.
func TestDecodeMalformedReasons(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, text string
	}{
		{"Truncated", `{"v":1,"type":`, "not a JSON action: unexpected end of JSON input"},
		{"TrailingData", `{"v":1,"type":"a"}x`, "not a JSON action: invalid character 'x' after top-level value"},
		{"BadPayload", `{"v":1,"type":"a","payload":{"a":}}`, "not a JSON action: invalid character '}' looking for beginning of value"},
		{"BadTime", `{"v":1,"type":"a","created_at":"yesterday"}`, `not a JSON action: parsing time "yesterday"`},
		{"TypeNotString", `{"v":1,"type":1}`, "not a JSON action: json: cannot unmarshal number into Go struct field"},
		{"VersionString", `{"v":"1","type":"a"}`, "not a JSON action: json: cannot unmarshal string into Go struct field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode(message.NewMessage("m-1", []byte(tt.body)), defaultMaxPayload)
			require.ErrorIs(t, err, ErrInvalidAction)
			require.ErrorContains(t, err, tt.text)
			require.ErrorContains(t, err, "m-1")
		})
	}
}

func FuzzUnmarshalWire(f *testing.F) {
	for _, body := range wireBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		requireSameAsJSON(t, body)
	})
}

func BenchmarkDecode(b *testing.B) {
	a := Action{ID: "0b3c1f5e-6a7d-4e8f-9a0b-1c2d3e4f5a6b", Type: "bench.noop", Customer: "cust-0042", Account: "acct-0042",
		Resource: "i-0abc00000001", Key: "0b3c1f5e-6a7d-4e8f-9a0b-1c2d3e4f5a6b", CorrelationID: "req-7",
		CreatedAt: time.Now().UTC(), Payload: json.RawMessage(`{"image":"debian-13","n":1,"size":"m1.small"}`)}
	m, err := encode(a, defaultMaxPayload)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(m, defaultMaxPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONWire compares the envelope reader with encoding/json on the
// body encode writes (the same one BenchmarkDecode decodes): ours is
// unmarshalWire, baseline is json.Unmarshal into the same wireAction.
// bench/run -json prints the pair's ratio.
func BenchmarkJSONWire(b *testing.B) {
	a := Action{ID: "0b3c1f5e-6a7d-4e8f-9a0b-1c2d3e4f5a6b", Type: "bench.noop", Customer: "cust-0042", Account: "acct-0042",
		Resource: "i-0abc00000001", Key: "0b3c1f5e-6a7d-4e8f-9a0b-1c2d3e4f5a6b", CorrelationID: "req-7",
		CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC), Payload: json.RawMessage(`{"image":"debian-13","n":1,"size":"m1.small"}`)}
	m, err := encode(a, defaultMaxPayload)
	require.NoError(b, err)
	body := m.Payload
	for _, side := range []struct {
		name      string
		unmarshal func([]byte, *wireAction) error
	}{
		{"ours", func(body []byte, w *wireAction) error { _, err := unmarshalWire(body, w); return err }},
		{"baseline", func(body []byte, w *wireAction) error { return json.Unmarshal(body, w) }},
	} {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var w wireAction
				if err := side.unmarshal(body, &w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
