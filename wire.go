package worker

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/stratusworks/worker/internal/jsonscan"
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
//
// When body decodes, unmarshalWire also returns the offset of its first
// escaped lone UTF-16 surrogate (which encoding/json decodes as U+FFFD), or
// -1: the fast reader learns it while it scans the strings, a body that
// took encoding/json's path is scanned again for it.
func unmarshalWire(body []byte, w *wireAction) (lone int, err error) {
	if lone, ok := fastUnmarshalWire(body, w); ok {
		return lone, nil
	}
	*w = wireAction{}
	if err := json.Unmarshal(body, w); err != nil {
		return -1, err
	}
	return jsonscan.FirstLoneSurrogate(body), nil
}

// maxFastDepth is how deeply nested a payload the fast reader checks itself;
// deeper ones go to encoding/json (whose own limit is 10000).
const maxFastDepth = 64

// fastUnmarshalWire reports whether it decoded body into w, and if it did,
// the offset of the body's first escaped lone surrogate, or -1. When it
// returns false w holds garbage and the caller decodes again with
// encoding/json.
func fastUnmarshalWire(body []byte, w *wireAction) (lone int, ok bool) {
	s := jsonscan.New(body)
	// The string fields are copied out of body at the end, into one string.
	var spans [numStringFields]span
	s.Space()
	if !s.Accept('{') {
		return -1, false
	}
	s.Space()
	if s.Accept('}') {
		s.Space()
		return s.LoneSurrogate(), s.Done()
	}
	for {
		// A key must be plain ASCII: a non-ASCII one may fold to a field
		// name, an escaped one may be one.
		k, ok := s.String()
		if !ok || k.Flags != 0 {
			return -1, false
		}
		key := body[k.Start+1 : k.End-1]
		s.Space()
		if !s.Accept(':') {
			return -1, false
		}
		s.Space()
		switch string(key) {
		case "v":
			w.V, ok = wireInt(&s, body)
		case "id":
			ok = stringField(&s, body, &spans[fieldID])
		case "type":
			ok = stringField(&s, body, &spans[fieldType])
		case "customer":
			ok = stringField(&s, body, &spans[fieldCustomer])
		case "account":
			ok = stringField(&s, body, &spans[fieldAccount])
		case "resource":
			ok = stringField(&s, body, &spans[fieldResource])
		case "key":
			ok = stringField(&s, body, &spans[fieldKey])
		case "correlation_id":
			ok = stringField(&s, body, &spans[fieldCorrelationID])
		case "created_at":
			// What encoding/json does for a time.Time: hand the quoted token
			// to Time.UnmarshalJSON, which parses it as strict RFC 3339.
			var t jsonscan.Token
			if t, ok = plainString(&s, body); ok {
				ok = w.CreatedAt.UnmarshalJSON(body[t.Start:t.End]) == nil
			}
		case "payload":
			var t jsonscan.Token
			if t, ok = s.SkipValue(maxFastDepth); ok {
				w.Payload = append(w.Payload[:0], body[t.Start:t.End]...)
			}
		default:
			// encoding/json matches keys case-insensitively: a key that folds
			// to a field name is a field, which only encoding/json sets right.
			if foldsToField(key) {
				return -1, false
			}
			_, ok = s.SkipValue(maxFastDepth)
		}
		if !ok {
			return -1, false
		}
		s.Space()
		if s.Accept(',') {
			s.Space()
			continue
		}
		if !s.Accept('}') {
			return -1, false
		}
		s.Space()
		if !s.Done() {
			return -1, false
		}
		setStrings(w, body, &spans)
		return s.LoneSurrogate(), true
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

// plainString reads a string whose contents are its value as they are: no
// escapes, valid UTF-8 (which encoding/json keeps as it is).
func plainString(s *jsonscan.Scanner, body []byte) (jsonscan.Token, bool) {
	t, ok := s.String()
	if !ok || t.Flags&jsonscan.HasEscape != 0 ||
		t.Flags&jsonscan.HasNonASCII != 0 && !utf8.Valid(body[t.Start+1:t.End-1]) {
		return jsonscan.Token{}, false
	}
	return t, true
}

// stringField reads a plain string value and records where its contents are.
func stringField(s *jsonscan.Scanner, body []byte, dst *span) bool {
	t, ok := plainString(s, body)
	if ok {
		*dst = span{t.Start + 1, t.End - 1} // between the quotes
	}
	return ok
}

// wireInt reads an integer written without fraction or exponent, small
// enough for any int (at most 9 digits).
func wireInt(s *jsonscan.Scanner, body []byte) (int, bool) {
	t, ok := s.Number()
	if !ok || t.Flags != 0 {
		return 0, false
	}
	digits := body[t.Start:t.End]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) > 9 {
		return 0, false
	}
	v := 0
	for _, d := range digits {
		v = v*10 + int(d-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
