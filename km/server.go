package km

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// ProvisioningKey authenticates clients and seals payloads; it must equal
	// the clients' ClientConfig.ProvisioningKey. Required, at least
	// MinProvisioningKeyLen bytes. The server keeps only keys derived from
	// it; the caller may destroy it after NewServer returns.
	ProvisioningKey Secret
	// Store keeps the credentials. Required.
	Store Store
	// MaxSkew is how far a request's timestamp may be from the server's
	// clock, either way. Nonces are remembered for this long. Default 5m.
	MaxSkew time.Duration
	// Logger receives one record per rejected request (reason, method,
	// path, remote address) and per store failure; never secrets.
	// Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now; for tests.
	Now func() time.Time
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

// Validate names the first bad field; errors match [ErrInvalid].
func (c ServerConfig) Validate() error {
	if n := c.ProvisioningKey.Len(); n < MinProvisioningKeyLen {
		return invalidf("server config: ProvisioningKey must be at least %d bytes", MinProvisioningKeyLen)
	}
	if c.Store == nil {
		return invalidf("server config: Store is required")
	}
	if c.MaxSkew < 0 {
		return invalidf("server config: MaxSkew must not be negative")
	}
	return nil
}

// Server is the remote key manager's HTTP side: an [http.Handler] serving a
// [Store] to [Client]s (see "Remote protocol" in the package documentation). It
// rejects, with 401 and the body "unauthorized" whatever the reason, requests
// with a bad signature, a timestamp outside MaxSkew, or a nonce seen before;
// the reason goes only to the Logger. It is the test server of this package
// and a reference for other implementations.
type Server struct {
	mu     sync.RWMutex // held for reading by requests, for writing by Close
	closed bool
	cfg    ServerConfig
	keys   *wireKeys
	nonces nonceCache
}

// NewServer validates cfg and returns the handler.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := deriveWireKeys(cfg.ProvisioningKey, "server config: ProvisioningKey")
	if err != nil {
		return nil, err
	}
	cfg.ProvisioningKey = Secret{}
	return &Server{cfg: cfg, keys: keys, nonces: nonceCache{seen: map[string]time.Time{}}}, nil
}

// Close zeroes the server's derived keys; later requests fail with 401.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.zero()
	s.closed = true
	return nil
}

type rejection string

// ServeHTTP implements [http.Handler].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	nonce := r.Header.Get(hdrNonce)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var body []byte
	reason := rejection("server closed")
	if !s.closed {
		body, reason = s.authenticate(w, r, path, nonce)
	}
	if reason != "" {
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "km: rejected request",
			slog.String("reason", string(reason)), slog.String("method", r.Method),
			slog.String("path", path), slog.String("remote", r.RemoteAddr))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "unauthorized\n")
		return
	}
	reqKey := s.keys.requestKey(nonce)
	defer clear(reqKey)
	status, payload := s.route(r.Context(), r.Method, path, r.Header.Get(hdrTimestamp), nonce, reqKey, body)
	defer clear(payload)
	var out []byte
	if status == http.StatusOK && payload != nil {
		out = sealGCM(reqKey, payload, responseAAD(r.Method, path, nonce))
		w.Header().Set("Content-Type", "application/octet-stream")
	} else {
		out = payload
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set(hdrRespSig, s.keys.responseSignature(nonce, status, bodyHash(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, path, nonce string) ([]byte, rejection) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), authScheme+" ")
	if !ok {
		return nil, "missing or malformed Authorization header"
	}
	if len(nonce) != nonceHexLen {
		return nil, "malformed nonce"
	}
	if _, err := hex.DecodeString(nonce); err != nil {
		return nil, "malformed nonce"
	}
	tsText := r.Header.Get(hdrTimestamp)
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return nil, "malformed timestamp"
	}
	ts := time.Unix(secs, 0)
	now := s.cfg.Now()
	if d := now.Sub(ts); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		return nil, "timestamp outside the allowed skew"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWireBody))
	if err != nil {
		return nil, "unreadable or oversized body"
	}
	digest := bodyHash(body)
	if h := r.Header.Get(hdrContentHash); h != "" && h != digest {
		return nil, "body digest mismatch"
	}
	want := s.keys.requestSignature(r.Method, path, r.URL.RawQuery, tsText, nonce, digest)
	if !verifyMAC(want, auth) {
		return nil, "bad signature"
	}
	// Only authenticated nonces are remembered, so forged requests cannot
	// fill the cache.
	if !s.nonces.add(nonce, ts.Add(s.cfg.MaxSkew), now) {
		return nil, "replayed nonce"
	}
	return body, ""
}

