package km_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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

// wireRecorder is a RoundTripper that records every request and response,
// and can rewrite them on the way (to simulate an attacker on the wire).
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

// replay sends a recorded request again, byte for byte.
func replay(t *testing.T, e exchange) (int, string) {
	t.Helper()
	req, err := http.NewRequest(e.method, e.url, bytes.NewReader(e.reqBody))
	require.NoError(t, err)
	req.Header = e.reqHeader.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRemoteWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	backend := newMemoryStore(t, newKeyring(t, masterKey("prod", 1, 0x11)))
	r := newRemote(t, backend, km.ClientConfig{})

	require.NoError(t, r.client.Put(ctx, cloudCred("acme", "123", "default", canary)))
	got, err := r.client.Get(ctx, "acme", "123", "default")
	require.NoError(t, err)
	require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
	_, err = r.client.List(ctx, "acme")
	require.NoError(t, err)
	require.NoError(t, r.client.Delete(ctx, "acme", "123", "default"))

	ex := r.wire.exchanges()
	require.Len(t, ex, 4)
	for _, e := range ex {
		require.True(t, strings.HasPrefix(e.reqHeader.Get("Authorization"), "KM1-HMAC-SHA256 "))
		require.NotEmpty(t, e.respHeader.Get("X-KM-Signature"))
	}
	require.NotEmpty(t, ex[0].reqBody, "put carries a sealed body")
	require.NotEmpty(t, ex[1].respBody, "get returns a sealed body")
	require.NotContains(t, string(ex[2].respBody), "eu-west-1", "listings are sealed too")
	dump := r.wire.dump()
	requireNoLeak(t, dump, canary, "the wire")
	requireNoLeak(t, dump, string(provisioningKey.Reveal()), "the wire")
	requireNoLeak(t, dump, "AKIA-default", "the wire")
}

func TestRemoteAuthentication(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newBackend := func(t *testing.T) km.Store {
		s := newMemoryStore(t, newKeyring(t, masterKey("prod", 1, 0x11)))
		require.NoError(t, s.Put(ctx, cloudCred("acme", "123", "default", canary)))
		return s
	}
	requireRejected := func(t *testing.T, r *remote, reason string) {
		t.Helper()
		ex := r.wire.exchanges()
		require.NotEmpty(t, ex)
		last := ex[len(ex)-1]
		require.Equal(t, http.StatusUnauthorized, last.status)
		require.Equal(t, "unauthorized\n", string(last.respBody), "no detail leaks to the client")
		require.Contains(t, r.logs.String(), reason, "the reason is logged server-side")
	}

	t.Run("WrongProvisioningKey", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{ProvisioningKey: km.NewSecretString("not-the-provisioning-key-at-all")})
		_, err := r.client.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrUnauthorized)
		require.ErrorIs(t, r.client.Put(ctx, cloudCred("acme", "123", "x", canary)), km.ErrUnauthorized)
		require.ErrorIs(t, r.client.Delete(ctx, "acme", "123", "default"), km.ErrUnauthorized)
		_, err = r.client.List(ctx, "acme")
		require.ErrorIs(t, err, km.ErrUnauthorized)
		requireRejected(t, r, "bad signature")
		requireNoLeak(t, err.Error(), canary, "error")
	})
	t.Run("ReplayedRequest", func(t *testing.T) {
		t.Parallel()
		backend := newBackend(t)
		r := newRemote(t, backend, km.ClientConfig{})
		require.NoError(t, r.client.Delete(ctx, "acme", "123", "default"))
		require.NoError(t, r.client.Put(ctx, cloudCred("acme", "123", "default", "new")))
		ex := r.wire.exchanges()
		status, body := replay(t, ex[0]) // the delete, replayed after the put
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "unauthorized\n", body)
		status, _ = replay(t, ex[1])
		require.Equal(t, http.StatusUnauthorized, status)
		require.Contains(t, r.logs.String(), "replayed nonce")
		got, err := backend.Get(ctx, "acme", "123", "default")
		require.NoError(t, err, "the replayed delete had no effect")
		require.Equal(t, "new", string(got.Field(km.FieldSecretKey).Reveal()))
	})
	for name, skew := range map[string]time.Duration{"StaleTimestamp": -6 * time.Minute, "FutureTimestamp": 6 * time.Minute} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRemote(t, newBackend(t), km.ClientConfig{Now: func() time.Time { return time.Now().Add(skew) }})
			_, err := r.client.Get(ctx, "acme", "123", "default")
			require.ErrorIs(t, err, km.ErrUnauthorized)
			requireRejected(t, r, "timestamp outside the allowed skew")
		})
	}
	t.Run("TamperedRequestBody", func(t *testing.T) {
		t.Parallel()
		backend := newBackend(t)
		r := newRemote(t, backend, km.ClientConfig{})
		r.wire.set(func(req *http.Request, b []byte) []byte {
			if len(b) > 0 {
				b[len(b)/2] ^= 0x01
			}
			return b
		}, nil)
		err := r.client.Put(ctx, cloudCred("acme", "123", "default", "evil"))
		require.ErrorIs(t, err, km.ErrUnauthorized)
		requireRejected(t, r, "body digest mismatch")
		got, err := backend.Get(ctx, "acme", "123", "default")
		require.NoError(t, err)
		require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
	})
	t.Run("TamperedBodyWithRecomputedDigest", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{})
		r.wire.set(func(req *http.Request, b []byte) []byte {
			b = append(b, 0)
			req.Header.Del("X-KM-Content-SHA256")
			return b
		}, nil)
		require.ErrorIs(t, r.client.Put(ctx, cloudCred("acme", "123", "default", "evil")), km.ErrUnauthorized)
		requireRejected(t, r, "bad signature")
	})
	t.Run("TamperedPath", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{})
		r.wire.set(func(req *http.Request, b []byte) []byte {
			req.URL.Path = strings.Replace(req.URL.Path, "/other", "/default", 1)
			req.URL.RawPath = ""
			return b
		}, nil)
		require.ErrorIs(t, r.client.Delete(ctx, "acme", "123", "other"), km.ErrUnauthorized)
		requireRejected(t, r, "bad signature")
	})
	t.Run("MissingAuthorization", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{})
		resp, err := http.Get(r.http.URL + "/v1/credentials/acme/123/default")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "unauthorized\n", string(b))
		requireNoLeak(t, string(b), canary, "body")
	})
	t.Run("TamperedResponseBody", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{})
		r.wire.set(nil, func(_ *http.Response, b []byte) []byte {
			if len(b) > 0 {
				b[len(b)-1] ^= 0x01
			}
			return b
		})
		_, err := r.client.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
	})
	t.Run("ForgedResponseStatus", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{})
		r.wire.set(nil, func(resp *http.Response, b []byte) []byte {
			resp.StatusCode = http.StatusNotFound
			return []byte("not_found")
		})
		_, err := r.client.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
		require.NotErrorIs(t, err, km.ErrNotFound)
	})
	t.Run("ResponseReplayedToAnotherRequest", func(t *testing.T) {
		t.Parallel()
		r := newRemote(t, newBackend(t), km.ClientConfig{})
		_, err := r.client.Get(ctx, "acme", "123", "default")
		require.NoError(t, err)
		old := r.wire.exchanges()[0]
		r.wire.set(nil, func(resp *http.Response, _ []byte) []byte {
			resp.Header = old.respHeader.Clone()
			return bytes.Clone(old.respBody)
		})
		_, err = r.client.Get(ctx, "acme", "123", "default")
		require.ErrorIs(t, err, km.ErrTampered)
	})
}

