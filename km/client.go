package km

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// BaseURL of the key service, e.g. "https://km.internal:8443". Required;
	// https only (see Test.AllowHTTP). A path is allowed: mount the server
	// with http.StripPrefix then.
	BaseURL string
	// TLS is this worker's client certificate and the private CA pinned for
	// the key service's certificate. Required.
	TLS TLSConfig
	// ServerName is the key service's identity: the DNS name its certificate
	// must carry (and, with the payload layer, the audience every request is
	// signed for). Default: the host name of BaseURL.
	ServerName string
	// PayloadKey enables the optional payload layer, for deployments where
	// an intermediary terminates TLS: every request is then also signed, and
	// its secrets sealed, with this client's own key, which the key service
	// derives from its root key ([DeriveClientPayloadKey]). Default: none
	// (mutual TLS alone).
	PayloadKey *ClientPayloadKey
	// Timeout bounds each request (on top of the caller's context).
	// Default 30s; negative means no timeout.
	Timeout time.Duration
	// Logger receives a debug record per request (method, path, status,
	// duration); never secrets. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for payload-layer timestamps. Default
	// time.Now; for tests.
	Now func() time.Time
	// Test holds settings for tests only.
	Test ClientTestConfig
}

// ClientTestConfig holds [ClientConfig] settings for tests only.
type ClientTestConfig struct {
	// AllowHTTP accepts an http:// BaseURL: no TLS at all, the payload
	// layer (required then) being the only protection. Never in production.
	AllowHTTP bool
	// WrapTransport, if set, wraps the client's transport: the wrapper sees
	// every request and response as an intermediary terminating TLS would.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// DialContext, if set, opens the connections (for example to record the
	// bytes on the wire).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultClientTimeout is the default ClientConfig.Timeout.
const DefaultClientTimeout = 30 * time.Second

func (c *ClientConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultClientTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ServerName == "" {
		if u, err := url.Parse(c.BaseURL); err == nil {
			c.ServerName = u.Hostname()
		}
	}
}

// Validate names the first bad field; errors match [ErrInvalid]. It does
// not read the TLS files (NewClient does).
func (c ClientConfig) Validate() error {
	if c.BaseURL == "" {
		return invalidf("client config: BaseURL is required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidf("client config: BaseURL %.100q is not an absolute https URL", c.BaseURL)
	}
	if u.User != nil {
		return invalidf("client config: BaseURL must not contain user information")
	}
	if u.Scheme == "http" {
		if !c.Test.AllowHTTP {
			return invalidf("client config: BaseURL %.100q is plain http: the key service is reached over mutual TLS (https) only", c.BaseURL)
		}
		if c.PayloadKey == nil {
			return invalidf("client config: BaseURL is plain http (Test.AllowHTTP): PayloadKey is required then")
		}
	}
	if !identityPattern.MatchString(c.ServerName) {
		return invalidf("client config: ServerName %.64q must match %s", c.ServerName, identityPattern)
	}
	if k := c.PayloadKey; k != nil {
		if !keyIDPattern.MatchString(k.ID) {
			return invalidf("client config: PayloadKey.ID must match %s", keyIDPattern)
		}
		if !identityPattern.MatchString(k.Client) {
			return invalidf("client config: PayloadKey.Client must match %s", identityPattern)
		}
		if k.Key.Len() < MinPayloadKeyLen {
			return invalidf("client config: PayloadKey.Key must be at least %d bytes", MinPayloadKeyLen)
		}
	}
	return nil
}

// Client is a [ConditionalStore] backed by the key service ([Server]),
// reached over mutual TLS. Safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	base *url.URL
	http *http.Client
	mu   sync.RWMutex // guards keys and closed against Close
	// keys are the payload layer's keys (nil without it).
	keys   *wireKeys
	closed bool
}

// errNotServerCert is returned by the client's VerifyConnection.
var errNotServerCert = errors.New(reasonNotServerCert)

// NewClient validates cfg, loads its TLS material and returns a client. It
// sends no request.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := url.Parse(cfg.BaseURL)
	base.RawQuery, base.Fragment = "", ""
	tr := &http.Transport{
		Proxy:               nil, // a proxy would see nothing but TLS anyway; keep the path explicit
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if cfg.Test.DialContext != nil {
		tr.DialContext = cfg.Test.DialContext
	} else {
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	if base.Scheme == "https" {
		roots, _, cert, err := cfg.TLS.resolved("client config: TLS")
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{
			MinVersion:           tls.VersionTLS13,
			RootCAs:              roots,
			ServerName:           cfg.ServerName,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() },
			VerifyConnection: func(cs tls.ConnectionState) error {
				leaf := cs.PeerCertificates[0]
				if !hasEKU(leaf, x509.ExtKeyUsageServerAuth) || hasEKU(leaf, x509.ExtKeyUsageClientAuth) || hasEKU(leaf, x509.ExtKeyUsageAny) {
					return errNotServerCert
				}
				return nil
			},
		}
	}
	var rt http.RoundTripper = tr
	if cfg.Test.WrapTransport != nil {
		rt = cfg.Test.WrapTransport(tr)
	}
	c := &Client{cfg: cfg, base: base, http: &http.Client{Transport: rt}}
	if k := cfg.PayloadKey; k != nil {
		kb := k.Key.Reveal()
		c.keys = newWireKeys(kb)
		clear(kb)
		copied := *k
		copied.Key = Secret{}
		c.cfg.PayloadKey = &copied
	}
	c.cfg.TLS = TLSConfig{}
	return c, nil
}

// Close zeroes the client's payload keys and closes idle connections;
// later calls fail with [ErrClosed].
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys != nil {
		c.keys.zero()
		c.keys = nil
	}
	c.closed = true
	c.http.CloseIdleConnections()
	return nil
}

