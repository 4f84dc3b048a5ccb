package jsonscan

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"
)

// result is what one read gives: the token, whether it succeeded, where the
// cursor is after it, and the scanner's first lone surrogate.
type result struct {
	Tok  Token
	OK   bool
	Pos  int
	Lone int
}

// read names a Scanner method under test; depth is SkipValue's maxDepth.
type read struct {
	method string
	depth  int
}

func (r read) of(s *Scanner) (Token, bool) {
	switch r.method {
	case "String":
		return s.String()
	case "Number":
		return s.Number()
	case "Literal":
		return s.Literal()
	case "SkipValue":
		return s.SkipValue(r.depth)
	}
	panic("unknown method " + r.method)
}

// readBoth reads in with r from a string and from bytes, requires the two
// to agree and returns the result. A failed read's token and cursor are
// not part of the contract: they are zeroed.
func readBoth(t *testing.T, in string, r read) result {
	t.Helper()
	s := NewString(in)
	tok, ok := r.of(&s)
	rs := result{tok, ok, s.Pos(), s.LoneSurrogate()}
	b := New([]byte(in))
	tok, ok = r.of(&b)
	rb := result{tok, ok, b.Pos(), b.LoneSurrogate()}
	if !rs.OK {
		rs.Tok, rs.Pos, rb.Tok, rb.Pos = Token{}, 0, Token{}, 0
	}
	require.Equal(t, rs, rb, "string and []byte input disagree on %q", in)
	return rs
}

// tokenCase is a read from the start of in that ends at end (-1: fails),
// with flags and the scanner's first lone surrogate (-1: none).
type tokenCase struct {
	name  string
	in    string
	end   int
	flags Flags
	lone  int
}

