package service_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/service"
)

// TestLoadFull: every section of the full example loads, with each value
// where it belongs.
func TestLoadFull(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c, err := service.Parse("worker.yaml", []byte(f.full), f.env)
	require.NoError(t, err)

	require.Equal(t, "subscriber", c.Process.Role)
	require.Equal(t, 32, c.Process.Concurrency)
	require.Equal(t, 2*time.Minute, c.Process.HandlerTimeout.D())
	require.Equal(t, "amqps://qsmq@mq.example.internal:5671/enstratus", c.MQ.URL)
	require.Equal(t, 128, c.MQ.Prefetch)
	require.Equal(t, "mysql", c.ProvisioningDB.Driver)
	require.Equal(t, 4*time.Minute, c.ProvisioningDB.ConnMaxLifetime.D())
	require.Equal(t, "analytics@tcp(analytics.example.internal:3306)/analytics", c.AnalyticsDB.DSN)
	require.Equal(t, "verify", c.StateStore.Migrations)
	require.Equal(t, 10*time.Minute, c.StateStore.DeletionGrace.D())
	require.Equal(t, "https://km.example.internal:8443", c.KM.URL)
	require.Equal(t, 2*time.Minute, c.KM.CredentialCacheTTL.D())
	require.Equal(t, "10.20.0.0/24", c.Provisioning.SourceCIDR)
	require.Equal(t, 2222, c.Provisioning.ManagementPort)
	require.Equal(t, "json", c.Logging.Format)
	require.True(t, c.Logging.CustomerLogs)
	require.Equal(t, 5, c.Logging.MaxBackups)
	require.Equal(t, 20*time.Second, c.Pinger.Interval.D())
	require.Equal(t, 5*time.Second, c.Pinger.ProbeInterval.D())
	require.Equal(t, 4, c.Pinger.DeadAfter)
	require.Equal(t, time.Minute, c.Interval("server", time.Hour))
	require.Equal(t, 5*time.Minute, c.Interval("firewall", time.Hour))
	require.Equal(t, time.Hour, c.Interval("volume", time.Hour), "a kind the file does not name keeps the default")
	require.Equal(t, 3.0, c.Schedule.Backoff.Multiplier)
	require.Equal(t, 10, c.Schedule.Budget.Burst)
	require.Equal(t, 12*time.Hour, c.Retry.Budget.D())
	require.Equal(t, 1.5, c.Retry.Multiplier)
	require.Equal(t, 5*time.Minute, c.GuestLogs.Interval.D())
	require.Equal(t, []string{"/var/log/syslog", "/var/log/app.log"}, c.GuestLogs.Files)
	require.Len(t, c.Accounts, 2)
	require.Equal(t, "eu-1", c.Accounts[0].Settings["region"])
	require.Equal(t, 30*time.Second, c.Accounts[0].Intervals["server"].D())
	require.True(t, c.Accounts[1].Paused)
}

// TestWorkerConfig: the full example maps onto the SDK's worker.Config,
// secrets spliced in, and the result validates.
func TestWorkerConfig(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c, err := service.Parse("worker.yaml", []byte(f.full), f.env)
	require.NoError(t, err)
	wc, closer, err := c.Worker()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, closer.Close()) })

	require.Equal(t, 128, wc.MQ.PackActions)
	require.Equal(t, 131072, wc.MQ.PackBytes)
	require.Equal(t, worker.RoleSubscriber, wc.Role)
	require.Equal(t, "amqps://qsmq:"+mqSecret+"@mq.example.internal:5671/enstratus", wc.MQ.URL)
	require.Equal(t, 2, wc.MQ.Consumers)
	require.Equal(t, "stratus", wc.Topology.Prefix)
	require.Equal(t, persist.MySQL, wc.Store.Provisioning.Driver)
	require.Contains(t, wc.Store.Provisioning.DSN, "provisioning:"+provSecret+"@tcp(db.example.internal:3306)/provisioning")
	require.Contains(t, wc.Store.Analytics.DSN, "analytics:"+analyticsSecret+"@tcp(")
	require.Equal(t, persist.MigrateVerify, wc.Store.Migrations)
	require.Equal(t, 3*time.Second, wc.Store.Provisioning.ConnectTimeout)
	require.Equal(t, "10.20.0.0/24", wc.SourceCIDR.String())
	require.NotNil(t, wc.Credentials, "the remote key service's client")
	require.Nil(t, wc.Keyring)
	require.Equal(t, 5.0, wc.Schedule.Budget.PerSecond)
	require.Equal(t, 10*time.Second, wc.Schedule.Backoff.InitialInterval)
	require.Equal(t, 50, wc.Retry.MaxAttempts)
	require.Equal(t, 5*time.Minute, wc.GuestLogs.Interval)
	require.NotNil(t, wc.GuestLogs.Collector.HostKeys)
	require.NotNil(t, wc.GuestLogs.Collector.OutputDir, "collected logs go to the customers' directories")
	require.NotNil(t, wc.GuestLogs.Collector.Credentials)
	require.NotNil(t, wc.Logger)
	wc.Logger.Info("hello")
	require.FileExists(t, filepath.Join(f.dir, "log", "worker.log"), "the process log")
}

