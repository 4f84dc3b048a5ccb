// Package jsonscan is the SDK's one JSON lexer: a cursor over a JSON text
// that reads its tokens — whitespace, strings, numbers, literals — and skips
// whole values, without allocating.
//
// It exists for the hand-written fast paths that read JSON faster than
// encoding/json for the common case and hand everything else to
// encoding/json: the root package's message envelope reader, and persist's
// canonical attributes and field diffs. Each of those builds its own
// structure (the envelope's fields, a sorted copy of an object, a list of
// top-level members) from the tokens a [Scanner] reads; the lexing rules
// live here once.
//
// # What it accepts
//
// Exactly what encoding/json's scanner accepts, token by token: the same
// whitespace (space, tab, newline, carriage return), the number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, the escapes \" \\ \/ \b
// \f \n \r \t and \uXXXX, no control characters in strings, and any other
// byte in strings, including invalid UTF-8 (which encoding/json replaces
// with U+FFFD when it decodes the string). [Scanner.SkipValue] gives up
// beyond a nesting depth the caller chooses, at most [MaxDepth].
//
// # What it reports
//
// A [Token] says where the token is and what the caller may need to know
// to use its bytes as they are ([Flags]): whether a string has escapes,
// non-ASCII bytes or an escaped lone UTF-16 surrogate (which encoding/json
// silently decodes as U+FFFD), whether a number has a fraction or an
// exponent. The scanner also remembers the first lone surrogate it has seen
// ([Scanner.LoneSurrogate]), so a caller that scanned a whole text knows
// without a second pass.
//
// A method that fails returns false and leaves the cursor somewhere inside
// the bad token: the callers give up on the fast path and take the general
// one, so the scanner does not say what was wrong.
//
// # Writing strings
//
// [WriteString] is the other direction, for the hand-written writers (the
// outbox's event payloads in persist, nested AMQP header values in
// rabbitmq): a string as encoding/json writes it, with or without its HTML
// escapes, copied as it is when it needs no escape.
//
// # Speed
//
// The scanner reads a []byte ([New]) or a string ([NewString]) where it
// is, without copying, and returns offsets, never slices of its own. Its
// loops keep the cursor in a register; strings are searched eight bytes at
// a time for the byte that ends a plain run (quote, backslash, control
// character, non-ASCII), and SkipValue reads the common tokens without a
// call. The callers' benchmarks against encoding/json (BenchmarkJSONWire in
// the root package, BenchmarkJSONCanonical and BenchmarkJSONDiff in
// persist) are the measure; bench/run -json prints their ratios.
package jsonscan
