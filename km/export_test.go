package km

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
)

// Test hooks for the external test package.

func SetRewrapBatch(s *LocalStore, n int) { s.batch = n }

func SetBeforeRewrapUpdate(s *LocalStore, fn func()) { s.beforeRewrapUpdate = fn }

// RowID returns the id of the credential's row (0 if none): the test's way
// to find a row, since the table holds no names.
func RowID(s *LocalStore, customer, account, name string) uint64 {
	rows, _, err := s.find(context.Background(), Binding{customer, account, name}, "id", "key_id", "key_version", "updated_at")
	if err != nil || len(rows) == 0 {
		return 0
	}
	return rows[0].ID
}

// LegacyEnvelope seals c as the legacy table's rows were sealed.
func LegacyEnvelope(kr *Keyring, c Credential) []byte {
	env, err := sealCredential(kr, c)
	if err != nil {
		panic(err)
	}
	return env
}

// OpenRecordedRequest is an attacker holding key trying to open a recorded
// payload-layer request body (as the recorded client, for audience).
func OpenRecordedRequest(key ClientPayloadKey, audience, method string, h http.Header, rawURL string, body []byte) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	f := requestFields{keyID: h.Get(hdrKeyID), client: h.Get(hdrClient), audience: audience, method: method,
		path: u.EscapedPath(), query: u.RawQuery, ts: h.Get(hdrTimestamp), nonce: h.Get(hdrNonce), ephemeral: h.Get(hdrEphemeral)}
	kb := key.Key.Reveal()
	keys := newWireKeys(kb)
	reqKey := keys.requestKey(f.nonce)
	pt, ok := openGCM(reqKey, body, requestAAD(f))
	if !ok {
		return nil, errorf(ErrTampered, "recorded request does not open with this key")
	}
	return pt, nil
}

// OpenRecordedResponse is an attacker holding the client's key (but not the
// request's ephemeral private key, which never left the client's memory)
// trying to open a recorded response body: with a fresh ephemeral key, or
// with none.
func OpenRecordedResponse(key ClientPayloadKey, method, rawURL string, reqHeader, respHeader http.Header, body []byte) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	nonce := reqHeader.Get(hdrNonce)
	kb := key.Key.Reveal()
	keys := newWireKeys(kb)
	guess, _ := ecdh.X25519().GenerateKey(rand.Reader)
	shared, _ := x25519(guess, respHeader.Get(hdrEphemeral))
	srvPub, _ := hex.DecodeString(respHeader.Get(hdrEphemeral))
	for _, s := range [][]byte{shared, nil, make([]byte, 32), srvPub} {
		if pt, ok := openGCM(keys.responseKey(nonce, s), body, responseAAD(method, u.EscapedPath(), nonce)); ok {
			return pt, nil
		}
	}
	return nil, errorf(ErrTampered, "recorded response does not open with this key")
}
