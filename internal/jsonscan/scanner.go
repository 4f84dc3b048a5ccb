package jsonscan

import "math/bits"

// Input is what a [Scanner] reads: a JSON text as bytes or as a string.
type Input interface{ string | []byte }

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

// Scanner is a cursor over a JSON text. The zero value is not usable; make
// one with [New]. A Scanner is a small value: keep it on the stack.
type Scanner[T Input] struct {
	in  T
	pos int
	// lone is 1 + the offset of the first lone surrogate escape read, 0 for
	// none.
	lone int
}

// New returns a scanner at the start of in.
func New[T Input](in T) Scanner[T] { return Scanner[T]{in: in} }

// Pos returns the cursor's offset in the input.
func (s *Scanner[T]) Pos() int { return s.pos }

// Done reports whether the cursor is at the end of the input.
func (s *Scanner[T]) Done() bool { return s.pos >= len(s.in) }

// NextByte returns the byte at the cursor without consuming it, or 0 at the
// end of the input (0 starts no JSON token).
func (s *Scanner[T]) NextByte() byte {
	if s.pos < len(s.in) {
		return s.in[s.pos]
	}
	return 0
}

// Accept consumes c if it is the byte at the cursor, and reports whether it
// was. It is for the structural bytes { } [ ] : and ,.
func (s *Scanner[T]) Accept(c byte) bool {
	if s.pos < len(s.in) && s.in[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// Space moves the cursor past JSON whitespace: space, tab, newline and
// carriage return.
func (s *Scanner[T]) Space() { s.pos = space(s.in, s.pos) }

func space[T Input](in T, i int) int {
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

// LoneSurrogate returns the offset (of the backslash) of the first \u
// escape of a lone UTF-16 surrogate the scanner has read in any string, or
// -1 if it has read none. See [HasLoneSurrogate].
func (s *Scanner[T]) LoneSurrogate() int { return s.lone - 1 }

// The methods that read tokens are wrappers of functions that take the
// input and an offset and return the offset after the token, so that the
// loops keep the cursor in a register.

// Literal reads true, false or null at the cursor.
func (s *Scanner[T]) Literal() (Token, bool) { return s.token(literal(s.in, s.pos)) }

// String reads the string at the cursor. Its contents are
// in[tok.Start+1:tok.End-1]; they are its value when tok.Flags has no
// HasEscape and, if it has HasNonASCII, they are valid UTF-8.
func (s *Scanner[T]) String() (Token, bool) { return s.token(str(s.in, s.pos, &s.lone)) }

// Number reads the number at the cursor:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. It stops where the
// grammar ends; what follows is the caller's to check ("01" reads as 0).
func (s *Scanner[T]) Number() (Token, bool) { return s.token(number(s.in, s.pos)) }

// SkipValue reads the value at the cursor, with no whitespace before it,
// and moves past it. It fails for an invalid value and for one with arrays
// and objects nested deeper than maxDepth (or MaxDepth); maxDepth 0 allows
// only a string, number or literal. Whitespace after the value is left.
func (s *Scanner[T]) SkipValue(maxDepth int) (Token, bool) {
	return s.token(value(s.in, s.pos, maxDepth, &s.lone))
}

// token moves the cursor to end and returns the token from the cursor to
// there, or reports a failed read.
func (s *Scanner[T]) token(end int, f Flags, ok bool) (Token, bool) {
	if !ok {
		return Token{}, false
	}
	t := Token{Start: s.pos, End: end, Flags: f}
	s.pos = end
	return t, true
}

func literal[T Input](in T, i int) (int, Flags, bool) {
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
	if lit == "" || len(in)-i < len(lit) {
		return 0, 0, false
	}
	for j := 1; j < len(lit); j++ {
		if in[i+j] != lit[j] {
			return 0, 0, false
		}
	}
	return i + len(lit), 0, true
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

// Constants for testing eight bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load8 returns in[i:i+8] as a little-endian uint64.
func load8[T Input](in T, i int) uint64 {
	b := in[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// plainRun returns the offset of the first byte at or after i that ends a
// run of plain string bytes: a quote, a backslash, a control character,
// and, if nonASCII is false, a byte of 0x80 and above; len(in) if there is
// none.
//
// It tests eight bytes at a time. (v - n*ones) &^ v & highs flags the bytes
// of v below n, but for false flags above the lowest true one (a borrow
// runs upwards, and only out of a byte below n), so the lowest flag of the
// union of such tests is the first byte that ends the run.
func plainRun[T Input](in T, i int, nonASCII bool) int {
	high := uint64(highs)
	mask := stopAlways | stopNonASCII
	if nonASCII {
		high, mask = 0, stopAlways
	}
	for i+8 <= len(in) {
		x := load8(in, i)
		q := x ^ ('"' * ones)
		b := x ^ ('\\' * ones)
		if m := (x&high | (x-0x20*ones)&^x | (q-ones)&^q | (b-ones)&^b) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(in) && stops[in[i]]&mask == 0 {
		i++
	}
	return i
}

// str reads the string at in[i:]. lone is the scanner's first lone
// surrogate (1 + its offset, 0 for none).
func str[T Input](in T, i int, lone *int) (int, Flags, bool) {
	if i >= len(in) || in[i] != '"' {
		return 0, 0, false
	}
	var f Flags
	i++
	for {
		if i = plainRun(in, i, f&HasNonASCII != 0); i >= len(in) {
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
			i++
		}
	}
}

// escape checks the escape whose backslash is at i and returns the offset
// after it: after both escapes for a surrogate pair.
func escape[T Input](in T, i int, f *Flags, lone *int) (int, bool) {
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
func hex4[T Input](in T, i int) (rune, bool) {
	if len(in)-i < 4 {
		return 0, false
	}
	a, b, c, d := hexVal[in[i]], hexVal[in[i+1]], hexVal[in[i+2]], hexVal[in[i+3]]
	if a|b|c|d < 0 {
		return 0, false
	}
	return rune(a)<<12 | rune(b)<<8 | rune(c)<<4 | rune(d), true
}

func number[T Input](in T, i int) (int, Flags, bool) {
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
func digits[T Input](in T, i int) int {
	for i < len(in) && '0' <= in[i] && in[i] <= '9' {
		i++
	}
	return i
}

// scalar reads the string, number or literal at in[i:].
func scalar[T Input](in T, i int, lone *int) (int, Flags, bool) {
	if i < len(in) {
		switch in[i] {
		case '"':
			return str(in, i, lone)
		case 't', 'f', 'n':
			return literal(in, i)
		}
	}
	return number(in, i)
}

// value reads the value at in[i:] (see SkipValue).
func value[T Input](in T, i, maxDepth int, lone *int) (int, Flags, bool) {
	if i >= len(in) || in[i] != '{' && in[i] != '[' {
		return scalar(in, i, lone)
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
			i, tf, ok = str(in, i, lone)
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
func key[T Input](in T, i int, lone *int) (int, Flags, bool) {
	i, f, ok := str(in, i, lone)
	if !ok {
		return 0, 0, false
	}
	i = space(in, i)
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
func FirstLoneSurrogate[T Input](valid T) int {
	lone := 0
	for i := 0; i < len(valid) && lone == 0; {
		if valid[i] != '"' {
			// Outside strings a valid text has no quotes and no escapes.
			i++
			continue
		}
		end, _, ok := str(valid, i, &lone)
		if !ok {
			end = i + 1
		}
		i = end
	}
	return lone - 1
}
