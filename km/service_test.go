package km_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testca"
	"github.com/stratusworks/worker/km"
)

// serviceIdentity is the key service's name in tests: the DNS name of its
// certificate and the audience of payload-layer requests.
const serviceIdentity = "km.test"

// payloadRoot is the payload layer's root key P in tests.
var payloadRoot = km.PayloadKey{ID: "p1", Key: km.NewSecretString("PAYLOADROOT-5e1d0c4b-a3f2-4e6d-9b8a-7c6d5e4f3a2b")}

// defaultGrants: worker-a serves customer acme, worker-b customer beta,
// admin everyone.
func defaultGrants() map[string]km.Grant {
	return map[string]km.Grant{
		"worker-a": {Read: []string{"acme"}, Write: []string{"acme"}},
		"worker-b": {Read: []string{"beta"}, Write: []string{"beta"}},
		"admin":    {Read: []string{"*"}, Write: []string{"*"}},
	}
}

// serviceOptions adjust newService; zero fields get working defaults.
type serviceOptions struct {
	ca          *testca.CA
	caBundle    []byte   // the CA bundle the server pins; default ca's
	db          *gorm.DB // shared by replicas; default a fresh SQLite database
	backend     km.Store // default a LocalStore over db
	kr          *km.Keyring
	identity    string
	clients     map[string]km.Grant
	revoked     func(*x509.Certificate) bool
	payload     bool // enable the payload layer with payloadRoot
	payloadKeys []km.PayloadKey
	plainHTTP   bool // serve without TLS (Test.AllowPlainHTTP)
	now         func() time.Time
	serverCert  *testca.Issued
}

// kmService is a key service in an httptest server.
type kmService struct {
	t        *testing.T
	ca       *testca.CA
	db       *gorm.DB
	kr       *km.Keyring
	backend  km.Store
	server   *km.Server
	http     *httptest.Server
	identity string
	payload  bool
	logs     *syncBuffer // the server's Logger
	tlsErrs  *syncBuffer // the HTTP server's error log: TLS handshake errors
}

func newService(t *testing.T, o serviceOptions) *kmService {
	t.Helper()
	s := &kmService{t: t, ca: o.ca, db: o.db, kr: o.kr, backend: o.backend, identity: o.identity,
		payload: o.payload || o.payloadKeys != nil, logs: &syncBuffer{}, tlsErrs: &syncBuffer{}}
	if s.ca == nil {
		s.ca = testca.New(t, "test CA")
	}
	if s.db == nil {
		s.db = newDB(t, nil)
	}
	if s.kr == nil {
		s.kr = newKeyring(t, masterKey("prod", 1, 0x11))
	}
	if s.backend == nil {
		s.backend = newLocalStore(t, s.db, s.kr)
	}
	if s.identity == "" {
		s.identity = serviceIdentity
	}
	if o.clients == nil {
		o.clients = defaultGrants()
	}
	keys := o.payloadKeys
	if o.payload && keys == nil {
		keys = []km.PayloadKey{payloadRoot}
	}
	cert := o.serverCert
	if cert == nil {
		c := s.ca.Server(t, s.identity, testca.Options{})
		cert = &c
	}
	bundle := o.caBundle
	if bundle == nil {
		bundle = s.ca.PEM
	}
	srv, err := km.NewServer(km.ServerConfig{
		Store: s.backend, DB: s.db, Keyring: s.kr, Identity: s.identity,
		TLS:     km.TLSConfig{CA: bundle, Certificate: km.StaticCertificate(cert.TLS)},
		Clients: o.clients, Revoked: o.revoked, PayloadKeys: keys,
		Logger: newTestLogger(s.logs), Now: o.now,
		Test: km.ServerTestConfig{AllowPlainHTTP: o.plainHTTP},
	})
	require.NoError(t, err)
	s.server = srv
	s.http = httptest.NewUnstartedServer(srv)
	s.http.Config.ErrorLog = log.New(s.tlsErrs, "", 0)
	if o.plainHTTP {
		s.http.Start()
	} else {
		s.http.TLS = srv.TLSConfig()
		s.http.StartTLS()
	}
	t.Cleanup(s.http.Close)
	return s
}

