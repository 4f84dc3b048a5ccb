package jsonscan

import (
	"bytes"
	"encoding/json"
	"io"
	"unicode/utf8"
)

// Writer is what [WriteString] writes to: a *strings.Builder or a
// *bytes.Buffer.
type Writer interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
}

// WriteString writes s to w as a JSON string, byte for byte as
// encoding/json writes it: as json.Marshal does when escapeHTML is true
// (<, > and & escaped), as a json.Encoder with SetEscapeHTML(false) does
// otherwise. Printable ASCII without a quote or a backslash (nor, with
// escapeHTML, <, > or &) is written as it is, without allocating; any other
// string is encoded by encoding/json, so control characters, invalid UTF-8
// (written as U+FFFD) and U+2028/U+2029 come out exactly as it writes them.
func WriteString(w Writer, s string, escapeHTML bool) {
	if plainString(s, escapeHTML) {
		_ = w.WriteByte('"')
		_, _ = w.WriteString(s)
		_ = w.WriteByte('"')
		return
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s) // a string always encodes
	_, _ = w.Write(bytes.TrimSuffix(b.Bytes(), []byte{'\n'}))
}

// plainString reports whether s needs no escape as a JSON string.
func plainString(s string, escapeHTML bool) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\':
			return false
		case escapeHTML && (c == '<' || c == '>' || c == '&'):
			return false
		}
	}
	return true
}
