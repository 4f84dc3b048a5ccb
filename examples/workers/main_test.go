package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/service"
)

var exampleEnv = []string{"MQ_PASSWORD=mq-pw-1", "PROVISIONING_DB_PASSWORD=prov-pw-2", "ANALYTICS_DB_PASSWORD=anly-pw-3"}

func runWith(args []string, environ []string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &env{stdout: &out, stderr: &errOut, environ: environ})
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

// TestExampleConfig: the shipped worker.yaml loads and maps onto a valid
// worker.Config.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	cfg, err := service.Load("worker.yaml", exampleEnv)
	require.NoError(t, err)
	wc, closer, err := cfg.Worker()
	require.NoError(t, err)
	defer closer.Close()
	require.NoError(t, wc.Validate())
	require.Equal(t, "amqp://worker:mq-pw-1@mq.internal:5672/worker", wc.MQ.URL)
	require.Len(t, cfg.Accounts, 1)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	out, errOut, code := runWith([]string{"check", "-config", "worker.yaml"}, exampleEnv)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "# effective configuration of worker.yaml")
	require.Contains(t, out, "password: ${PROVISIONING_DB_PASSWORD}")
	for _, pw := range []string{"mq-pw-1", "prov-pw-2", "anly-pw-3"} {
		require.NotContains(t, out, pw)
	}

	// $WORKER_CONFIG names the file when -config is not given.
	out, _, code = runWith([]string{"check"}, append([]string{"WORKER_CONFIG=worker.yaml"}, exampleEnv...))
	require.Equal(t, 0, code)
	require.Contains(t, out, "source_cidr: 10.20.0.0/24")
}

func TestCheckBadConfig(t *testing.T) {
	t.Parallel()
	_, errOut, code := runWith([]string{"check", "-config", "worker.yaml"}, append([]string{"WORKER_MQ_URL=amqx://mq/"}, exampleEnv...))
	require.Equal(t, 1, code)
	require.Equal(t, `workers: worker.yaml: mq.url (from WORKER_MQ_URL): "amqx://mq/" is not an amqp:// or amqps:// URL with a host (want "memory" or amqp://user@host:5672/vhost)`+"\n", errOut)

	_, errOut, code = runWith([]string{"check", "-config", "worker.yaml"}, nil)
	require.Equal(t, 1, code)
	require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %s", errOut)
	require.Contains(t, errOut, "mq.password_env")
}

func TestImport(t *testing.T) {
	t.Parallel()
	secrets := filepath.Join(t.TempDir(), "secrets")
	out, errOut, code := runWith([]string{"import", "-dir", "../../service/testdata/legacy", "-secrets-dir", secrets}, nil)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "url: amqp://qsmq@mq.example.internal:5672/enstratus")
	require.Contains(t, out, "password_file: "+filepath.Join(secrets, "mq-password"))
	require.NotContains(t, out, "CANARY")
	require.NotContains(t, errOut, "CANARY")
	require.Contains(t, errOut, "unmapped: mq.cfg: mqExchange: ")
	require.Contains(t, errOut, "import: 14 keys unmapped, 3 secrets referenced")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	_, errOut, code := runWith(nil, nil)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "check ")
	_, errOut, code = runWith([]string{"frobnicate"}, nil)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `workers: usage: unknown command "frobnicate"`)
	_, _, code = runWith([]string{"import"}, nil)
	require.Equal(t, 2, code)
	_, _, code = runWith([]string{"check", "extra"}, nil)
	require.Equal(t, 2, code)
}

// TestUnknownKind: a kind of schedule.kinds that no poller has stops the
// process at startup, naming the key.
func TestUnknownKind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.yaml")
	yaml := "provisioning_db:\n  driver: sqlite\n  dsn: " + filepath.Join(dir, "worker.db") +
		"\nschedule:\n  kinds: [server, servers]\n"
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	_, errOut, code := runWith([]string{"publisher", "-config", path}, nil)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, `schedule.kinds[1]: "servers" is not a kind package cloud polls`)
}
