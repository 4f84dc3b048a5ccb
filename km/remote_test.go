package km_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testca"
	"github.com/stratusworks/worker/km"
)

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// exchange is one recorded HTTP round trip.
type exchange struct {
	method, url string
	reqHeader   http.Header
	reqBody     []byte
	status      int
	respHeader  http.Header
	respBody    []byte
}

// wireRecorder is a RoundTripper inside the client's TLS: it records every
// request and response as an intermediary terminating TLS would see them,
// and can rewrite them on the way.
type wireRecorder struct {
	next http.RoundTripper

	mu         sync.Mutex
	log        []exchange
	mutateReq  func(*http.Request, []byte) []byte
	mutateResp func(*http.Response, []byte) []byte
}

func (w *wireRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		_ = req.Body.Close()
	}
	w.mu.Lock()
	mreq, mresp := w.mutateReq, w.mutateResp
	w.mu.Unlock()
	if mreq != nil {
		body = mreq(req, body)
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	resp, err := w.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	rb, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if mresp != nil {
		rb = mresp(resp, rb)
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	resp.ContentLength = int64(len(rb))
	w.mu.Lock()
	w.log = append(w.log, exchange{
		method: req.Method, url: req.URL.String(), reqHeader: out.Header.Clone(), reqBody: body,
		status: resp.StatusCode, respHeader: resp.Header.Clone(), respBody: rb,
	})
	w.mu.Unlock()
	return resp, nil
}

func (w *wireRecorder) set(req func(*http.Request, []byte) []byte, resp func(*http.Response, []byte) []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mutateReq, w.mutateResp = req, resp
}

func (w *wireRecorder) exchanges() []exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]exchange(nil), w.log...)
}

func (w *wireRecorder) last() exchange {
	ex := w.exchanges()
	if len(ex) == 0 {
		return exchange{}
	}
	return ex[len(ex)-1]
}

// dump renders everything that crossed the wire.
func (w *wireRecorder) dump() string {
	var b strings.Builder
	for _, e := range w.exchanges() {
		b.WriteString(e.method + " " + e.url + "\n")
		_ = e.reqHeader.Write(&b)
		b.Write(e.reqBody)
		b.WriteString("\n---\n")
		_ = e.respHeader.Write(&b)
		b.Write(e.respBody)
		b.WriteString("\n===\n")
	}
	return b.String()
}

// mtlsHTTPClient is a bare HTTP client with cert, pinning ca, for sending
// hand-made or replayed requests to s.
func mtlsHTTPClient(s *kmService, cert testca.Issued) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Cert)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: s.identity, Certificates: []tls.Certificate{cert.TLS},
	}}}
}

// replay sends a recorded request again, byte for byte, to base (an
// attacker who recorded it at an intermediary and forwards it as that
// intermediary would).
func replay(t *testing.T, hc *http.Client, base string, e exchange) (int, string) {
	t.Helper()
	path := e.url[strings.Index(e.url[len("https://"):], "/")+len("https://"):]
	req, err := http.NewRequest(e.method, base+path, bytes.NewReader(e.reqBody))
	require.NoError(t, err)
	req.Header = e.reqHeader.Clone()
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestNetworkAttackerSeesOnlyTLS: everything between a worker and the key
// service is TLS 1.3: the recorded bytes hold no secret, no name and no
// field of the protocol, and sending them again opens nothing (a TLS 1.3
// handshake never repeats its keys).
func TestNetworkAttackerSeesOnlyTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, serviceOptions{})
	tap := &tcpTap{}
	c := s.client(t, "worker-a", clientOptions{tap: tap})
	require.NoError(t, c.Put(ctx, cloudCred("acme", "123", "default", canary)))
	got, err := c.Get(ctx, "acme", "123", "default")
	require.NoError(t, err)
	require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
	_, err = c.List(ctx, "acme")
	require.NoError(t, err)

	dump := tap.dump()
	require.NotEmpty(t, dump)
	require.Equal(t, byte(0x16), dump[0], "a TLS handshake record")
	for _, needle := range []string{canary, "AKIA-default", "/v1/credentials/acme", "eu-west-1"} {
		requireNoLeak(t, dump, needle, "the network")
	}

	// The worker's own certificate and key do not help: TLS 1.3 keys are
	// ephemeral. Sending the recorded client bytes again to the service
	// does not even complete a handshake, and changes nothing.
	require.NoError(t, c.Delete(ctx, "acme", "123", "default"))
	served := func() int {
		n := 0
		for _, r := range s.auditRecords(t) {
			if r.Outcome == km.OutcomeOK {
				n++
			}
		}
		return n
	}
	before := served()
	tap.mu.Lock()
	recorded := append([][]byte(nil), tap.conns...)
	tap.mu.Unlock()
	require.NotEmpty(t, recorded)
	for _, sent := range recorded {
		require.Greater(t, len(sent), 1000, "a handshake and requests were recorded")
		conn, err := net.Dial("tcp", hostOf(s.http.URL))
		require.NoError(t, err)
		_, _ = conn.Write(sent)
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		reply, _ := io.ReadAll(conn)
		_ = conn.Close()
		require.NotContains(t, string(reply), "HTTP/1.1 2", "a replayed TLS stream must not be served")
	}
	require.Equal(t, before, served(), "no replayed request was served")
	_, err = s.backend.Get(ctx, "acme", "123", "default")
	require.ErrorIs(t, err, km.ErrNotFound, "the replayed put did not recreate the credential")
}

