package persist

import (
	"bytes"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/stratusworks/worker/internal/jsonscan"
)

// Fast paths for the JSON work of a save. Each handles the common case
// exactly as the encoding/json based code does and reports false otherwise,
// in which case the caller takes the general path. The tests check both
// paths against each other.

// canonicalFast returns raw in canonical form (see canonicalObject) when raw
// is a JSON object whose strings need no unescaping or re-escaping: printable
// ASCII or valid UTF-8 other than U+2028 and U+2029, without backslashes. It
// reports false for anything else, including invalid JSON and duplicate keys.
func canonicalFast(raw []byte) (string, bool) {
	c := canonicalizer{s: jsonscan.New(raw), in: raw}
	c.s.Space()
	if c.s.NextByte() != '{' {
		return "", false
	}
	buf := canonicalBufs.Get().(*[]byte)
	out, ok := c.value((*buf)[:0])
	c.s.Space()
	ok = ok && c.s.Done()
	var s string
	if ok {
		s = string(out)
	}
	if cap(out) <= 64<<10 { // large buffers are left to the GC
		*buf = out
		canonicalBufs.Put(buf)
	}
	return s, ok
}

// canonicalBufs holds canonicalFast's scratch buffers.
var canonicalBufs = sync.Pool{New: func() any { return new([]byte) }}

// canonicalizer writes the canonical form of the value the scanner is at.
type canonicalizer struct {
	s     jsonscan.Scanner[[]byte]
	in    []byte
	depth int // nesting of the value being read
}

// maxFastDepth bounds the recursion; deeper input takes the general path.
const maxFastDepth = 256

// value appends the canonical form of the value at the cursor to out.
func (c *canonicalizer) value(out []byte) ([]byte, bool) {
	var t jsonscan.Token
	var ok bool
	switch b := c.s.NextByte(); b {
	case '{', '[':
		if c.depth++; c.depth > maxFastDepth {
			return out, false
		}
		defer func() { c.depth-- }()
		if b == '{' {
			return c.object(out)
		}
		return c.array(out)
	case '"':
		t, ok = c.str()
	case 't', 'f', 'n':
		t, ok = c.s.Literal()
	default:
		t, ok = c.s.Number() // encoding/json keeps a number as written
	}
	return append(out, c.in[t.Start:t.End]...), ok
}

// str reads a string that encoding/json writes back as it is: without
// escapes (it would unescape and re-escape them, not always alike), and
// non-ASCII only as valid UTF-8 other than U+2028 and U+2029 (which it
// escapes).
func (c *canonicalizer) str() (jsonscan.Token, bool) {
	t, ok := c.s.String()
	if !ok || t.Flags&jsonscan.HasEscape != 0 {
		return jsonscan.Token{}, false
	}
	if t.Flags&jsonscan.HasNonASCII != 0 {
		contents := c.in[t.Start+1 : t.End-1]
		if !utf8.Valid(contents) || bytes.Contains(contents, lineSeparator) || bytes.Contains(contents, paragraphSeparator) {
			return jsonscan.Token{}, false
		}
	}
	return t, true
}

var lineSeparator, paragraphSeparator = []byte("\u2028"), []byte("\u2029")

func (c *canonicalizer) array(out []byte) ([]byte, bool) {
	c.s.Accept('[')
	out = append(out, '[')
	c.s.Space()
	if c.s.Accept(']') {
		return append(out, ']'), true
	}
	for {
		c.s.Space()
		var ok bool
		if out, ok = c.value(out); !ok {
			return out, false
		}
		c.s.Space()
		switch {
		case c.s.Accept(','):
			out = append(out, ',')
		case c.s.Accept(']'):
			return append(out, ']'), true
		default:
			return out, false
		}
	}
}

// member is an object member written to the output: its key without
// quotes, and where the member ("key":value) starts and ends in the output.
type member struct {
	key        []byte
	start, end int
}

