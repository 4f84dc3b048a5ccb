package km

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/hkdf"
)

// Remote protocol constants; the protocol is described in doc.go.
const (
	authScheme      = "KM1-HMAC-SHA256"
	hdrTimestamp    = "X-KM-Timestamp"
	hdrNonce        = "X-KM-Nonce"
	hdrContentHash  = "X-KM-Content-SHA256"
	hdrRespSig      = "X-KM-Signature"
	credentialsPath = "/v1/credentials/"
	nonceHexLen     = 32

	// MinProvisioningKeyLen is the shortest provisioning key accepted. Use 32
	// random bytes.
	MinProvisioningKeyLen = 16
	// MaxWireBody bounds request and response bodies.
	MaxWireBody = 1 << 20
)

// Error codes in the body of non-200, non-401 responses.
const (
	codeNotFound   = "not_found"
	codeInvalid    = "invalid"
	codeTampered   = "tampered"
	codeWrongKey   = "wrong_key"
	codeUnknownKey = "unknown_key"
	codeInternal   = "internal"
)

type wireKeys struct {
	sign     [32]byte
	sealRoot [32]byte
}

func deriveWireKeys(provisioningKey Secret, field string) (*wireKeys, error) {
	p := provisioningKey.Reveal()
	defer clear(p)
	if len(p) < MinProvisioningKeyLen {
		return nil, invalidf("%s must be at least %d bytes", field, MinProvisioningKeyLen)
	}
	k := new(wireKeys)
	hkdfRead(k.sign[:], p, nil, "stratusworks/km/v1 sign")
	hkdfRead(k.sealRoot[:], p, nil, "stratusworks/km/v1 seal")
	return k, nil
}

func hkdfRead(dst, secret, salt []byte, info string) {
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(info)), dst); err != nil {
		panic("km: hkdf: " + err.Error()) // only for outputs longer than 255*32 bytes
	}
}

// requestKey returns the sealing key of one request; the caller clears it.
func (k *wireKeys) requestKey(nonce string) []byte {
	out := make([]byte, keySize)
	hkdfRead(out, k.sealRoot[:], []byte(nonce), "stratusworks/km/v1 request")
	return out
}

func (k *wireKeys) zero() {
	clear(k.sign[:])
	clear(k.sealRoot[:])
}

func bodyHash(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

func (k *wireKeys) mac(parts ...string) string {
	m := hmac.New(sha256.New, k.sign[:])
	io.WriteString(m, strings.Join(parts, "\n"))
	return hex.EncodeToString(m.Sum(nil))
}

func (k *wireKeys) requestSignature(method, path, query, ts, nonce, bodyDigest string) string {
	return k.mac(authScheme, method, path, query, ts, nonce, bodyDigest)
}

func (k *wireKeys) responseSignature(nonce string, status int, bodyDigest string) string {
	return k.mac("KM1 response", nonce, strconv.Itoa(status), bodyDigest)
}

func requestAAD(method, path, ts, nonce string) []byte {
	return []byte(strings.Join([]string{"KM1 request", method, path, ts, nonce}, "\n"))
}

func responseAAD(method, path, nonce string) []byte {
	return []byte(strings.Join([]string{"KM1 response", method, path, nonce}, "\n"))
}

// verifyMAC compares two hex MACs in constant time.
func verifyMAC(want, got string) bool { return hmac.Equal([]byte(want), []byte(got)) }
