package km

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Grant is what one client identity may do on the key service. A client
// without a Grant is refused.
type Grant struct {
	// Read lists the customers whose credentials the client may get and
	// list; "*" means every customer.
	Read []string
	// Write lists the customers whose credentials the client may put and
	// delete; "*" means every customer. Writing does not imply reading.
	Write []string
	// Relay marks an intermediary that terminates the workers' TLS and
	// forwards their requests over its own mutual-TLS connection: it may
	// carry payload-layer requests that authenticate as another client,
	// which are then authorized as that client. It grants nothing on its
	// own.
	Relay bool
}

func (g Grant) allows(op, customer string) bool {
	list := g.Read
	if op == OpPut || op == OpDelete {
		list = g.Write
	}
	return slices.Contains(list, "*") || slices.Contains(list, customer)
}

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// Store keeps the credentials. Required.
	Store Store
	// DB is the key service's database: the replay guard and the audit log
	// live there (tables [NonceTableName] and [AuditTableName], created by
	// persist's migrations). Every replica of the service must share it.
	// Required.
	DB *gorm.DB
	// Keyring seals the credential names in the audit log and keys their
	// references (as [LocalStore] does). Required.
	Keyring *Keyring
	// Identity is the key service's name: the DNS name its certificate
	// carries and clients dial, and the audience every payload-layer
	// request must be signed for. Required.
	Identity string
	// TLS is the service's certificate and the pinned CA its clients'
	// certificates must lead to. Required (see [Server.TLSConfig]).
	TLS TLSConfig
	// Clients authorizes client identities (their certificates' CommonName)
	// by customer. Required; a client not listed is refused.
	Clients map[string]Grant
	// Revoked, if set, reports whether a client certificate (already
	// verified against the CA) has been revoked. It is asked at every
	// handshake and every request. See [CRLRevoked]. Default: none is.
	Revoked func(*x509.Certificate) bool
	// PayloadKeys enables the optional payload layer, for deployments where
	// an intermediary terminates TLS: requests signed and sealed with a
	// client key derived from one of these ([DeriveClientPayloadKey]) are
	// accepted, by key ID, so that a new key can be rolled out to clients
	// one by one while the old one still works. Default: none (requests
	// using the layer are refused).
	PayloadKeys []PayloadKey
	// MaxSkew is how far a payload-layer request's timestamp may be from the
	// server's clock, either way (the bound is inclusive). Default 5m.
	MaxSkew time.Duration
	// Logger receives one record per refused request (reason, operation,
	// client, remote address) and per store or audit failure; never secrets.
	// Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now; for tests.
	Now func() time.Time
	// Test holds settings for tests only.
	Test ServerTestConfig
}

// ServerTestConfig holds [ServerConfig] settings for tests only.
type ServerTestConfig struct {
	// AllowPlainHTTP accepts requests that did not come over TLS, which
	// must then authenticate with the payload layer. Never in production.
	AllowPlainHTTP bool
}

// DefaultMaxSkew is the default ServerConfig.MaxSkew.
const DefaultMaxSkew = 5 * time.Minute