func (c *canonicalizer) object(out []byte) ([]byte, bool) {
	c.s.Accept('{')
	c.s.Space()
	if c.s.Accept('}') {
		return append(out, "{}"...), true
	}
	// Members are written in input order, which is usually sorted already;
	// otherwise they are reordered at the end.
	base := len(out)
	out = append(out, '{')
	var buf [16]member
	members := buf[:0]
	sorted := true
	for {
		c.s.Space()
		t, ok := c.str()
		if !ok {
			return out, false
		}
		key := c.in[t.Start:t.End]
		c.s.Space()
		if !c.s.Accept(':') {
			return out, false
		}
		c.s.Space()
		start := len(out)
		out = append(out, key...)
		out = append(out, ':')
		if out, ok = c.value(out); !ok {
			return out, false
		}
		m := member{key: key[1 : len(key)-1], start: start, end: len(out)}
		if n := len(members); n > 0 && bytes.Compare(members[n-1].key, m.key) >= 0 {
			sorted = false
		}
		members = append(members, m)
		c.s.Space()
		if c.s.Accept('}') {
			break
		}
		if !c.s.Accept(',') {
			return out, false
		}
		out = append(out, ',')
	}
	if !sorted {
		// Keys are compared as Go strings, as encoding/json sorts map keys;
		// without escapes the raw bytes are the decoded key.
		slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
		for i := 1; i < len(members); i++ {
			if bytes.Equal(members[i-1].key, members[i].key) {
				return out, false // duplicate key: the general path keeps the last
			}
		}
		written := slices.Clone(out[base:])
		out = append(out[:base], '{')
		for i, m := range members {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, written[m.start-base:m.end-base]...)
		}
	}
	return append(out, '}'), true
}

// topMembers splits a canonical JSON object into its top-level members, keys
// without quotes and raw values, appending them to into. It reports false
// unless obj is an object without whitespace between its members whose keys
// are their values as they are (no escapes, valid UTF-8) and are in
// increasing order, and whose values are valid and nested at most
// jsonscan.MaxDepth deep.
func topMembers(obj string, into []jsonMember) ([]jsonMember, bool) {
	s := jsonscan.New(obj)
	if !s.Accept('{') {
		return into, false
	}
	if s.Accept('}') {
		return into, s.Done()
	}
	for {
		k, ok := s.String()
		if !ok || k.Flags&jsonscan.HasEscape != 0 {
			return into, false
		}
		key := obj[k.Start+1 : k.End-1]
		if k.Flags&jsonscan.HasNonASCII != 0 && !utf8.ValidString(key) ||
			len(into) > 0 && into[len(into)-1].key >= key {
			return into, false
		}
		if !s.Accept(':') {
			return into, false
		}
		v, ok := s.SkipValue(jsonscan.MaxDepth)
		if !ok {
			return into, false
		}
		into = append(into, jsonMember{key: key, value: obj[v.Start:v.End]})
		if s.Accept('}') {
			return into, s.Done()
		}
		if !s.Accept(',') {
			return into, false
		}
	}
}

type jsonMember struct{ key, value string }

// diffFieldsFast is diffFields for objects that topMembers can split: both
// are sorted by key, so one merge pass finds the differences in order.
func diffFieldsFast(before, after string) ([]string, bool) {
	var buf [2][16]jsonMember
	b, ok := topMembers(before, buf[0][:0])
	if !ok {
		return nil, false
	}
	a, ok := topMembers(after, buf[1][:0])
	if !ok {
		return nil, false
	}
	var fields []string
	i, j := 0, 0
	for i < len(b) || j < len(a) {
		switch {
		case j == len(a) || (i < len(b) && b[i].key < a[j].key):
			fields = append(fields, b[i].key)
			i++
		case i == len(b) || a[j].key < b[i].key:
			fields = append(fields, a[j].key)
			j++
		default:
			if b[i].value != a[j].value {
				fields = append(fields, b[i].key)
			}
			i++
			j++
		}
	}
	return fields, true
}