// Put implements [Store].
func (c *Client) Put(ctx context.Context, cred Credential) error {
	_, err := c.put(ctx, cred, "")
	return err
}

// PutIf implements [ConditionalStore]; the key service's store must
// implement it too.
func (c *Client) PutIf(ctx context.Context, cred Credential, revision int64) (int64, error) {
	if revision < 0 {
		return 0, invalidf("put credential %s/%s/%s: revision %d is negative", cred.Customer, cred.Account, cred.Name, revision)
	}
	return c.put(ctx, cred, "if_revision="+strconv.FormatInt(revision, 10))
}

func (c *Client) put(ctx context.Context, cred Credential, query string) (int64, error) {
	if err := cred.Validate(); err != nil {
		return 0, err
	}
	payload := marshalCredential(cred)
	defer clear(payload)
	resp, err := c.do(ctx, http.MethodPut, credPath(cred.Customer, cred.Account, cred.Name), query, payload)
	if err != nil {
		return 0, c.wrap(err, "put", cred.Customer, cred.Account, cred.Name)
	}
	return resp.revision, nil
}

// Get implements [Store].
func (c *Client) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	if err := validateKey(customer, account, name); err != nil {
		return Credential{}, err
	}
	resp, err := c.do(ctx, http.MethodGet, credPath(customer, account, name), "", nil)
	if err != nil {
		return Credential{}, c.wrap(err, "get", customer, account, name)
	}
	defer clear(resp.body)
	cred, err := unmarshalCredential(resp.body)
	if err == nil && cred.Binding() != (Binding{customer, account, name}) {
		cred.Destroy()
		err = errors.New("payload names another credential")
	}
	if err != nil {
		return Credential{}, errorf(ErrTampered, "remote get %s/%s/%s: %v", customer, account, name, err)
	}
	cred.Revision = resp.revision
	return cred, nil
}

// Delete implements [Store].
func (c *Client) Delete(ctx context.Context, customer, account, name string) error {
	return c.remove(ctx, customer, account, name, "")
}

// DeleteIf implements [ConditionalStore]; the key service's store must
// implement it too.
func (c *Client) DeleteIf(ctx context.Context, customer, account, name string, revision int64) error {
	return c.remove(ctx, customer, account, name, "if_revision="+strconv.FormatInt(revision, 10))
}

func (c *Client) remove(ctx context.Context, customer, account, name, query string) error {
	if err := validateKey(customer, account, name); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodDelete, credPath(customer, account, name), query, nil)
	return c.wrap(err, "delete", customer, account, name)
}

// List implements [Store].
func (c *Client) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	if err := validateID("Customer", customer); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodGet, credentialsPath+url.PathEscape(customer), "", nil)
	if err != nil {
		return nil, c.wrap(err, "list", customer)
	}
	out := []CredentialInfo{}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return nil, errorf(ErrTampered, "remote list %s: malformed listing", customer)
	}
	return out, nil
}

func (c *Client) wrap(err error, op string, target ...string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("km: remote %s %s at %s: %w", op, strings.Join(target, "/"), c.base.Host, err)
}

func credPath(customer, account, name string) string {
	return credentialsPath + url.PathEscape(customer) + "/" + url.PathEscape(account) + "/" + url.PathEscape(name)
}

// response is an authenticated 200 or 204.
type response struct {
	body     []byte // plaintext
	revision int64
}

// do sends one request (signed and sealed with the payload layer, if
// configured) and returns the plaintext of a 200 (nil for 204).
func (c *Client) do(ctx context.Context, method, path, query string, payload []byte) (response, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return response{}, ErrClosed
	}
	u := *c.base
	u.Path = strings.TrimSuffix(c.base.Path, "/") + mustUnescape(path)
	u.RawPath = strings.TrimSuffix(c.base.EscapedPath(), "/") + path
	u.RawQuery = query
	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}

	body := payload
	var sealed *sealedRequest
	if c.keys != nil {
		var err error
		sealed, err = c.seal(method, path, query, payload)
		if err != nil {
			return response{}, err
		}
		body = sealed.body
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if sealed != nil {
		sealed.setHeaders(req.Header)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, transportError(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxWireBody+1))
	if err != nil {
		return response{}, transportError(err)
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "km: remote request",
		slog.String("method", method), slog.String("path", path),
		slog.Int("status", resp.StatusCode), slog.Duration("duration", time.Since(start)))
	if resp.StatusCode == http.StatusUnauthorized {
		return response{}, errorf(ErrUnauthorized, "the key service refused this client's authentication")
	}
	if len(rb) > MaxWireBody {
		return response{}, fmt.Errorf("km: response larger than %d bytes (status %d)", MaxWireBody, resp.StatusCode)
	}
	revText := resp.Header.Get(hdrRevision)
	if sealed != nil {
		if rb, err = sealed.open(method, path, resp, rb, revText); err != nil {
			return response{}, err
		}
	}
	var rev int64
	if revText != "" {
		if rev, err = strconv.ParseInt(revText, 10, 64); err != nil {
			return response{}, errorf(ErrTampered, "malformed revision in the response")
		}
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return response{body: rb, revision: rev}, nil
	}
	return response{}, statusError(resp.StatusCode, strings.TrimSpace(string(rb)))
}

