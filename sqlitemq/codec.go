package sqlitemq

import (
	"encoding/binary"
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata is stored as a count, then each key and value, every one
// prefixed with its length (uvarints): cheaper than JSON both ways and
// byte-exact for any string.

func encodeMetadata(m message.Metadata) []byte {
	n := binary.MaxVarintLen64
	for k, v := range m {
		n += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(m)))
	for k, v := range m {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

var errCorrupt = errors.New("sqlitemq: corrupt metadata")

func decodeMetadata(b []byte) (message.Metadata, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, errCorrupt
	}
	b = b[n:]
	m := make(message.Metadata, count)
	next := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return "", false
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, true
	}
	for range count {
		k, ok := next()
		if !ok {
			return nil, errCorrupt
		}
		v, ok := next()
		if !ok {
			return nil, errCorrupt
		}
		m[k] = v
	}
	if len(b) != 0 {
		return nil, errCorrupt
	}
	return m, nil
}
