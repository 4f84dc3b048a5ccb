package service_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/service"
)

// TestImportLegacy converts a complete set of the five classic files:
// every key is either mapped or listed as unmapped with its file, and the
// secrets become *_file references.
func TestImportLegacy(t *testing.T) {
	t.Parallel()
	secrets := t.TempDir()
	im, err := service.ImportLegacyDir("testdata/legacy", service.ImportOptions{SecretsDir: secrets})
	require.NoError(t, err)
	c := im.Config

	require.Equal(t, "amqp://qsmq@mq.example.internal:5672/enstratus", c.MQ.URL)
	require.Equal(t, filepath.Join(secrets, "mq-password"), c.MQ.PasswordFile)
	require.Equal(t, 64, c.MQ.Prefetch)
	require.Equal(t, "mysql", c.ProvisioningDB.Driver)
	require.Equal(t, "provisioning@tcp(db.example.internal:3306)/provisioning", c.ProvisioningDB.DSN)
	require.Equal(t, filepath.Join(secrets, "provisioning-db-password"), c.ProvisioningDB.PasswordFile)
	require.Equal(t, 20, c.ProvisioningDB.MaxOpenConns)
	require.Equal(t, "provisioning@tcp(analytics.example.internal:3306)/analytics", c.AnalyticsDB.DSN)
	require.Equal(t, filepath.Join(secrets, "analytics-db-password"), c.AnalyticsDB.PasswordFile)
	require.Equal(t, 32, c.Process.Concurrency)
	require.Equal(t, "/services/worker/log", c.Logging.Dir)
	require.True(t, c.Logging.CustomerLogs)
	require.Equal(t, "auto", c.StateStore.Migrations)
	require.Equal(t, "https://km.example.internal:2013", c.KM.URL)
	require.Equal(t, 30*time.Second, c.KM.Timeout.D())
	require.Equal(t, filepath.Join(secrets, "km-client.pem"), c.KM.CertFile)
	require.Equal(t, "10.20.0.0/24", c.Provisioning.SourceCIDR)
	require.Equal(t, 22, c.Provisioning.ManagementPort)
	require.Empty(t, c.Provisioning.EncryptionKeyFile, "with a remote KM the classic encryption key has no counterpart")

	var unmapped []string
	for _, u := range im.Unmapped {
		unmapped = append(unmapped, u.File+" "+u.Key)
		require.NotEmpty(t, u.Reason)
	}
	require.ElementsMatch(t, []string{
		"mq.cfg mqExchange",
		"mq.cfg mqHeartbeatSeconds",
		"worker.properties javaOpts",
		"dasein-persistence.properties dasein.persist.persistenceLib",
		"dasein-persistence.properties dasein.persist.riak.host",
		"dasein-persistence.properties dasein.persist.riak.port",
		"dasein-persistence.properties dasein.persist.defaultCacheTimeout",
		"enstratus-km-client.cfg KM_KEYSTORE",
		"enstratus-km-client.cfg KM_KEYSTORE_PASSWORD",
		"enstratus-km-client.cfg KM_CLIENT_NAME",
		"enstratus-provisioning.cfg ENCRYPTION_KEY",
		"enstratus-provisioning.cfg SOURCE_CIDR",
		"enstratus-provisioning.cfg CONSOLE_URL",
		"enstratus-provisioning.cfg LICENSE_KEY",
	}, unmapped)

	var refs []string
	for _, s := range im.Secrets {
		refs = append(refs, s.File+" "+s.Key+" -> "+s.Target)
		require.False(t, s.Written)
	}
	require.ElementsMatch(t, []string{
		"mq.cfg mqPassword -> mq.password_file",
		"worker.properties provisioningDBPass -> provisioning_db.password_file",
		"worker.properties analyticsDBPass -> analytics_db.password_file",
	}, refs)
	y, err := im.YAML()
	require.NoError(t, err)
	require.Contains(t, string(y), "# unmapped: mq.cfg: mqExchange: ")
	require.Contains(t, string(y), "# secret: mq.password_file: "+filepath.Join(secrets, "mq-password"))
	require.NoFileExists(t, filepath.Join(secrets, "mq-password"), "secrets are written only when asked")
}

// TestImportRoundTrip: with WriteSecrets the secrets go to files (0600),
// and the converted YAML loads into the same configuration, the secrets
// resolved from those files.
func TestImportRoundTrip(t *testing.T) {
	t.Parallel()
	secrets := filepath.Join(t.TempDir(), "secrets")
	im, err := service.ImportLegacyDir("testdata/legacy", service.ImportOptions{SecretsDir: secrets, WriteSecrets: true})
	require.NoError(t, err)
	for _, s := range im.Secrets {
		require.True(t, s.Written)
		fi, err := os.Stat(s.Path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	// What the operator exports from the Java keystore.
	for _, f := range []string{"km-ca.pem", "km-client.pem", "km-client.key"} {
		writeFile(t, filepath.Join(secrets, f), "PEM", 0o600)
	}
	y, err := im.YAML()
	require.NoError(t, err)
	c, err := service.Parse("worker.yaml", y, nil)
	require.NoError(t, err, "%s", y)
	again, err := service.Marshal(c)
	require.NoError(t, err)
	first, err := service.Marshal(im.Config)
	require.NoError(t, err)
	require.Equal(t, string(first), string(again))
	require.Equal(t, "CANARY-legacy-mq-7f3a", c.Secret("mq.password"))
	require.Equal(t, "CANARY-legacy-prov-91bc", c.Secret("provisioning_db.password"))
	require.Equal(t, "CANARY-legacy-anly-04de", c.Secret("analytics_db.password"))

	_, err = service.ImportLegacyDir("testdata/legacy", service.ImportOptions{SecretsDir: secrets, WriteSecrets: true})
	require.ErrorIs(t, err, os.ErrExist, "an existing secret file is never overwritten")
}

// TestImportEmbeddedKM: without KM_HOST the classic encryption key points
// to the embedded key manager's master key file; a bare SOURCE_CIDR
// address becomes a /32.
func TestImportEmbeddedKM(t *testing.T) {
	t.Parallel()
	im, err := service.ImportLegacy(map[string][]byte{
		service.LegacyProvisioning: []byte("ENCRYPTION_KEY=abc\nSOURCE_CIDR=123.123.123.123\n"),
	}, service.ImportOptions{})
	require.NoError(t, err)
	require.Equal(t, "/etc/worker/secrets/km.keys", im.Config.Provisioning.EncryptionKeyFile)
	require.Equal(t, "123.123.123.123/32", im.Config.Provisioning.SourceCIDR)
	require.Len(t, im.Unmapped, 1)
	require.Equal(t, "ENCRYPTION_KEY", im.Unmapped[0].Key)
}
