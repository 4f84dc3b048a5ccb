package worker

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unmarshalWire decodes a message body (the JSON of a wireAction) into w.
//
// It gives exactly what json.Unmarshal(body, w) gives, result and error, and
// is several times faster on the bodies encode writes. A hand-written reader
// takes the envelope as encode writes it: an object whose keys are the
// field names in lower case, string values, an integer "v", an RFC 3339
// "created_at", and any JSON value as "payload" (checked and kept as raw
// bytes). Whatever it is not sure of — a key in another case, a string with
// escapes, null, a number with a fraction, deeply nested payloads, and every
// malformed body — it hands to encoding/json, so that unusual bodies decode
// as before and malformed ones fail with encoding/json's own error.
func unmarshalWire(body []byte, w *wireAction) error {
	if fastUnmarshalWire(body, w) {
		return nil
	}
	*w = wireAction{}
	return json.Unmarshal(body, w)
}

// maxFastDepth is how deeply nested a payload the fast reader checks itself;
// deeper ones go to encoding/json (whose own limit is 10000).
const maxFastDepth = 64

// fastUnmarshalWire reports whether it decoded body into w. When it returns
// false w holds garbage and the caller decodes again with encoding/json.
func fastUnmarshalWire(body []byte, w *wireAction) bool {
	r := wireReader{b: body}
	// The string fields are copied out of body at the end, into one string.
	var spans [numStringFields]span
	r.space()
	if !r.byte('{') {
		return false
	}
	r.space()
	if r.byte('}') {
		r.space()
		return r.i == len(r.b)
	}
	for {
		key, ok := r.plainString(false)
		if !ok {
			return false
		}
		r.space()
		if !r.byte(':') {
			return false
		}
		r.space()
		switch string(key) {
		case "v":
			if w.V, ok = r.int(); !ok {
				return false
			}
		case "id":
			ok = r.stringField(&spans[fieldID])
		case "type":
			ok = r.stringField(&spans[fieldType])
		case "customer":
			ok = r.stringField(&spans[fieldCustomer])
		case "account":
			ok = r.stringField(&spans[fieldAccount])
		case "resource":
			ok = r.stringField(&spans[fieldResource])
		case "key":
			ok = r.stringField(&spans[fieldKey])
		case "correlation_id":
			ok = r.stringField(&spans[fieldCorrelationID])
		case "created_at":
			// What encoding/json does for a time.Time: hand the quoted token
			// to Time.UnmarshalJSON, which parses it as strict RFC 3339.
			start := r.i
			if _, ok = r.plainString(true); ok {
				ok = w.CreatedAt.UnmarshalJSON(r.b[start:r.i]) == nil
			}
		case "payload":
			start := r.i
			if ok = r.skipValue(0); ok {
				w.Payload = append(w.Payload[:0], r.b[start:r.i]...)
			}
		default:
			// encoding/json matches keys case-insensitively: a key that folds
			// to a field name is a field, which only encoding/json sets right.
			if foldsToField(key) {
				return false
			}
			ok = r.skipValue(0)
		}
		if !ok {
			return false
		}
		r.space()
		if r.byte(',') {
			r.space()
			continue
		}
		if !r.byte('}') {
			return false
		}
		r.space()
		if r.i != len(r.b) {
			return false
		}
		setStrings(w, body, &spans)
		return true
	}
}

// The string fields of a wireAction, as indexes of the spans array.
const (
	fieldID = iota
	fieldType
	fieldCustomer
	fieldAccount
	fieldResource
	fieldKey
	fieldCorrelationID
	numStringFields
)

// span is where a string field's contents are in the body.
type span struct{ start, end int }

// setStrings sets w's string fields from their spans in body, all carved out
// of one allocation.
func setStrings(w *wireAction, body []byte, spans *[numStringFields]span) {
	n := 0
	for _, sp := range spans {
		n += sp.end - sp.start
	}
	var b strings.Builder
	b.Grow(n)
	for _, sp := range spans {
		b.Write(body[sp.start:sp.end])
	}
	all := b.String()
	at := 0
	for i, dst := range [numStringFields]*string{&w.ID, &w.Type, &w.Customer, &w.Account, &w.Resource, &w.Key, &w.CorrelationID} {
		l := spans[i].end - spans[i].start
		*dst = all[at : at+l]
		at += l
	}
}

