// Package text holds the module's small helpers for putting values given
// by others into messages: one rule for how much of a long value an error
// or a log line shows.
package text

// Shown is how much of a long value [Shorten] keeps: enough to recognise
// it, little enough for a log line.
const Shown = 64

// Shorten returns s cut to its first [Shown] bytes, marked "…" when cut,
// for an error or a log line. The cut may split a UTF-8 sequence: format
// the result with %q, or make it valid (strings.ToValidUTF8) before logging
// it as text.
func Shorten(s string) string {
	if len(s) <= Shown {
		return s
	}
	return s[:Shown] + "…"
}