// TestClientCertificateAttacks: a client without a certificate, with an
// expired, not-yet-valid, revoked, foreign, usage-less or server
// certificate, or one the service does not know, is refused, and so is a
// known client asking for a customer it is not authorized for; each refusal
// is in the audit log, and the credential is untouched.
func TestClientCertificateAttacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := testca.New(t, "test CA")
	revokedCert := ca.Client(t, "worker-a", testca.Options{})
	crl, err := km.CRLRevoked(ca.CRL(t, revokedCert.Cert), ca.PEM)
	require.NoError(t, err)
	s := newService(t, serviceOptions{ca: ca, revoked: crl})
	require.NoError(t, s.backend.Put(ctx, cloudCred("beta", "9", "default", canary)))
	other := testca.New(t, "another CA")
	ex := func(o testca.Options) *testca.Issued { c := ca.Client(t, "worker-a", o); return &c }

	cases := []struct {
		name   string
		opts   clientOptions
		op     string // audited operation
		reason string
	}{
		{"NoCertificate", clientOptions{noCert: true}, km.OpConnect, "no client certificate"},
		{"Expired", clientOptions{cert: ex(testca.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})}, km.OpConnect, "expired"},
		{"NotYetValid", clientOptions{cert: ex(testca.Options{NotBefore: time.Now().Add(time.Hour)})}, km.OpConnect, "expired or not yet valid"},
		{"Revoked", clientOptions{cert: &revokedCert}, km.OpConnect, "revoked"},
		{"FromAnotherCA", clientOptions{cert: func() *testca.Issued { c := other.Client(t, "worker-a", testca.Options{}); return &c }()}, km.OpConnect, "not issued by the pinned CA"},
		{"NoKeyUsage", clientOptions{cert: ex(testca.Options{NoEKU: true})}, km.OpConnect, "lacks the client authentication usage"},
		{"ServerCertificateAsClient", clientOptions{cert: func() *testca.Issued {
			c := ca.Client(t, "worker-a", testca.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}})
			return &c
		}()}, km.OpConnect, "a server certificate cannot authenticate a client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: each case reads the shared service's last record.
			c := s.client(t, "worker-a", tc.opts)
			_, err := c.Get(ctx, "beta", "9", "default")
			require.ErrorIs(t, err, km.ErrUnauthorized)
			requireNoLeak(t, err.Error(), canary, "error")
			require.ErrorIs(t, c.Delete(ctx, "beta", "9", "default"), km.ErrUnauthorized)
			s.requireAudited(t, tc.op, km.OutcomeRefused, tc.reason)
		})
	}

	t.Run("UnknownClient", func(t *testing.T) {
		c := s.client(t, "worker-z", clientOptions{})
		_, err := c.Get(ctx, "beta", "9", "default")
		require.ErrorIs(t, err, km.ErrForbidden)
		rec := s.requireAudited(t, km.OpGet, km.OutcomeForbidden, "unknown client")
		require.Equal(t, "worker-z", rec.Client)
	})
	a := s.client(t, "worker-a", clientOptions{})
	for _, op := range []struct {
		name string
		do   func() error
		op   string
	}{
		{"Get", func() error { _, err := a.Get(ctx, "beta", "9", "default"); return err }, km.OpGet},
		{"List", func() error { _, err := a.List(ctx, "beta"); return err }, km.OpList},
		{"Put", func() error { return a.Put(ctx, cloudCred("beta", "9", "default", "evil")) }, km.OpPut},
		{"Delete", func() error { return a.Delete(ctx, "beta", "9", "default") }, km.OpDelete},
	} {
		t.Run("AuthorizedForAcmeAskingForBeta"+op.name, func(t *testing.T) {
			err := op.do()
			require.ErrorIs(t, err, km.ErrForbidden)
			rec := s.requireAudited(t, op.op, km.OutcomeForbidden, "not authorized for this customer")
			require.Equal(t, "worker-a", rec.Client)
			require.Equal(t, "beta", rec.Customer)
		})
	}
	got, err := s.backend.Get(ctx, "beta", "9", "default")
	require.NoError(t, err)
	require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()), "beta's credential is untouched")
	require.EqualValues(t, 1, got.Revision)

	// And acme's own client works.
	require.NoError(t, a.Put(ctx, cloudCred("acme", "1", "default", canary)))
	s.requireAudited(t, km.OpPut, km.OutcomeOK, "")
	requireNoLeak(t, s.tlsErrs.String()+s.logs.String(), canary, "TLS errors and logs")
}

