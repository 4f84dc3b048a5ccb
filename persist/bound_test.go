package persist

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestValidText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"é€😀", "é€😀"},
		{"\ufffd", "\ufffd"}, // a real replacement character stays
		{"a\xffb", `a\xffb`},
		{"a\x00b", `a\x00b`},
		{"\xe2\x82", `\xe2\x82`},         // a cut sequence
		{"\xed\xa0\x80", `\xed\xa0\x80`}, // a surrogate, which MySQL refuses too
		{"\xc0\xaf", `\xc0\xaf`},         // overlong
	}
	for _, tt := range tests {
		got := validText(tt.in)
		require.Equal(t, tt.want, got, "%q", tt.in)
		require.True(t, utf8.ValidString(got))
	}
}

func TestBoundedText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", boundedText("short", 10))
	got := boundedText(strings.Repeat("é", 1000), 100)
	require.LessOrEqual(t, len(got), 100)
	require.True(t, utf8.ValidString(got))
	require.True(t, strings.HasSuffix(got, "…[2000 bytes in all]"), got)
	got = boundedText(strings.Repeat("\xff", 60), 100) // fits raw, not escaped
	require.LessOrEqual(t, len(got), 100)
	require.True(t, strings.HasPrefix(got, `\xff\xff`), got)
	require.True(t, strings.HasSuffix(got, "…[60 bytes in all]"), got)
}

func TestShortID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "m-1", shortID("m-1", maxUUIDLen))
	require.Equal(t, `m-\xff`, shortID("m-\xff", maxUUIDLen))
	long := strings.Repeat("x", 300)
	a, b := shortID(long+"a", maxUUIDLen), shortID(long+"b", maxUUIDLen)
	require.NotEqual(t, a, b, "distinct ids stay distinct")
	require.Equal(t, a, shortID(long+"a", maxUUIDLen), "deterministic")
	require.Len(t, a, maxUUIDLen)
	escaped := shortID(strings.Repeat("\xff", 100), maxUUIDLen) // 100 bytes, 400 escaped
	require.LessOrEqual(t, len(escaped), maxUUIDLen)
	require.True(t, utf8.ValidString(escaped))
}

func TestBoundMetadata(t *testing.T) {
	t.Parallel()
	small := map[string]string{"a": "1", "b": "2"}
	require.Equal(t, small, boundMetadata(small))
	require.Nil(t, boundMetadata(nil))

	big := boundMetadata(map[string]string{"big": strings.Repeat("x", 100_000), "k": "v"})
	require.Equal(t, "v", big["k"])
	require.LessOrEqual(t, len(big["big"]), maxPoisonMetaValue)
	require.LessOrEqual(t, metadataSize(big), maxPoisonMetadata)

	many := map[string]string{}
	for i := range 10_000 {
		many[strings.Repeat("k", 200)+string(rune('a'+i%26))+strings.Repeat("z", i%7)+string(rune(0x4e00+i))] = "<&>" // escaped by JSON
	}
	got := boundMetadata(many)
	require.LessOrEqual(t, metadataSize(got), maxPoisonMetadata)
	require.Contains(t, got, metaDroppedKey)
	for k := range got {
		require.LessOrEqual(t, len(k), maxMetaKeyLen)
	}
	require.Equal(t, metadataSize(got), len(encodeMetadata(got)), "the size is the JSON's")
}
