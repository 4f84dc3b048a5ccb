package km

import (
	"crypto/hmac"
	"crypto/sha256"
)

// Row references: what the database stores instead of identifiers. Each
// master key version has an index key,
//
//	indexKey = HKDF-SHA256(master key, salt = "", info = "stratusworks/km index v1")
//
// and a row sealed under that version is found by
//
//	customer ref   = HMAC-SHA256(indexKey, "customer\x00" | str customer)
//	credential ref = HMAC-SHA256(indexKey, "credential\x00" | str customer | str account | str name)
//
// (str: uvarint length, then the bytes). Without the master key a reference
// says nothing about the names, and equal names give equal references only
// under the same key version, so lookups try every version the keyring holds.
const (
	indexLabel    = "stratusworks/km index v1"
	refSize       = sha256.Size
	customerLabel = "customer\x00"
	credLabel     = "credential\x00"
)

// keyedRefs are the references of one name under one master key version.
type keyedRefs struct {
	key      KeyRef
	customer []byte
	cred     []byte // nil when only the customer was asked for
}

func refMAC(idx *[keySize]byte, label string, parts ...string) []byte {
	var buf []byte
	buf = append(buf, label...)
	for _, p := range parts {
		buf = appendStr(buf, p)
	}
	m := hmac.New(sha256.New, idx[:])
	m.Write(buf)
	return m.Sum(nil)
}

// refs returns b's references under every key version held, the current one
// first. With customerOnly, only customer refs are computed.
func (k *Keyring) refs(b Binding, customerOnly bool) ([]keyedRefs, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, ErrClosed
	}
	out := make([]keyedRefs, 0, len(k.keys))
	add := func(ref KeyRef, m *masterKey) {
		r := keyedRefs{key: ref, customer: refMAC(&m.idx, customerLabel, b.Customer)}
		if !customerOnly {
			r.cred = refMAC(&m.idx, credLabel, b.Customer, b.Account, b.Name)
		}
		out = append(out, r)
	}
	add(k.current, k.keys[k.current])
	for ref, m := range k.keys {
		if ref != k.current {
			add(ref, m)
		}
	}
	return out, nil
}

// refsUnder returns b's references under one key version.
func (k *Keyring) refsUnder(key KeyRef, b Binding) (keyedRefs, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return keyedRefs{}, ErrClosed
	}
	m, ok := k.keys[key]
	if !ok {
		return keyedRefs{}, errorf(ErrUnknownKey, "master key %s is not in the keyring", key)
	}
	return keyedRefs{key: key,
		customer: refMAC(&m.idx, customerLabel, b.Customer),
		cred:     refMAC(&m.idx, credLabel, b.Customer, b.Account, b.Name)}, nil
}