// TestServerIdentityIsDistinct: a compromised worker cannot pose as the key
// service to another worker: its certificate lacks the server usage (and a
// server certificate for another name, or from another CA, fails too).
func TestServerIdentityIsDistinct(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := testca.New(t, "test CA")
	cases := []struct {
		name string
		cert func() testca.Issued
	}{
		{"WorkerCertificate", func() testca.Issued {
			return ca.Client(t, serviceIdentity, testca.Options{DNSNames: []string{serviceIdentity}})
		}},
		{"WorkerCertificateWithoutUsage", func() testca.Issued {
			return ca.Client(t, serviceIdentity, testca.Options{DNSNames: []string{serviceIdentity}, NoEKU: true})
		}},
		{"ServerAndClientUsage", func() testca.Issued {
			return ca.Server(t, serviceIdentity, testca.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
		}},
		{"AnotherName", func() testca.Issued { return ca.Server(t, "evil.test", testca.Options{}) }},
		{"AnotherCA", func() testca.Issued { return testca.New(t, "evil CA").Server(t, serviceIdentity, testca.Options{}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cert := tc.cert()
			s := newService(t, serviceOptions{ca: ca, serverCert: &cert})
			c := s.client(t, "worker-a", clientOptions{})
			err := c.Put(ctx, cloudCred("acme", "1", "default", canary))
			require.ErrorIs(t, err, km.ErrUnauthorized)
			_, err = s.backend.Get(ctx, "acme", "1", "default")
			require.ErrorIs(t, err, km.ErrNotFound, "nothing reached the impostor's store")
		})
	}
}

// TestPlainHTTPRefused: a client refuses an http URL unless the test-only
// option says otherwise, and the server refuses requests that did not come
// over TLS, auditing them.
func TestPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	_, err := km.NewClient(km.ClientConfig{BaseURL: "http://km.test", TLS: km.TLSConfig{CA: []byte("x")}})
	require.ErrorIs(t, err, km.ErrInvalid)
	require.ErrorContains(t, err, "plain http")

	s := newService(t, serviceOptions{})
	plain := httptest.NewServer(s.server)
	t.Cleanup(plain.Close)
	resp, err := http.Get(plain.URL + "/v1/credentials/acme/1/default")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "unauthorized\n", string(b))
	s.requireAudited(t, km.OpGet, km.OutcomeRefused, "plain HTTP")
}