func runTokenCases(t *testing.T, r read, tests []tokenCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := readBoth(t, tt.in, r)
			if tt.end < 0 {
				require.False(t, got.OK, "%q", tt.in)
				return
			}
			require.True(t, got.OK, "%q", tt.in)
			require.Equal(t, Token{Start: 0, End: tt.end, Flags: tt.flags}, got.Tok, "%q", tt.in)
			require.Equal(t, tt.end, got.Pos, "the cursor is after the token")
			require.Equal(t, tt.lone, got.Lone)
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	const esc, high, lone = HasEscape, HasNonASCII, HasLoneSurrogate
	runTokenCases(t, read{method: "String"}, []tokenCase{
		{"Empty", `""`, 2, 0, -1},
		{"Plain", `"abc"`, 5, 0, -1},
		{"StopsAtQuote", `"abc" , "d"`, 5, 0, -1},
		{"Delete", "\"\x7f\"", 3, 0, -1},
		{"EscapedQuote", `"a\"b"`, 6, esc, -1},
		{"EveryShortEscape", `"\"\\\/\b\f\n\r\t"`, 18, esc, -1},
		{"UnicodeEscape", `"\u00e9\u00E9"`, 14, esc, -1},
		{"NonASCII", `"héllo ☃"`, 12, high, -1},
		{"InvalidUTF8", "\"\xff\xfe\"", 4, high, -1},
		{"NonASCIIThenEscape", `"é\n"`, 6, high | esc, -1},
		{"SurrogatePair", `"\ud83d\ude00"`, 14, esc, -1},
		{"SurrogatePairUpperCase", `"\uD83D\uDE00"`, 14, esc, -1},
		{"EscapedBackslashNotEscape", `"\\ud800"`, 9, esc, -1},
		{"LoneHigh", `"\ud800"`, 8, esc | lone, 1},
		{"LoneHighAtEnd", `"ab\ud800"`, 10, esc | lone, 3},
		{"LoneLow", `"x\udc00"`, 9, esc | lone, 2},
		{"Reversed", `"\udc00\ud800"`, 14, esc | lone, 1},
		{"HighThenOther", `"\ud800\u0041"`, 14, esc | lone, 1},
		{"HighThenShortEscape", `"\ud800\n"`, 10, esc | lone, 1},
		{"HighHighLow", `"\ud800\ud800\udc00"`, 20, esc | lone, 1},
		{"NotAString", `abc`, -1, 0, -1},
		{"Nothing", ``, -1, 0, -1},
		{"Unterminated", `"abc`, -1, 0, -1},
		{"UnterminatedAfterEscape", `"a\"`, -1, 0, -1},
		{"BackslashAtEnd", `"\`, -1, 0, -1},
		{"BadEscape", `"\x"`, -1, 0, -1},
		{"ShortUnicode", `"\u12"`, -1, 0, -1},
		{"BadHex", `"\u12g4"`, -1, 0, -1},
		{"BadHexAfterHigh", `"\ud800\u12g4"`, -1, 0, -1},
		{"Tab", "\"a\tb\"", -1, 0, -1},
		{"NewlineAfterNonASCII", "\"é\n\"", -1, 0, -1},
		{"NUL", "\"\x00\"", -1, 0, -1},
	})
}

func TestNumber(t *testing.T) {
	t.Parallel()
	const frac, exp = HasFraction, HasExponent
	runTokenCases(t, read{method: "Number"}, []tokenCase{
		{"Zero", `0`, 1, 0, -1},
		{"MinusZero", `-0`, 2, 0, -1},
		{"Integer", `1234567890`, 10, 0, -1},
		{"Negative", `-12`, 3, 0, -1},
		{"Fraction", `0.5`, 3, frac, -1},
		{"Exponent", `1E5`, 3, exp, -1},
		{"SignedExponent", `-12.5e+3`, 8, frac | exp, -1},
		{"NegativeExponent", `1e-07`, 5, exp, -1},
		{"HugeInteger", `12345678901234567890123`, 23, 0, -1},
		{"LeadingZeroStopsAfterZero", `01`, 1, 0, -1},
		{"StopsAtComma", `12,3`, 2, 0, -1},
		{"StopsAtLetter", `1x`, 1, 0, -1},
		{"Nothing", ``, -1, 0, -1},
		{"Minus", `-`, -1, 0, -1},
		{"Plus", `+1`, -1, 0, -1},
		{"DotFirst", `.5`, -1, 0, -1},
		{"DotLast", `1.`, -1, 0, -1},
		{"DotThenE", `1.e5`, -1, 0, -1},
		{"EmptyExponent", `1e`, -1, 0, -1},
		{"SignOnlyExponent", `1e+`, -1, 0, -1},
		{"MinusLetter", `-a`, -1, 0, -1},
		{"Letter", `a`, -1, 0, -1},
	})
}

func TestLiteral(t *testing.T) {
	t.Parallel()
	runTokenCases(t, read{method: "Literal"}, []tokenCase{
		{"True", `true`, 4, 0, -1},
		{"False", `false`, 5, 0, -1},
		{"Null", `null`, 4, 0, -1},
		{"StopsAfter", `nullx`, 4, 0, -1},
		{"Short", `tru`, -1, 0, -1},
		{"Wrong", `nul1`, -1, 0, -1},
		{"UpperCase", `True`, -1, 0, -1},
		{"Nothing", ``, -1, 0, -1},
	})
}

// nesting returns the opening and the closing of n containers nested,
// alternating arrays and objects.
func nesting(n int) (open, close string) {
	var o, c strings.Builder
	for i := range n {
		if i%2 == 0 {
			o.WriteString(`[`)
		} else {
			o.WriteString(`{"k":`)
		}
	}
	for i := n - 1; i >= 0; i-- {
		if i%2 == 0 {
			c.WriteString(`]`)
		} else {
			c.WriteString(`}`)
		}
	}
	return o.String(), c.String()
}

// nested returns inner inside n containers (see nesting).
func nested(n int, inner string) string {
	open, close := nesting(n)
	return open + inner + close
}

// wrongCloser is nested(n, inner) with the closer of the container at depth
// d (counting from 1) of the wrong kind.
func wrongCloser(n, d int, inner string) string {
	open, close := nesting(n)
	b := []byte(close)
	i := n - d // close lists the closers from the deepest out
	if b[i] == ']' {
		b[i] = '}'
	} else {
		b[i] = ']'
	}
	return open + inner + string(b)
}

// hasNonASCII reports whether b has a byte of 0x80 or above.
func hasNonASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func TestSkipValue(t *testing.T) {
	t.Parallel()
	const esc, high, lone = HasEscape, HasNonASCII, HasLoneSurrogate
	tests := []struct {
		depth int
		tokenCase
	}{
		{64, tokenCase{"String", `"a" x`, 3, 0, -1}},
		{64, tokenCase{"Number", `-1.5e3,`, 6, HasFraction | HasExponent, -1}},
		{64, tokenCase{"Literal", `false]`, 5, 0, -1}},
		{64, tokenCase{"EmptyObject", `{}`, 2, 0, -1}},
		{64, tokenCase{"EmptyArray", `[]`, 2, 0, -1}},
		{64, tokenCase{"EmptyWithSpace", "{ \t\r\n}", 6, 0, -1}},
		{64, tokenCase{"Object", `{"a":1,"b":[true,null,"x"],"c":{}}`, 34, 0, -1}},
		{64, tokenCase{"Spaced", `{ "a" : [ 1 , 2 ] , "b" : { } } `, 31, 0, -1}},
		{64, tokenCase{"TrailingLeft", `[1] x`, 3, 0, -1}},
		{64, tokenCase{"FlagsOfAllStrings", `["é",{"\u00e9":1}]`, 19, esc | high, -1}},
		{64, tokenCase{"LoneInKey", `{"a":1,"\udc00":2}`, 18, esc | lone, 8}},
		{64, tokenCase{"FirstLoneOnly", `["\ud800","\udc00"]`, 19, esc | lone, 2}},
		{64, tokenCase{"NumberFlags", `[1.5,2e3]`, 9, HasFraction | HasExponent, -1}},
		{0, tokenCase{"ScalarAtDepthZero", `1`, 1, 0, -1}},
		{0, tokenCase{"ArrayAtDepthZero", `[]`, -1, 0, -1}},
		{2, tokenCase{"AtDepth", `[{"a":[]}]`, -1, 0, -1}},
		{3, tokenCase{"WithinDepth", `[{"a":[]}]`, 10, 0, -1}},
		{1000, tokenCase{"MaxDepth", nested(MaxDepth, `1`), len(nested(MaxDepth, `1`)), 0, -1}},
		{1000, tokenCase{"BeyondMaxDepth", nested(MaxDepth+1, `1`), -1, 0, -1}},
		{200, tokenCase{"MixedAcrossWords", nested(130, `{}`), len(nested(130, `{}`)), 0, -1}},
		{200, tokenCase{"WrongCloserDeep", wrongCloser(130, 67, `{}`), -1, 0, -1}},
		{200, tokenCase{"WrongCloserAtWordEdge", wrongCloser(130, 64, `{}`), -1, 0, -1}},
		{64, tokenCase{"LeadingSpace", ` 1`, -1, 0, -1}},
		{64, tokenCase{"Nothing", ``, -1, 0, -1}},
		{64, tokenCase{"KeyWithoutValue", `{"a"}`, -1, 0, -1}},
		{64, tokenCase{"MissingValue", `{"a":}`, -1, 0, -1}},
		{64, tokenCase{"TrailingCommaObject", `{"a":1,}`, -1, 0, -1}},
		{64, tokenCase{"TrailingCommaArray", `[1,]`, -1, 0, -1}},
		{64, tokenCase{"MissingComma", `[1 2]`, -1, 0, -1}},
		{64, tokenCase{"NumberKey", `{1:2}`, -1, 0, -1}},
		{64, tokenCase{"SingleQuotes", `{'a':1}`, -1, 0, -1}},
		{64, tokenCase{"ObjectClosedAsArray", `{"a":1]`, -1, 0, -1}},
		{64, tokenCase{"ArrayClosedAsObject", `[1}`, -1, 0, -1}},
		{64, tokenCase{"Unclosed", `[[1]`, -1, 0, -1}},
		{64, tokenCase{"UnclosedObject", `{"a":1`, -1, 0, -1}},
		{64, tokenCase{"Closer", `]`, -1, 0, -1}},
		{64, tokenCase{"BadNumberInside", `[01]`, -1, 0, -1}},
		{64, tokenCase{"BadStringInside", `{"a":"\x"}`, -1, 0, -1}},
	}
	for _, tt := range tests {
		runTokenCases(t, read{method: "SkipValue", depth: tt.depth}, []tokenCase{tt.tokenCase})
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	s := NewString(" \t\r\n{ x")
	require.False(t, s.Done())
	require.Equal(t, byte(' '), s.NextByte())
	s.Space()
	require.Equal(t, 4, s.Pos())
	require.False(t, s.Accept('['))
	require.True(t, s.Accept('{'))
	s.Space()
	require.Equal(t, byte('x'), s.NextByte())
	require.True(t, s.Accept('x'))
	require.True(t, s.Done())
	require.Equal(t, byte(0), s.NextByte())
	require.False(t, s.Accept(0))
	s.Space()
	require.Equal(t, 7, s.Pos())
	require.Equal(t, -1, s.LoneSurrogate())

	s = NewString(`{"a":1,"b":2}`)
	s.Skip(7)
	require.Equal(t, byte('"'), s.NextByte())
	s.Skip(-1)
	require.Equal(t, 7, s.Pos(), "a negative skip stays")
	s.Skip(100)
	require.True(t, s.Done(), "a skip stops at the end")

	var zero Scanner
	require.True(t, zero.Done())
	_, ok := zero.SkipValue(MaxDepth)
	require.False(t, ok)
}

func TestFirstLoneSurrogate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"None", `{"a":"b","c":[1,2]}`, -1},
		{"NoStrings", `[1,true,null]`, -1},
		{"Pair", `"\ud83d\ude00"`, -1},
		{"EscapedBackslash", `{"a":"\\ud800"}`, -1},
		{"InValue", `{"a":"acme\ud800"}`, 10},
		{"InKey", `{"\udc00":1}`, 2},
		{"SecondString", `["\ud83d\ude00","x\udc00"]`, 18},
		{"FirstOfTwo", `["\ud800","\udc00"]`, 2},
		{"DeeperThanMaxDepth", nested(MaxDepth+10, `"\ud800"`), strings.IndexByte(nested(MaxDepth+10, `"\ud800"`), '\\')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, json.Valid([]byte(tt.in)))
			require.Equal(t, tt.want, FirstLoneSurrogate([]byte(tt.in)))
			require.Equal(t, tt.want, loneSurrogateRef([]byte(tt.in)))
		})
	}
}

// escapeRE matches one escape of a JSON string; left to right over a valid
// text it matches every escape in order.
var escapeRE = regexp.MustCompile(`(?s)\\(u[0-9a-fA-F]{4}|.)`)

// loneSurrogateRef is FirstLoneSurrogate written another way, for the fuzz
// tests: the escapes of a valid text, in order, paired by unicode/utf16.
func loneSurrogateRef(valid []byte) int {
	ms := escapeRE.FindAllIndex(valid, -1)
	unicode := func(k int) (rune, bool) {
		e := valid[ms[k][0]:ms[k][1]]
		if len(e) != 6 {
			return 0, false
		}
		n, err := strconv.ParseUint(string(e[2:]), 16, 16)
		return rune(n), err == nil
	}
	for k := 0; k < len(ms); k++ {
		r, ok := unicode(k)
		if !ok || !utf16.IsSurrogate(r) {
			continue
		}
		if k+1 < len(ms) && ms[k+1][0] == ms[k][1] {
			if r2, ok := unicode(k + 1); ok && utf16.DecodeRune(r, r2) != '\uFFFD' {
				k++
				continue
			}
		}
		return ms[k][0]
	}
	return -1
}

// isSpace is JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// maxNesting returns how deeply arrays and objects nest in the valid JSON
// text in, as encoding/json's Decoder reads it.
func maxNesting(t *testing.T, in []byte) int {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber() // a number too large for a float64 is still valid JSON
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		require.NoError(t, err)
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

var fuzzSeeds = []string{
	`""`, `"abc"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9"`, `"é☃"`, "\"\xff\"", `"\ud83d\ude00"`, `"\ud800"`,
	`"\udc00\ud800"`, `"\ud800\u0041"`, `"\\ud800"`, `"\u12"`, `"\x"`, "\"\t\"", `"abc`,
	`0`, `-0`, `12.5e+3`, `1E5`, `1E700`, `01`, `1.`, `.5`, `-`, `1e`, `123456789012345678901234567890`,
	`true`, `false`, `null`, `nul`, `truex`,
	`{}`, `[]`, ` { "a" : [ 1 , { "b" : null } ] } `, `{"a":1,}`, `[1 2]`, `{"a":1]`, `[1}`, `{"\ud800":"\udc00"}`,
	nested(70, `"x"`), nested(MaxDepth+1, `1`),
}

// FuzzToken checks String, Number and Literal against encoding/json: each
// reads a whole input exactly when json.Valid accepts it as one token of its
// kind, what it reads as a prefix is valid JSON, and the flags and lone
// surrogate say what the token holds.
func FuzzToken(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		valid := json.Valid(in) && len(in) > 0 && !isSpace(in[len(in)-1])
		var first byte
		if len(in) > 0 {
			first = in[0]
		}
		check := func(r read, kind bool) {
			got := readBoth(t, string(in), r)
			if got.OK {
				require.True(t, json.Valid(in[:got.Tok.End]), "%s read %q from %q", r.method, in[:got.Tok.End], in)
			}
			whole := got.OK && got.Tok.End == len(in)
			require.Equal(t, valid && kind, whole, "%s of %q", r.method, in)
		}
		check(read{method: "String"}, first == '"')
		check(read{method: "Number"}, first == '-' || '0' <= first && first <= '9')
		check(read{method: "Literal"}, first == 't' || first == 'f' || first == 'n')

		if !valid {
			return
		}
		s := New(in)
		switch tok, ok := s.SkipValue(0); { // a string, number or literal
		case !ok || tok.End != len(in):
			// An array or an object: FuzzValue's.
		case first == '"':
			var v string
			require.NoError(t, json.Unmarshal(in, &v))
			contents := in[1 : len(in)-1]
			require.Equal(t, bytes.IndexByte(contents, '\\') >= 0, tok.Flags&HasEscape != 0)
			require.Equal(t, hasNonASCII(contents), tok.Flags&HasNonASCII != 0)
			lone := loneSurrogateRef(in)
			require.Equal(t, lone, s.LoneSurrogate())
			require.Equal(t, lone >= 0, tok.Flags&HasLoneSurrogate != 0)
			if tok.Flags&HasEscape == 0 && tok.Flags&HasNonASCII == 0 {
				require.Equal(t, string(contents), v, "a plain string's contents are its value")
			}
		case first == 't' || first == 'f' || first == 'n':
			var v any
			require.NoError(t, json.Unmarshal(in, &v))
			require.Equal(t, Flags(0), tok.Flags)
		default:
			var v json.Number
			require.NoError(t, json.Unmarshal(in, &v))
			require.Equal(t, bytes.IndexByte(in, '.') >= 0, tok.Flags&HasFraction != 0)
			require.Equal(t, bytes.IndexAny(in, "eE") >= 0, tok.Flags&HasExponent != 0)
		}
	})
}

// FuzzValue checks SkipValue against json.Valid: a text (with whitespace
// around its value) is read whole exactly when it is valid and nested no
// deeper than maxDepth; flags and lone surrogates are those of its strings;
// FirstLoneSurrogate finds the same one.
func FuzzValue(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// The value is in[lead:lead+n], with only whitespace around it.
		lead := len(in) - len(bytes.TrimLeft(in, " \t\n\r"))
		n := len(bytes.TrimRight(in[lead:], " \t\n\r"))
		skip := func(maxDepth int) (result, bool) {
			r := readBoth(t, string(in[lead:]), read{method: "SkipValue", depth: maxDepth})
			return r, r.OK && r.Tok.End == n
		}
		r, whole := skip(MaxDepth)
		if !json.Valid(in) {
			require.False(t, whole, "SkipValue accepts %q, encoding/json does not", in)
			return
		}
		depth := maxNesting(t, in)
		require.Equal(t, depth <= MaxDepth, whole, "depth %d of %q", depth, in)
		if !whole {
			return
		}
		if depth > 0 {
			_, atDepth := skip(depth)
			require.True(t, atDepth, "maxDepth %d", depth)
			_, below := skip(depth - 1)
			require.False(t, below, "maxDepth %d", depth-1)
		}
		// In a valid text backslashes and non-ASCII bytes are only in strings.
		require.Equal(t, bytes.IndexByte(in, '\\') >= 0, r.Tok.Flags&HasEscape != 0)
		require.Equal(t, hasNonASCII(in), r.Tok.Flags&HasNonASCII != 0)
		lone := loneSurrogateRef(in)
		require.Equal(t, lone >= 0, r.Tok.Flags&HasLoneSurrogate != 0)
		if lone >= 0 {
			require.Equal(t, lone-lead, r.Lone, "offsets are of the scanned input")
		} else {
			require.Equal(t, -1, r.Lone)
		}
		require.Equal(t, lone, FirstLoneSurrogate(in))
	})
}

// TestNoAllocs: reading tokens and values allocates nothing, from bytes or
// from a string.
func TestNoAllocs(t *testing.T) {
	in := `{"a":[1,-2.5e3,true,null],"b":{"c":"d\u00e9 \ud800","é":"x"},"long string of some length":"` + strings.Repeat("x", 40) + `"}`
	b := []byte(in)
	s := New(b)
	tok, ok := s.SkipValue(MaxDepth)
	require.True(t, ok)
	require.Equal(t, len(in), tok.End)
	require.Positive(t, FirstLoneSurrogate(b))
	for name, scan := range map[string]func(){
		"Bytes":  func() { s := New(b); s.SkipValue(MaxDepth) },
		"String": func() { s := NewString(in); s.SkipValue(MaxDepth) },
		"Tokens": func() {
			s := NewString(`"abc" 12.5 false`)
			s.String()
			s.Space()
			s.Number()
			s.Space()
			s.Literal()
		},
		"FirstLoneSurrogate": func() { FirstLoneSurrogate(b) },
	} {
		t.Run(name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(100, scan))
		})
	}
}
