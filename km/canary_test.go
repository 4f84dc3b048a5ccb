package km_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gormlogger "gorm.io/gorm/logger"

	"github.com/stratusworks/worker/internal/testca"
	"github.com/stratusworks/worker/km"
)

// TestCanaryNeverLeaks runs a credential carrying a canary secret through
// every part of the package (local store, rotation, cache, remote client and
// server over mutual TLS and with the payload layer, SSH logins, and every
// error path) while capturing all logs (slog JSON and text, GORM's SQL log
// with parameters), every error string, the server's audit log (its records
// and its table), the TLS errors of the HTTP server and the clients, and
// everything on the network and inside TLS, and then checks that neither the
// canary nor any key appears in them.
func TestCanaryNeverLeaks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	var jsonLogs, textLogs syncBuffer
	log := slog.New(slog.NewMultiHandler(
		slog.NewJSONHandler(&jsonLogs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewTextHandler(&textLogs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))
	var errs []string
	collect := func(err error) {
		t.Helper()
		require.Error(t, err)
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		log.Error("operation failed", "err", err)
	}
	logAll := func(msg string, args ...any) {
		log.Info(msg, args...)
		for i := 1; i < len(args); i += 2 {
			a := args[i]
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
				log.Debug("formatted", "verb", verb, "text", fmt.Sprintf(verb, a))
			}
			b, err := json.Marshal(a)
			require.NoError(t, err)
			log.Debug("json", "json", string(b))
		}
	}

	// Local store on SQLite with every SQL statement logged, parameters included.
	db := newDB(t, gormlogger.NewSlogLogger(log, gormlogger.Config{LogLevel: gormlogger.Info}))
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	local := newLocalStore(t, db, kr)
	cache, err := km.NewCache(local, time.Minute, nil)
	require.NoError(t, err)

	// Remote: client -> server -> cache -> local store. The server logs to
	// svc.logs and its HTTP server's TLS errors go to svc.tlsErrs; both are
	// checked, and so is the audit log.
	svc := newService(t, serviceOptions{db: db, kr: kr, backend: cache, payload: true, clients: payloadGrants()})
	tap, wire := &tcpTap{}, &wireRecorder{}
	client := svc.client(t, "admin", clientOptions{tap: tap, wire: wire, cfg: func(c *km.ClientConfig) { c.Logger = log }})
	ptap, pwire := &tcpTap{}, &wireRecorder{}
	// A payload-layer client, its TLS terminated by the relay.
	pkey, err := km.DeriveClientPayloadKey(payloadRoot, "admin")
	require.NoError(t, err)
	pclient := svc.client(t, "relay", clientOptions{tap: ptap, wire: pwire, payloadKey: &pkey, cfg: func(c *km.ClientConfig) { c.Logger = log }})

	cred := km.Credential{
		Customer: "acme", Account: "123456", Provider: "aws", Kind: km.KindCloud, Name: "prod",
		Fields: map[string]km.Secret{
			km.FieldAccessKeyID: km.NewSecretString("AKIA" + canary),
			km.FieldSecretKey:   km.NewSecretString(canary),
		},
		Meta: map[string]string{"region": "us-east-1"},
	}
	sshCred := km.Credential{
		Customer: "acme", Account: "123456", Kind: km.KindSSH, Name: "guest-key",
		Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecretString("-----BEGIN OPENSSH PRIVATE KEY-----\n" + canary)},
	}
	logAll("storing", "cred", cred, "ssh", sshCred, "secret", cred.Fields[km.FieldSecretKey])

	// Store and fetch, locally and remotely.
	require.NoError(t, local.Put(ctx, cred))
	require.NoError(t, client.Put(ctx, sshCred))
	got, err := client.Get(ctx, "acme", "123456", "prod")
	require.NoError(t, err)
	require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
	logAll("fetched", "cred", got, "ptr", &got)
	got, err = pclient.Get(ctx, "acme", "123456", "prod")
	require.NoError(t, err)
	require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
	require.NoError(t, pclient.Put(ctx, cred))
	got2, err := cache.Get(ctx, "acme", "123456", "guest-key")
	require.NoError(t, err)
	logAll("fetched from cache", "cred", got2)
	infos, err := client.List(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, infos, 2)
	logAll("listed", "infos", infos)

	// An SSH login from the stored key, through the remote client: the key
	// does not parse, and the error names the credential, not its bytes.
	_, _, err = km.SSHLogins{Store: client, Name: "guest-key"}.SSHAuth(ctx, "acme", "123456", "vm-1")
	require.ErrorIs(t, err, km.ErrInvalid)
	collect(err)

	// Rotate and rewrap.
	require.NoError(t, kr.Add(masterKey("prod", 2, 0x22)))
	res, err := local.RewrapAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, res.Rewrapped)
	logAll("rewrapped", "result", res)
	cache.Purge()
	got, err = client.Get(ctx, "acme", "123456", "prod")
	require.NoError(t, err)
	logAll("fetched after rotation", "cred", got)

	// Error paths.
	prodRow, guestRow := km.RowID(local, "acme", "123456", "prod"), km.RowID(local, "acme", "123456", "guest-key")
	wrongKey := newLocalStore(t, db, newKeyring(t, masterKey("prod", 2, 0x99)))
	_, err = wrongKey.Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrWrongKey)
	collect(err)

	unknown := newLocalStore(t, db, newKeyring(t, masterKey("other", 1, 0x11)))
	_, err = unknown.Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrUnknownKey)
	collect(err)

	moveEnvelope(t, db, prodRow, guestRow)
	cache.Purge()
	_, err = client.Get(ctx, "acme", "123456", "guest-key")
	require.ErrorIs(t, err, km.ErrTampered)
	collect(err)
	_, err = local.Get(ctx, "acme", "123456", "guest-key")
	require.ErrorIs(t, err, km.ErrTampered)
	collect(err)

	_, err = client.Get(ctx, "acme", "123456", "missing")
	require.ErrorIs(t, err, km.ErrNotFound)
	collect(err)

	bad := cred.Clone()
	bad.Kind = "bogus"
	err = client.Put(ctx, bad)
	require.ErrorIs(t, err, km.ErrInvalid)
	collect(err)

	// Refused clients: a wrong payload key, an expired certificate, a
	// certificate from another CA, a stale timestamp, a customer the client
	// may not read.
	intruderKey := km.ClientPayloadKey{ID: "p1", Client: "admin", Key: km.NewSecretString("wrong-payload-key-0123456789abcdef")}
	intruder := svc.client(t, "relay", clientOptions{payloadKey: &intruderKey, cfg: func(c *km.ClientConfig) { c.Logger = log }})
	err = intruder.Put(ctx, cred)
	require.ErrorIs(t, err, km.ErrUnauthorized)
	collect(err)
	expired := svc.ca.Client(t, "admin", testca.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	_, err = svc.client(t, "admin", clientOptions{cert: &expired}).Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrUnauthorized)
	collect(err)
	foreign := testca.New(t, "foreign CA").Client(t, "admin", testca.Options{})
	err = svc.client(t, "admin", clientOptions{cert: &foreign}).Put(ctx, cred)
	require.ErrorIs(t, err, km.ErrUnauthorized)
	collect(err)
	_, err = svc.client(t, "admin", clientOptions{caPEM: testca.New(t, "other CA").PEM}).Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrUnauthorized, "the client pins its CA")
	collect(err)
	stale := svc.client(t, "relay", clientOptions{payloadKey: &pkey, now: func() time.Time { return time.Now().Add(-time.Hour) }})
	_, err = stale.Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrUnauthorized)
	collect(err)
	_, err = svc.client(t, "worker-b", clientOptions{}).Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrForbidden)
	collect(err)

	pwire.set(nil, func(_ *http.Response, b []byte) []byte {
		if len(b) > 0 {
			b[0] ^= 1
		}
		return b
	})
	_, err = pclient.Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrTampered)
	collect(err)
	pwire.set(nil, nil)

	require.NoError(t, client.Delete(ctx, "acme", "123456", "prod"))
	err = client.Delete(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrNotFound)
	collect(err)

	// The verdict.
	var audit strings.Builder
	for _, rec := range svc.auditRecords(t) {
		fmt.Fprintf(&audit, "%+v\n", rec)
	}
	audit.WriteString(dumpTable(t, db, km.AuditTableName))
	require.Contains(t, audit.String(), "certificate expired", "the audit log was captured")
	require.Contains(t, audit.String(), "not issued by the pinned CA")
	if testing.Verbose() {
		t.Logf("captured %d bytes of logs, %d error strings, %d bytes of audit, %d bytes of wire traffic",
			len(jsonLogs.String())+len(textLogs.String()), len(errs), audit.Len(), len(wire.dump())+len(pwire.dump())+len(tap.dump()))
	}
	logs := jsonLogs.String() + textLogs.String() + svc.logs.String()
	require.Contains(t, logs, "INSERT INTO", "the SQL log was captured")
	require.Contains(t, logs, "refused request", "the server's refusals were captured")
	require.Contains(t, logs, km.Redacted)
	tlsErrs := svc.tlsErrs.String()
	require.Contains(t, tlsErrs, "TLS handshake error", "the TLS errors were captured")
	allErrs := strings.Join(errs, "\n")
	inside := wire.dump() + pwire.dump()
	network := tap.dump() + ptap.dump()
	require.NotEmpty(t, inside)
	require.NotEmpty(t, network)
	for where, text := range map[string]string{"logs": logs, "errors": allErrs, "the audit log": audit.String(),
		"TLS errors": tlsErrs, "the network": network} {
		requireNoLeak(t, text, canary, where)
		requireNoLeak(t, text, string(payloadRoot.Key.Reveal()), where)
		requireNoLeak(t, text, string(pkey.Key.Reveal()), where)
		for _, b := range []byte{0x11, 0x22, 0x99} {
			requireNoLeak(t, text, string(keyBytes(b)), where)
			require.NotContains(t, text, hex.EncodeToString(keyBytes(b))[:32], "master key in %s", where)
		}
	}
	// Inside TLS the mutual-TLS client's payloads are plain (TLS protects
	// them); the payload layer's are sealed even there.
	requireNoLeak(t, pwire.dump(), canary, "inside TLS with the payload layer")
	requireNoLeak(t, inside, string(payloadRoot.Key.Reveal()), "inside TLS")
	requireNoLeak(t, inside, string(pkey.Key.Reveal()), "inside TLS")
}
