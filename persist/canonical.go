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
	s     jsonscan.Scanner
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

// member is an object member written to the output: where its key's
// contents are in the input, and where the member ("key":value) starts and
// ends in the output. (Offsets, not slices: members sort without write
// barriers.)
type member struct {
	keyStart, keyEnd int
	start, end       int
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
	in := c.in
	for {
		c.s.Space()
		t, ok := c.str()
		if !ok {
			return out, false
		}
		c.s.Space()
		if !c.s.Accept(':') {
			return out, false
		}
		c.s.Space()
		start := len(out)
		out = append(out, in[t.Start:t.End]...)
		out = append(out, ':')
		if out, ok = c.value(out); !ok {
			return out, false
		}
		m := member{keyStart: t.Start + 1, keyEnd: t.End - 1, start: start, end: len(out)}
		if n := len(members); n > 0 && bytes.Compare(in[members[n-1].keyStart:members[n-1].keyEnd], in[m.keyStart:m.keyEnd]) >= 0 {
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
		key := func(m member) []byte { return in[m.keyStart:m.keyEnd] }
		slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(key(a), key(b)) })
		for i := 1; i < len(members); i++ {
			if bytes.Equal(key(members[i-1]), key(members[i])) {
				return out, false // duplicate key: the general path keeps the last
			}
		}
		// The members in order after the ones written, then moved back
		// over them: the same bytes, in another order.
		n := len(out)
		for i, m := range members {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, out[m.start:m.end]...)
		}
		out = out[:base+1+copy(out[base+1:], out[n:])]
	}
	return append(out, '}'), true
}

// topMembers splits a canonical JSON object into its top-level members,
// appending them to into. It reports false unless obj is an object without
// whitespace between its members (see readMember) whose keys are in
// increasing order.
func topMembers(obj string, into []jsonMember) ([]jsonMember, bool) {
	s := jsonscan.NewString(obj)
	if !s.Accept('{') {
		return into, false
	}
	if s.Accept('}') {
		return into, s.Done()
	}
	for {
		m, ok := readMember(&s, obj)
		if !ok || len(into) > 0 && into[len(into)-1].key >= m.key {
			return into, false
		}
		into = append(into, m)
		if s.Accept('}') {
			return into, s.Done()
		}
		if !s.Accept(',') {
			return into, false
		}
	}
}

// jsonMember is a member of a compact object: its bytes "key":value, and
// the key without quotes.
type jsonMember struct{ key, member string }

// value returns the member's raw value.
func (m jsonMember) value() string { return m.member[len(m.key)+3:] }

// readMember reads the member at the cursor of s, a scanner of obj: a key
// that is its value as it is (no escapes, valid UTF-8), a colon right after
// it, and a valid value nested at most jsonscan.MaxDepth deep.
func readMember(s *jsonscan.Scanner, obj string) (jsonMember, bool) {
	k, ok := s.String()
	if !ok || k.Flags&jsonscan.HasEscape != 0 {
		return jsonMember{}, false
	}
	key := obj[k.Start+1 : k.End-1]
	if k.Flags&jsonscan.HasNonASCII != 0 && !utf8.ValidString(key) || !s.Accept(':') {
		return jsonMember{}, false
	}
	v, ok := s.SkipValue(jsonscan.MaxDepth)
	if !ok {
		return jsonMember{}, false
	}
	return jsonMember{key: key, member: obj[k.Start:v.End]}, true
}

// diffFieldsFast is diffFields for objects that topMembers can split. It
// splits before, then reads after's members in step with before's: both
// are sorted by key, so one merge pass finds the differences in order. A
// member of after that is byte for byte the member of before it meets (as
// most are) is taken without reading it: it is valid, and unchanged.
func diffFieldsFast(before, after string) ([]string, bool) {
	var buf [16]jsonMember
	b, ok := topMembers(before, buf[:0])
	if !ok {
		return nil, false
	}
	s := jsonscan.NewString(after)
	if !s.Accept('{') {
		return nil, false
	}
	var fields []string
	i := 0 // b[i] is the next member of before to meet
	if !s.Accept('}') {
		var prev string // after's last key
		for n := 0; ; n++ {
			var key string
			if rest := after[s.Pos():]; i < len(b) && sameMember(rest, b[i].member) {
				key = b[i].key
				s.Skip(len(b[i].member))
				i++
			} else {
				m, ok := readMember(&s, after)
				if !ok {
					return nil, false
				}
				key = m.key
				for i < len(b) && b[i].key < key {
					fields = append(fields, b[i].key) // removed
					i++
				}
				if i < len(b) && b[i].key == key {
					if b[i].value() != m.value() {
						fields = append(fields, key) // changed
					}
					i++
				} else {
					fields = append(fields, key) // added
				}
			}
			if n > 0 && key <= prev {
				return nil, false
			}
			prev = key
			if s.Accept('}') {
				break
			}
			if !s.Accept(',') {
				return nil, false
			}
		}
	}
	if !s.Done() {
		return nil, false
	}
	for ; i < len(b); i++ {
		fields = append(fields, b[i].key) // removed
	}
	return fields, true
}

// sameMember reports whether rest starts with member and then ends it with
// a comma or a closing brace: then rest holds the same member, as a
// scanner would read it.
func sameMember(rest, member string) bool {
	return len(rest) > len(member) && rest[:len(member)] == member &&
		(rest[len(member)] == ',' || rest[len(member)] == '}')
}