func (c *ServerConfig) setDefaults() {
	if c.MaxSkew == 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names the first bad field; errors match [ErrInvalid]. It does
// not read the TLS files (NewServer does).
func (c ServerConfig) Validate() error {
	switch {
	case c.Store == nil:
		return invalidf("server config: Store is required")
	case c.DB == nil:
		return invalidf("server config: DB is required (the replay guard and the audit log live there)")
	case c.Keyring == nil:
		return invalidf("server config: Keyring is required (it de-identifies the audit log)")
	case !identityPattern.MatchString(c.Identity):
		return invalidf("server config: Identity %.64q must match %s", c.Identity, identityPattern)
	case len(c.Clients) == 0:
		return invalidf("server config: Clients is empty: no client could do anything")
	case c.MaxSkew < 0:
		return invalidf("server config: MaxSkew must not be negative")
	}
	for id := range c.Clients {
		if !identityPattern.MatchString(id) {
			return invalidf("server config: Clients: identity %.64q must match %s", id, identityPattern)
		}
		if id == c.Identity {
			return invalidf("server config: Clients: %q is the server's own Identity", id)
		}
	}
	seen := map[string]bool{}
	for i, k := range c.PayloadKeys {
		if err := k.validate("server config: PayloadKeys[" + strconv.Itoa(i) + "]"); err != nil {
			return err
		}
		if seen[k.ID] {
			return invalidf("server config: PayloadKeys: ID %q appears twice", k.ID)
		}
		seen[k.ID] = true
	}
	return nil
}

// Server is the key service's HTTP side: an [http.Handler] serving a [Store]
// to [Client]s over mutual TLS (see "Remote protocol" in the package
// documentation). It authenticates every request by the client's
// certificate (and, when used, the payload layer), authorizes it by the
// client's [Grant], and records it in the audit log before acting. Refused
// requests get 401 "unauthorized" (authentication) or 403 "forbidden"
// (authorization) whatever the reason; the reason goes to the audit log and
// the Logger only.
//
// Serve it with the configuration [Server.TLSConfig] returns:
//
//	hs := &http.Server{Addr: ":8443", Handler: srv, TLSConfig: srv.TLSConfig()}
//	err := hs.ListenAndServeTLS("", "")
type Server struct {
	mu     sync.RWMutex // held for reading by requests, for writing by Close
	closed bool
	cfg    ServerConfig
	roots  *x509.CertPool
	cert   func() (*tls.Certificate, error)
	keys   map[string][]byte // payload root keys by ID; zeroed by Close
	audit  *AuditLog
	nonces *nonceGuard
}

// NewServer validates cfg, checks the server's tables and returns the
// handler.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	roots, _, cert, err := cfg.TLS.resolved("server config: TLS")
	if err != nil {
		return nil, err
	}
	if err := checkTables(context.Background(), cfg.DB, noncesSpec, auditSpec); err != nil {
		return nil, err
	}
	audit := &AuditLog{db: cfg.DB, kr: cfg.Keyring, now: cfg.Now}
	s := &Server{cfg: cfg, roots: roots, cert: cert, keys: map[string][]byte{}, audit: audit,
		nonces: &nonceGuard{db: cfg.DB, skew: cfg.MaxSkew}}
	for _, k := range cfg.PayloadKeys {
		s.keys[k.ID] = k.Key.Reveal()
	}
	s.cfg.PayloadKeys = nil
	return s, nil
}

// Audit returns the server's audit log, to read it.
func (s *Server) Audit() *AuditLog { return s.audit }

// Close zeroes the server's payload keys; later requests fail with 503.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		clear(k)
	}
	s.closed = true
	return nil
}

// TLSConfig returns the TLS configuration to serve the handler with: TLS 1.3
// only, the server's certificate, and client certificates verified against
// the pinned CA (validity at the server's clock, client usage, not a server
// certificate, revocation) during the handshake, where a refusal is audited
// (operation "connect") and ends the connection. ServeHTTP verifies the
// peer again for every request, so it is safe behind any TLS configuration
// that asks for client certificates.
func (s *Server) TLSConfig() *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Verified by VerifyConnection, so that every refusal is audited.
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert() },
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := ""
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if _, reason := verifyClientChain(cs.PeerCertificates, s.roots, s.cfg.Now(), s.cfg.Revoked); reason != "" {
				s.refused(context.Background(), AuditRecord{Remote: remote, Op: OpConnect, Outcome: OutcomeRefused, Reason: reason})
				return errors.New("km: client certificate refused")
			}
			return nil
		}
		return c, nil
	}
	return base
}

