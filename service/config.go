package service

import (
	"slices"
	"time"
)

// Config is the service's configuration file: one YAML document whose
// sections mirror the classic service's files. Load reads it; the zero value
// of a field stands for its default, which [Check] shows. Secrets are never
// held in exported fields once loaded from a reference: a password given as
// password_file, password_env or "${NAME}" is resolved into the Config's
// private part, so printing a Config (yaml, fmt, Check) cannot show it.
type Config struct {
	// AllowInlineSecrets accepts secrets written into the file itself
	// (password: literal, a password inside mq.url or a DSN). Default false:
	// a secret is given by reference only.
	AllowInlineSecrets bool `yaml:"allow_inline_secrets,omitempty"`

	Process        ProcessSection      `yaml:"process,omitempty"`
	MQ             MQSection           `yaml:"mq,omitempty"`              // mq.cfg
	ProvisioningDB DBSection           `yaml:"provisioning_db,omitempty"` // worker.properties
	AnalyticsDB    DBSection           `yaml:"analytics_db,omitempty"`    // worker.properties
	StateStore     StateStoreSection   `yaml:"state_store,omitempty"`     // dasein-persistence.properties
	KM             KMSection           `yaml:"km,omitempty"`              // enstratus-km-client.cfg
	Provisioning   ProvisioningSection `yaml:"provisioning,omitempty"`    // enstratus-provisioning.cfg
	Logging        LoggingSection      `yaml:"logging,omitempty"`
	Pinger         PingerSection       `yaml:"pinger,omitempty"`
	Schedule       ScheduleSection     `yaml:"schedule,omitempty"`
	Retry          RetrySection        `yaml:"retry,omitempty"`
	GuestLogs      GuestLogsSection    `yaml:"guest_logs,omitempty"`
	Metrics        MetricsSection      `yaml:"metrics,omitempty"`
	Analytics      AnalyticsSection    `yaml:"analytics,omitempty"`
	// Accounts are put into the account registry at start when missing
	// (see [Bootstrap]).
	Accounts []AccountEntry `yaml:"accounts,omitempty"`

	meta *meta // where each key came from; nil for a Config built in code
	// secrets holds the resolved secrets by key path ("mq.password").
	secrets map[string]string
}

// ProcessSection holds the process-wide settings of worker.Config.
type ProcessSection struct {
	// Role is all, publisher, subscriber or pinger. Default all. The
	// binaries' subcommands (workers publisher, …) set it.
	Role string `yaml:"role,omitempty"`
	// Concurrency is the most handlers running at once. Default 64.
	Concurrency int `yaml:"concurrency,omitempty"`
	// HandlerTimeout bounds one attempt of a handler. Default 1m.
	HandlerTimeout Duration `yaml:"handler_timeout,omitempty"`
	// ShutdownTimeout bounds the shutdown. Default 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout,omitempty"`
	// MaxPayloadBytes is the largest encoded action. Default 1048576.
	MaxPayloadBytes int `yaml:"max_payload_bytes,omitempty"`
}

// MQSection is the message queue (the classic mq.cfg).
type MQSection struct {
	// URL is "memory" (the embedded transport, the default; one process
	// only), "sqlite:<path>" (the durable SQLite queue, shared by the
	// processes of one machine; "sqlite" puts it beside provisioning_db's
	// file) or amqp[s]://user@host:5672/vhost. Its password is given by
	// Password*.
	URL string `yaml:"url,omitempty"`
	// Password of the URL's user: inline only with allow_inline_secrets
	// (or "${NAME}" for an environment variable).
	Password string `yaml:"password,omitempty"`
	// PasswordFile is a file (mode 0600) holding the password.
	PasswordFile string `yaml:"password_file,omitempty"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env,omitempty"`
	// Prefix is put before every queue name. Default "worker".
	Prefix string `yaml:"prefix,omitempty"`
	// Consumers per queue. Default 1.
	Consumers int `yaml:"consumers,omitempty"`
	// Prefetch per consumer. Default 2 × process.concurrency.
	Prefetch int `yaml:"prefetch,omitempty"`
	// PublishTimeout bounds one publish. Default 30s.
	PublishTimeout Duration `yaml:"publish_timeout,omitempty"`
	// PackActions is how many actions of one publish bound for one queue
	// travel packed in one RabbitMQ message (worker.MQConfig.PackActions).
	// Default 256; 1 sends every action on its own.
	PackActions int `yaml:"pack_actions,omitempty"`
	// PackBytes bounds the body of one packed message. Default 256 KiB (at
	// most process.max_payload_bytes).
	PackBytes int `yaml:"pack_bytes,omitempty"`
}