// TestEmbeddedKeyring: provisioning.encryption_key_file is the embedded key
// manager's master key file, loaded by km.LoadKeyFile.
func TestEmbeddedKeyring(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := "provisioning:\n  encryption_key_file: " + keyFile(t, dir) + "\n  source_cidr: 10.0.0.0/8\n"
	c, err := service.Parse("worker.yaml", []byte(doc), nil)
	require.NoError(t, err)
	wc, closer, err := c.Worker()
	require.NoError(t, err)
	defer closer.Close()
	require.NotNil(t, wc.Keyring)
	require.Equal(t, "test", wc.Keyring.Current().ID)
}

// TestDefaults: an empty file is the embedded worker.
func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := service.Parse("worker.yaml", nil, nil)
	require.NoError(t, err)
	wc, closer, err := c.Worker()
	require.NoError(t, err)
	defer closer.Close()
	require.Equal(t, "", wc.MQ.URL)
	require.NoError(t, wc.Validate())
	eff := c.Effective()
	require.Equal(t, "memory", eff.MQ.URL)
	require.Equal(t, "sqlite", eff.ProvisioningDB.Driver)
	require.Equal(t, 64, eff.Process.Concurrency)
	require.Equal(t, service.DefaultPingerDeadAfter, eff.Pinger.DeadAfter)
	require.Equal(t, 24*time.Hour, eff.Retry.Budget.D())
}

// TestEnvOverrides: WORKER_<SECTION>_<KEY> sets a key, over the file's
// value or where the file has none.
func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	doc := "mq:\n  url: amqp://worker@mq-a:5672/\n  prefetch: 10\n"
	c, err := service.Parse("worker.yaml", []byte(doc), []string{
		"WORKER_MQ_URL=amqp://worker@mq-b:5672/",
		"WORKER_MQ_PREFETCH=20",
		"WORKER_MQ_PREFIX=0755", // a string key stays a string
		"WORKER_PROCESS_ROLE=publisher",
		"WORKER_PROVISIONING_DB_DSN=/var/lib/worker/state.db",
		"WORKER_SCHEDULE_BUDGET_PER_SECOND=2.5",
		"WORKER_SCHEDULE_BACKOFF_MAX_INTERVAL=20m",
		"WORKER_LOGGING_COMPRESS=true",
		"WORKER_MQ_PACK_ACTIONS=64",
		"WORKER_CONFIG=/etc/worker/worker.yaml", // read by the binaries, not a key
		"UNRELATED=1",
	})
	require.NoError(t, err)
	require.Equal(t, "amqp://worker@mq-b:5672/", c.MQ.URL)
	require.Equal(t, 20, c.MQ.Prefetch)
	require.Equal(t, "0755", c.MQ.Prefix)
	require.Equal(t, "publisher", c.Process.Role)
	require.Equal(t, "/var/lib/worker/state.db", c.ProvisioningDB.DSN)
	require.Equal(t, 2.5, c.Schedule.Budget.PerSecond)
	require.Equal(t, 20*time.Minute, c.Schedule.Backoff.MaxInterval.D())
	require.True(t, c.Logging.Compress)
	require.Equal(t, 64, c.MQ.PackActions)
}

