package service_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/service"
)

// TestBadInput: each bad file (or environment) is refused with a
// *service.ConfigError whose one-line message names the file, the key and
// the value (redacted where the key is a secret) and says what is expected.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "open-pw"), "pw\n", 0o644)
	writeFile(t, filepath.Join(dir, "empty-pw"), "\n", 0o600)
	sub := func(s string) string { return strings.ReplaceAll(s, "@DIR@", dir) }

	for _, tc := range []struct {
		name, doc string
		env       []string
		key       string // ConfigError.Key
		value     string // as shown in the message, quoted unless <redacted>
		problem   string // a part of what is expected
	}{
		{"UnknownSection", "mqq:\n  url: memory\n", nil, "mqq", `"mqq"`, "is not a key of the file"},
		{"UnknownKey", "mq:\n  urll: memory\n", nil, "mq.urll", `"urll"`, "is not a key of mq (want one of url, password"},
		{"UnknownNestedKey", "schedule:\n  budget:\n    rate: 5\n", nil, "schedule.budget.rate", `"rate"`, "want one of per_second, burst"},
		{"SectionNotMapping", "mq: [a, b]\n", nil, "mq", `"(a list)"`, "is not a mapping"},
		{"MQScheme", "mq:\n  url: amqx://mq:5672/\n", nil, "mq.url", `"amqx://mq:5672/"`, "is not an amqp:// or amqps:// URL"},
		{"MQNoHost", "mq:\n  url: amqp:///vhost\n", nil, "mq.url", `"amqp:///vhost"`, "with a host"},
		{"MQPort", "mq:\n  url: amqp://mq:99999/\n", nil, "mq.url", `"amqp://mq:99999/"`, "want 1 to 65535"},
		{"MQInlinePassword", "mq:\n  url: amqp://u:hunter2@mq:5672/\n", nil, "mq.url", `"amqp://u:xxxxx@mq:5672/"`, "holds a password: give it by reference"},
		{"PrefetchNotInt", "mq:\n  prefetch: lots\n", nil, "mq.prefetch", `"lots"`, "is not an integer"},
		{"PrefetchRange", "mq:\n  prefetch: 70000\n", nil, "mq.prefetch", `"70000"`, "want 0 to 65535"},
		{"PackActionsRange", "mq:\n  pack_actions: 20000\n", nil, "mq.pack_actions", `"20000"`, "want 0 to 10000"},
		{"DurationNoUnit", "mq:\n  publish_timeout: 30\n", nil, "mq.publish_timeout", `"30"`, `without a unit (want a duration such as "30s")`},
		{"DurationBad", "process:\n  handler_timeout: soon\n", nil, "process.handler_timeout", `"soon"`, "is not a duration"},
		{"DurationNegative", "process:\n  shutdown_timeout: -1s\n", nil, "process.shutdown_timeout", `"-1s"`, "is negative"},
		{"Role", "process:\n  role: both\n", nil, "process.role", `"both"`, "is not one of all, publisher, subscriber"},
		{"IntNotBool", "process:\n  concurrency: true\n", nil, "process.concurrency", `"true"`, "is not an integer"},
		{"StringNotInt", "process:\n  role: 7\n", nil, "process.role", `"7"`, "is an integer, not a string"},
		{"Driver", "provisioning_db:\n  driver: postgres\n", nil, "provisioning_db.driver", `"postgres"`, "is not one of sqlite, mysql"},
		{"MySQLDSN", "provisioning_db:\n  driver: mysql\n  dsn: db.example.internal:3306\n", nil, "provisioning_db.dsn", `"db.example.internal:3306"`, "is not a MySQL DSN"},
		{"MySQLNoDatabase", "analytics_db:\n  driver: mysql\n  dsn: u@tcp(db:3306)/\n", nil, "analytics_db.dsn", `"u@tcp(db:3306)/"`, "names no database"},
		{"MySQLInlinePassword", "provisioning_db:\n  driver: mysql\n  dsn: u:hunter2@tcp(db:3306)/prov\n", nil, "provisioning_db.dsn", `"u:xxxxx@tcp(db:3306)/prov"`, "holds a password"},
		{"SQLiteDSN", "provisioning_db:\n  dsn: worker.db?cache=shared\n", nil, "provisioning_db.dsn", `"worker.db?cache=shared"`, "is not a sqlite file path"},
		{"SampleRetentionShort", "analytics:\n  sample_retention: 10m\n", nil, "analytics.sample_retention", `"10m0s"`, "is below 1h"},
		{"RollupsShorterThanSamples", "analytics:\n  sample_retention: 720h\n  rollup_retention: 24h\n", nil, "analytics.rollup_retention", `"24h0m0s"`, "is below analytics.sample_retention (720h0m0s)"},
		{"Migrations", "state_store:\n  migrations: sometimes\n", nil, "state_store.migrations", `"sometimes"`, "is not one of auto, verify"},
		{"KMHTTP", "km:\n  url: http://km:8443\n", nil, "km.url", `"http://km:8443"`, "is not an https:// URL"},
		{"KMNoCA", "km:\n  url: https://km:8443\n", nil, "km.ca_file", `""`, "is required with km.url"},
		{"KMMissingFile", sub("km:\n  url: https://km:8443\n  ca_file: @DIR@/nope.pem\n  cert_file: c\n  key_file: k\n"), nil, "km.ca_file", `"` + dir + `/nope.pem"`, "does not exist"},
		{"KMWithoutURL", "km:\n  cert_file: /etc/worker/client.pem\n", nil, "km.cert_file", `"/etc/worker/client.pem"`, "without km.url"},
		{"CIDRSyntax", "provisioning:\n  source_cidr: 10.0.0.300/24\n", nil, "provisioning.source_cidr", `"10.0.0.300/24"`, "is not a CIDR"},
		{"CIDRHostBits", "provisioning:\n  source_cidr: 10.0.0.5/24\n", nil, "provisioning.source_cidr", `"10.0.0.5/24"`, "has host bits set (want the network 10.0.0.0/24"},
		{"CIDRWorld", "provisioning:\n  source_cidr: 0.0.0.0/0\n", nil, "provisioning.source_cidr", `"0.0.0.0/0"`, "allow_any_source"},
		{"CIDRAddress", "provisioning:\n  source_cidr: 10.0.0.5\n", nil, "provisioning.source_cidr", `"10.0.0.5"`, "is an address, not a network (want a CIDR such as 10.0.0.5/32)"},
		{"ManagementPort", "provisioning:\n  management_port: 70000\n", nil, "provisioning.management_port", `"70000"`, "want 0 to 65535"},
		{"KeyFileMissing", sub("provisioning:\n  encryption_key_file: @DIR@/km.keys\n"), nil, "provisioning.encryption_key_file", `"` + dir + `/km.keys"`, "does not exist"},
		{"LogLevel", "logging:\n  level: verbose\n", nil, "logging.level", `"verbose"`, "is not one of debug, info, warn, error"},
		{"ProcessLogPath", "logging:\n  dir: /var/log/worker\n  process_log: /var/log/x.log\n", nil, "logging.process_log", `"/var/log/x.log"`, "plain file name"},
		{"CustomerLogsNoDir", "logging:\n  customer_logs: true\n", nil, "logging.customer_logs", `"true"`, "needs logging.dir"},
		{"LogDirRelative", "logging:\n  dir: log\n", nil, "logging.dir", `"log"`, "is not an absolute path"},
		{"Jitter", "schedule:\n  jitter: 1.5\n", nil, "schedule.jitter", `"1.5"`, "want 0 <= jitter < 1"},
		{"IntervalTooShort", "schedule:\n  intervals:\n    server: 500ms\n", nil, "schedule.intervals.server", `"500ms"`, "is below 1s"},
		{"IntervalKind", "schedule:\n  intervals:\n    Big Servers: 1m\n", nil, "schedule.intervals.Big Servers", `"Big Servers"`, "is not a resource kind"},
		{"KindsName", "schedule:\n  kinds: [Servers]\n", nil, "schedule.kinds[0]", `"Servers"`, "is not a resource kind"},
		{"KindsTwice", "schedule:\n  kinds: [server, server-status, server]\n", nil, "schedule.kinds[2]", `"server"`, "is listed twice"},
		{"IntervalNotDuration", "schedule:\n  intervals:\n    server: often\n", nil, "schedule.intervals.server", `"often"`, "is not a duration"},
		{"RetryMultiplier", "retry:\n  multiplier: 0.5\n", nil, "retry.multiplier", `"0.5"`, "is below 1"},
		{"RetryAttempts", "retry:\n  max_attempts: -1\n", nil, "retry.max_attempts", `"-1"`, "out of range"},
		{"DeadAfter", "pinger:\n  dead_after: -2\n", nil, "pinger.dead_after", `"-2"`, "out of range"},
		{"PingerDuration", "pinger:\n  interval: 10\n", nil, "pinger.interval", `"10"`, "without a unit"},
		{"MetricsNoPort", "metrics:\n  listen: localhost\n", nil, "metrics.listen", `"localhost"`, "is not host:port"},
		{"MetricsBadPort", "metrics:\n  listen: \"127.0.0.1:99999\"\n", nil, "metrics.listen", `"127.0.0.1:99999"`, "no port between 1 and 65535"},
		{"GuestLogsNoHostKeys", "guest_logs:\n  interval: 5m\n", nil, "guest_logs.interval", `"5m0s"`, "needs guest_logs.known_hosts_file"},
		{"GuestLogsRelativeFile", "guest_logs:\n  files: [var/log/syslog]\n", nil, "guest_logs.files[0]", `"var/log/syslog"`, "is not an absolute path"},
		{"AccountNoCustomer", "accounts:\n  - id: acct-1\n", nil, "accounts[0].customer", `""`, ""},
		{"AccountDuplicate", "accounts:\n  - {id: a, customer: c}\n  - {id: a, customer: d}\n", nil, "accounts[1].id", `"a"`, "is also the id of accounts[0]"},
		{"AccountSecretSetting", "accounts:\n  - {id: a, customer: c, settings: {password: hunter2}}\n", nil, "accounts[0].settings.password", service.Redacted, "looks like a secret"},
		{"AccountUnknownKey", "accounts:\n  - {id: a, customer: c, region: eu}\n", nil, "accounts[0].region", `"region"`, "is not a key of accounts[0]"},
		{"InlinePassword", "mq:\n  url: amqp://u@mq:5672/\n  password: hunter2\n", nil, "mq.password", service.Redacted, "is a secret written into the file"},
		{"PasswordTwice", "mq:\n  url: amqp://u@mq:5672/\n  password_env: A\n  password_file: /x\n", nil, "mq.password", `""`, "is given more than once"},
		{"PasswordFileMissing", sub("mq:\n  url: amqp://u@mq:5672/\n  password_file: @DIR@/none\n"), nil, "mq.password_file", `"` + dir + `/none"`, "does not exist"},
		{"PasswordFileOpen", sub("mq:\n  url: amqp://u@mq:5672/\n  password_file: @DIR@/open-pw\n"), nil, "mq.password_file", `"` + dir + `/open-pw"`, "is accessible by group or others (mode 0644): chmod 600 it"},
		{"PasswordFileEmpty", sub("mq:\n  url: amqp://u@mq:5672/\n  password_file: @DIR@/empty-pw\n"), nil, "mq.password_file", `"` + dir + `/empty-pw"`, "is empty"},
		{"PasswordEnvUnset", "mq:\n  url: amqp://u@mq:5672/\n  password_env: NOT_SET\n", nil, "mq.password_env", `"NOT_SET"`, "is not set"},
		{"PasswordExpansionUnset", "provisioning_db:\n  driver: mysql\n  dsn: u@tcp(db:3306)/p\n  password: ${NOT_SET}\n", nil, "provisioning_db.password", service.Redacted, "names the environment variable NOT_SET, which is not set"},
		{"PasswordWithoutUser", "mq:\n  url: amqp://mq:5672/\n  password_env: PW\n", []string{"PW=x"}, "mq.url", `"amqp://mq:5672/"`, "names no user"},
		{"EnvNotInt", "", []string{"WORKER_MQ_PREFETCH=abc"}, "mq.prefetch", `"abc"`, "is not an integer"},
		{"EnvBadDuration", "", []string{"WORKER_RETRY_BUDGET=1 day"}, "retry.budget", `"1 day"`, "is not a duration"},
		{"EnvUnknown", "", []string{"WORKER_MQ_URLL=amqp://mq/"}, "WORKER_MQ_URLL", service.Redacted, "names no key"},
		{"Alias", "a: &x 5s\nprocess:\n  handler_timeout: *x\n", nil, "a", `"a"`, "is not a key of the file"},
		{"NotAMapping", "- a\n- b\n", nil, "(file)", `"(a list)"`, "is not a mapping of sections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := service.Parse("worker.yaml", []byte(tc.doc), tc.env)
			require.Error(t, err)
			var ce *service.ConfigError
			require.True(t, errors.As(err, &ce), "%T: %v", err, err)
			msg := err.Error()
			require.Equal(t, tc.key, ce.Key, msg)
			require.True(t, strings.HasPrefix(msg, "worker.yaml"), "names the file: %s", msg)
			require.Contains(t, msg, ": "+tc.key, "names the key")
			if tc.env == nil || ce.Env == "" {
				require.Contains(t, msg, ": "+tc.value+" ", "names the value")
			} else {
				require.Contains(t, msg, "(from "+ce.Env+"): "+tc.value+" ", "names the variable and the value")
			}
			require.Contains(t, msg, tc.problem)
			require.NotContains(t, msg, "\n", "one line")
			require.NotContains(t, msg, "hunter2", "no secret in a message")
		})
	}
}