// TestClientCertificateRotation: a worker's certificate is renewed by
// rewriting its files; the next connection uses the new one, the old one
// can be revoked, and at no point is there a window where neither works.
// A CA bundle with two CAs accepts certificates from both.
func TestClientCertificateRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oldCA, newCA := testca.New(t, "old CA"), testca.New(t, "new CA")
	// Both sides pin both CAs during the CA rotation.
	bundle := append(append([]byte{}, oldCA.PEM...), newCA.PEM...)
	var revoked sync.Map
	srvCert := newCA.Server(t, serviceIdentity, testca.Options{})
	s := newService(t, serviceOptions{ca: oldCA, caBundle: bundle, serverCert: &srvCert,
		revoked: func(c *x509.Certificate) bool { _, ok := revoked.Load(string(c.Raw)); return ok }})
	hs := s.http

	dir := filepath.Join(t.TempDir(), "tls")
	require.NoError(t, os.Mkdir(dir, 0o700))
	certFile, keyFile := filepath.Join(dir, "worker.crt"), filepath.Join(dir, "worker.key")
	write := func(c testca.Issued) {
		require.NoError(t, os.WriteFile(certFile, c.CertPEM, 0o600))
		require.NoError(t, os.WriteFile(keyFile, c.KeyPEM, 0o600))
		// A new modification time even on coarse file systems.
		later := time.Now().Add(time.Duration(len(c.CertPEM)) * time.Millisecond)
		require.NoError(t, os.Chtimes(certFile, later, later))
	}
	first := oldCA.Client(t, "worker-a", testca.Options{})
	write(first)
	c, err := km.NewClient(km.ClientConfig{BaseURL: hs.URL, ServerName: serviceIdentity,
		TLS: km.TLSConfig{CA: bundle, CertFile: certFile, KeyFile: keyFile}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Put(ctx, cloudCred("acme", "1", "default", canary)))

	second := newCA.Client(t, "worker-a", testca.Options{})
	write(second)
	_ = c.Close() // the next request opens a new connection
	c2, err := km.NewClient(km.ClientConfig{BaseURL: hs.URL, ServerName: serviceIdentity,
		TLS: km.TLSConfig{CA: bundle, CertFile: certFile, KeyFile: keyFile}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	revoked.Store(string(first.Cert.Raw), true)
	_, err = c2.Get(ctx, "acme", "1", "default")
	require.NoError(t, err, "the renewed certificate from the new CA works, the old one being revoked")

	t.Run("ReloadedWithoutRestart", func(t *testing.T) {
		src := km.CertificateFiles(certFile, keyFile)
		got, err := src()
		require.NoError(t, err)
		require.Equal(t, second.Cert.Raw, got.Certificate[0])
		third := newCA.Client(t, "worker-a", testca.Options{})
		write(third)
		got, err = src()
		require.NoError(t, err)
		require.Equal(t, third.Cert.Raw, got.Certificate[0], "a changed file is read again")
	})
	t.Run("KeyFileMustBePrivate", func(t *testing.T) {
		require.NoError(t, os.Chmod(keyFile, 0o644))
		t.Cleanup(func() { _ = os.Chmod(keyFile, 0o600) })
		third := newCA.Client(t, "worker-a", testca.Options{})
		write(third)
		require.NoError(t, os.Chmod(keyFile, 0o644))
		_, err := km.CertificateFiles(certFile, keyFile)()
		require.ErrorIs(t, err, km.ErrInsecureKeyFile)
		require.NotContains(t, err.Error(), string(third.KeyPEM[30:60]))
	})
}

// payloadService is a key service behind a TLS-terminating intermediary: the
// intermediary ("relay") forwards requests over its own mutual TLS, and the
// payload layer authenticates the workers end to end.
func payloadGrants() map[string]km.Grant {
	g := defaultGrants()
	g["relay"] = km.Grant{Relay: true}
	return g
}

// TestPayloadLayerRecordedExchange is the attack of issue 18 (point 1)
// where TLS ends at an intermediary: an exchange recorded there, of worker
// B for customer beta, cannot be opened or forged by the holder of worker
// A's certificate and payload key.
func TestPayloadLayerRecordedExchange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, serviceOptions{payload: true, clients: payloadGrants()})
	wire := &wireRecorder{}
	b := s.client(t, "worker-b", clientOptions{wire: wire})
	require.NoError(t, b.Put(ctx, cloudCred("beta", "9", "default", canary)))
	got, err := b.Get(ctx, "beta", "9", "default")
	require.NoError(t, err)
	require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
	put, get := wire.exchanges()[0], wire.exchanges()[1]
	requireNoLeak(t, wire.dump(), canary, "what the intermediary sees")
	requireNoLeak(t, wire.dump(), "AKIA-default", "what the intermediary sees")

	// Worker A's key is derived for A: it derives nothing of B's.
	keyA, err := km.DeriveClientPayloadKey(payloadRoot, "worker-a")
	require.NoError(t, err)
	keyB, err := km.DeriveClientPayloadKey(payloadRoot, "worker-b")
	require.NoError(t, err)
	require.False(t, keyA.Key.Equal(keyB.Key))
	for _, try := range []km.ClientPayloadKey{keyA, {ID: "p1", Client: "worker-b", Key: keyA.Key}} {
		_, err := km.OpenRecordedRequest(try, serviceIdentity, put.method, put.reqHeader, put.url, put.reqBody)
		require.ErrorIs(t, err, km.ErrTampered, "A's key opens B's recorded request body")
	}
	// Even B's own key does not open a recorded response: it is sealed
	// under an ephemeral key exchange.
	_, err = km.OpenRecordedResponse(keyB, get.method, get.url, get.reqHeader, get.respHeader, get.respBody)
	require.ErrorIs(t, err, km.ErrTampered)

	relay := mtlsHTTPClient(s, s.ca.Client(t, "relay", testca.Options{}))
	// Forging as B with A's key: bad signature.
	forged := s.client(t, "relay", clientOptions{payloadKey: &km.ClientPayloadKey{ID: "p1", Client: "worker-b", Key: keyA.Key}})
	_, err = forged.Get(ctx, "beta", "9", "default")
	require.ErrorIs(t, err, km.ErrUnauthorized)
	s.requireAudited(t, km.OpGet, km.OutcomeRefused, "bad signature")
	// As A, for beta: forbidden.
	asA := s.client(t, "relay", clientOptions{payloadKey: &keyA})
	_, err = asA.Get(ctx, "beta", "9", "default")
	require.ErrorIs(t, err, km.ErrForbidden)
	rec := s.requireAudited(t, km.OpGet, km.OutcomeForbidden, "not authorized")
	require.Equal(t, "worker-a", rec.Client)
	require.Equal(t, "relay", rec.Peer)
	// A recorded request replayed by the intermediary: refused.
	status, body := replay(t, relay, s.http.URL, get)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "unauthorized\n", body)
	s.requireAudited(t, km.OpGet, km.OutcomeRefused, "replayed nonce")
	// A peer that is not a relay cannot carry another client's request.
	notRelay := s.client(t, "worker-a", clientOptions{payloadKey: &keyB})
	_, err = notRelay.Get(ctx, "beta", "9", "default")
	require.ErrorIs(t, err, km.ErrForbidden)
	s.requireAudited(t, km.OpGet, km.OutcomeForbidden, "may not relay")
}

