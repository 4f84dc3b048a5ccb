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
// A Secret is an opaque handle: the bytes are not stored in any field that
// reflection can walk to. They are captured by a closure, and reflection
// reaches a func value only as an address; it can neither read what a
// closure captured nor call an unexported func. So fmt's %#v of a struct
// holding a Secret in an unexported field, testify's failure diffs,
// go-spew and similar reflection-based printers show at most a pointer,
// never a byte of the secret. (Code using package unsafe can read anything;
// this protects against accidents, not against hostile code in the process.)
//
// Copies of a Secret share the same bytes, so [Secret.Destroy] on any copy
// wipes them for all. The zero Secret is empty. A Secret is safe for
// concurrent use.
//
// Decoding a Secret from JSON or text is refused (see [Secret.UnmarshalJSON]):
// an encoder only ever sees [Redacted], so decoding would silently turn a
// secret into that literal, and plaintext secrets have no business in JSON
// documents. Build Secrets with [NewSecret] or [NewSecretString].
type Secret struct {
	h *secretHandle
}

// secretHandle hides the bytes in a closure (see [Secret]).
type secretHandle struct {
	// vault runs fn with the bytes, under a read lock (write false) or the
	// write lock (write true). fn may replace or wipe *b when write is set.
	vault func(write bool, fn func(b *[]byte))
}

func newHandle(b []byte) *secretHandle {
	var mu sync.RWMutex
	return &secretHandle{vault: func(write bool, fn func(*[]byte)) {
		if write {
			mu.Lock()
			defer mu.Unlock()
		} else {
			mu.RLock()
			defer mu.RUnlock()
		}
		fn(&b)
	}}
}

// NewSecret returns a Secret holding a copy of b. The caller may (and
// should) zero b afterwards.
func NewSecret(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	return Secret{h: newHandle(append([]byte(nil), b...))}
}

// NewSecretString returns a Secret holding the bytes of s. Go strings cannot
// be wiped, so prefer [NewSecret] when the source is a byte slice.
func NewSecretString(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{h: newHandle([]byte(s))}
}

// adoptSecret takes ownership of b without copying it.
func adoptSecret(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	return Secret{h: newHandle(b)}
}

// view calls fn with the secret bytes themselves (nil when empty), under the
// read lock. fn must neither retain nor modify them.
func (s Secret) view(fn func(b []byte)) {
	if s.h == nil {
		fn(nil)
		return
	}
	s.h.vault(false, func(b *[]byte) { fn(*b) })
}

// Reveal returns a copy of the secret bytes (nil if the Secret is empty or
// destroyed). The caller owns the copy and should wipe it with clear() when
// done; [Secret.Use] does that automatically.
func (s Secret) Reveal() []byte {
	var out []byte
	s.view(func(b []byte) {
		if len(b) > 0 {
			out = append([]byte(nil), b...)
		}
	})
	return out
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
	n := 0
	s.view(func(b []byte) { n = len(b) })
	return n
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
	if s.h == nil {
		return
	}
	s.h.vault(true, func(b *[]byte) {
		clear(*b)
		*b = nil
	})
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
