package jsonscan

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
func (s *Scanner[T]) Space() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// LoneSurrogate returns the offset (of the backslash) of the first \u
// escape of a lone UTF-16 surrogate the scanner has read in any string, or
// -1 if it has read none. See [HasLoneSurrogate].
func (s *Scanner[T]) LoneSurrogate() int { return s.lone - 1 }

// Literal reads true, false or null at the cursor.
func (s *Scanner[T]) Literal() (Token, bool) {
	var lit string
	switch s.NextByte() {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	case 'n':
		lit = "null"
	default:
		return Token{}, false
	}
	start := s.pos
	if len(s.in)-start < len(lit) {
		return Token{}, false
	}
	for i := 1; i < len(lit); i++ {
		if s.in[start+i] != lit[i] {
			return Token{}, false
		}
	}
	s.pos += len(lit)
	return Token{Start: start, End: s.pos}, true
}

// stopASCII marks the bytes at which String's inner loop stops: the quote,
// the backslash, control characters and non-ASCII bytes. Once a string has
// shown a non-ASCII byte the loop uses stopAny, which lets them pass.
var stopASCII, stopAny = func() (ascii, all [256]bool) {
	for c := range 256 {
		special := c == '"' || c == '\\' || c < 0x20
		ascii[c] = special || c >= 0x80
		all[c] = special
	}
	return ascii, all
}()

// String reads the string at the cursor. Its contents are
// in[tok.Start+1:tok.End-1]; they are its value when tok.Flags has no
// HasEscape and, if it has HasNonASCII, they are valid UTF-8.
func (s *Scanner[T]) String() (Token, bool) {
	in, start := s.in, s.pos
	if start >= len(in) || in[start] != '"' {
		return Token{}, false
	}
	var f Flags
	stop := &stopASCII
	i := start + 1
	for {
		for i < len(in) && !stop[in[i]] {
			i++
		}
		if i >= len(in) {
			return Token{}, false
		}
		switch c := in[i]; {
		case c == '"':
			s.pos = i + 1
			return Token{Start: start, End: i + 1, Flags: f}, true
		case c == '\\':
			f |= HasEscape
			var ok bool
			if i, ok = s.escape(i, &f); !ok {
				return Token{}, false
			}
		case c < 0x20:
			return Token{}, false
		default: // c >= 0x80
			f |= HasNonASCII
			stop = &stopAny
			i++
		}
	}
}

// escape checks the escape whose backslash is at i and returns the offset
// after it: after both escapes for a surrogate pair.
func (s *Scanner[T]) escape(i int, f *Flags) (int, bool) {
	in := s.in
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
	if s.lone == 0 {
		s.lone = i + 1
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

// Number reads the number at the cursor:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. It stops where the
// grammar ends; what follows is the caller's to check ("01" reads as 0).
func (s *Scanner[T]) Number() (Token, bool) {
	in, i := s.in, s.pos
	start := i
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
		return Token{}, false
	}
	if i < len(in) && in[i] == '.' {
		f |= HasFraction
		d := i + 1
		if i = digits(in, d); i == d {
			return Token{}, false
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
			return Token{}, false
		}
	}
	s.pos = i
	return Token{Start: start, End: i, Flags: f}, true
}

// digits returns the offset of the first byte at or after i that is not a
// decimal digit.
func digits[T Input](in T, i int) int {
	for i < len(in) && '0' <= in[i] && in[i] <= '9' {
		i++
	}
	return i
}

// scalar reads the string, number or literal at the cursor.
func (s *Scanner[T]) scalar() (Token, bool) {
	switch s.NextByte() {
	case '"':
		return s.String()
	case 't', 'f', 'n':
		return s.Literal()
	default:
		return s.Number()
	}
}

// SkipValue reads the value at the cursor, with no whitespace before it,
// and moves past it. It fails for an invalid value and for one with arrays
// and objects nested deeper than maxDepth (or MaxDepth); maxDepth 0 allows
// only a string, number or literal. Whitespace after the value is left.
func (s *Scanner[T]) SkipValue(maxDepth int) (Token, bool) {
	start := s.pos
	if c := s.NextByte(); c != '{' && c != '[' {
		return s.scalar()
	}
	maxDepth = min(maxDepth, MaxDepth)
	// objects has bit d set when the container at depth d is an object.
	var objects [MaxDepth / 64]uint64
	var f Flags
	depth := 0
	for {
		// A value starts at the cursor.
		switch c := s.NextByte(); c {
		case '{', '[':
			if depth >= maxDepth {
				return Token{}, false
			}
			s.pos++
			s.Space()
			if s.Accept(c + 2) { // '{'+2 is '}', '['+2 is ']'
				break // empty: a value has ended
			}
			word, bit := depth/64, uint64(1)<<(depth%64)
			if c == '{' {
				objects[word] |= bit
			} else {
				objects[word] &^= bit
			}
			depth++
			if c == '{' && !s.key(&f) {
				return Token{}, false
			}
			continue
		default:
			t, ok := s.scalar()
			if !ok {
				return Token{}, false
			}
			f |= t.Flags
		}
		// A value has ended: close containers until one goes on.
		for {
			if depth == 0 {
				return Token{Start: start, End: s.pos, Flags: f}, true
			}
			s.Space()
			object := objects[(depth-1)/64]&(uint64(1)<<((depth-1)%64)) != 0
			if s.Accept(',') {
				s.Space()
				if object && !s.key(&f) {
					return Token{}, false
				}
				break
			}
			closer := byte(']')
			if object {
				closer = '}'
			}
			if !s.Accept(closer) {
				return Token{}, false
			}
			depth--
		}
	}
}

// key reads an object member's key and colon, and the whitespace after,
// adding the key's flags to f.
func (s *Scanner[T]) key(f *Flags) bool {
	t, ok := s.String()
	if !ok {
		return false
	}
	*f |= t.Flags
	s.Space()
	if !s.Accept(':') {
		return false
	}
	s.Space()
	return true
}

// FirstLoneSurrogate returns the offset of the backslash of the first \u
// escape in the JSON text valid that is a lone UTF-16 surrogate (see
// [HasLoneSurrogate]), or -1. valid must be valid JSON, as json.Valid
// checks; for other input the result is meaningless (but it returns).
// Nesting depth does not matter.
func FirstLoneSurrogate[T Input](valid T) int {
	s := New(valid)
	for s.pos < len(s.in) {
		if s.in[s.pos] != '"' {
			// Outside strings a valid text has no quotes and no escapes.
			s.pos++
			continue
		}
		if _, ok := s.String(); !ok {
			s.pos++
			continue
		}
		if s.lone != 0 {
			break
		}
	}
	return s.LoneSurrogate()
}