// TestPayloadLayerReplay is the attack of issue 18 (point 2): a recorded
// request replayed to a second replica, or to the service after a restart,
// is refused because replicas share the nonce table in their database; one
// signed for another service is refused by its audience; and at exactly
// ts + MaxSkew a replay is still refused (the old off-by-one let it in).
func TestPayloadLayerReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{t: time.Now().Truncate(time.Second)}
			db := open(t, nil)
			kr := newKeyring(t, masterKey("prod", 1, 0x11))
			backend := newLocalStore(t, db, kr)
			ca := testca.New(t, "test CA")
			replica := func() *kmService {
				return newService(t, serviceOptions{ca: ca, db: db, kr: kr, backend: backend, payload: true, clients: payloadGrants(), now: clock.Now})
			}
			one, two := replica(), replica()
			wire := &wireRecorder{}
			c := one.client(t, "worker-a", clientOptions{wire: wire, now: clock.Now})
			require.NoError(t, c.Put(ctx, cloudCred("acme", "1", "default", "old")))
			oldPut := wire.last()
			require.NoError(t, c.Put(ctx, cloudCred("acme", "1", "default", "new")))
			require.NoError(t, c.Put(ctx, cloudCred("acme", "1", "doomed", "x")))
			require.NoError(t, c.Delete(ctx, "acme", "1", "doomed"))
			oldDelete := wire.last()
			require.NoError(t, c.Put(ctx, cloudCred("acme", "1", "doomed", "recreated")))
			requireValue := func(name, want string) {
				t.Helper()
				got, err := backend.Get(ctx, "acme", "1", name)
				require.NoError(t, err)
				require.Equal(t, want, string(got.Field(km.FieldSecretKey).Reveal()))
			}
			relayCert := ca.Client(t, "relay", testca.Options{})

			for _, target := range []struct {
				name string
				s    *kmService
			}{{"SameReplica", one}, {"SecondReplica", two}, {"AfterRestart", replica()}} {
				for _, e := range []exchange{oldPut, oldDelete} {
					status, body := replay(t, mtlsHTTPClient(target.s, relayCert), target.s.http.URL, e)
					require.Equal(t, http.StatusUnauthorized, status, target.name)
					require.Equal(t, "unauthorized\n", body)
					target.s.requireAudited(t, map[string]string{http.MethodPut: km.OpPut, http.MethodDelete: km.OpDelete}[e.method],
						km.OutcomeRefused, "replayed nonce")
				}
			}
			requireValue("default", "new")
			requireValue("doomed", "recreated")

			// Another service (another audience, its own database): the
			// signature does not hold there.
			other := newService(t, serviceOptions{ca: ca, identity: "km-other.test", payload: true, clients: payloadGrants(), now: clock.Now})
			status, _ := replay(t, mtlsHTTPClient(other, relayCert), other.http.URL, oldPut)
			require.Equal(t, http.StatusUnauthorized, status)
			other.requireAudited(t, km.OpPut, km.OutcomeRefused, "bad signature")

			// The skew boundary: a request made now, replayed exactly MaxSkew
			// later (the last instant its timestamp passes), is a replay; one
			// second later it is stale.
			_, err := c.Get(ctx, "acme", "1", "default")
			require.NoError(t, err)
			get := wire.last()
			clock.Advance(km.DefaultMaxSkew)
			status, _ = replay(t, mtlsHTTPClient(two, relayCert), two.http.URL, get)
			require.Equal(t, http.StatusUnauthorized, status)
			two.requireAudited(t, km.OpGet, km.OutcomeRefused, "replayed nonce")
			_, err = c.Get(ctx, "acme", "1", "default")
			require.NoError(t, err, "a fresh request at the same instant is served")
			clock.Advance(time.Second)
			status, _ = replay(t, mtlsHTTPClient(two, relayCert), two.http.URL, get)
			require.Equal(t, http.StatusUnauthorized, status)
			two.requireAudited(t, km.OpGet, km.OutcomeRefused, "timestamp outside the allowed skew")
		})
	}
}

// TestPayloadKeyRotation: the service accepts several root keys by id, so
// clients move from P1 to P2 one by one; once the last has moved, P1 goes.
func TestPayloadKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p2 := km.PayloadKey{ID: "p2", Key: km.NewSecretString("PAYLOADROOT-2-0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e")}
	ca := testca.New(t, "test CA")
	db := newDB(t, nil)
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	backend := newLocalStore(t, db, kr)
	both := newService(t, serviceOptions{ca: ca, db: db, kr: kr, backend: backend, payloadKeys: []km.PayloadKey{payloadRoot, p2}})
	k1, err := km.DeriveClientPayloadKey(payloadRoot, "worker-a")
	require.NoError(t, err)
	k2, err := km.DeriveClientPayloadKey(p2, "worker-a")
	require.NoError(t, err)
	require.NoError(t, both.client(t, "worker-a", clientOptions{payloadKey: &k1}).Put(ctx, cloudCred("acme", "1", "a", canary)))
	_, err = both.client(t, "worker-a", clientOptions{payloadKey: &k2}).Get(ctx, "acme", "1", "a")
	require.NoError(t, err)

	onlyP2 := newService(t, serviceOptions{ca: ca, db: db, kr: kr, backend: backend, payloadKeys: []km.PayloadKey{p2}})
	_, err = onlyP2.client(t, "worker-a", clientOptions{payloadKey: &k2}).Get(ctx, "acme", "1", "a")
	require.NoError(t, err)
	_, err = onlyP2.client(t, "worker-a", clientOptions{payloadKey: &k1}).Get(ctx, "acme", "1", "a")
	require.ErrorIs(t, err, km.ErrUnauthorized)
	onlyP2.requireAudited(t, km.OpGet, km.OutcomeRefused, "unknown payload key id")
}

