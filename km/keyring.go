package km

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"sync"
)

// MasterKey is one version of a master key: a 256-bit AES key that wraps
// data keys. Load master keys with [LoadKeyFile] or [KeyFromEnv]; never put
// them in the main configuration file.
type MasterKey struct {
	ID      string // [A-Za-z0-9._-]{1,64}, e.g. "prod"
	Version int    // 1 … 2^32-1; unique within a keyring, across ids
	Key     Secret // exactly 32 bytes
}

// KeyRef names a master key version.
type KeyRef struct {
	ID      string
	Version int
}

// String formats a key reference as `"id" v<version>`.
func (r KeyRef) String() string { return fmt.Sprintf("%q v%d", r.ID, r.Version) }

// Keyring holds master key versions. [Keyring.Seal] always uses the current
// key, the one with the highest Version; [Keyring.Open] uses the version
// recorded in the envelope, so older versions stay readable until every
// envelope has been moved with [Keyring.Rewrap] (or [LocalStore.RewrapAll]).
//
// A Keyring is safe for concurrent use. [Keyring.Close] zeroes its keys.
type Keyring struct {
	mu      sync.RWMutex
	keys    map[KeyRef]*masterKey
	current KeyRef
	closed  bool
	log     *slog.Logger // nil: slog.Default()
	built   bool         // NewKeyring returned: Add logs changes of the current key
}

type masterKey struct {
	key [keySize]byte
	kcv [kcvSize]byte
	idx [keySize]byte // index key: HKDF(key, info indexLabel), keys the row references
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NewKeyring returns a keyring holding copies of keys (at least one). The
// caller may destroy the keys' Secrets afterwards.
func NewKeyring(keys ...MasterKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, invalidf("keyring: at least one master key is required")
	}
	k := &Keyring{keys: make(map[KeyRef]*masterKey, len(keys))}
	for _, mk := range keys {
		if err := k.Add(mk); err != nil {
			k.Close()
			return nil, err
		}
	}
	k.built = true
	return k, nil
}

// SetLogger sets where the keyring logs a change of its current key (Info;
// key id and version only, never key material). Default: [log/slog]'s
// default logger.
func (k *Keyring) SetLogger(l *slog.Logger) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.log = l
}

func (k *Keyring) logger() *slog.Logger {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.log == nil {
		return slog.Default()
	}
	return k.log
}

// Add adds a master key version (a copy of it). If its Version is the highest,
// it becomes the current key and every later Seal uses it, and the change is
// logged (see [Keyring.SetLogger]). Versions must be unique across ids.
func (k *Keyring) Add(mk MasterKey) error {
	if !keyIDPattern.MatchString(mk.ID) {
		return invalidf("master key: ID must match %s", keyIDPattern)
	}
	if mk.Version < 1 || mk.Version > math.MaxUint32 {
		return invalidf("master key %q: Version %d is out of range 1…%d", mk.ID, mk.Version, uint32(math.MaxUint32))
	}
	kb := mk.Key.Reveal()
	defer clear(kb)
	if len(kb) != keySize {
		return invalidf("master key %q v%d: Key must be %d bytes, got %d", mk.ID, mk.Version, keySize, len(kb))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	for ref := range k.keys {
		if ref.Version == mk.Version {
			return invalidf("master key %q v%d: version %d is already held by master key %q (versions are unique across ids)",
				mk.ID, mk.Version, mk.Version, ref.ID)
		}
	}
	m := new(masterKey)
	copy(m.key[:], kb)
	m.kcv = keyCheckValue(&m.key)
	hkdfRead(m.idx[:], m.key[:], nil, indexLabel)
	ref := KeyRef{ID: mk.ID, Version: mk.Version}
	k.keys[ref] = m
	if mk.Version > k.current.Version {
		prev := k.current
		k.current = ref
		if k.built {
			log := k.log
			if log == nil {
				log = slog.Default()
			}
			log.Info("km: current master key changed", "previous_key_id", prev.ID, "previous_key_version", prev.Version,
				"current_key_id", ref.ID, "current_key_version", ref.Version)
		}
	}
	return nil
}

// Current returns the key that [Keyring.Seal] uses.
func (k *Keyring) Current() KeyRef {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Keys lists the key versions held, oldest first.
func (k *Keyring) Keys() []KeyRef {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]KeyRef, 0, len(k.keys))
	for ref := range k.keys {
		out = append(out, ref)
	}
	slices.SortFunc(out, func(a, b KeyRef) int { return cmp.Compare(a.Version, b.Version) })
	return out
}

// Seal encrypts plaintext for b: a fresh random 256-bit data key encrypts it
// with AES-256-GCM (random 12-byte nonce, b as additional data), and the
// current master key wraps the data key, also with AES-256-GCM. The data key
// is zeroed before Seal returns. See the package documentation for the
// envelope format.
func (k *Keyring) Seal(b Binding, plaintext []byte) ([]byte, error) { return k.seal(b, plaintext) }

// Open decrypts an envelope sealed for b with the master key version it
// records. Errors: [ErrUnknownKey] (the keyring lacks that version),
// [ErrWrongKey] (it holds a different key under that id and version),
// [ErrTampered] (modified or malformed envelope, or b differs from the
// binding it was sealed for), [ErrClosed].
func (k *Keyring) Open(b Binding, envelope []byte) (Secret, error) { return k.open(b, envelope) }

// Rewrap re-wraps an envelope's data key under the current master key. Only
// the data key is unwrapped, in memory, and zeroed afterwards; the payload is
// neither decrypted nor re-encrypted (its nonce and ciphertext are kept
// byte for byte), so no binding is needed and no plaintext is produced. An
// envelope already under the current key is returned unchanged (as a copy).
// Errors are those of [Keyring.Open], except that a modified payload is only
// detected when the envelope is eventually opened.
func (k *Keyring) Rewrap(envelope []byte) ([]byte, error) {
	out, _, err := k.rewrap(envelope)
	return out, err
}

// Close zeroes every master key held; later calls fail with [ErrClosed].
// Close is idempotent and always returns nil.
//
// Go cannot guarantee that no copy of a key survives elsewhere (the AES key
// schedule of a cipher in use, memory the garbage collector moved); Close
// wipes what this package owns.
func (k *Keyring) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, m := range k.keys {
		clear(m.key[:])
		clear(m.idx[:])
	}
	clear(k.keys)
	k.closed = true
	return nil
}

// kcvDiffers reports whether the keyring holds ref with another key check
// value than kcv.
func (k *Keyring) kcvDiffers(ref KeyRef, kcv [kcvSize]byte) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	m, ok := k.keys[ref]
	return ok && m.kcv != kcv
}
