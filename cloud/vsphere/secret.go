package vsphere

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a [Secret] prints, marshals and logs as.
const redacted = "[REDACTED]"

// Secret holds a password. It redacts itself everywhere it could leak: every
// fmt verb (%v %+v %#v %s %q %x …), JSON and text marshalling and log/slog all
// produce "[REDACTED]". It is an opaque handle: the text is captured by a
// closure, which reflection reaches only as an address, so reflection-based
// printers (fmt's %#v of a struct holding it in an unexported field,
// testify's failure diffs, spew) show at most a pointer, never the text. The
// zero Secret is empty.
//
// A Secret can be decoded from JSON or text (so a Config can be loaded from a
// file), but never encoded: encoders only ever see "[REDACTED]".
type Secret struct {
	h *secretHandle
}

// secretHandle hides the text in a closure (see [Secret]).
type secretHandle struct {
	reveal func() string
}

// NewSecret returns a Secret holding s.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{h: &secretHandle{reveal: func() string { return s }}}
}

// Reveal returns the secret text. Only the code that sends it to vCenter
// should call it.
func (s Secret) Reveal() string {
	if s.h == nil {
		return ""
	}
	return s.h.reveal()
}

// IsZero reports whether the Secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String returns "[REDACTED]".
func (Secret) String() string { return redacted }

// GoString returns "[REDACTED]", for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "[REDACTED]" for every verb and flag.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue returns "[REDACTED]" for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "[REDACTED]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[REDACTED]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText sets the Secret to text; JSON strings decode through it too.
// It refuses the literal "[REDACTED]", which only an encoded Secret contains:
// decoding it would silently turn a password into that placeholder.
func (s *Secret) UnmarshalText(text []byte) error {
	if string(text) == redacted {
		return errors.New("vsphere: a Secret cannot be decoded from its redacted form")
	}
	*s = NewSecret(string(text))
	return nil
}

var (
	_ fmt.Formatter  = Secret{}
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ slog.LogValuer = Secret{}
)