// TestPayloadLayerTampering: an intermediary that changes a request or a
// response is detected.
func TestPayloadLayerTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*kmService, *km.Client, *wireRecorder) {
		s := newService(t, serviceOptions{payload: true})
		require.NoError(t, s.backend.Put(ctx, cloudCred("acme", "123", "default", canary)))
		wire := &wireRecorder{}
		return s, s.client(t, "worker-a", clientOptions{wire: wire}), wire
	}
	t.Run("RequestBody", func(t *testing.T) {
		t.Parallel()
		s, c, wire := setup(t)
		wire.set(func(req *http.Request, b []byte) []byte {
			if len(b) > 0 {
				b[len(b)/2] ^= 0x01
			}
			return b
		}, nil)
		require.ErrorIs(t, c.Put(ctx, cloudCred("acme", "123", "default", "evil")), km.ErrUnauthorized)
		s.requireAudited(t, km.OpPut, km.OutcomeRefused, "body digest mismatch")
	})
	t.Run("RequestBodyWithRecomputedDigest", func(t *testing.T) {
		t.Parallel()
		s, c, wire := setup(t)
		wire.set(func(req *http.Request, b []byte) []byte {
			req.Header.Del("X-KM-Content-SHA256")
			return append(b, 0)
		}, nil)
		require.ErrorIs(t, c.Put(ctx, cloudCred("acme", "123", "default", "evil")), km.ErrUnauthorized)
		s.requireAudited(t, km.OpPut, km.OutcomeRefused, "bad signature")
	})
	t.Run("Path", func(t *testing.T) {
		t.Parallel()
		s, c, wire := setup(t)
		wire.set(func(req *http.Request, b []byte) []byte {
			req.URL.Path = strings.Replace(req.URL.Path, "/other", "/default", 1)
			req.URL.RawPath = ""
			return b
		}, nil)
		require.ErrorIs(t, c.Delete(ctx, "acme", "123", "other"), km.ErrUnauthorized)
		s.requireAudited(t, km.OpDelete, km.OutcomeRefused, "bad signature")
		_, err := s.backend.Get(ctx, "acme", "123", "default")
		require.NoError(t, err)
	})
	t.Run("ResponseBody", func(t *testing.T) {
		t.Parallel()
		_, c, wire := setup(t)
		wire.set(nil, func(_ *http.Response, b []byte) []byte {
			if len(b) > 0 {
				b[len(b)-1] ^= 0x01
			}
			return b
		})
		_, err := c.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
	})
	t.Run("ForgedStatus", func(t *testing.T) {
		t.Parallel()
		_, c, wire := setup(t)
		wire.set(nil, func(resp *http.Response, b []byte) []byte {
			resp.StatusCode = http.StatusNotFound
			return []byte("not_found")
		})
		_, err := c.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
		require.NotErrorIs(t, err, km.ErrNotFound)
	})
	t.Run("ForgedRevision", func(t *testing.T) {
		t.Parallel()
		_, c, wire := setup(t)
		wire.set(nil, func(resp *http.Response, b []byte) []byte {
			resp.Header.Set("X-KM-Revision", "99")
			return b
		})
		_, err := c.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
	})
	t.Run("ResponseReplayedToAnotherRequest", func(t *testing.T) {
		t.Parallel()
		_, c, wire := setup(t)
		_, err := c.Get(ctx, "acme", "123", "default")
		require.NoError(t, err)
		old := wire.last()
		wire.set(nil, func(resp *http.Response, _ []byte) []byte {
			resp.Header = old.respHeader.Clone()
			return bytes.Clone(old.respBody)
		})
		_, err = c.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
	})
}

// TestAuditLog: every operation is recorded with who, what, when, from
// where and how it ended, durably (another process reading the database
// sees it), and the audit table, like the credential table, shows no names
// and no secret.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := open(t, nil)
			s := newService(t, serviceOptions{db: db, clients: map[string]km.Grant{
				"worker-a": {Read: []string{dumpCustomer}, Write: []string{dumpCustomer}}}})
			c := s.client(t, "worker-a", clientOptions{})
			before := time.Now().Add(-time.Second)
			require.NoError(t, c.Put(ctx, cloudCred(dumpCustomer, dumpAccount, dumpName, canary)))
			_, err := c.Get(ctx, dumpCustomer, dumpAccount, dumpName)
			require.NoError(t, err)
			_, err = c.List(ctx, dumpCustomer)
			require.NoError(t, err)
			_, err = c.Get(ctx, dumpCustomer, dumpAccount, "missing")
			require.ErrorIs(t, err, km.ErrNotFound)
			require.NoError(t, c.Delete(ctx, dumpCustomer, dumpAccount, dumpName))
			_, err = c.Get(ctx, "nobody", "1", "x")
			require.ErrorIs(t, err, km.ErrForbidden)

			log, err := km.NewAuditLog(db, s.kr) // as a separate reader would
			require.NoError(t, err)
			recs, err := log.Records(ctx, km.AuditQuery{Customer: dumpCustomer})
			require.NoError(t, err)
			var got []string
			for _, r := range recs {
				got = append(got, r.Op+" "+r.Outcome+" "+r.Account+"/"+r.Name)
				require.Equal(t, "worker-a", r.Client)
				require.Equal(t, dumpCustomer, r.Customer)
				require.Contains(t, r.Remote, "127.0.0.1")
				require.False(t, r.Time.Before(before))
			}
			require.Equal(t, []string{
				"put ok " + dumpAccount + "/" + dumpName,
				"get ok " + dumpAccount + "/" + dumpName,
				"list ok /",
				"get not_found " + dumpAccount + "/missing",
				"delete ok " + dumpAccount + "/" + dumpName,
			}, got)
			all, err := log.Records(ctx, km.AuditQuery{Client: "worker-a"})
			require.NoError(t, err)
			require.Len(t, all, 6)
			require.Equal(t, "nobody", all[5].Customer)
			require.Equal(t, km.OutcomeForbidden, all[5].Outcome)

			dump := dumpTable(t, db, km.AuditTableName)
			for _, needle := range []string{dumpCustomer, dumpAccount, dumpName, canary} {
				requireNoLeak(t, dump, needle, "the audit table")
			}
			require.Contains(t, dump, "worker-a", "the client identity is recorded")
		})
	}
}