func statusError(status int, code string) error {
	switch code {
	case codeForbidden:
		return errorf(ErrForbidden, "the key service does not allow this client that operation on that customer")
	case codeNotFound:
		return ErrNotFound
	case codeConflict:
		return errorf(ErrConflict, "the credential is at another revision")
	case codeInvalid:
		return errorf(ErrInvalid, "the key service rejected the request as invalid (status %d)", status)
	case codeTampered:
		return errorf(ErrTampered, "key service: stored credential or request failed authentication")
	case codeWrongKey:
		return errorf(ErrWrongKey, "key service: wrong master key")
	case codeUnknownKey:
		return errorf(ErrUnknownKey, "key service: unknown master key")
	}
	return fmt.Errorf("km: key service error (status %d, code %.32q)", status, code)
}

// transportError names TLS failures; it never carries response data.
func transportError(err error) error {
	var verr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, errNotServerCert):
		return errorf(ErrUnauthorized, "TLS: %s", reasonNotServerCert)
	case errors.As(err, &verr):
		return errorf(ErrUnauthorized, "TLS: the key service's certificate failed verification against the pinned CA and ServerName")
	case strings.Contains(err.Error(), "remote error: tls:"):
		return errorf(ErrUnauthorized, "TLS: the key service refused this client's certificate (missing, not from its CA, expired, revoked or not a client certificate)")
	}
	return err
}

func mustUnescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}

// sealedRequest is one payload-layer request in flight.
type sealedRequest struct {
	keys   *wireKeys
	fields requestFields
	eph    *ecdh.PrivateKey
	body   []byte
	mac    string
	digest string
}

func (c *Client) seal(method, path, query string, payload []byte) (*sealedRequest, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var nb [nonceHexLen / 2]byte
	_, _ = rand.Read(nb[:])
	f := requestFields{keyID: c.cfg.PayloadKey.ID, client: c.cfg.PayloadKey.Client, audience: c.cfg.ServerName,
		method: method, path: path, query: query, ts: strconv.FormatInt(c.cfg.Now().Unix(), 10),
		nonce: hex.EncodeToString(nb[:]), ephemeral: hex.EncodeToString(eph.PublicKey().Bytes())}
	s := &sealedRequest{keys: c.keys, fields: f, eph: eph}
	if payload != nil {
		reqKey := c.keys.requestKey(f.nonce)
		s.body = sealGCM(reqKey, payload, requestAAD(f))
		clear(reqKey)
	}
	s.digest = bodyHash(s.body)
	s.mac = c.keys.requestSignature(f, s.digest)
	return s, nil
}

func (s *sealedRequest) setHeaders(h http.Header) {
	h.Set("Authorization", authScheme+" "+s.mac)
	h.Set(hdrKeyID, s.fields.keyID)
	h.Set(hdrClient, s.fields.client)
	h.Set(hdrTimestamp, s.fields.ts)
	h.Set(hdrNonce, s.fields.nonce)
	h.Set(hdrEphemeral, s.fields.ephemeral)
	h.Set(hdrContentHash, s.digest)
}

// open checks a response's signature (which binds it to this request, the
// audience, the status, the revision and the body) and opens a 200's body.
func (s *sealedRequest) open(method, path string, resp *http.Response, rb []byte, revision string) ([]byte, error) {
	srvEph := resp.Header.Get(hdrEphemeral)
	want := s.keys.responseSignature(s.fields.audience, s.fields.nonce, resp.StatusCode, srvEph, revision, bodyHash(rb))
	if !verifyMAC(want, resp.Header.Get(hdrRespSig)) {
		return nil, errorf(ErrTampered, "response (status %d) failed authentication", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK || len(rb) == 0 {
		return rb, nil
	}
	shared, ok := x25519(s.eph, srvEph)
	if !ok {
		return nil, errorf(ErrTampered, "response carries a malformed ephemeral key")
	}
	respKey := s.keys.responseKey(s.fields.nonce, shared)
	clear(shared)
	defer clear(respKey)
	pt, ok := openGCM(respKey, rb, responseAAD(method, path, s.fields.nonce))
	if !ok {
		return nil, errorf(ErrTampered, "response payload failed authentication")
	}
	return pt, nil
}
