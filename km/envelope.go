package km

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Envelope format version 1, all integers big-endian:
//
//	offset  size  field
//	0       2     magic "KM"
//	2       1     format version (1)
//	3       1     length n of the master key id
//	4       n     master key id
//	4+n     4     master key version
//	8+n     8     key check value of the master key
//	16+n    60    wrapped data key: 12-byte nonce || AES-256-GCM(data key) || 16-byte tag
//	76+n    12    payload nonce
//	88+n    …     payload ciphertext || 16-byte tag (AES-256-GCM under the data key)
const (
	envelopeMagic   = "KM"
	envelopeVersion = 1

	keySize    = 32 // AES-256
	nonceSize  = 12
	tagSize    = 16
	kcvSize    = 8
	wrappedLen = nonceSize + keySize + tagSize
	headerMin  = 2 + 1 + 1 + 4 + kcvSize + wrappedLen + nonceSize
)

// Domain-separation labels for the additional authenticated data.
const (
	wrapLabel    = "stratusworks/km wrap v1\x00"
	payloadLabel = "stratusworks/km data v1\x00"
	kcvLabel     = "stratusworks/km key check v1"
)

// Binding is the context an envelope is sealed for: it is authenticated as
// AEAD additional data of the payload, so an envelope copied to another
// credential's row fails to open with [ErrTampered].
type Binding struct {
	Customer, Account, Name string
}

// EnvelopeHeader is the clear-text part of an envelope.
type EnvelopeHeader struct {
	Format     int    // envelope format version
	KeyID      string // master key that wraps the data key
	KeyVersion int
}

// Key returns the header's master key reference.
func (h EnvelopeHeader) Key() KeyRef { return KeyRef{ID: h.KeyID, Version: h.KeyVersion} }

type envelope struct {
	EnvelopeHeader
	kcv        [kcvSize]byte
	wrapped    []byte
	nonce      []byte
	ciphertext []byte
}

// ParseEnvelope returns the header of an envelope without decrypting
// anything. Malformed envelopes are reported with [ErrTampered].
func ParseEnvelope(b []byte) (EnvelopeHeader, error) {
	e, err := parseEnvelope(b)
	return e.EnvelopeHeader, err
}

func parseEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 4 || string(b[:2]) != envelopeMagic {
		return e, errorf(ErrTampered, "malformed envelope: bad magic or too short (%d bytes)", len(b))
	}
	if b[2] != envelopeVersion {
		return e, errorf(ErrTampered, "malformed envelope: unsupported format version %d", b[2])
	}
	n := int(b[3])
	if len(b) < headerMin+n+tagSize {
		return e, errorf(ErrTampered, "malformed envelope: truncated (%d bytes)", len(b))
	}
	p := 4
	e.Format = envelopeVersion
	e.KeyID = string(b[p : p+n])
	p += n
	e.KeyVersion = int(binary.BigEndian.Uint32(b[p:]))
	p += 4
	copy(e.kcv[:], b[p:])
	p += kcvSize
	e.wrapped = b[p : p+wrappedLen : p+wrappedLen]
	p += wrappedLen
	e.nonce = b[p : p+nonceSize : p+nonceSize]
	p += nonceSize
	e.ciphertext = b[p:]
	return e, nil
}

func (e *envelope) marshal() []byte {
	out := make([]byte, 0, headerMin+len(e.KeyID)+len(e.ciphertext))
	out = append(out, envelopeMagic...)
	out = append(out, envelopeVersion, byte(len(e.KeyID)))
	out = append(out, e.KeyID...)
	out = binary.BigEndian.AppendUint32(out, uint32(e.KeyVersion))
	out = append(out, e.kcv[:]...)
	out = append(out, e.wrapped...)
	out = append(out, e.nonce...)
	return append(out, e.ciphertext...)
}

