// Package service is the configuration of the worker run as the classic
// service: one YAML file, WORKER_* environment overrides, secrets by
// reference, a mapping onto the SDK's worker.Config, the accounts
// bootstrap, and an importer of the classic service's .cfg and .properties
// files. The service binaries (examples/workers) are built on it.
//
// # The file
//
// One YAML document whose sections mirror the classic files:
//
//	section          classic file                     maps to
//	process          (the init scripts)               worker.Config Role, Concurrency, HandlerTimeout, …
//	mq               mq.cfg                           worker.Config.MQ, Topology.Prefix
//	provisioning_db  worker.properties                persist.Config.Provisioning
//	analytics_db     worker.properties                persist.Config.Analytics
//	state_store      dasein-persistence.properties    persist.Config.Migrations, DeletionGrace, …
//	km               enstratus-km-client.cfg          km.NewClient (worker.Config.Credentials)
//	provisioning     enstratus-provisioning.cfg       km.LoadKeyFile (Keyring), SourceCIDR, jobs
//	logging          (log4j)                          the process log and logging.CustomerHandler
//	pinger           (bin/pinger)                     interval, probe_interval, dead_after
//	schedule         —                                poller.Config, per-kind intervals ([Config.Interval]), kinds polled ([Config.Polls])
//	retry            —                                worker.RetryPolicy
//	guest_logs       —                                worker.GuestLogsConfig
//	accounts         —                                accounts.Account entries ([Bootstrap])
//
// See examples/workers/worker.yaml for a commented example and [Config]'s
// fields for every key and its default; [Check] prints the effective
// configuration with the defaults filled in.
//
// [Load] decodes the file with go.yaml.in/yaml/v3, strictly: an unknown
// key, a list where a mapping belongs, a number where a string belongs
// (quote it), a duration without a unit ("30" instead of "30s"), a YAML
// alias, are all refused. Every error is a [*ConfigError] whose one-line
// message names the file and line, the key path, the value (redacted when
// it is a secret) and what is expected:
//
//	worker.yaml:4: mq.url: "amqx://mq:5672/" is not an amqp:// or amqps:// URL with a host (want "memory" or amqp://user@host:5672/vhost)
//	worker.yaml:9: provisioning.source_cidr: "10.0.0.5/24" has host bits set (want the network 10.0.0.0/24, or 10.0.0.5/32 for this one address)
//
// Values are checked where the SDK would only check them later: MySQL DSNs
// with go-sql-driver/mysql's ParseDSN, AMQP and key-service URLs, CIDRs,
// ranges, enumerations, and that the files named (key files, TLS files,
// known_hosts) exist.
//
// # Environment overrides
//
// WORKER_<SECTION>_<KEY>, the key path in upper case with "_" for ".",
// sets any scalar key: WORKER_MQ_URL, WORKER_PROVISIONING_DB_DSN,
// WORKER_SCHEDULE_BUDGET_PER_SECOND. It wins over the file. A WORKER_*
// variable that names no key is an error (a typo must not pass
// unnoticed), except WORKER_CONFIG (the file's path, read by the binaries)
// and variables the file itself references as secrets. Errors about a
// value from the environment name the variable.
//
// # Secrets
//
// The passwords of mq, provisioning_db and analytics_db are given by
// reference: password_file (a regular file readable by its owner only, mode
// 0600, as km's key files; its trailing newline is dropped), password_env
// (a variable's name), or password: "${NAME}". A WORKER_*_PASSWORD
// override is a reference too. A password written into the file — as
// password, or inside mq.url or a DSN — is refused unless
// allow_inline_secrets: true. Master keys are never in the file:
// provisioning.encryption_key_file names the key file (km.LoadKeyFile).
// Resolved secrets live in the Config's unexported part, so neither
// yaml.Marshal, fmt, [Check] nor any error shows them; [Config.Worker]
// splices them into the URL and DSNs it hands the SDK.
//
// # Running
//
// A service binary loads the file, builds the SDK's configuration and
// seeds the account registry:
//
//	cfg, err := service.Load(path, os.Environ())
//	wc, closer, err := cfg.Worker()      // opens key files, the km client, log files
//	defer closer.Close()
//	w, err := worker.New(ctx, wc)
//	w.Register(serverPoller, cfg.Interval("server", time.Minute))
//	_, err = service.Bootstrap(ctx, w, cfg) // accounts missing from the registry
//	err = w.Run(ctx)
//
// The pinger section holds values only (interval, probe_interval,
// dead_after: missed heartbeats before a process is taken for dead); the
// pinger process reads them.
//
// # The classic files
//
// [ImportLegacy] (or [ImportLegacyDir]) reads mq.cfg, worker.properties,
// dasein-persistence.properties, enstratus-km-client.cfg and
// enstratus-provisioning.cfg — all as Java properties, with
// github.com/magiconair/properties, "${…}" expansion off — into a Config.
// Host, port, user and database keys are assembled into mq.url and the
// DSNs; a bare SOURCE_CIDR address becomes a /32. Secrets (mqPassword,
// provisioningDBPass, analyticsDBPass) are never copied into the Config:
// each becomes a *_file reference into ImportOptions.SecretsDir, listed in
// Imported.Secrets, and written there (mode 0600, never overwriting) only
// with ImportOptions.WriteSecrets. Every key that has no counterpart (the
// Riak settings, the Java keystore, the classic KM encryption key, …) is
// listed in Imported.Unmapped with its file and the reason; values never
// appear there.//
// # Backups
//
// [Backup] writes one gzip'd tar: manifest.json ([BackupManifest]: every
// file with its size, mode and SHA-256), config/… (the configuration
// file's directory, without the log directory, the SQLite database files,
// and the files that hold secrets: master key files, the km client key,
// password files, each named in the manifest's left_out and a warning), and
// store.jsonl.gz, persist's consistent, engine-neutral export of the
// databases (see persist, "Backups"). [Restore] checks every file against
// the manifest before writing anything, imports the export into the
// databases of the Config it is given, which must be new and may be of the
// other engine (SQLite to MySQL/MariaDB and back), and writes the
// configuration files into a new directory. Key and password files are put
// back by hand.
package service
