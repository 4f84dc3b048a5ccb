package service_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/service"
)

// canary is a secret no message or output may contain.
const canary = "CANARY-9d2f61e0"

// TestCanary puts the canary in every place a secret can be — password
// files, *_env variables, "${NAME}" variables, WORKER_* overrides, inline
// passwords, passwords inside mq.url and the DSNs — and finds it in
// neither Check's output nor any error message.
func TestCanary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), canary+"-file\n", 0o600)
	writeFile(t, filepath.Join(dir, "open-pw"), canary+"-open\n", 0o644)
	env := []string{"PW=" + canary + "-env", "PW2=" + canary + "-expansion"}

	loadable := map[string]struct {
		doc string
		env []string
	}{
		"References": {`
mq:
  url: amqp://u@mq:5672/
  password_file: ` + dir + `/pw
provisioning_db:
  driver: mysql
  dsn: u@tcp(db:3306)/p
  password_env: PW
analytics_db:
  driver: mysql
  dsn: u@tcp(db:3306)/a
  password: ${PW2}
`, env},
		"Inline": {`
allow_inline_secrets: true
mq:
  url: amqp://u:` + canary + `-url@mq:5672/
provisioning_db:
  driver: mysql
  dsn: u:` + canary + `-dsn@tcp(db:3306)/p
analytics_db:
  driver: mysql
  dsn: u@tcp(db:3306)/a
  password: ` + canary + `-inline
`, nil},
		"Overrides": {"mq:\n  url: amqp://u@mq:5672/\n", []string{
			"WORKER_MQ_PASSWORD=" + canary + "-override",
			"WORKER_PROVISIONING_DB_DRIVER=mysql",
			"WORKER_PROVISIONING_DB_DSN=u:" + canary + "-envdsn@tcp(db:3306)/p",
		}},
	}
	for name, l := range loadable {
		c, err := service.Parse("worker.yaml", []byte(l.doc), l.env)
		require.NoError(t, err, name)
		var out bytes.Buffer
		require.NoError(t, service.Check(&out, c), name)
		require.NotContains(t, out.String(), "CANARY", "%s: Check printed a secret:\n%s", name, out.String())
		marshalled, err := service.Marshal(c)
		require.NoError(t, err)
		require.NotContains(t, string(marshalled), "CANARY", name)
		_, closer, err := c.Worker()
		require.NoError(t, err, name)
		require.NoError(t, closer.Close())
	}

	bad := []struct {
		doc string
		env []string
	}{
		{"mq:\n  url: amqp://u@mq:5672/\n  password: " + canary + "\n", nil},
		{"mq:\n  url: amqp://u:" + canary + "@mq:5672/\n", nil},
		{"mq:\n  url: amqx://u:" + canary + "@mq:5672/\n", nil},
		{"mq:\n  url: amqp://u:" + canary + "@mq:port/\n", nil},
		{"mq:\n  url: \"amqp://u:" + canary + "@mq:5672/%zz\"\n", nil},
		{"mq:\n  url: amqp://u:" + canary + "@mq:5672/\n  password: x\n", nil},
		{"allow_inline_secrets: true\nmq:\n  url: amqp://u:" + canary + "@mq:5672/\n  password: " + canary + "\n", nil},
		{"mq:\n  url: amqp://u@mq:5672/\n  password: " + canary + "\n  password_env: PW\n", env},
		{"mq:\n  url: amqp://u@mq:5672/\n  password_file: " + dir + "/open-pw\n", nil},
		{"mq:\n  url: memory\n  password_file: " + dir + "/pw\n", nil},
		{"mq:\n  url: amqp://mq:5672/\n  password_env: PW\n", env},
		{"provisioning_db:\n  driver: mysql\n  dsn: u:" + canary + "@tcp(db:3306)/p\n", nil},
		{"provisioning_db:\n  driver: mysql\n  dsn: u:" + canary + "@tcp(db:3306)/\n", nil},
		{"provisioning_db:\n  driver: mysql\n  dsn: u:" + canary + "@tcp(db:3306\n", nil},
		{"provisioning_db:\n  driver: mysql\n  dsn: u:" + canary + "@tcp(db:3306)/p?bogus%zz=1\n", nil},
		{"provisioning_db:\n  dsn: u:" + canary + "@tcp(db:3306)/p\n", nil},
		{"provisioning_db:\n  driver: sqlite\n  password_env: PW\n", env},
		{"mq:\n  password: [" + canary + "]\n", nil},
		{"mq:\n  password: {a: " + canary + "}\n", nil},
		{"mq:\n  password: " + canary + "\n   bad: indent\n", nil},
		{"", []string{"WORKER_MQ_URLL=" + canary}},
		{"", []string{"WORKER_MQ_URL=amqx://u:" + canary + "@mq/"}},
		{"", []string{"WORKER_MQ_PASSWORD=" + canary}},
	}
	for i, b := range bad {
		_, err := service.Parse("worker.yaml", []byte(b.doc), b.env)
		require.Error(t, err, "case %d", i)
		require.NotContains(t, err.Error(), "CANARY", "case %d: %v", i, err)
	}

	// The classic files' secrets stay out of the converted YAML, the
	// unmapped list and the errors.
	im, err := service.ImportLegacyDir("testdata/legacy", service.ImportOptions{SecretsDir: t.TempDir(), WriteSecrets: true})
	require.NoError(t, err)
	y, err := im.YAML()
	require.NoError(t, err)
	require.NotContains(t, string(y), "CANARY")
	for _, u := range im.Unmapped {
		require.NotContains(t, u.String(), "CANARY")
	}
	_, err = service.ImportLegacy(map[string][]byte{service.LegacyMQ: []byte("mqHost=mq\nmqPort=" + canary + "\n")}, service.ImportOptions{})
	require.Error(t, err)
	_, err = service.ImportLegacy(map[string][]byte{service.LegacyKMClient: []byte("KM_TIMEOUT=" + canary + "\n")}, service.ImportOptions{})
	require.Error(t, err)
	_, err = service.ImportLegacy(map[string][]byte{service.LegacyProvisioning: []byte("SOURCE_CIDR=" + canary + "\n")}, service.ImportOptions{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "CANARY-legacy")
	_ = os.Remove(filepath.Join(dir, "pw"))
}