func wrapAAD(ref KeyRef) []byte {
	b := make([]byte, 0, len(wrapLabel)+1+len(ref.ID)+4)
	b = append(b, wrapLabel...)
	b = append(b, byte(len(ref.ID)))
	b = append(b, ref.ID...)
	return binary.BigEndian.AppendUint32(b, uint32(ref.Version))
}

func payloadAAD(bd Binding) []byte {
	b := make([]byte, 0, len(payloadLabel)+3*binary.MaxVarintLen64+len(bd.Customer)+len(bd.Account)+len(bd.Name))
	b = append(b, payloadLabel...)
	for _, s := range []string{bd.Customer, bd.Account, bd.Name} {
		b = appendStr(b, s)
	}
	return b
}

func keyCheckValue(key *[keySize]byte) [kcvSize]byte {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(kcvLabel))
	var out [kcvSize]byte
	copy(out[:], m.Sum(nil))
	return out
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("km: " + err.Error()) // key sizes are checked by construction
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("km: " + err.Error())
	}
	return aead
}

// sealGCM returns nonce || AES-256-GCM(plaintext) with a fresh random nonce.
func sealGCM(key, plaintext, aad []byte) []byte {
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	_, _ = rand.Read(out) // crypto/rand.Read never fails (Go ≥ 1.24)
	return newGCM(key).Seal(out, out[:nonceSize], plaintext, aad)
}

// openGCM opens the output of sealGCM.
func openGCM(key, sealed, aad []byte) ([]byte, bool) {
	if len(sealed) < nonceSize+tagSize {
		return nil, false
	}
	pt, err := newGCM(key).Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	return pt, err == nil
}

func (k *Keyring) seal(b Binding, plaintext []byte) ([]byte, error) {
	return k.sealAAD(payloadAAD(b), plaintext)
}

// sealAAD seals plaintext with aad as the payload's additional data.
func (k *Keyring) sealAAD(aad, plaintext []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, ErrClosed
	}
	mk := k.keys[k.current]
	var dataKey [keySize]byte
	defer clear(dataKey[:])
	_, _ = rand.Read(dataKey[:])
	sealed := sealGCM(dataKey[:], plaintext, aad)
	e := envelope{
		EnvelopeHeader: EnvelopeHeader{Format: envelopeVersion, KeyID: k.current.ID, KeyVersion: k.current.Version},
		kcv:            mk.kcv,
		wrapped:        sealGCM(mk.key[:], dataKey[:], wrapAAD(k.current)),
		nonce:          sealed[:nonceSize],
		ciphertext:     sealed[nonceSize:],
	}
	return e.marshal(), nil
}

// unwrap returns the envelope's data key; the caller must clear it. k.mu must
// be held.
func (k *Keyring) unwrap(e envelope) ([]byte, error) {
	if k.closed {
		return nil, ErrClosed
	}
	ref := e.Key()
	mk, ok := k.keys[ref]
	if !ok {
		return nil, errorf(ErrUnknownKey, "envelope is sealed under master key %s, which the keyring does not hold", ref)
	}
	dataKey, ok := openGCM(mk.key[:], e.wrapped, wrapAAD(ref))
	kcvOK := hmac.Equal(mk.kcv[:], e.kcv[:])
	switch {
	case !ok && !kcvOK:
		return nil, errorf(ErrWrongKey, "master key %s in the keyring is not the key that sealed this envelope (key check value differs)", ref)
	case !ok:
		return nil, errorf(ErrTampered, "wrapped data key under master key %s failed authentication", ref)
	case !kcvOK || len(dataKey) != keySize:
		clear(dataKey)
		return nil, errorf(ErrTampered, "envelope header under master key %s was modified", ref)
	}
	return dataKey, nil
}

func (k *Keyring) open(b Binding, env []byte) (Secret, error) {
	pt, err := k.openAAD(payloadAAD(b), env)
	if errors.Is(err, errPayloadAuth) {
		return Secret{}, errorf(ErrTampered, "ciphertext failed authentication for %s/%s/%s (modified, or moved from another credential)",
			b.Customer, b.Account, b.Name)
	}
	return pt, err
}