// TestSecretFileOwner: a password file owned by another user is refused.
func TestSecretFileOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "pw")
	writeFile(t, path, "pw\n", 0o600)
	require.NoError(t, os.Chown(path, 12345, 12345))
	_, err := service.Parse("worker.yaml", []byte("mq:\n  url: amqp://u@mq:5672/\n  password_file: "+path+"\n"), nil)
	require.ErrorContains(t, err, `worker.yaml:3: mq.password_file: "`+path+`" is owned by uid 12345, not by this process's user (uid 0) or root: chown it`)
}

// TestBadLegacy: values of the classic files that cannot be converted are
// errors naming the file, the key and the value.
func TestBadLegacy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, content, key, value string
	}{
		{"MQPort", service.LegacyMQ, "mqHost=mq\nmqPort=amqp\n", "mqPort", `"amqp"`},
		{"Prefetch", service.LegacyMQ, "mqPrefetch=-4\n", "mqPrefetch", `"-4"`},
		{"DBPort", service.LegacyWorker, "provisioningDBHost=db\nprovisioningDBName=p\nprovisioningDBPort=x\n", "provisioningDBPort", `"x"`},
		{"DBName", service.LegacyWorker, "provisioningDBHost=db\n", "provisioningDBName", `""`},
		{"Bool", service.LegacyPersistence, "dasein.persist.autoCreate=maybe\n", "dasein.persist.autoCreate", `"maybe"`},
		{"SourceCIDR", service.LegacyProvisioning, "SOURCE_CIDR=somewhere\n", "SOURCE_CIDR", `"somewhere"`},
		{"KMPort", service.LegacyKMClient, "KM_HOST=km\nKM_PORT=99999\n", "KM_PORT", `"99999"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := service.ImportLegacy(map[string][]byte{tc.file: []byte(tc.content)}, service.ImportOptions{})
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.file+": "+tc.key+": "+tc.value+" "), err.Error())
		})
	}
	_, err := service.ImportLegacy(map[string][]byte{"other.cfg": nil}, service.ImportOptions{})
	require.ErrorContains(t, err, `"other.cfg" is not a classic file`)
	_, err = service.ImportLegacyDir(t.TempDir(), service.ImportOptions{})
	require.ErrorContains(t, err, "holds none of")
	_, err = service.Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}
