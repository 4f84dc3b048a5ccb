package km

import (
	"crypto/ecdh"
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
	credentialsPath = "/v1/credentials/"

	hdrRevision = "X-KM-Revision"

	// Payload layer (version 2).
	authScheme     = "KM2-HMAC-SHA256"
	hdrKeyID       = "X-KM-Key-ID"
	hdrClient      = "X-KM-Client"
	hdrTimestamp   = "X-KM-Timestamp"
	hdrNonce       = "X-KM-Nonce"
	hdrEphemeral   = "X-KM-Ephemeral"
	hdrContentHash = "X-KM-Content-SHA256"
	hdrRespSig     = "X-KM-Signature"
	nonceHexLen    = 32

	// MinPayloadKeyLen is the shortest payload key accepted. Use 32 random
	// bytes.
	MinPayloadKeyLen = 16
	// MaxWireBody bounds request and response bodies.
	MaxWireBody = 1 << 20
)

// Error codes in the body of error responses.
const (
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeInvalid      = "invalid"
	codeConflict     = "conflict"
	codeTampered     = "tampered"
	codeWrongKey     = "wrong_key"
	codeUnknownKey   = "unknown_key"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// PayloadKey is a root key P of the optional payload layer, held only by the
// key service. ID names it (several may be valid at once, for rotation);
// each client gets its own key derived from it ([DeriveClientPayloadKey]),
// never P itself.
type PayloadKey struct {
	ID  string // [A-Za-z0-9._-]{1,64}
	Key Secret // at least MinPayloadKeyLen bytes
}

// ClientPayloadKey is one client's payload-layer key: derived from the key
// service's [PayloadKey] ID for the client's identity, so that it
// authenticates and seals for that client only. Holding it tells nothing
// about another client's key.
type ClientPayloadKey struct {
	ID     string // the PayloadKey's ID
	Client string // the client identity it was derived for (its certificate's CommonName)
	Key    Secret // 32 bytes
}

// DeriveClientPayloadKey derives client's payload key from the root key:
//
//	K_client = HKDF-SHA256(P, salt = "", info = "stratusworks/km/v2 client\n" + client)
//
// Run it where P is kept (the key service's host) and give each worker its
// own result, never P.
func DeriveClientPayloadKey(root PayloadKey, client string) (ClientPayloadKey, error) {
	if err := root.validate("payload key"); err != nil {
		return ClientPayloadKey{}, err
	}
	if !identityPattern.MatchString(client) {
		return ClientPayloadKey{}, invalidf("payload key: client identity must match %s", identityPattern)
	}
	p := root.Key.Reveal()
	defer clear(p)
	k := make([]byte, keySize)
	hkdfRead(k, p, nil, "stratusworks/km/v2 client\n"+client)
	return ClientPayloadKey{ID: root.ID, Client: client, Key: adoptSecret(k)}, nil
}

func (k PayloadKey) validate(field string) error {
	if !keyIDPattern.MatchString(k.ID) {
		return invalidf("%s: ID must match %s", field, keyIDPattern)
	}
	if k.Key.Len() < MinPayloadKeyLen {
		return invalidf("%s %q: Key must be at least %d bytes", field, k.ID, MinPayloadKeyLen)
	}
	return nil
}

// wireKeys are one client's payload-layer keys.
type wireKeys struct {
	sign     [32]byte
	sealRoot [32]byte
}

func newWireKeys(clientKey []byte) *wireKeys {
	k := new(wireKeys)
	hkdfRead(k.sign[:], clientKey, nil, "stratusworks/km/v2 sign")
	hkdfRead(k.sealRoot[:], clientKey, nil, "stratusworks/km/v2 seal")
	return k
}

func hkdfRead(dst, secret, salt []byte, info string) {
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(info)), dst); err != nil {
		panic("km: hkdf: " + err.Error()) // only for outputs longer than 255*32 bytes
	}
}

// requestKey returns the sealing key of one request body; the caller clears
// it.
func (k *wireKeys) requestKey(nonce string) []byte {
	out := make([]byte, keySize)
	hkdfRead(out, k.sealRoot[:], []byte(nonce), "stratusworks/km/v2 request")
	return out
}

// responseKey returns the sealing key of one response body: it mixes in the
// X25519 secret of the request's and the response's ephemeral keys, so a
// recorded response cannot be opened later even with the client's key.
func (k *wireKeys) responseKey(nonce string, shared []byte) []byte {
	secret := append(append(make([]byte, 0, 64), k.sealRoot[:]...), shared...)
	defer clear(secret)
	out := make([]byte, keySize)
	hkdfRead(out, secret, []byte(nonce), "stratusworks/km/v2 response")
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

// requestFields are what a payload-layer request signs.
type requestFields struct {
	keyID, client, audience, method, path, query, ts, nonce, ephemeral string
}

func (k *wireKeys) requestSignature(f requestFields, bodyDigest string) string {
	return k.mac(authScheme, f.keyID, f.client, f.audience, f.method, f.path, f.query, f.ts, f.nonce, f.ephemeral, bodyDigest)
}

func requestAAD(f requestFields) []byte {
	return []byte(strings.Join([]string{"KM2 request", f.keyID, f.client, f.audience, f.method, f.path, f.query, f.ts, f.nonce}, "\n"))
}

func (k *wireKeys) responseSignature(audience, nonce string, status int, ephemeral, revision, bodyDigest string) string {
	return k.mac("KM2 response", audience, nonce, strconv.Itoa(status), ephemeral, revision, bodyDigest)
}

func responseAAD(method, path, nonce string) []byte {
	return []byte(strings.Join([]string{"KM2 response", method, path, nonce}, "\n"))
}

// verifyMAC compares two hex MACs in constant time.
func verifyMAC(want, got string) bool { return hmac.Equal([]byte(want), []byte(got)) }

// x25519 computes the shared secret of priv and the hex public key peer.
func x25519(priv *ecdh.PrivateKey, peerHex string) ([]byte, bool) {
	raw, err := hex.DecodeString(peerHex)
	if err != nil {
		return nil, false
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, false
	}
	shared, err := priv.ECDH(pub)
	return shared, err == nil
}
