package km

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// Redacted is what a [Secret] prints, marshals and logs as, whatever the verb
// or encoder.
const Redacted = "[REDACTED]"

// Secret holds sensitive bytes (a cloud secret key, an SSH private key, a
// provisioning key) and redacts itself everywhere it could leak: every fmt
// verb (%v %+v %#v %s %q %x %X %d …), JSON and text marshalling and
// [log/slog] all produce [Redacted]. The bytes are reachable only through
// [Secret.Reveal] and [Secret.Use].
//
// A Secret is a small handle: copies of it share the same bytes, so
// [Secret.Destroy] on any copy wipes them for all. The zero Secret is empty.
// A Secret is safe for concurrent use.
//
// Decoding a Secret from JSON or text is refused (see [Secret.UnmarshalJSON]):
// an encoder only ever sees [Redacted], so decoding would silently turn a
// secret into that literal, and plaintext secrets have no business in JSON
// documents. Build Secrets with [NewSecret] or [NewSecretString].
type Secret struct {
	// A pointer, so that even reflection-based printing of a struct holding a
	// Secret in an unexported field shows an address, not the bytes.
	box *secretBox
}

type secretBox struct {
	mu sync.RWMutex
	b  []byte
}

// NewSecret returns a Secret holding a copy of b. The caller may (and
// should) zero b afterwards.
func NewSecret(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	return Secret{box: &secretBox{b: append([]byte(nil), b...)}}
}

// NewSecretString returns a Secret holding the bytes of s. Go strings cannot
// be wiped, so prefer [NewSecret] when the source is a byte slice.
func NewSecretString(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{box: &secretBox{b: []byte(s)}}
}

// adoptSecret takes ownership of b without copying it.
func adoptSecret(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	return Secret{box: &secretBox{b: b}}
}

// Reveal returns a copy of the secret bytes (nil if the Secret is empty or
// destroyed). The caller owns the copy and should wipe it with clear() when
// done; [Secret.Use] does that automatically.
func (s Secret) Reveal() []byte {
	if s.box == nil {
		return nil
	}
	s.box.mu.RLock()
	defer s.box.mu.RUnlock()
	if len(s.box.b) == 0 {
		return nil
	}
	return append([]byte(nil), s.box.b...)
}

// Use calls fn with a temporary copy of the secret bytes and zeroes the copy
// when fn returns. fn must not retain the slice. Use returns fn's error.
func (s Secret) Use(fn func(b []byte) error) error {
	b := s.Reveal()
	defer clear(b)
	return fn(b)
}

// Len returns the number of secret bytes (0 once destroyed).
func (s Secret) Len() int {
	if s.box == nil {
		return 0
	}
	s.box.mu.RLock()
	defer s.box.mu.RUnlock()
	return len(s.box.b)
}

// IsZero reports whether the Secret is empty or destroyed.
func (s Secret) IsZero() bool { return s.Len() == 0 }

// Equal reports, in constant time for equal lengths, whether s and o hold the
// same bytes.
func (s Secret) Equal(o Secret) bool {
	a, b := s.Reveal(), o.Reveal()
	defer clear(a)
	defer clear(b)
	return subtle.ConstantTimeCompare(a, b) == 1
}

// Clone returns an independent Secret holding a copy of the bytes, so that
// destroying one does not affect the other.
func (s Secret) Clone() Secret { return adoptSecret(s.Reveal()) }

// Destroy overwrites the secret bytes with zeros and releases them. Every copy
// of s becomes empty. Destroy is idempotent.
func (s Secret) Destroy() {
	if s.box == nil {
		return
	}
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	clear(s.box.b)
	s.box.b = nil
}

// String returns [Redacted].
func (Secret) String() string { return Redacted }

// GoString returns [Redacted], for %#v.
func (Secret) GoString() string { return Redacted }

// Format writes [Redacted] for every verb and flag.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// LogValue returns [Redacted] for [log/slog].
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON returns the JSON string "[REDACTED]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns [Redacted].
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// UnmarshalJSON always fails with an error matching [ErrInvalid]: see the
// type's documentation. The error does not quote the input.
func (*Secret) UnmarshalJSON([]byte) error { return errRefuseDecode }

// UnmarshalText always fails with an error matching [ErrInvalid], like
// [Secret.UnmarshalJSON].
func (*Secret) UnmarshalText([]byte) error { return errRefuseDecode }

var errRefuseDecode = invalidf("a Secret cannot be decoded from JSON or text (encoders only ever see %q); build it with km.NewSecret", Redacted)

// Interface checks.
var (
	_ fmt.Formatter  = Secret{}
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ slog.LogValuer = Secret{}
)
