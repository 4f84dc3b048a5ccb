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

	"github.com/stratusworks/worker/km"
)

// TestCanaryNeverLeaks runs a credential carrying a canary secret through
// every part of the package (local store, rotation, cache, remote client and
// server, SSH logins, and every error path) while capturing all logs (slog JSON and text,
// GORM's SQL log with parameters), every error string and everything on the
// wire, and then checks that neither the canary nor any key appears in them.
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
	// r.logs, which is checked too.
	r := newRemote(t, cache, km.ClientConfig{Logger: log})
	client := r.client

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

	intruder := newRemote(t, cache, km.ClientConfig{ProvisioningKey: km.NewSecretString("wrong-provisioning-key-0123456789"), Logger: log})
	err = intruder.client.Put(ctx, cred)
	require.ErrorIs(t, err, km.ErrUnauthorized)
	collect(err)
	stale := newRemote(t, cache, km.ClientConfig{Logger: log, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	_, err = stale.client.Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrUnauthorized)
	collect(err)

	r.wire.set(nil, func(_ *http.Response, b []byte) []byte {
		if len(b) > 0 {
			b[0] ^= 1
		}
		return b
	})
	_, err = client.Get(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrTampered)
	collect(err)
	r.wire.set(nil, nil)

	require.NoError(t, client.Delete(ctx, "acme", "123456", "prod"))
	err = client.Delete(ctx, "acme", "123456", "prod")
	require.ErrorIs(t, err, km.ErrNotFound)
	collect(err)

	// The verdict.
	if testing.Verbose() {
		t.Logf("captured %d bytes of logs, %d error strings, %d bytes of wire traffic", len(jsonLogs.String())+len(textLogs.String()), len(errs), len(r.wire.dump()))
	}
	logs := jsonLogs.String() + textLogs.String() + r.logs.String() + intruder.logs.String() + stale.logs.String()
	require.Contains(t, logs, "INSERT INTO", "the SQL log was captured")
	require.Contains(t, logs, "rejected request", "the server's rejections were captured")
	require.Contains(t, logs, km.Redacted)
	allErrs := strings.Join(errs, "\n")
	wire := r.wire.dump() + intruder.wire.dump() + stale.wire.dump()
	require.NotEmpty(t, wire)
	for where, text := range map[string]string{"logs": logs, "errors": allErrs, "the wire": wire} {
		requireNoLeak(t, text, canary, where)
		requireNoLeak(t, text, string(provisioningKey.Reveal()), where)
		for _, b := range []byte{0x11, 0x22, 0x99} {
			requireNoLeak(t, text, string(keyBytes(b)), where)
			require.NotContains(t, text, hex.EncodeToString(keyBytes(b))[:32], "master key in %s", where)
		}
	}
}