// TestAuditFailureRefusesTheRequest: no audit record, no action.
func TestAuditFailureRefusesTheRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, serviceOptions{})
	require.NoError(t, s.backend.Put(ctx, cloudCred("acme", "1", "default", canary)))
	require.NoError(t, s.db.Exec("DROP TABLE "+km.AuditTableName).Error)
	c := s.client(t, "worker-a", clientOptions{})
	_, err := c.Get(ctx, "acme", "1", "default")
	require.ErrorContains(t, err, "status 503")
	require.ErrorContains(t, c.Delete(ctx, "acme", "1", "default"), "status 503")
	_, err = s.backend.Get(ctx, "acme", "1", "default")
	require.NoError(t, err, "the delete was not carried out")
	require.Contains(t, s.logs.String(), "audit failed; request refused")
}

func TestRemoteErrorsMapToSentinels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	db := newDB(t, nil)
	backend := newLocalStore(t, db, kr)
	s := newService(t, serviceOptions{db: db, kr: kr, backend: backend})
	c := s.client(t, "admin", clientOptions{})
	require.NoError(t, backend.Put(ctx, cloudCred("acme", "1", "a", canary)))
	require.NoError(t, backend.Put(ctx, cloudCred("acme", "1", "b", canary)))
	moveEnvelope(t, db, km.RowID(backend, "acme", "1", "a"), km.RowID(backend, "acme", "1", "b"))

	_, err := c.Get(ctx, "acme", "1", "b")
	require.ErrorIs(t, err, km.ErrTampered)
	_, err = c.Get(ctx, "acme", "1", "zzz")
	require.ErrorIs(t, err, km.ErrNotFound)
	require.ErrorIs(t, c.Delete(ctx, "acme", "1", "zzz"), km.ErrNotFound)
	_, err = c.Get(ctx, "acme", "", "zzz")
	require.ErrorIs(t, err, km.ErrInvalid)
	_, err = c.PutIf(ctx, cloudCred("acme", "1", "a", "stale"), 7)
	require.ErrorIs(t, err, km.ErrConflict)
	rev, err := c.PutIf(ctx, cloudCred("acme", "1", "a", "next"), 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, rev)
	got, err := c.Get(ctx, "acme", "1", "a")
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Revision, "the revision crosses the wire")
	require.ErrorIs(t, c.DeleteIf(ctx, "acme", "1", "a", 1), km.ErrConflict)

	wrong := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x99)))
	sw := newService(t, serviceOptions{db: db, backend: wrong})
	_, err = sw.client(t, "admin", clientOptions{}).Get(ctx, "acme", "1", "a")
	require.ErrorIs(t, err, km.ErrWrongKey)
	requireNoLeak(t, err.Error()+s.logs.String()+sw.logs.String(), canary, "errors and logs")
}