// TestSecretsByReference: each way of giving a secret, and inline secrets
// only when allowed.
func TestSecretsByReference(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), "from-file\n", 0o600)
	for _, tc := range []struct {
		name, doc string
		env       []string
		want      string
	}{
		{"File", "mq:\n  url: amqp://u@mq:5672/\n  password_file: " + filepath.Join(dir, "pw") + "\n", nil, "from-file"},
		{"Env", "mq:\n  url: amqp://u@mq:5672/\n  password_env: MQ_PW\n", []string{"MQ_PW=from-env"}, "from-env"},
		{"Expansion", "mq:\n  url: amqp://u@mq:5672/\n  password: ${MQ_PW}\n", []string{"MQ_PW=from-expansion"}, "from-expansion"},
		{"OverrideEnv", "mq:\n  url: amqp://u@mq:5672/\n", []string{"WORKER_MQ_PASSWORD=from-override"}, "from-override"},
		{"InlineAllowed", "allow_inline_secrets: true\nmq:\n  url: amqp://u@mq:5672/\n  password: inline-ok\n", nil, "inline-ok"},
		{"InlineURLAllowed", "allow_inline_secrets: true\nmq:\n  url: amqp://u:in-url@mq:5672/\n", nil, "in-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := service.Parse("worker.yaml", []byte(tc.doc), tc.env)
			require.NoError(t, err)
			wc, closer, err := c.Worker()
			require.NoError(t, err)
			defer closer.Close()
			require.Equal(t, "amqp://u:"+tc.want+"@mq:5672/", wc.MQ.URL)
		})
	}
}

// TestBootstrap: the accounts list seeds the registry once; accounts
// already there are left alone.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	doc := `
provisioning_db:
  dsn: ":memory:"
logging:
  level: warn
accounts:
  - id: acct-1
    customer: acme
    settings: {region: eu-1}
    intervals: {server: 30s}
  - id: acct-2
    customer: globex
    paused: true
    paused_reason: migrating
`
	c, err := service.Parse("worker.yaml", []byte(doc), nil)
	require.NoError(t, err)
	wc, closer, err := c.Worker()
	require.NoError(t, err)
	defer closer.Close()
	w, err := worker.New(context.Background(), wc)
	require.NoError(t, err)
	defer w.Close()
	ctx := context.Background()

	created, err := service.Bootstrap(ctx, w, c)
	require.NoError(t, err)
	require.Equal(t, []string{"acct-1", "acct-2"}, created)
	a, err := w.Accounts().Get(ctx, "acct-1")
	require.NoError(t, err)
	require.Equal(t, "acme", a.Customer)
	require.JSONEq(t, `{"region":"eu-1"}`, string(a.Settings))
	require.Equal(t, 30*time.Second, a.Intervals["server"])

	require.NoError(t, w.Accounts().Pause(ctx, "acct-1", "by the operator"))
	created, err = service.Bootstrap(ctx, w, c)
	require.NoError(t, err)
	require.Empty(t, created)
	a, err = w.Accounts().Get(ctx, "acct-1")
	require.NoError(t, err)
	require.True(t, a.Paused, "a restart does not undo the registry's changes")
}

// TestCheck prints the effective configuration, which loads again.
func TestCheck(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c, err := service.Parse("worker.yaml", []byte(f.full), f.env)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, service.Check(&out, c))
	require.Contains(t, out.String(), "# effective configuration of worker.yaml")
	require.Contains(t, out.String(), "password_file: "+filepath.Join(f.dir, "mq-password"))
	require.Contains(t, out.String(), "password: ${ANALYTICS_DB_PASSWORD}")
	require.Contains(t, out.String(), "dead_after: 4")
	again, err := service.Parse("check.yaml", out.Bytes(), f.env)
	require.NoError(t, err, "Check's output is a loadable configuration")
	require.Equal(t, c.Effective(), again.Effective())
}

func TestErrorsMatchSentinel(t *testing.T) {
	t.Parallel()
	_, err := service.Parse("worker.yaml", []byte("mq:\n  url: amqx://mq/\n"), nil)
	require.ErrorIs(t, err, service.ErrInvalidConfig)
	var ce *service.ConfigError
	require.True(t, errors.As(err, &ce))
	require.Equal(t, "worker.yaml", ce.File)
	require.Equal(t, 2, ce.Line)
	require.Equal(t, "mq.url", ce.Key)
	require.Equal(t, `worker.yaml:2: mq.url: "amqx://mq/" is not an amqp:// or amqps:// URL with a host (want "memory" or amqp://user@host:5672/vhost)`, err.Error())
	require.False(t, strings.Contains(err.Error(), "\n"))
}

