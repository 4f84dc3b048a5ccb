package persist

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// validText returns s as valid UTF-8 without NUL: every byte that is not
// part of a valid UTF-8 sequence, and every NUL, becomes the four characters
// \xNN, so the original bytes can still be read off. Valid text is returned
// as is.
func validText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == 0 {
			const hexDigits = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[s[i]>>4])
			b.WriteByte(hexDigits[s[i]&0xf])
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// cut returns valid UTF-8 s shortened to at most n bytes, at a character
// boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// prefix returns at most the first n bytes of raw, not splitting a UTF-8
// sequence at the end.
func prefix(raw string, n int) string {
	if len(raw) <= n {
		return raw
	}
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(raw[n]); i++ {
		n--
	}
	return raw[:n]
}

// boundedText returns raw as valid text (see validText) of at most n bytes;
// when that means cutting it, it ends in a note of raw's length. Only the
// start of a long raw is looked at.
func boundedText(raw string, n int) string {
	s := validText(prefix(raw, n)) // escaping only lengthens: a prefix is enough
	if len(raw) <= n && len(s) <= n {
		return s
	}
	mark := fmt.Sprintf("…[%d bytes in all]", len(raw))
	return cut(s, n-len(mark)) + mark
}

// shortID returns raw as valid text (see validText) that fits maxLen bytes:
// as is if it does, else its start, "~" and the SHA-256 of raw, so that
// distinct ids stay distinct and one id always gives the same result.
func shortID(raw string, maxLen int) string {
	if len(raw) <= maxLen {
		if s := validText(raw); len(s) <= maxLen {
			return s
		}
	}
	sum := sha256.Sum256([]byte(raw))
	tail := "~" + hex.EncodeToString(sum[:])
	return cut(validText(prefix(raw, maxLen)), maxLen-len(tail)) + tail
}

// Bounds of the metadata of a poison message.
const (
	maxPoisonMetadata  = 64 << 10 // bytes of JSON in all
	maxPoisonMetaValue = 4 << 10  // bytes of one value, when the whole is too large
	maxMetaKeyLen      = 255      // bytes of one key
	metaDroppedKey     = "persist_metadata_dropped"
)

// validMetadata returns md with every key and value made valid text.
func validMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		out[validText(k)] = validText(v)
	}
	return out
}

// boundMetadata returns valid metadata whose JSON is at most
// maxPoisonMetadata bytes: keys are cut to maxMetaKeyLen bytes; if the whole
// is still too large, values longer than maxPoisonMetaValue are cut (noting
// their length), and if even that is too large, keys are dropped from the
// end of their sorted order and their number noted under
// "persist_metadata_dropped".
func boundMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		out[cut(k, maxMetaKeyLen)] = v
	}
	if metadataSize(out) <= maxPoisonMetadata {
		return out
	}
	for k, v := range out {
		out[k] = boundedText(v, maxPoisonMetaValue) // v is valid text already
	}
	if metadataSize(out) <= maxPoisonMetadata {
		return out
	}
	keys := slices.Sorted(maps.Keys(out))
	const reserve = 64 // for the note of dropped keys
	size, kept := 2, map[string]string{}
	for _, k := range keys {
		entry := jsonLen(k) + 1 + jsonLen(out[k]) + 1
		if size+entry > maxPoisonMetadata-reserve {
			break
		}
		kept[k] = out[k]
		size += entry
	}
	kept[metaDroppedKey] = fmt.Sprintf("%d keys", len(out)-len(kept))
	return kept
}

// metadataSize is the length of md's JSON encoding.
func metadataSize(md map[string]string) int {
	size := 2 + max(len(md)-1, 0) // braces and commas
	for k, v := range md {
		size += jsonLen(k) + 1 + jsonLen(v)
	}
	return size
}

// jsonLen is the length of s encoded as a JSON string.
func jsonLen(s string) int {
	b, _ := json.Marshal(s) // a string always encodes
	return len(b)
}
