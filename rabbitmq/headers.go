package rabbitmq

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stratusworks/worker/internal/jsonscan"
)

// Base64Marker prefixes a header value that arrived as AMQP bytes that are
// not valid UTF-8 (or that begin with the marker themselves): the rest of the
// metadata value is those bytes in standard base64 with padding.
const Base64Marker = "base64:"

// HeaderString is how the Subscriber turns an AMQP header value into a
// metadata string. It is deterministic, and every value a broker can send
// has a string:
//
//   - string: as it is
//   - nil (AMQP void): ""
//   - bool: "true" or "false"
//   - integers of any width, signed or not: decimal, e.g. "-3"
//   - float32, float64: the shortest decimal that reads back to the same
//     value, format 'g' (strconv.FormatFloat(f, 'g', -1, bits)): "0.5",
//     "1e+21"; "NaN", "+Inf", "-Inf"
//   - amqp.Decimal: its decimal value with Scale fractional digits, e.g.
//     {Scale: 2, Value: -12345} is "-123.45"
//   - time.Time (AMQP timestamp, whole seconds): RFC 3339 in UTC,
//     "2006-01-02T15:04:05Z"
//   - []byte: as it is when it is valid UTF-8 and does not begin with
//     [Base64Marker]; otherwise Base64Marker followed by its standard base64
//   - amqp.Table and []any (nested tables and arrays, such as RabbitMQ's
//     x-death): JSON, object keys sorted, no HTML escaping, nested values as
//     JSON strings, numbers, booleans and null, with numbers, times and bytes
//     written as above (decimals as JSON numbers, non-finite floats and
//     times as JSON strings)
//
// Any other type (amqp091 produces none) is written with fmt's %v.
func HeaderString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case []byte:
		return bytesString(v)
	case amqp.Table, []any, map[string]any:
		var b bytes.Buffer
		writeJSON(&b, v)
		return b.String()
	}
	if s, ok := scalarString(v); ok {
		return s
	}
	return fmt.Sprintf("%v", v)
}

// scalarString writes booleans, numbers, decimals and times; ok is false for
// any other type.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case amqp.Decimal:
		return decimalString(v), true
	case time.Time:
		return v.UTC().Format(time.RFC3339), true
	}
	return "", false
}

func bytesString(b []byte) string {
	if utf8.Valid(b) && !bytes.HasPrefix(b, []byte(Base64Marker)) {
		return string(b)
	}
	return Base64Marker + base64.StdEncoding.EncodeToString(b)
}

// decimalString writes Value / 10^Scale exactly, without floating point.
func decimalString(d amqp.Decimal) string {
	neg := d.Value < 0
	digits := strconv.FormatInt(int64(d.Value), 10)
	if neg {
		digits = digits[1:]
	}
	if scale := int(d.Scale); scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// writeJSON writes v as JSON, as HeaderString documents for nested values.
func writeJSON(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeJSONString(b, v)
	case []byte:
		writeJSONString(b, bytesString(v))
	case time.Time:
		writeJSONString(b, v.UTC().Format(time.RFC3339))
	case float32:
		writeJSONFloat(b, float64(v), 32)
	case float64:
		writeJSONFloat(b, v, 64)
	case amqp.Table:
		writeJSONObject(b, v)
	case map[string]any:
		writeJSONObject(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	default:
		if s, ok := scalarString(v); ok { // integers and decimals: JSON numbers
			b.WriteString(s)
			return
		}
		writeJSONString(b, fmt.Sprintf("%v", v))
	}
}

func writeJSONFloat(b *bytes.Buffer, f float64, bits int) {
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if math.IsInf(f, 0) || math.IsNaN(f) {
		writeJSONString(b, s)
		return
	}
	b.WriteString(s) // 'g' output such as 1e+21 is a valid JSON number
}

func writeJSONObject(b *bytes.Buffer, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(b, k)
		b.WriteByte(':')
		writeJSON(b, m[k])
	}
	b.WriteByte('}')
}

// writeJSONString writes s as a JSON string without HTML escapes (header
// values are not embedded in HTML).
func writeJSONString(b *bytes.Buffer, s string) { jsonscan.WriteString(b, s, false) }
