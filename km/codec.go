package km

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"
)

// The credential payload codec: what is sealed inside an envelope (local
// store) and inside a request or response body (remote protocol).
//
//	byte     codec version (1)
//	str      customer, account, name, provider, kind
//	uvarint  number of metadata entries, then (str key, str value) each
//	uvarint  number of fields, then (str name, str value) each
//	varint   created-at, updated-at (Unix nanoseconds, 0 = unset)
//
// where str is a uvarint length followed by the bytes. The buffer is sized
// exactly up front so that secret bytes are never left behind in a
// reallocated array; callers zero it after use.
const codecVersion = 1

var errCodec = errors.New("malformed credential payload")

func marshalCredential(c Credential) []byte {
	n := 1 + 2*binary.MaxVarintLen64
	strs := []string{c.Customer, c.Account, c.Name, c.Provider, string(c.Kind)}
	for _, s := range strs {
		n += binary.MaxVarintLen64 + len(s)
	}
	for k, v := range c.Meta {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	for k, v := range c.Fields {
		n += 2*binary.MaxVarintLen64 + len(k) + v.Len()
	}
	n += 2 * binary.MaxVarintLen64
	buf := make([]byte, 0, n)
	buf = append(buf, codecVersion)
	for _, s := range strs {
		buf = appendStr(buf, s)
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.Meta)))
	for _, k := range sortedKeys(c.Meta) {
		buf = appendStr(buf, k)
		buf = appendStr(buf, c.Meta[k])
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.Fields)))
	for _, k := range c.FieldNames() {
		buf = appendStr(buf, k)
		c.Fields[k].view(func(b []byte) {
			buf = binary.AppendUvarint(buf, uint64(len(b)))
			buf = append(buf, b...)
		})
	}
	buf = binary.AppendVarint(buf, unixNano(c.CreatedAt))
	buf = binary.AppendVarint(buf, unixNano(c.UpdatedAt))
	return buf
}

// openedCredential decodes the credential in pt, the plaintext of an opened
// envelope, and destroys pt.
func openedCredential(pt Secret) (Credential, error) {
	defer pt.Destroy()
	var c Credential
	var err error
	pt.view(func(b []byte) { c, err = unmarshalCredential(b) })
	return c, err
}

// unmarshalCredential decodes b; secret values are copied, so the caller may
// zero b afterwards.
func unmarshalCredential(b []byte) (Credential, error) {
	d := decoder{b: b}
	if d.byte() != codecVersion {
		return Credential{}, errCodec
	}
	var c Credential
	c.Customer, c.Account, c.Name, c.Provider = d.str(), d.str(), d.str(), d.str()
	c.Kind = Kind(d.str())
	if n := d.count(); n > 0 {
		c.Meta = make(map[string]string, n)
		for range n {
			k := d.str()
			c.Meta[k] = d.str()
		}
	}
	if n := d.count(); n > 0 {
		c.Fields = make(map[string]Secret, n)
		for range n {
			k := d.str()
			c.Fields[k] = NewSecret(d.bytes())
		}
	}
	c.CreatedAt, c.UpdatedAt = fromUnixNano(d.varint()), fromUnixNano(d.varint())
	if d.err || len(d.b) != 0 {
		c.Destroy()
		return Credential{}, errCodec
	}
	return c, nil
}

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// decoder reads the codec; after the first error every read returns zero
// values and err stays set.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if d.err || len(d.b) == 0 {
		d.err = true
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) count() int {
	n := d.uvarint()
	if n > MaxFields {
		d.err = true
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