// DBSection is one database (the classic worker.properties).
type DBSection struct {
	// Driver is sqlite or mysql. Default sqlite.
	Driver string `yaml:"driver,omitempty"`
	// DSN is a file path for sqlite (default worker.db; ":memory:") or a
	// go-sql-driver DSN user@tcp(host:3306)/db for mysql, without password.
	DSN string `yaml:"dsn,omitempty"`
	// Password of the DSN's user (mysql), by reference as in MQSection.
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty"`
	// Pool and timeouts (see persist.DBConfig; 0 means its default).
	MaxOpenConns    int      `yaml:"max_open_conns,omitempty"`
	MaxIdleConns    int      `yaml:"max_idle_conns,omitempty"`
	ConnMaxLifetime Duration `yaml:"conn_max_lifetime,omitempty"`
	ConnectTimeout  Duration `yaml:"connect_timeout,omitempty"`
	ReadTimeout     Duration `yaml:"read_timeout,omitempty"`
	WriteTimeout    Duration `yaml:"write_timeout,omitempty"`
}

// StateStoreSection tunes the stored state (the classic
// dasein-persistence.properties; the state lives in provisioning_db).
type StateStoreSection struct {
	// Migrations is auto (apply at start) or verify (only check). Default auto.
	Migrations string `yaml:"migrations,omitempty"`
	// DeletionGrace is how long a resource must be missing before it is
	// deleted. Default 5m.
	DeletionGrace Duration `yaml:"deletion_grace,omitempty"`
	// LaunchConsistencyWindow: see worker.Config. Default 2m.
	LaunchConsistencyWindow Duration `yaml:"launch_consistency_window,omitempty"`
}

// KMSection is the remote key service (the classic
// enstratus-km-client.cfg). Leave URL empty for the embedded key manager
// (provisioning.encryption_key_file).
type KMSection struct {
	// URL of the key service, https only, e.g. https://km.internal:8443.
	URL string `yaml:"url,omitempty"`
	// ServerName the key service's certificate must carry. Default: URL's host.
	ServerName string `yaml:"server_name,omitempty"`
	// CAFile is the PEM bundle of the pinned private CA. Required with URL.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are this worker's client certificate and key
	// (PEM; KeyFile mode 0600). Required with URL.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// Timeout bounds each request. Default 30s.
	Timeout Duration `yaml:"timeout,omitempty"`
	// CredentialCacheTTL is how long credentials are cached. Default 5m.
	CredentialCacheTTL Duration `yaml:"credential_cache_ttl,omitempty"`
}

// ProvisioningSection is the classic enstratus-provisioning.cfg.
type ProvisioningSection struct {
	// EncryptionKeyFile holds the embedded key manager's master keys (lines
	// id:version:key, see km.LoadKeyFile; mode 0600). Default none.
	EncryptionKeyFile string `yaml:"encryption_key_file,omitempty"`
	// SourceCIDR is where connections to guests come from (SOURCE_CIDR),
	// a network such as 10.0.0.0/24.
	SourceCIDR string `yaml:"source_cidr,omitempty"`
	// AllowAnySource accepts a source_cidr of /0.
	AllowAnySource bool `yaml:"allow_any_source,omitempty"`
	// ManagementPort is the guests' SSH port. Default 22.
	ManagementPort int `yaml:"management_port,omitempty"`
	// JobCheckInterval and JobTimeout of tracked jobs. Defaults 10s, 1h.
	JobCheckInterval Duration `yaml:"job_check_interval,omitempty"`
	JobTimeout       Duration `yaml:"job_timeout,omitempty"`
}