// TestEnvNames: every scalar key has its own WORKER_* variable, named
// after its path.
func TestEnvNames(t *testing.T) {
	t.Parallel()
	keys := service.EnvKeys()
	require.Greater(t, len(keys), 80, "every scalar key of every section")
	seen := map[string]bool{}
	for name, path := range keys {
		require.Regexp(t, `^WORKER_[A-Z0-9_]+$`, name)
		require.Equal(t, "WORKER_"+strings.ToUpper(strings.ReplaceAll(path, ".", "_")), name)
		require.False(t, seen[path], path)
		seen[path] = true
	}
	require.Equal(t, "mq.url", keys["WORKER_MQ_URL"])
	require.Equal(t, "provisioning_db.dsn", keys["WORKER_PROVISIONING_DB_DSN"])
	require.Equal(t, "pinger.dead_after", keys["WORKER_PINGER_DEAD_AFTER"])
	require.Equal(t, "schedule.budget.per_second", keys["WORKER_SCHEDULE_BUDGET_PER_SECOND"])
	_, err := service.Parse("worker.yaml", nil, []string{"WORKER_DB_DSN=u:p@tcp(db:3306)/w", "WORKER_CONFIG=/etc/worker.yaml"})
	require.NoError(t, err, "examples/migrate's variables may share the environment")
}

// TestProcessesConfig: the pinger section sets the heartbeats and probes,
// the analytics section the usage samples' retention,
// process.role takes pinger, mq.url takes the durable SQLite queue, and
// the Closer reopens the process log for SIGHUP.
func TestProcessesConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.yaml")
	writeFile(t, path, "process:\n  role: pinger\nmq:\n  url: sqlite:"+filepath.Join(dir, "q.db")+
		"\nprovisioning_db:\n  dsn: "+filepath.Join(dir, "w.db")+
		"\nlogging:\n  dir: "+filepath.Join(dir, "log")+"\n  process_log: p.log\npinger:\n  interval: 2s\n  probe_interval: 5s\n  dead_after: 4\n"+
		"analytics:\n  sample_retention: 48h\n  rollup_retention: 8760h\n", 0o600)
	cfg, err := service.Load(path, nil)
	require.NoError(t, err)
	wc, closer, err := cfg.Worker()
	require.NoError(t, err)
	defer closer.Close()
	require.Equal(t, worker.RolePinger, wc.Role)
	require.Equal(t, worker.HeartbeatConfig{Interval: 2 * time.Second, DeadAfter: 4}, wc.Heartbeat)
	require.Equal(t, 5*time.Second, wc.Pinger.ProbeInterval)
	require.Equal(t, worker.AnalyticsConfig{Retention: 48 * time.Hour, RollupRetention: 365 * 24 * time.Hour}, wc.Analytics)

	log := filepath.Join(dir, "log", "p.log")
	wc.Logger.Info("before")
	require.NoError(t, os.Rename(log, log+".1"))
	r, ok := closer.(service.Reopener)
	require.True(t, ok)
	require.NoError(t, r.Reopen())
	wc.Logger.Info("after")
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	require.Contains(t, string(b), "after")
	require.NotContains(t, string(b), "before")

	// Defaults: the section's, as Check shows them.
	def, c2, err := (&service.Config{}).Worker()
	require.NoError(t, err)
	defer c2.Close()
	require.Equal(t, service.DefaultPingerInterval, def.Heartbeat.Interval)
}

// TestPolls: schedule.kinds names the only kinds polled; without it every
// kind is.
func TestPolls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		polled     map[string]bool
	}{
		{"Default", "", map[string]bool{"server": true, "server-status": true, "dns-zone": true}},
		{"Kinds", "schedule:\n  kinds: [server, server-status]\n", map[string]bool{"server": true, "server-status": true, "dns-zone": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := service.Parse("worker.yaml", []byte(tc.yaml), nil)
			require.NoError(t, err)
			for kind, want := range tc.polled {
				require.Equal(t, want, c.Polls(kind), kind)
			}
		})
	}
}
