package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// marshalled is s as encoding/json writes it.
func marshalled(t testing.TB, s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	require.NoError(t, enc.Encode(s))
	return strings.TrimSuffix(b.String(), "\n")
}

var writeCases = []string{
	"", "plain", "with space", `quote"`, `back\slash`, "tab\t", "nl\n", "\x00\x1f\x7f",
	"<a href='x'>&amp;</a>", "é ü 日本", "bad \xff utf8", "\u2028\u2029", "emoji 😀", "/slash/",
}

// TestWriteString: both modes write what encoding/json writes, to a
// strings.Builder and a bytes.Buffer alike.
func TestWriteString(t *testing.T) {
	for _, s := range writeCases {
		for _, html := range []bool{true, false} {
			var sb strings.Builder
			WriteString(&sb, s, html)
			require.Equal(t, marshalled(t, s, html), sb.String(), "%q escapeHTML=%v", s, html)
			var bb bytes.Buffer
			bb.WriteString("x")
			WriteString(&bb, s, html)
			require.Equal(t, "x"+sb.String(), bb.String())
		}
	}
	m, err := json.Marshal("<&>")
	require.NoError(t, err)
	var sb strings.Builder
	WriteString(&sb, "<&>", true)
	require.Equal(t, string(m), sb.String(), "escapeHTML is json.Marshal's")
}

func TestWriteStringPlainDoesNotAllocate(t *testing.T) {
	var b bytes.Buffer
	b.Grow(64)
	allocs := testing.AllocsPerRun(100, func() {
		b.Reset()
		WriteString(&b, "acct-42/server/i-0b6f", true)
	})
	require.Zero(t, allocs)
}

func FuzzWriteString(f *testing.F) {
	for _, s := range writeCases {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, html bool) {
		var sb strings.Builder
		WriteString(&sb, s, html)
		require.Equal(t, marshalled(t, s, html), sb.String())
	})
}