// LoggingSection is the process log and the per-customer logs.
type LoggingSection struct {
	// Dir is the log directory. Default: none (the process log goes to
	// stderr and customer_logs must be off).
	Dir string `yaml:"dir,omitempty"`
	// ProcessLog is the process log's file name in Dir, or "stderr".
	// Default "stderr".
	ProcessLog string `yaml:"process_log,omitempty"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level,omitempty"`
	// Format is text or json. Default text.
	Format string `yaml:"format,omitempty"`
	// CustomerLogs copies each customer's records to Dir/<customer>/.
	CustomerLogs bool `yaml:"customer_logs,omitempty"`
	// CustomerFileName is each customer's file name. Default worker.log.
	CustomerFileName string `yaml:"customer_file_name,omitempty"`
	// Rotation and retention of every file: MaxSizeMB (default 100),
	// MaxBackups (default 10; negative keeps all), MaxAgeDays (default 30;
	// negative keeps all), Compress.
	MaxSizeMB  int  `yaml:"max_size_mb,omitempty"`
	MaxBackups int  `yaml:"max_backups,omitempty"`
	MaxAgeDays int  `yaml:"max_age_days,omitempty"`
	Compress   bool `yaml:"compress,omitempty"`
}

// AnalyticsSection sets how long the servers' usage samples are kept in
// the analytics database (worker.AnalyticsConfig).
type AnalyticsSection struct {
	// SampleRetention is how long raw samples are kept, at least 1h.
	// Default 168h (7 days).
	SampleRetention Duration `yaml:"sample_retention,omitempty"`
	// RollupRetention is how long hourly rollups are kept, at least
	// SampleRetention. Default 9600h (400 days).
	RollupRetention Duration `yaml:"rollup_retention,omitempty"`
}

// MetricsSection configures the Prometheus endpoint of the service's
// processes.
type MetricsSection struct {
	// Listen is the host:port where a process serves /metrics, e.g.
	// "127.0.0.1:9464". Default empty: no metrics and no listening socket.
	// Several processes on one machine need one address each (set
	// WORKER_METRICS_LISTEN per process, as the systemd units set their log).
	Listen string `yaml:"listen,omitempty"`
}

// PingerSection configures heartbeats.
type PingerSection struct {
	// Interval between heartbeats. Default 30s.
	Interval Duration `yaml:"interval,omitempty"`
	// ProbeInterval between checks of the other processes' heartbeats.
	// Default 10s.
	ProbeInterval Duration `yaml:"probe_interval,omitempty"`
	// DeadAfter is how many heartbeats a process may miss before it is
	// taken for dead. Default 3.
	DeadAfter int `yaml:"dead_after,omitempty"`
}

// ScheduleSection is the poll schedule (poller.Config) and the per-kind
// intervals.
type ScheduleSection struct {
	// Intervals is each resource kind's poll interval, e.g. server: 1m.
	Intervals map[string]Duration `yaml:"intervals,omitempty"`
	// Kinds, when set, are the only resource kinds polled (e.g. [server,
	// server-status]); the service registers no poller for the others.
	// Default: every kind the service offers ([Config.Polls]).
	Kinds []string `yaml:"kinds,omitempty"`
	// Jitter in [0, 1). Default 0.1.
	Jitter float64 `yaml:"jitter,omitempty"`
	// InitialSpread spreads the first polls. Default 0: none.
	InitialSpread Duration `yaml:"initial_spread,omitempty"`
	// InFlightTimeout is the in-flight lease. Default 5m.
	InFlightTimeout Duration `yaml:"in_flight_timeout,omitempty"`
	// BatchSize of a dispatch. Default 1000.
	BatchSize int `yaml:"batch_size,omitempty"`
	// Budget is each account's API budget. Default 10/s, burst 20.
	Budget BudgetSection `yaml:"budget,omitempty"`
	// Backoff after failed polls. Defaults 5s, 15m, 2.
	Backoff BackoffSection `yaml:"backoff,omitempty"`
	// AccountSyncInterval is how often the registry's changes are read. Default 5s.
	AccountSyncInterval Duration `yaml:"account_sync_interval,omitempty"`
	// Sharing is how several publisher processes share the schedule
	// (worker.ScaleConfig.Mode): "" (shared through leases in the
	// provisioning database when mq.url is RabbitMQ), "shared" or "single".
	Sharing string `yaml:"sharing,omitempty"`
	// LeasePeriod is how long a publisher holds its shards of the schedule
	// without renewing them. Default 15s.
	LeasePeriod Duration `yaml:"lease_period,omitempty"`
	// Shards is how many shards the accounts are spread over; the same in
	// every publisher. Default 64.
	Shards int `yaml:"shards,omitempty"`
}