// clientOptions adjust kmService.client.
type clientOptions struct {
	cert       *testca.Issued // default: a fresh client certificate for the identity
	noCert     bool
	caPEM      []byte // default: the service's CA
	payloadKey *km.ClientPayloadKey
	serverName string
	now        func() time.Time
	logger     *testing.T
	wire       *wireRecorder // records HTTP inside TLS (an intermediary's view)
	tap        *tcpTap       // records the bytes on the network
	plainHTTP  bool
	cfg        func(*km.ClientConfig)
}

// client returns a client with identity's certificate.
func (s *kmService) client(t *testing.T, identity string, o clientOptions) *km.Client {
	t.Helper()
	cc := km.ClientConfig{BaseURL: s.http.URL, ServerName: s.identity, Logger: newTestLogger(s.logs), Now: o.now}
	if o.serverName != "" {
		cc.ServerName = o.serverName
	}
	if !o.plainHTTP {
		ca := o.caPEM
		if ca == nil {
			ca = s.ca.PEM
		}
		cc.TLS.CA = ca
		switch {
		case o.noCert:
			cc.TLS.Certificate = func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }
		case o.cert != nil:
			cc.TLS.Certificate = km.StaticCertificate(o.cert.TLS)
		default:
			cc.TLS.Certificate = km.StaticCertificate(s.ca.Client(t, identity, testca.Options{}).TLS)
		}
	} else {
		cc.Test.AllowHTTP = true
	}
	switch {
	case o.payloadKey != nil:
		cc.PayloadKey = o.payloadKey
	case s.payload:
		k, err := km.DeriveClientPayloadKey(payloadRoot, identity)
		require.NoError(t, err)
		cc.PayloadKey = &k
	}
	if o.wire != nil {
		cc.Test.WrapTransport = func(next http.RoundTripper) http.RoundTripper { o.wire.next = next; return o.wire }
	}
	if o.tap != nil {
		cc.Test.DialContext = o.tap.dial
	}
	if o.cfg != nil {
		o.cfg(&cc)
	}
	c, err := km.NewClient(cc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// auditRecords reads the whole audit log.
func (s *kmService) auditRecords(t *testing.T) []km.AuditRecord {
	t.Helper()
	recs, err := s.server.Audit().Records(context.Background(), km.AuditQuery{})
	require.NoError(t, err)
	return recs
}

// requireAudited checks that the last audit record matching op has the
// outcome and a reason containing reason.
func (s *kmService) requireAudited(t *testing.T, op, outcome, reason string) km.AuditRecord {
	t.Helper()
	recs := s.auditRecords(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Op == op {
			require.Equal(t, outcome, recs[i].Outcome, "%+v", recs[i])
			require.Contains(t, recs[i].Reason, reason, "%+v", recs[i])
			return recs[i]
		}
	}
	require.Failf(t, "no audit record", "op %s in %+v", op, recs)
	return km.AuditRecord{}
}

// tcpTap records every byte a client's connections send and receive: what
// a network attacker sees.
type tcpTap struct {
	mu       sync.Mutex
	sent     bytes.Buffer
	received bytes.Buffer
	conns    [][]byte // bytes sent, per connection
}

func (p *tcpTap) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.conns = append(p.conns, nil)
	idx := len(p.conns) - 1
	p.mu.Unlock()
	return &tappedConn{Conn: c, tap: p, idx: idx}, nil
}

func (p *tcpTap) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String() + p.received.String()
}

type tappedConn struct {
	net.Conn
	tap *tcpTap
	idx int
}

func (c *tappedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.tap.mu.Lock()
	c.tap.received.Write(b[:n])
	c.tap.mu.Unlock()
	return n, err
}

func (c *tappedConn) Write(b []byte) (int, error) {
	c.tap.mu.Lock()
	c.tap.sent.Write(b)
	c.tap.conns[c.idx] = append(c.tap.conns[c.idx], b...)
	c.tap.mu.Unlock()
	return c.Conn.Write(b)
}

// hostOf returns the host:port of an httptest URL.
func hostOf(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
}
