package jsonscan

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// MaxDepth is the deepest nesting of arrays and objects that
// [Scanner.SkipValue] follows; a larger maxDepth counts as MaxDepth.
const MaxDepth = 256

// Flags say what a token holds beyond its bare syntax.
type Flags uint8

const (
	// HasEscape: a string has at least one backslash escape, so its bytes
	// between the quotes are not its value.
	HasEscape Flags = 1 << iota
	// HasNonASCII: a string has bytes of 0x80 and above. They may be valid
	// UTF-8 or not; the scanner does not check.
	HasNonASCII
	// HasLoneSurrogate: a string has a \u escape of a UTF-16 surrogate that
	// is not the high half of a high-low pair or that pair's low half.
	// encoding/json decodes such an escape as U+FFFD. Implies HasEscape.
	HasLoneSurrogate
	// HasFraction: a number has a fraction part (".5").
	HasFraction
	// HasExponent: a number has an exponent part ("e3").
	HasExponent
)

// Token is a token or value the scanner has read: its bytes are
// in[Start:End], quotes included for a string.
type Token struct {
	Start, End int
	// Flags of the token; for a value read by SkipValue, the flags of every
	// token in it.
	Flags Flags
}

// Scanner is a cursor over a JSON text. Make one with [New] or
// [NewString]; the zero value scans an empty text. A Scanner is a small
// value: keep it on the stack.
type Scanner struct {
	in  []byte // never written: it may be a string's bytes
	pos int
	// lone is 1 + the offset of the first lone surrogate escape read, 0 for
	// none.
	lone int
}

// New returns a scanner at the start of in. The scanner reads in where it
// is: in must not change while the scanner is in use.
func New(in []byte) Scanner { return Scanner{in: in} }

// NewString returns a scanner at the start of in, reading its bytes where
// they are (the scanner never writes to its input, and tokens are offsets,
// so nothing the scanner returns refers to in).
func NewString(in string) Scanner {
	return Scanner{in: unsafe.Slice(unsafe.StringData(in), len(in))}
}

// Pos returns the cursor's offset in the input.
func (s *Scanner) Pos() int { return s.pos }

// Done reports whether the cursor is at the end of the input.
func (s *Scanner) Done() bool { return s.pos >= len(s.in) }

// NextByte returns the byte at the cursor without consuming it, or 0 at the
// end of the input (0 starts no JSON token).
func (s *Scanner) NextByte() byte {
	if s.pos < len(s.in) {
		return s.in[s.pos]
	}
	return 0
}