// refused audits and logs a refused handshake or request.
func (s *Server) refused(ctx context.Context, rec AuditRecord) {
	s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "km: refused request",
		slog.String("op", rec.Op), slog.String("outcome", rec.Outcome), slog.String("reason", rec.Reason),
		slog.String("client", rec.Client), slog.String("peer", rec.Peer), slog.String("remote", rec.Remote))
	if _, err := s.audit.record(context.WithoutCancel(ctx), rec); err != nil {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "km: audit failed", slog.String("error", err.Error()))
	}
}

// call is one request being served.
type call struct {
	rec      AuditRecord
	method   string
	path     string
	segs     []string
	revision int64 // if_revision, when conditional
	cond     bool
	body     []byte
	payload  *payloadCall // nil without the payload layer
}

// payloadCall is a request authenticated by the payload layer.
type payloadCall struct {
	fields requestFields
	keys   *wireKeys
}

// ServeHTTP implements [http.Handler].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := &call{method: r.Method, path: r.URL.EscapedPath()}
	c.rec = AuditRecord{Time: s.cfg.Now(), Remote: r.RemoteAddr}
	c.rec.Op, c.segs = parseTarget(r.Method, c.path)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		writePlain(w, http.StatusServiceUnavailable, codeUnavailable)
		return
	}

	// Who is on the other end of the connection.
	peer := ""
	switch {
	case r.TLS != nil:
		id, reason := verifyClientChain(r.TLS.PeerCertificates, s.roots, s.cfg.Now(), s.cfg.Revoked)
		if reason != "" {
			s.refuse(ctx, w, c, http.StatusUnauthorized, OutcomeRefused, reason)
			return
		}
		peer = id
	case !s.cfg.Test.AllowPlainHTTP:
		s.refuse(ctx, w, c, http.StatusUnauthorized, OutcomeRefused, "plain HTTP: mutual TLS is required")
		return
	}
	c.rec.Client = peer

	// Who the request acts as.
	if strings.HasPrefix(r.Header.Get("Authorization"), authScheme+" ") {
		pc, body, reason := s.authenticatePayload(ctx, w, r, c.path)
		if reason != "" {
			c.rec.Peer = peer
			s.refuse(ctx, w, c, http.StatusUnauthorized, OutcomeRefused, reason)
			return
		}
		c.payload, c.body, c.rec.Client = pc, body, pc.fields.client
		if peer != "" && peer != pc.fields.client {
			c.rec.Peer = peer
			if !s.cfg.Clients[peer].Relay {
				s.refuse(ctx, w, c, http.StatusForbidden, OutcomeForbidden, "the TLS peer may not relay requests of other clients")
				return
			}
		}
	} else {
		if peer == "" {
			s.refuse(ctx, w, c, http.StatusUnauthorized, OutcomeRefused, "no client identity: neither a client certificate nor the payload layer")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWireBody))
		if err != nil {
			s.refuse(ctx, w, c, http.StatusBadRequest, OutcomeInvalid, "unreadable or oversized body")
			return
		}
		c.body = body
	}

	// What it may do.
	grant, known := s.cfg.Clients[c.rec.Client]
	if !known {
		s.refuse(ctx, w, c, http.StatusForbidden, OutcomeForbidden, "unknown client")
		return
	}
	if c.rec.Op == OpUnknown {
		s.refuse(ctx, w, c, http.StatusNotFound, OutcomeInvalid, "no such operation")
		return
	}
	if err := s.validateTarget(c, r.URL.Query()); err != nil {
		s.refuse(ctx, w, c, http.StatusBadRequest, OutcomeInvalid, err.Error())
		return
	}
	c.rec.Customer = c.segs[0]
	if len(c.segs) == 3 {
		c.rec.Account, c.rec.Name = c.segs[1], c.segs[2]
	}
	if !grant.allows(c.rec.Op, c.rec.Customer) {
		s.refuse(ctx, w, c, http.StatusForbidden, OutcomeForbidden, "client not authorized for this customer and operation")
		return
	}

	// Audited before acting: no record, no action.
	start := c.rec
	start.Outcome = OutcomeStarted
	id, err := s.audit.record(ctx, start)
	if err != nil {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "km: audit failed; request refused", slog.String("error", err.Error()))
		s.respond(w, c, http.StatusServiceUnavailable, []byte(codeUnavailable), "")
		return
	}
	status, payload, revision, outcome, reason := s.route(ctx, c)
	defer clear(payload)
	if err := s.audit.finish(context.WithoutCancel(ctx), id, outcome, reason); err != nil {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "km: audit failed", slog.String("error", err.Error()))
	}
	s.respond(w, c, status, payload, revision)
}