var wireFields = [...]string{"v", "id", "type", "customer", "account", "resource", "key", "correlation_id", "created_at", "payload"}

// foldsToField reports whether the ASCII key equals a field name but for case.
func foldsToField(key []byte) bool {
	for _, f := range wireFields {
		if len(f) != len(key) {
			continue
		}
		same := true
		for i := 0; i < len(f); i++ {
			c := key[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != f[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// wireReader is a cursor over a JSON text.
type wireReader struct {
	b []byte
	i int
}

func (r *wireReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (r *wireReader) byte(c byte) bool {
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// plainString reads a string without escapes and returns its contents. With
// utf8 false it accepts only ASCII (keys: non-ASCII ones may fold to a field
// name), with utf8 true valid UTF-8 (which encoding/json keeps as it is).
// It reports false, consuming nothing useful, for anything else.
func (r *wireReader) plainString(allowUTF8 bool) ([]byte, bool) {
	if !r.byte('"') {
		return nil, false
	}
	start := r.i
	high := false
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			if high && (!allowUTF8 || !utf8.Valid(s)) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			high = true
		}
		r.i++
	}
	return nil, false
}

// stringField reads a string value and records where its contents are.
func (r *wireReader) stringField(dst *span) bool {
	start := r.i + 1 // after the opening quote
	_, ok := r.plainString(true)
	if ok {
		*dst = span{start, r.i - 1} // before the closing quote
	}
	return ok
}

// int reads an integer written without fraction or exponent, small enough
// for any int.
func (r *wireReader) int() (int, bool) {
	start := r.i
	r.byte('-')
	digits := r.i
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
	}
	n := r.i - digits
	if n == 0 || n > 9 || (n > 1 && r.b[digits] == '0') {
		return 0, false
	}
	if r.i < len(r.b) {
		switch r.b[r.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	v, err := strconv.Atoi(string(r.b[start:r.i]))
	return v, err == nil
}

// skipValue checks the JSON value at the cursor and moves past it. It accepts
// exactly what encoding/json's scanner accepts (strings need not be valid
// UTF-8), but gives up beyond maxFastDepth.
func (r *wireReader) skipValue(depth int) bool {
	if r.i >= len(r.b) {
		return false
	}
	switch c := r.b[r.i]; {
	case c == '"':
		return r.skipString()
	case c == '{':
		if depth >= maxFastDepth {
			return false
		}
		r.i++
		r.space()
		if r.byte('}') {
			return true
		}
		for {
			r.space()
			if r.i >= len(r.b) || r.b[r.i] != '"' || !r.skipString() {
				return false
			}
			r.space()
			if !r.byte(':') {
				return false
			}
			r.space()
			if !r.skipValue(depth + 1) {
				return false
			}
			r.space()
			if r.byte(',') {
				continue
			}
			return r.byte('}')
		}
	case c == '[':
		if depth >= maxFastDepth {
			return false
		}
		r.i++
		r.space()
		if r.byte(']') {
			return true
		}
		for {
			r.space()
			if !r.skipValue(depth + 1) {
				return false
			}
			r.space()
			if r.byte(',') {
				continue
			}
			return r.byte(']')
		}
	case c == '-' || ('0' <= c && c <= '9'):
		return r.skipNumber()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	}
	return false
}

func (r *wireReader) literal(s string) bool {
	if len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s {
		r.i += len(s)
		return true
	}
	return false
}

func (r *wireReader) skipString() bool {
	r.i++ // the opening quote
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			r.i++
			if r.i >= len(r.b) {
				return false
			}
			switch r.b[r.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(r.b)-r.i < 5 {
					return false
				}
				for _, h := range r.b[r.i+1 : r.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				r.i += 4
			default:
				return false
			}
		}
		r.i++
	}
	return false
}

// skipNumber moves past -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (r *wireReader) skipNumber() bool {
	r.byte('-')
	switch {
	case r.byte('0'):
	case r.i < len(r.b) && '1' <= r.b[r.i] && r.b[r.i] <= '9':
		r.digits()
	default:
		return false
	}
	if r.byte('.') && r.digits() == 0 {
		return false
	}
	if r.byte('e') || r.byte('E') {
		if !r.byte('+') {
			r.byte('-')
		}
		if r.digits() == 0 {
			return false
		}
	}
	return true
}

func (r *wireReader) digits() int {
	start := r.i
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
	}
	return r.i - start
}