// errPayloadAuth is openAAD's "the payload failed authentication"; callers
// turn it into an ErrTampered naming what they opened.
var errPayloadAuth = errors.New("payload failed authentication")

// openAAD opens an envelope whose payload was sealed with aad.
func (k *Keyring) openAAD(aad, env []byte) (Secret, error) {
	e, err := parseEnvelope(env)
	if err != nil {
		return Secret{}, err
	}
	k.mu.RLock()
	dataKey, err := k.unwrap(e)
	k.mu.RUnlock()
	if err != nil {
		return Secret{}, err
	}
	defer clear(dataKey)
	pt, err := newGCM(dataKey).Open(nil, e.nonce, e.ciphertext, aad)
	if err != nil {
		return Secret{}, errPayloadAuth
	}
	return adoptSecret(pt), nil
}

func (k *Keyring) rewrap(env []byte) ([]byte, bool, error) {
	e, err := parseEnvelope(env)
	if err != nil {
		return nil, false, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, false, ErrClosed
	}
	if e.Key() == k.current {
		return bytes.Clone(env), false, nil
	}
	dataKey, err := k.unwrap(e)
	if err != nil {
		return nil, false, err
	}
	defer clear(dataKey)
	mk := k.keys[k.current]
	e.KeyID, e.KeyVersion = k.current.ID, k.current.Version
	e.kcv = mk.kcv
	e.wrapped = sealGCM(mk.key[:], dataKey, wrapAAD(k.current))
	return e.marshal(), true, nil
}

// sealItem is one payload for sealAll.
type sealItem struct{ aad, plaintext []byte }

// sealAll seals every item under the same master key (the current one when
// sealAll runs, even if another goroutine adds a key meanwhile) and returns
// the envelopes and that key.
func (k *Keyring) sealAll(items ...sealItem) ([][]byte, KeyRef, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, KeyRef{}, ErrClosed
	}
	ref := k.current
	mk := k.keys[ref]
	out := make([][]byte, len(items))
	for i, it := range items {
		var dataKey [keySize]byte
		_, _ = rand.Read(dataKey[:])
		sealed := sealGCM(dataKey[:], it.plaintext, it.aad)
		e := envelope{
			EnvelopeHeader: EnvelopeHeader{Format: envelopeVersion, KeyID: ref.ID, KeyVersion: ref.Version},
			kcv:            mk.kcv,
			wrapped:        sealGCM(mk.key[:], dataKey[:], wrapAAD(ref)),
			nonce:          sealed[:nonceSize],
			ciphertext:     sealed[nonceSize:],
		}
		clear(dataKey[:])
		out[i] = e.marshal()
	}
	return out, ref, nil
}

// rewrapAll rewraps every envelope to the same (current) master key, which
// it returns; moved reports whether any envelope was under another key.
func (k *Keyring) rewrapAll(envs ...[]byte) (out [][]byte, to KeyRef, moved bool, err error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, KeyRef{}, false, ErrClosed
	}
	to = k.current
	mk := k.keys[to]
	out = make([][]byte, len(envs))
	for i, env := range envs {
		e, err := parseEnvelope(env)
		if err != nil {
			return nil, KeyRef{}, false, err
		}
		if e.Key() == to {
			out[i] = bytes.Clone(env)
			continue
		}
		dataKey, err := k.unwrap(e)
		if err != nil {
			return nil, KeyRef{}, false, err
		}
		e.KeyID, e.KeyVersion = to.ID, to.Version
		e.kcv = mk.kcv
		e.wrapped = sealGCM(mk.key[:], dataKey, wrapAAD(to))
		clear(dataKey)
		out[i] = e.marshal()
		moved = true
	}
	return out, to, moved, nil
}