// refuse audits, logs and answers a refused request. Authentication
// failures are answered "unauthorized" unsigned; others, once the client is
// known, like any response.
func (s *Server) refuse(ctx context.Context, w http.ResponseWriter, c *call, status int, outcome, reason string) {
	rec := c.rec
	rec.Outcome, rec.Reason = outcome, reason
	if validateKey(rec.Customer, orDash(rec.Account), orDash(rec.Name)) != nil {
		rec.Customer, rec.Account, rec.Name = "", "", ""
	}
	s.refused(ctx, rec)
	switch status {
	case http.StatusUnauthorized:
		writePlain(w, status, codeUnauthorized)
	case http.StatusForbidden:
		s.respond(w, c, status, []byte(codeForbidden), "")
	case http.StatusNotFound:
		s.respond(w, c, status, []byte(codeNotFound), "")
	default:
		s.respond(w, c, status, []byte(codeInvalid), "")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writePlain(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, code+"\n")
}

// parseTarget maps a method and escaped path to an operation and its
// unescaped path segments (customer[, account, name]).
func parseTarget(method, path string) (string, []string) {
	rest, ok := strings.CutPrefix(path, credentialsPath)
	if !ok {
		return OpUnknown, nil
	}
	var segs []string
	for _, seg := range strings.Split(rest, "/") {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return OpUnknown, nil
		}
		segs = append(segs, v)
	}
	switch {
	case len(segs) == 1 && method == http.MethodGet:
		return OpList, segs
	case len(segs) != 3:
		return OpUnknown, nil
	case method == http.MethodGet:
		return OpGet, segs
	case method == http.MethodPut:
		return OpPut, segs
	case method == http.MethodDelete:
		return OpDelete, segs
	}
	return OpUnknown, nil
}

// validateTarget checks the identifiers and the query (if_revision only, on
// writes).
func (s *Server) validateTarget(c *call, q url.Values) error {
	var err error
	if len(c.segs) == 1 {
		err = validateID("Customer", c.segs[0])
	} else {
		err = validateKey(c.segs[0], c.segs[1], c.segs[2])
	}
	if err != nil {
		return errors.New("invalid identifiers")
	}
	for k := range q {
		if k != "if_revision" || (c.rec.Op != OpPut && c.rec.Op != OpDelete) || len(q[k]) != 1 {
			return errors.New("unexpected query parameter")
		}
		rev, err := strconv.ParseInt(q[k][0], 10, 64)
		if err != nil || rev < 0 {
			return errors.New("malformed if_revision")
		}
		c.revision, c.cond = rev, true
	}
	return nil
}