func TestClientConfigValidate(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test CA")
	cert := km.StaticCertificate(ca.Client(t, "worker-a", testca.Options{}).TLS)
	tlsOK := km.TLSConfig{CA: ca.PEM, Certificate: cert}
	key := &km.ClientPayloadKey{ID: "p1", Client: "worker-a", Key: km.NewSecretString(strings.Repeat("k", 32))}
	cases := []struct {
		name  string
		cfg   km.ClientConfig
		field string
	}{
		{"MissingBaseURL", km.ClientConfig{TLS: tlsOK}, "BaseURL"},
		{"RelativeBaseURL", km.ClientConfig{BaseURL: "km.internal", TLS: tlsOK}, "BaseURL"},
		{"FTPBaseURL", km.ClientConfig{BaseURL: "ftp://km.internal", TLS: tlsOK}, "BaseURL"},
		{"PlainHTTP", km.ClientConfig{BaseURL: "http://km.internal", TLS: tlsOK}, "plain http"},
		{"PlainHTTPWithoutPayloadLayer", km.ClientConfig{BaseURL: "http://km.internal", Test: km.ClientTestConfig{AllowHTTP: true}}, "PayloadKey is required"},
		{"UserInBaseURL", km.ClientConfig{BaseURL: "https://u:p@km.internal", TLS: tlsOK}, "user information"},
		{"MissingCA", km.ClientConfig{BaseURL: "https://km.internal", TLS: km.TLSConfig{Certificate: cert}}, "TLS.CA"},
		{"NotACA", km.ClientConfig{BaseURL: "https://km.internal", TLS: km.TLSConfig{CA: ca.Client(t, "x", testca.Options{}).CertPEM, Certificate: cert}}, "not a CA"},
		{"MissingCertificate", km.ClientConfig{BaseURL: "https://km.internal", TLS: km.TLSConfig{CA: ca.PEM}}, "TLS.Certificate"},
		{"BadServerName", km.ClientConfig{BaseURL: "https://km.internal", ServerName: "a b", TLS: tlsOK}, "ServerName"},
		{"ShortPayloadKey", km.ClientConfig{BaseURL: "https://km.internal", TLS: tlsOK,
			PayloadKey: &km.ClientPayloadKey{ID: "p1", Client: "worker-a", Key: km.NewSecretString("short")}}, "PayloadKey.Key"},
		{"PayloadKeyWithoutClient", km.ClientConfig{BaseURL: "https://km.internal", TLS: tlsOK,
			PayloadKey: &km.ClientPayloadKey{ID: "p1", Key: key.Key}}, "PayloadKey.Client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := km.NewClient(tc.cfg)
			require.ErrorIs(t, err, km.ErrInvalid)
			require.Contains(t, err.Error(), tc.field)
			require.NotContains(t, err.Error(), "u:p")
		})
	}
	c, err := km.NewClient(km.ClientConfig{BaseURL: "https://km.internal:8443", TLS: tlsOK, PayloadKey: key})
	require.NoError(t, err, "defaults: ServerName from BaseURL")
	require.NoError(t, c.Close())
}

func TestServerConfigValidate(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test CA")
	db := newDB(t, nil)
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	store := newMemoryStore(t, kr)
	srvTLS := km.TLSConfig{CA: ca.PEM, Certificate: km.StaticCertificate(ca.Server(t, serviceIdentity, testca.Options{}).TLS)}
	ok := func() km.ServerConfig {
		return km.ServerConfig{Store: store, DB: db, Keyring: kr, Identity: serviceIdentity, TLS: srvTLS, Clients: defaultGrants()}
	}
	cases := []struct {
		name   string
		mutate func(*km.ServerConfig)
		field  string
	}{
		{"MissingStore", func(c *km.ServerConfig) { c.Store = nil }, "Store"},
		{"MissingDB", func(c *km.ServerConfig) { c.DB = nil }, "DB"},
		{"MissingKeyring", func(c *km.ServerConfig) { c.Keyring = nil }, "Keyring"},
		{"MissingIdentity", func(c *km.ServerConfig) { c.Identity = "" }, "Identity"},
		{"NoClients", func(c *km.ServerConfig) { c.Clients = nil }, "Clients"},
		{"ClientIsServer", func(c *km.ServerConfig) { c.Clients[serviceIdentity] = km.Grant{} }, "server's own Identity"},
		{"ShortPayloadKey", func(c *km.ServerConfig) { c.PayloadKeys = []km.PayloadKey{{ID: "p", Key: km.NewSecretString("x")}} }, "PayloadKeys[0]"},
		{"DuplicatePayloadKey", func(c *km.ServerConfig) { c.PayloadKeys = []km.PayloadKey{payloadRoot, payloadRoot} }, "twice"},
		{"MissingTLS", func(c *km.ServerConfig) { c.TLS = km.TLSConfig{} }, "TLS.CA"},
		{"UnmigratedDB", func(c *km.ServerConfig) { c.DB = newRawDB(t) }, "worker_km_nonces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok()
			tc.mutate(&cfg)
			_, err := km.NewServer(cfg)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field)
		})
	}
	_, err := km.NewServer(ok())
	require.NoError(t, err)
}

func TestClientBaseURLWithPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, serviceOptions{})
	mux := http.NewServeMux()
	mux.Handle("/km/", http.StripPrefix("/km", s.server))
	hs := httptest.NewUnstartedServer(mux)
	hs.TLS = s.server.TLSConfig()
	hs.StartTLS()
	t.Cleanup(hs.Close)
	c, err := km.NewClient(km.ClientConfig{BaseURL: hs.URL + "/km/", ServerName: serviceIdentity,
		TLS: km.TLSConfig{CA: s.ca.PEM, Certificate: km.StaticCertificate(s.ca.Client(t, "admin", testca.Options{}).TLS)}})
	require.NoError(t, err)
	require.NoError(t, c.Put(ctx, cloudCred("acme", "1/2", "n", canary)))
	_, err = c.Get(ctx, "acme", "1/2", "n")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = c.Get(ctx, "acme", "1/2", "n")
	require.ErrorIs(t, err, km.ErrClosed)
}
