package persist

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
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
	c := canonicalizer{in: raw}
	c.space()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		return "", false
	}
	buf := canonicalBufs.Get().(*[]byte)
	out, ok := c.value((*buf)[:0])
	c.space()
	ok = ok && c.pos == len(c.in)
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

type canonicalizer struct {
	in    []byte
	pos   int
	depth int // nesting of the value being read
}

// maxFastDepth bounds the recursion; deeper input takes the general path.
const maxFastDepth = 256

func (c *canonicalizer) space() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value appends the canonical form of the value at c.pos to out.
func (c *canonicalizer) value(out []byte) ([]byte, bool) {
	if c.pos >= len(c.in) {
		return out, false
	}
	switch b := c.in[c.pos]; {
	case b == '{' || b == '[':
		if c.depth++; c.depth > maxFastDepth {
			return out, false
		}
		defer func() { c.depth-- }()
		if b == '{' {
			return c.object(out)
		}
		return c.array(out)
	case b == '"':
		s, ok := c.str()
		return append(out, s...), ok
	case b == 't':
		return c.literal(out, "true")
	case b == 'f':
		return c.literal(out, "false")
	case b == 'n':
		return c.literal(out, "null")
	default:
		return c.number(out)
	}
}

func (c *canonicalizer) literal(out []byte, lit string) ([]byte, bool) {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
		return out, false
	}
	c.pos += len(lit)
	return append(out, lit...), true
}

// str returns the string token at c.pos, quotes included, when it needs no
// escaping changes.
func (c *canonicalizer) str() ([]byte, bool) {
	start := c.pos
	i := start + 1
	for i < len(c.in) {
		b := c.in[i]
		switch {
		case b == '"':
			c.pos = i + 1
			return c.in[start:c.pos], true
		case b == '\\' || b < 0x20:
			return nil, false
		case b < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(c.in[i:])
			if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
				return nil, false
			}
			i += size
		}
	}
	return nil, false
}

// number copies a JSON number literal, which encoding/json keeps as written.
func (c *canonicalizer) number(out []byte) ([]byte, bool) {
	in, i := c.in, c.pos
	digits := func() bool {
		start := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(in) && in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case !digits():
		return out, false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return out, false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return out, false
		}
	}
	out = append(out, in[c.pos:i]...)
	c.pos = i
	return out, true
}

func (c *canonicalizer) array(out []byte) ([]byte, bool) {
	c.pos++ // [
	out = append(out, '[')
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		return append(out, ']'), true
	}
	for {
		c.space()
		var ok bool
		if out, ok = c.value(out); !ok {
			return out, false
		}
		c.space()
		if c.pos >= len(c.in) {
			return out, false
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
			out = append(out, ',')
		case ']':
			c.pos++
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
	c.pos++ // {
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
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
		c.space()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return out, false
		}
		key, ok := c.str()
		if !ok {
			return out, false
		}
		c.space()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return out, false
		}
		c.pos++
		c.space()
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
		c.space()
		if c.pos >= len(c.in) {
			return out, false
		}
		if c.in[c.pos] == '}' {
			c.pos++
			break
		}
		if c.in[c.pos] != ',' {
			return out, false
		}
		c.pos++
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
// unless obj is a compact object whose keys have no escapes (so that the raw
// bytes are the key) and are in increasing order.
func topMembers(obj string, into []jsonMember) ([]jsonMember, bool) {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return into, false
	}
	if obj == "{}" {
		return into, true
	}
	i := 1
	for {
		if i >= len(obj) || obj[i] != '"' {
			return into, false
		}
		end := strings.IndexByte(obj[i+1:], '"')
		if end < 0 {
			return into, false
		}
		key := obj[i+1 : i+1+end]
		if strings.IndexByte(key, '\\') >= 0 || (len(into) > 0 && into[len(into)-1].key >= key) {
			return into, false
		}
		i += end + 2
		if i >= len(obj) || obj[i] != ':' {
			return into, false
		}
		i++
		vend, ok := skipValue(obj, i)
		if !ok {
			return into, false
		}
		into = append(into, jsonMember{key: key, value: obj[i:vend]})
		i = vend
		if obj[i] == '}' {
			return into, i == len(obj)-1
		}
		i++ // ,
	}
}

type jsonMember struct{ key, value string }

// skipValue returns the index of the ',' or '}' that ends the compact JSON
// value starting at i.
func skipValue(s string, i int) (int, bool) {
	start, depth := i, 0
	for i < len(s) {
		switch s[i] {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case ']':
			depth--
		case '}':
			if depth == 0 {
				return i, i > start
			}
			depth--
		case ',':
			if depth == 0 {
				return i, i > start
			}
		}
		i++
	}
	return i, false
}

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