// authenticatePayload checks a payload-layer request: key id, client,
// audience, timestamp within MaxSkew, signature, and a nonce never seen by
// any replica. It returns the request's keys and (still sealed) body.
func (s *Server) authenticatePayload(ctx context.Context, w http.ResponseWriter, r *http.Request, path string) (*payloadCall, []byte, string) {
	if len(s.keys) == 0 {
		return nil, nil, "the payload layer is not enabled on this server"
	}
	mac, _ := strings.CutPrefix(r.Header.Get("Authorization"), authScheme+" ")
	f := requestFields{keyID: r.Header.Get(hdrKeyID), client: r.Header.Get(hdrClient), audience: s.cfg.Identity,
		method: r.Method, path: path, query: r.URL.RawQuery, ts: r.Header.Get(hdrTimestamp),
		nonce: r.Header.Get(hdrNonce), ephemeral: r.Header.Get(hdrEphemeral)}
	root, ok := s.keys[f.keyID]
	if !ok {
		return nil, nil, "unknown payload key id"
	}
	if !identityPattern.MatchString(f.client) {
		return nil, nil, "malformed client identity"
	}
	nonce, err := hex.DecodeString(f.nonce)
	if err != nil || len(f.nonce) != nonceHexLen {
		return nil, nil, "malformed nonce"
	}
	if raw, err := hex.DecodeString(f.ephemeral); err != nil || len(raw) != 32 {
		return nil, nil, "malformed ephemeral key"
	}
	secs, err := strconv.ParseInt(f.ts, 10, 64)
	if err != nil {
		return nil, nil, "malformed timestamp"
	}
	ts := time.Unix(secs, 0)
	now := s.cfg.Now()
	if d := now.Sub(ts); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		return nil, nil, "timestamp outside the allowed skew"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWireBody))
	if err != nil {
		return nil, nil, "unreadable or oversized body"
	}
	digest := bodyHash(body)
	if h := r.Header.Get(hdrContentHash); h != "" && h != digest {
		return nil, nil, "body digest mismatch"
	}
	ck := make([]byte, keySize)
	hkdfRead(ck, root, nil, "stratusworks/km/v2 client\n"+f.client)
	keys := newWireKeys(ck)
	clear(ck)
	// The audience is the server's own identity: a request signed for
	// another service fails here like a forged one.
	if !verifyMAC(keys.requestSignature(f, digest), mac) {
		keys.zero()
		return nil, nil, "bad signature (wrong key, client, audience or tampered request)"
	}
	// Only authenticated nonces are stored, so forged requests cannot fill
	// the table. The row outlives the last instant the timestamp passes the
	// skew check (ts + MaxSkew, inclusive).
	fresh, err := s.nonces.use(ctx, nonce, ts.Add(s.cfg.MaxSkew), now)
	if err != nil {
		keys.zero()
		s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "km: replay guard failed", slog.String("error", err.Error()))
		return nil, nil, "replay guard unavailable"
	}
	if !fresh {
		keys.zero()
		return nil, nil, "replayed nonce"
	}
	return &payloadCall{fields: f, keys: keys}, body, ""
}

// route serves an authorized request and returns the status, the plaintext
// payload (an error code for errors), the revision to report, and the audit
// outcome.
func (s *Server) route(ctx context.Context, c *call) (status int, payload []byte, revision, outcome, reason string) {
	segs := c.segs
	cs, conditional := s.cfg.Store.(ConditionalStore)
	if c.cond && !conditional {
		return http.StatusNotImplemented, []byte(codeInvalid), "", OutcomeInvalid, "the store has no conditional writes"
	}
	switch c.rec.Op {
	case OpList:
		infos, err := s.cfg.Store.List(ctx, segs[0])
		if err != nil {
			return s.storeError(ctx, c, err)
		}
		b, err := json.Marshal(infos)
		if err != nil {
			return s.storeError(ctx, c, err)
		}
		return http.StatusOK, b, "", OutcomeOK, ""
	case OpGet:
		cred, err := s.cfg.Store.Get(ctx, segs[0], segs[1], segs[2])
		if err != nil {
			return s.storeError(ctx, c, err)
		}
		defer cred.Destroy()
		return http.StatusOK, marshalCredential(cred), revisionText(cred.Revision), OutcomeOK, ""
	case OpDelete:
		var err error
		if c.cond {
			err = cs.DeleteIf(ctx, segs[0], segs[1], segs[2], c.revision)
		} else {
			err = s.cfg.Store.Delete(ctx, segs[0], segs[1], segs[2])
		}
		if err != nil {
			return s.storeError(ctx, c, err)
		}
		return http.StatusNoContent, nil, "", OutcomeOK, ""
	default: // OpPut
		pt := c.body
		if c.payload != nil {
			reqKey := c.payload.keys.requestKey(c.payload.fields.nonce)
			var ok bool
			pt, ok = openGCM(reqKey, c.body, requestAAD(c.payload.fields))
			clear(reqKey)
			if !ok {
				return http.StatusBadRequest, []byte(codeTampered), "", OutcomeInvalid, "sealed body failed authentication"
			}
			defer clear(pt)
		}
		defer clear(c.body)
		cred, err := unmarshalCredential(pt)
		if err != nil || cred.Binding() != (Binding{segs[0], segs[1], segs[2]}) {
			cred.Destroy()
			return http.StatusBadRequest, []byte(codeInvalid), "", OutcomeInvalid, "malformed credential or one naming another path"
		}
		defer cred.Destroy()
		var rev int64
		if c.cond {
			rev, err = cs.PutIf(ctx, cred, c.revision)
		} else if rp, ok := s.cfg.Store.(revisionPutter); ok {
			rev, err = rp.putRevision(ctx, cred)
		} else {
			err = s.cfg.Store.Put(ctx, cred)
		}
		if err != nil {
			return s.storeError(ctx, c, err)
		}
		return http.StatusOK, nil, revisionText(rev), OutcomeOK, ""
	}
}