// Accept consumes c if it is the byte at the cursor, and reports whether it
// was. It is for the structural bytes { } [ ] : and ,.
func (s *Scanner) Accept(c byte) bool {
	if s.pos < len(s.in) && s.in[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// Skip moves the cursor n bytes on (but not past the end), over bytes the
// caller has vouched for itself: for instance, found equal to bytes it
// read as a token before.
func (s *Scanner) Skip(n int) { s.pos = min(s.pos+max(n, 0), len(s.in)) }

// Space moves the cursor past JSON whitespace: space, tab, newline and
// carriage return.
func (s *Scanner) Space() { s.pos = space(s.in, s.pos) }

// LoneSurrogate returns the offset (of the backslash) of the first \u
// escape of a lone UTF-16 surrogate the scanner has read in any string, or
// -1 if it has read none. See [HasLoneSurrogate].
func (s *Scanner) LoneSurrogate() int { return s.lone - 1 }

// The methods that read tokens wrap functions that take the input and an
// offset and return the offset after the token, so that loops keep the
// cursor in a register and SkipValue's loop calls nothing for the common
// tokens.

// Literal reads true, false or null at the cursor.
func (s *Scanner) Literal() (Token, bool) { return s.token(literal(s.in, s.pos)) }

// String reads the string at the cursor. Its contents are
// in[tok.Start+1:tok.End-1]; they are its value when tok.Flags has no
// HasEscape and, if it has HasNonASCII, they are valid UTF-8.
func (s *Scanner) String() (Token, bool) {
	if s.pos < len(s.in) && s.in[s.pos] == '"' {
		// The common case without a call: printable ASCII whose end
		// asciiRun finds.
		if j, found := asciiRun(s.in, s.pos+1); found && s.in[j] == '"' {
			return s.token(j+1, 0, true)
		}
	}
	return s.token(str(s.in, s.pos, &s.lone))
}

// Number reads the number at the cursor:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. It stops where the
// grammar ends; what follows is the caller's to check ("01" reads as 0).
func (s *Scanner) Number() (Token, bool) { return s.token(number(s.in, s.pos)) }

// SkipValue reads the value at the cursor, with no whitespace before it,
// and moves past it. It fails for an invalid value and for one with arrays
// and objects nested deeper than maxDepth (or MaxDepth); maxDepth 0 allows
// only a string, number or literal. Whitespace after the value is left.
func (s *Scanner) SkipValue(maxDepth int) (Token, bool) {
	if s.pos < len(s.in) && s.in[s.pos] == '"' {
		return s.String()
	}
	return s.token(value(s.in, s.pos, maxDepth, &s.lone))
}

// token moves the cursor to end and returns the token from the cursor to
// there, or reports a failed read.
func (s *Scanner) token(end int, f Flags, ok bool) (Token, bool) {
	if !ok {
		return Token{}, false
	}
	t := Token{Start: s.pos, End: end, Flags: f}
	s.pos = end
	return t, true
}

func space(in []byte, i int) int {
	for i < len(in) {
		switch in[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func literal(in []byte, i int) (int, Flags, bool) {
	var lit string
	if i < len(in) {
		switch in[i] {
		case 't':
			lit = "true"
		case 'f':
			lit = "false"
		case 'n':
			lit = "null"
		}
	}
	if lit == "" || len(in)-i < len(lit) || string(in[i:i+len(lit)]) != lit {
		return 0, 0, false
	}
	return i + len(lit), 0, true
}

// Constants for testing eight bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// asciiRun looks at the whole eight-byte chunks from in[j:] for the first
// byte that is a quote, a backslash, a control character or non-ASCII, and
// returns its offset and true; or the offset after the last chunk and false
// if they hold none.
//
// In x - n*ones, a byte below n (and none of 0x80 and above) sets its high
// bit and borrows from the byte above, which may set that one's high bit
// too: the lowest high bit set is the first byte below n or of 0x80 and
// above. So in m, the lowest bit set is the first byte that is a control
// character (x - 0x20*ones), a quote or a backslash (q or b has a zero
// byte there) or non-ASCII (x itself).
func asciiRun(in []byte, j int) (int, bool) {
	for ; j+8 <= len(in); j += 8 {
		x := binary.LittleEndian.Uint64(in[j:])
		q := x ^ ('"' * ones)
		b := x ^ ('\\' * ones)
		if m := (x | (x - 0x20*ones) | (q - ones) | (b - ones)) & highs; m != 0 {
			return j + bits.TrailingZeros64(m)/8, true
		}
	}
	return j, false
}

// stops classifies bytes for str's byte loop, which stops at a byte whose
// class shares a bit with its mask: stopAlways for the quote, the backslash
// and control characters, stopNonASCII for bytes of 0x80 and above until
// the string has shown one.
var stops = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == '"' || c == '\\' || c < 0x20:
			t[c] = stopAlways
		case c >= 0x80:
			t[c] = stopNonASCII
		}
	}
	return t
}()

const (
	stopAlways uint8 = 1 << iota
	stopNonASCII
)

// str reads the string at in[i:]. lone is the scanner's first lone
// surrogate (1 + its offset, 0 for none).
func str(in []byte, i int, lone *int) (int, Flags, bool) {
	if i >= len(in) || in[i] != '"' {
		return 0, 0, false
	}
	var f Flags
	mask := stopAlways | stopNonASCII
	i++
	for {
		if f&HasNonASCII == 0 {
			i, _ = asciiRun(in, i)
		}
		for i < len(in) && stops[in[i]]&mask == 0 {
			i++
		}
		if i >= len(in) {
			return 0, 0, false
		}
		switch c := in[i]; {
		case c == '"':
			return i + 1, f, true
		case c == '\\':
			f |= HasEscape
			var ok bool
			if i, ok = escape(in, i, &f, lone); !ok {
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default: // c >= 0x80
			f |= HasNonASCII
			mask = stopAlways
			i++
		}
	}
}

// escape checks the escape whose backslash is at i and returns the offset
// after it: after both escapes for a surrogate pair.
func escape(in []byte, i int, f *Flags, lone *int) (int, bool) {
	if i+1 >= len(in) {
		return 0, false
	}
	switch in[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, true
	case 'u':
	default:
		return 0, false
	}
	r, ok := hex4(in, i+2)
	if !ok {
		return 0, false
	}
	if r < 0xd800 || r > 0xdfff {
		return i + 6, true
	}
	if r < 0xdc00 && i+12 <= len(in) && in[i+6] == '\\' && in[i+7] == 'u' {
		if lo, ok := hex4(in, i+8); ok && 0xdc00 <= lo && lo <= 0xdfff {
			return i + 12, true
		}
	}
	// A lone one; an escape after it is read on its own.
	*f |= HasLoneSurrogate
	if *lone == 0 {
		*lone = i + 1
	}
	return i + 6, true
}

// hexVal is the value of a hexadecimal digit, or -1.
var hexVal = func() (t [256]int8) {
	for c := range 256 {
		switch {
		case '0' <= c && c <= '9':
			t[c] = int8(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = int8(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[c] = int8(c - 'A' + 10)
		default:
			t[c] = -1
		}
	}
	return t
}()

// hex4 returns the value of the four hexadecimal digits at in[i:].
func hex4(in []byte, i int) (rune, bool) {
	if len(in)-i < 4 {
		return 0, false
	}
	h := in[i : i+4]
	a, b, c, d := hexVal[h[0]], hexVal[h[1]], hexVal[h[2]], hexVal[h[3]]
	if a|b|c|d < 0 {
		return 0, false
	}
	return rune(a)<<12 | rune(b)<<8 | rune(c)<<4 | rune(d), true
}

func number(in []byte, i int) (int, Flags, bool) {
	var f Flags
	if i < len(in) && in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && '1' <= in[i] && in[i] <= '9':
		i = digits(in, i+1)
	default:
		return 0, 0, false
	}
	if i < len(in) && in[i] == '.' {
		f |= HasFraction
		d := i + 1
		if i = digits(in, d); i == d {
			return 0, 0, false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		f |= HasExponent
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		d := i
		if i = digits(in, d); i == d {
			return 0, 0, false
		}
	}
	return i, f, true
}

// digits returns the offset of the first byte at or after i that is not a
// decimal digit.
func digits(in []byte, i int) int {
	for i < len(in) && '0' <= in[i] && in[i] <= '9' {
		i++
	}
	return i
}

// value reads the value at in[i:] (see SkipValue).
func value(in []byte, i, maxDepth int, lone *int) (int, Flags, bool) {
	if i >= len(in) {
		return 0, 0, false
	}
	switch in[i] {
	case '"':
		if j, found := asciiRun(in, i+1); found && in[j] == '"' {
			return j + 1, 0, true // see String
		}
		return str(in, i, lone)
	case 't', 'f', 'n':
		return literal(in, i)
	case '{', '[':
	default:
		return number(in, i)
	}
	maxDepth = max(0, min(maxDepth, MaxDepth))
	// objects has bit d set when the container at depth d is an object.
	var objects [MaxDepth / 64]uint64
	var f, tf Flags
	var ok bool
	depth := uint(0)
	for {
		// A value starts at i.
		var c byte
		if i < len(in) {
			c = in[i]
		}
		switch c {
		case '{', '[':
			if depth >= uint(maxDepth) {
				return 0, 0, false
			}
			i = space(in, i+1)
			if i < len(in) && in[i] == c+2 { // '{'+2 is '}', '['+2 is ']'
				i, tf, ok = i+1, 0, true // empty: a value has ended
				break
			}
			word, bit := depth/64, uint64(1)<<(depth%64)
			depth++
			if c == '[' {
				objects[word] &^= bit
				continue
			}
			objects[word] |= bit
			if i, tf, ok = key(in, i, lone); !ok {
				return 0, 0, false
			}
			f |= tf
			continue
		case '"':
			if j, found := asciiRun(in, i+1); found && in[j] == '"' {
				i, tf, ok = j+1, 0, true // see String
			} else {
				i, tf, ok = str(in, i, lone)
			}
		case 't', 'f', 'n':
			i, tf, ok = literal(in, i)
		default:
			i, tf, ok = number(in, i)
		}
		if !ok {
			return 0, 0, false
		}
		f |= tf
		// A value has ended: close containers until one goes on.
		for {
			if depth == 0 {
				return i, f, true
			}
			i = space(in, i)
			if i >= len(in) {
				return 0, 0, false
			}
			d := depth - 1
			object := objects[d/64]&(1<<(d%64)) != 0
			c := in[i]
			if c == ',' {
				i = space(in, i+1)
				if object {
					if i, tf, ok = key(in, i, lone); !ok {
						return 0, 0, false
					}
					f |= tf
				}
				break
			}
			if object && c != '}' || !object && c != ']' {
				return 0, 0, false
			}
			i++
			depth--
		}
	}
}

// key reads an object member's key and colon, and the whitespace after.
func key(in []byte, i int, lone *int) (int, Flags, bool) {
	var end int
	var f Flags
	if j, found := asciiRun(in, i+1); i < len(in) && in[i] == '"' && found && in[j] == '"' {
		end = j + 1 // see String
	} else {
		var ok bool
		if end, f, ok = str(in, i, lone); !ok {
			return 0, 0, false
		}
	}
	if end < len(in) && in[end] == ':' { // compact, as usual
		return space(in, end+1), f, true
	}
	i = space(in, end)
	if i >= len(in) || in[i] != ':' {
		return 0, 0, false
	}
	return space(in, i+1), f, true
}

// FirstLoneSurrogate returns the offset of the backslash of the first \u
// escape in the JSON text valid that is a lone UTF-16 surrogate (see
// [HasLoneSurrogate]), or -1. valid must be valid JSON, as json.Valid
// checks; for other input the result is meaningless (but it returns).
// Nesting depth does not matter.
func FirstLoneSurrogate(valid []byte) int {
	if bytes.IndexByte(valid, '\\') < 0 {
		return -1 // no escapes at all
	}
	lone := 0
	for i := 0; lone == 0; {
		// Outside strings a valid text has no quotes and no escapes.
		q := bytes.IndexByte(valid[i:], '"')
		if q < 0 {
			break
		}
		end, _, ok := str(valid, i+q, &lone)
		if !ok {
			end = i + q + 1
		}
		i = end
	}
	return lone - 1
}