// route serves an authenticated request and returns the status and the
// plaintext payload (an error code for errors).
func (s *Server) route(ctx context.Context, method, path, ts, nonce string, reqKey, body []byte) (int, []byte) {
	rest, ok := strings.CutPrefix(path, credentialsPath)
	if !ok {
		return http.StatusNotFound, []byte(codeNotFound)
	}
	var segs []string
	for _, seg := range strings.Split(rest, "/") {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return http.StatusBadRequest, []byte(codeInvalid)
		}
		segs = append(segs, v)
	}
	switch {
	case len(segs) == 1 && method == http.MethodGet:
		infos, err := s.cfg.Store.List(ctx, segs[0])
		if err != nil {
			return s.storeError(ctx, "list", segs, err)
		}
		b, err := json.Marshal(infos)
		if err != nil {
			return s.storeError(ctx, "list", segs, err)
		}
		return http.StatusOK, b
	case len(segs) != 3:
		return http.StatusNotFound, []byte(codeNotFound)
	case method == http.MethodGet:
		c, err := s.cfg.Store.Get(ctx, segs[0], segs[1], segs[2])
		if err != nil {
			return s.storeError(ctx, "get", segs, err)
		}
		defer c.Destroy()
		return http.StatusOK, marshalCredential(c)
	case method == http.MethodDelete:
		if err := s.cfg.Store.Delete(ctx, segs[0], segs[1], segs[2]); err != nil {
			return s.storeError(ctx, "delete", segs, err)
		}
		return http.StatusNoContent, nil
	case method == http.MethodPut:
		pt, ok := openGCM(reqKey, body, requestAAD(method, path, ts, nonce))
		defer clear(pt)
		if !ok {
			return http.StatusBadRequest, []byte(codeTampered)
		}
		c, err := unmarshalCredential(pt)
		if err != nil || c.Binding() != (Binding{segs[0], segs[1], segs[2]}) {
			c.Destroy()
			return http.StatusBadRequest, []byte(codeInvalid)
		}
		defer c.Destroy()
		if err := s.cfg.Store.Put(ctx, c); err != nil {
			return s.storeError(ctx, "put", segs, err)
		}
		return http.StatusNoContent, nil
	default:
		return http.StatusMethodNotAllowed, []byte(codeInvalid)
	}
}

func (s *Server) storeError(ctx context.Context, op string, segs []string, err error) (int, []byte) {
	status, code := http.StatusInternalServerError, codeInternal
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, codeNotFound
	case errors.Is(err, ErrInvalid):
		status, code = http.StatusBadRequest, codeInvalid
	case errors.Is(err, ErrTampered):
		code = codeTampered
	case errors.Is(err, ErrWrongKey):
		code = codeWrongKey
	case errors.Is(err, ErrUnknownKey):
		code = codeUnknownKey
	}
	if status != http.StatusNotFound {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelError, "km: store "+op+" failed",
			slog.String("target", strings.Join(segs, "/")), slog.String("error", err.Error()))
	}
	return status, []byte(code)
}

// nonceCache remembers authenticated nonces until their timestamp can no
// longer pass the skew check.
type nonceCache struct {
	mu        sync.Mutex
	seen      map[string]time.Time // nonce -> expiry
	nextPurge int
}

func (c *nonceCache) add(nonce string, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) >= c.nextPurge {
		for n, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, n)
			}
		}
		c.nextPurge = 2*len(c.seen) + 1024
	}
	if exp, dup := c.seen[nonce]; dup && now.Before(exp) {
		return false
	}
	c.seen[nonce] = expires
	return true
}
