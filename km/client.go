package km

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// BaseURL of the key manager, e.g. "https://km.internal:8443" or
	// "http://10.0.0.5/km". Required; http or https.
	BaseURL string
	// ProvisioningKey is the shared "provisioning encryption key" of the
	// classic service. Every request is signed with a key derived from it and
	// every payload sealed with another, so secrets never travel in the clear
	// even over plain HTTP. Required, at least MinProvisioningKeyLen bytes.
	// The client keeps only derived keys; the caller may destroy it after
	// NewClient returns.
	ProvisioningKey Secret
	// HTTPClient sends the requests. Default: a new http.Client.
	HTTPClient *http.Client
	// Timeout bounds each request (on top of the caller's context).
	// Default 30s; negative means no timeout.
	Timeout time.Duration
	// Logger receives a debug record per request (method, path, status,
	// duration); never secrets. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for request timestamps. Default time.Now; for
	// tests.
	Now func() time.Time
}

// DefaultClientTimeout is the default ClientConfig.Timeout.
const DefaultClientTimeout = 30 * time.Second

func (c *ClientConfig) setDefaults() {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultClientTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names the first bad field; errors match [ErrInvalid].
func (c ClientConfig) Validate() error {
	if c.BaseURL == "" {
		return invalidf("client config: BaseURL is required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidf("client config: BaseURL %.100q is not an absolute http or https URL", c.BaseURL)
	}
	if u.User != nil {
		return invalidf("client config: BaseURL must not contain user information")
	}
	if c.ProvisioningKey.Len() < MinProvisioningKeyLen {
		return invalidf("client config: ProvisioningKey must be at least %d bytes", MinProvisioningKeyLen)
	}
	return nil
}

// Client is a [Store] backed by a remote key manager speaking this package's
// protocol (see [Server]). Safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	base *url.URL
	mu   sync.RWMutex // guards keys against Close
	keys *wireKeys
}

// NewClient validates cfg and returns a client. It sends no request.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := deriveWireKeys(cfg.ProvisioningKey, "client config: ProvisioningKey")
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(cfg.BaseURL)
	base.RawQuery, base.Fragment = "", ""
	cfg.ProvisioningKey = Secret{}
	return &Client{cfg: cfg, base: base, keys: keys}, nil
}

// Close zeroes the client's derived keys; later calls fail with [ErrClosed].
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys != nil {
		c.keys.zero()
		c.keys = nil
	}
	return nil
}

// Put implements [Store].
func (c *Client) Put(ctx context.Context, cred Credential) error {
	if err := cred.Validate(); err != nil {
		return err
	}
	payload := marshalCredential(cred)
	defer clear(payload)
	_, err := c.do(ctx, http.MethodPut, credPath(cred.Customer, cred.Account, cred.Name), payload)
	return c.wrap(err, "put", cred.Customer, cred.Account, cred.Name)
}

// Get implements [Store].
func (c *Client) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	if err := validateKey(customer, account, name); err != nil {
		return Credential{}, err
	}
	pt, err := c.do(ctx, http.MethodGet, credPath(customer, account, name), nil)
	if err != nil {
		return Credential{}, c.wrap(err, "get", customer, account, name)
	}
	defer clear(pt)
	cred, err := unmarshalCredential(pt)
	if err == nil && cred.Binding() != (Binding{customer, account, name}) {
		cred.Destroy()
		err = errors.New("payload names another credential")
	}
	if err != nil {
		return Credential{}, errorf(ErrTampered, "remote get %s/%s/%s: %v", customer, account, name, err)
	}
	return cred, nil
}

// Delete implements [Store].
func (c *Client) Delete(ctx context.Context, customer, account, name string) error {
	if err := validateKey(customer, account, name); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodDelete, credPath(customer, account, name), nil)
	return c.wrap(err, "delete", customer, account, name)
}

// List implements [Store].
func (c *Client) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	if customer == "" {
		return nil, invalidf("list: customer is required")
	}
	pt, err := c.do(ctx, http.MethodGet, credentialsPath+url.PathEscape(customer), nil)
	if err != nil {
		return nil, c.wrap(err, "list", customer)
	}
	out := []CredentialInfo{}
	if err := json.Unmarshal(pt, &out); err != nil {
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

// do sends one signed request, sealing payload, and returns the opened
// response payload of a 200 (nil for 204).
func (c *Client) do(ctx context.Context, method, path string, payload []byte) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.keys == nil {
		return nil, ErrClosed
	}
	var nb [nonceHexLen / 2]byte
	_, _ = rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	ts := strconv.FormatInt(c.cfg.Now().Unix(), 10)
	reqKey := c.keys.requestKey(nonce)
	defer clear(reqKey)

	var body []byte
	if payload != nil {
		body = sealGCM(reqKey, payload, requestAAD(method, path, ts, nonce))
	}
	digest := bodyHash(body)

	u := *c.base
	u.Path = strings.TrimSuffix(c.base.Path, "/") + mustUnescape(path)
	u.RawPath = strings.TrimSuffix(c.base.EscapedPath(), "/") + path
	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", authScheme+" "+c.keys.requestSignature(method, path, "", ts, nonce, digest))
	req.Header.Set(hdrTimestamp, ts)
	req.Header.Set(hdrNonce, nonce)
	req.Header.Set(hdrContentHash, digest)
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	start := time.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxWireBody+1))
	if err != nil {
		return nil, err
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "km: remote request",
		slog.String("method", method), slog.String("path", path),
		slog.Int("status", resp.StatusCode), slog.Duration("duration", time.Since(start)))
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errorf(ErrUnauthorized, "key manager rejected the request's authentication (check the provisioning key and clock)")
	}
	if len(rb) > MaxWireBody {
		return nil, fmt.Errorf("km: response larger than %d bytes (status %d)", MaxWireBody, resp.StatusCode)
	}
	if !verifyMAC(c.keys.responseSignature(nonce, resp.StatusCode, bodyHash(rb)), resp.Header.Get(hdrRespSig)) {
		return nil, errorf(ErrTampered, "response (status %d) failed authentication", resp.StatusCode)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		pt, ok := openGCM(reqKey, rb, responseAAD(method, path, nonce))
		if !ok {
			return nil, errorf(ErrTampered, "response payload failed authentication")
		}
		return pt, nil
	case http.StatusNoContent:
		return nil, nil
	}
	code := string(rb)
	switch code {
	case codeNotFound:
		return nil, ErrNotFound
	case codeInvalid:
		return nil, errorf(ErrInvalid, "key manager rejected the request as invalid (status %d)", resp.StatusCode)
	case codeTampered:
		return nil, errorf(ErrTampered, "key manager: stored credential or request failed authentication")
	case codeWrongKey:
		return nil, errorf(ErrWrongKey, "key manager: wrong master key")
	case codeUnknownKey:
		return nil, errorf(ErrUnknownKey, "key manager: unknown master key")
	}
	return nil, fmt.Errorf("km: key manager error (status %d, code %.32q)", resp.StatusCode, code)
}

func mustUnescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}