// BudgetSection is a token bucket.
type BudgetSection struct {
	PerSecond float64 `yaml:"per_second,omitempty"`
	Burst     int     `yaml:"burst,omitempty"`
}

// BackoffSection is the backoff of failed polls.
type BackoffSection struct {
	InitialInterval Duration `yaml:"initial_interval,omitempty"`
	MaxInterval     Duration `yaml:"max_interval,omitempty"`
	Multiplier      float64  `yaml:"multiplier,omitempty"`
}

// RetrySection is worker.RetryPolicy.
type RetrySection struct {
	// Budget is how long failures are retried. Default 24h.
	Budget Duration `yaml:"budget,omitempty"`
	// MaxAttempts, if positive, caps the attempts. Default 0: none.
	MaxAttempts int `yaml:"max_attempts,omitempty"`
	// Backoff: defaults 100ms, 1h, 2, jitter 0.2, inline_max 1s.
	InitialInterval Duration `yaml:"initial_interval,omitempty"`
	MaxInterval     Duration `yaml:"max_interval,omitempty"`
	Multiplier      float64  `yaml:"multiplier,omitempty"`
	Jitter          float64  `yaml:"jitter,omitempty"`
	InlineMax       Duration `yaml:"inline_max,omitempty"`
}

// GuestLogsSection is the collection of guest VM logs over SSH.
type GuestLogsSection struct {
	// Interval of collection per watched account. Default 0: off.
	Interval Duration `yaml:"interval,omitempty"`
	// ServerKind is the stored kind of servers. Default server.
	ServerKind string `yaml:"server_kind,omitempty"`
	// KnownHostsFile checks the guests' host keys. Required with Interval.
	KnownHostsFile string `yaml:"known_hosts_file,omitempty"`
	// Files are the remote absolute paths. Default: guest.DefaultFiles.
	Files []string `yaml:"files,omitempty"`
	// Timeout per guest (default 30s), Concurrency (default 8), Port
	// (default 22), MaxReadBytes per file and collection (default 4 MiB).
	Timeout      Duration `yaml:"timeout,omitempty"`
	Concurrency  int      `yaml:"concurrency,omitempty"`
	Port         int      `yaml:"port,omitempty"`
	MaxReadBytes int64    `yaml:"max_read_bytes,omitempty"`
}

// AccountEntry is one account of the accounts bootstrap list: the fields
// of accounts.Account.
type AccountEntry struct {
	ID           string              `yaml:"id"`
	Customer     string              `yaml:"customer"`
	Provider     string              `yaml:"provider,omitempty"`
	Credential   string              `yaml:"credential,omitempty"`
	Settings     map[string]any      `yaml:"settings,omitempty"`
	Intervals    map[string]Duration `yaml:"intervals,omitempty"`
	Labels       map[string]string   `yaml:"labels,omitempty"`
	Paused       bool                `yaml:"paused,omitempty"`
	PausedReason string              `yaml:"paused_reason,omitempty"`
}

// Duration is a time.Duration written as a string with a unit ("30s",
// "5m", "1h30m") in the file.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalYAML writes d as "30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads "30s"; Load checks the value first, so its errors
// name the key.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Polls reports whether kind is polled: schedule.kinds lists it, or is
// empty (every kind).
func (c *Config) Polls(kind string) bool {
	return len(c.Schedule.Kinds) == 0 || slices.Contains(c.Schedule.Kinds, kind)
}

// Interval is the configured poll interval of kind (schedule.intervals),
// or def when the file names none: what a service binary passes to
// worker.Register.
func (c *Config) Interval(kind string, def time.Duration) time.Duration {
	if d, ok := c.Schedule.Intervals[kind]; ok && d > 0 {
		return d.D()
	}
	return def
}