func revisionText(rev int64) string {
	if rev <= 0 {
		return ""
	}
	return strconv.FormatInt(rev, 10)
}

func (s *Server) storeError(ctx context.Context, c *call, err error) (int, []byte, string, string, string) {
	status, code, outcome := http.StatusInternalServerError, codeInternal, OutcomeError
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownKey):
		status, code, outcome = http.StatusNotFound, codeNotFound, OutcomeNotFound
	case errors.Is(err, ErrConflict):
		status, code, outcome = http.StatusConflict, codeConflict, OutcomeConflict
	case errors.Is(err, ErrInvalid):
		status, code, outcome = http.StatusBadRequest, codeInvalid, OutcomeInvalid
	case errors.Is(err, ErrTampered):
		code = codeTampered
	case errors.Is(err, ErrWrongKey):
		code = codeWrongKey
	case errors.Is(err, ErrUnknownKey):
		code = codeUnknownKey
	}
	if outcome == OutcomeError {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "km: store "+c.rec.Op+" failed",
			slog.String("client", c.rec.Client), slog.String("error", err.Error()))
	}
	return status, []byte(code), "", outcome, code
}

// respond writes a response: in the clear over TLS, or signed (and a 200's
// body sealed) for a payload-layer request.
func (s *Server) respond(w http.ResponseWriter, c *call, status int, payload []byte, revision string) {
	if revision != "" {
		w.Header().Set(hdrRevision, revision)
	}
	if c.payload == nil {
		if status == http.StatusOK && payload != nil {
			w.Header().Set("Content-Type", "application/octet-stream")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = w.Write(payload)
		return
	}
	defer c.payload.keys.zero()
	f := c.payload.fields
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		writePlain(w, http.StatusInternalServerError, codeInternal)
		return
	}
	ephHex := hex.EncodeToString(eph.PublicKey().Bytes())
	out := payload
	if status == http.StatusOK && payload != nil {
		shared, ok := x25519(eph, f.ephemeral)
		if !ok {
			writePlain(w, http.StatusBadRequest, codeInvalid)
			return
		}
		respKey := c.payload.keys.responseKey(f.nonce, shared)
		clear(shared)
		out = sealGCM(respKey, payload, responseAAD(c.method, c.path, f.nonce))
		clear(respKey)
		w.Header().Set("Content-Type", "application/octet-stream")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set(hdrEphemeral, ephHex)
	w.Header().Set(hdrRespSig, c.payload.keys.responseSignature(f.audience, f.nonce, status, ephHex, revision, bodyHash(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
