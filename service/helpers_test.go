package service_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testca"
)

// fixture is a directory with everything the full example references:
// secret files (mode 0600), the key service's CA and this worker's client
// certificate, a known_hosts file; and the environment it needs.
type fixture struct {
	dir  string
	env  []string
	full string // testdata/full.yaml with @DIR@ replaced
}

// Secrets of the full example, one per secret-bearing place.
const (
	mqSecret        = "s3cret-mq-ab12"
	provSecret      = "s3cret-prov-cd34"
	analyticsSecret = "s3cret-anly-ef56"
)

func setup(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mq-password"), mqSecret+"\n", 0o600)
	ca := testca.New(t, "worker test CA")
	client := ca.Client(t, "worker-1", testca.Options{})
	writeFile(t, filepath.Join(dir, "ca.pem"), string(ca.PEM), 0o644)
	writeFile(t, filepath.Join(dir, "client.pem"), string(client.CertPEM), 0o644)
	writeFile(t, filepath.Join(dir, "client.key"), string(client.KeyPEM), 0o600)
	writeFile(t, filepath.Join(dir, "known_hosts"), "", 0o644)
	full, err := os.ReadFile("testdata/full.yaml")
	require.NoError(t, err)
	return &fixture{
		dir:  dir,
		env:  []string{"PROV_DB_PASSWORD=" + provSecret, "ANALYTICS_DB_PASSWORD=" + analyticsSecret, "HOME=/root"},
		full: strings.ReplaceAll(string(full), "@DIR@", dir),
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode))
}

// keyFile writes a master key file of one key (mode 0600).
func keyFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "km.keys")
	writeFile(t, path, "test:1:"+strings.Repeat("ab", 32)+"\n", 0o600)
	return path
}