func TestRemoteErrorsMapToSentinels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	db := newDB(t, nil)
	backend := newLocalStore(t, db, kr)
	r := newRemote(t, backend, km.ClientConfig{})
	require.NoError(t, backend.Put(ctx, cloudCred("acme", "1", "a", canary)))
	require.NoError(t, backend.Put(ctx, cloudCred("acme", "1", "b", canary)))
	// Move a's envelope onto b's row.
	moveEnvelope(t, db, km.RowID(backend, "acme", "1", "a"), km.RowID(backend, "acme", "1", "b"))

	_, err := r.client.Get(ctx, "acme", "1", "b")
	require.ErrorIs(t, err, km.ErrTampered)
	_, err = r.client.Get(ctx, "acme", "1", "zzz")
	require.ErrorIs(t, err, km.ErrNotFound)
	require.ErrorIs(t, r.client.Delete(ctx, "acme", "1", "zzz"), km.ErrNotFound)
	_, err = r.client.Get(ctx, "acme", "", "zzz")
	require.ErrorIs(t, err, km.ErrInvalid)

	wrong := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x99)))
	rw := newRemote(t, wrong, km.ClientConfig{})
	_, err = rw.client.Get(ctx, "acme", "1", "a")
	require.ErrorIs(t, err, km.ErrWrongKey)
	requireNoLeak(t, err.Error()+r.logs.String()+rw.logs.String(), canary, "errors and logs")
}

func TestClientConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		cfg   km.ClientConfig
		field string
	}{
		{"MissingBaseURL", km.ClientConfig{ProvisioningKey: provisioningKey}, "BaseURL"},
		{"RelativeBaseURL", km.ClientConfig{BaseURL: "km.internal", ProvisioningKey: provisioningKey}, "BaseURL"},
		{"FTPBaseURL", km.ClientConfig{BaseURL: "ftp://km.internal", ProvisioningKey: provisioningKey}, "BaseURL"},
		{"UserInBaseURL", km.ClientConfig{BaseURL: "http://u:p@km.internal", ProvisioningKey: provisioningKey}, "user information"},
		{"MissingKey", km.ClientConfig{BaseURL: "http://km.internal"}, "ProvisioningKey"},
		{"ShortKey", km.ClientConfig{BaseURL: "http://km.internal", ProvisioningKey: km.NewSecretString("short")}, "ProvisioningKey"},
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
	_, err := km.NewServer(km.ServerConfig{ProvisioningKey: provisioningKey})
	require.ErrorIs(t, err, km.ErrInvalid)
	require.Contains(t, err.Error(), "Store")
}

func TestClientBaseURLWithPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := km.NewServer(km.ServerConfig{ProvisioningKey: provisioningKey, Store: newMemoryStore(t, newKeyring(t, masterKey("p", 1, 1)))})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/km/", http.StripPrefix("/km", srv))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	c, err := km.NewClient(km.ClientConfig{BaseURL: hs.URL + "/km/", ProvisioningKey: provisioningKey})
	require.NoError(t, err)
	require.NoError(t, c.Put(ctx, cloudCred("acme", "1/2", "n", canary)))
	_, err = c.Get(ctx, "acme", "1/2", "n")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = c.Get(ctx, "acme", "1/2", "n")
	require.ErrorIs(t, err, km.ErrClosed)
}
