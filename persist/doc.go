// Package persist stores what the worker knows in a relational database
// through GORM: the current state of every observed cloud resource, its
// history, the outbox of change and job events, tracked jobs, launch
// intents, the inbox of handled actions, guest log offsets, poison messages
// and deferred retries. It implements the root package's StateSink with
// [Store.Save].
//
// # Databases
//
// Two drivers are supported. [SQLite] (the default) is a pure-Go SQLite, no
// cgo: a file for a single machine ("worker.db" unless told otherwise) or
// ":memory:" for tests and demos. [MySQL] is MySQL or MariaDB for production,
// where publishers and subscribers on many machines share one database.
//
// A store has a provisioning database (current state, poison and deferred
// messages) and, optionally, a separate analytics database for history. With
// a separate analytics database, Save writes history to an outbox table in the
// provisioning database in the same transaction as the state it describes, and
// [Store.FlushHistory] moves it on; nothing is lost if the process stops in
// between, and copying twice is harmless.
//
// SQLite files run in WAL mode with a 10s busy timeout: one connection writes
// (transactions start with BEGIN IMMEDIATE, so concurrent writers queue
// instead of failing) while a small pool reads. ":memory:" uses a single
// connection for everything, because every connection to ":memory:" would
// otherwise see its own empty database.
//
// # Schema
//
// [Open] creates and upgrades the tables (all named worker_*) with versioned
// migrations recorded in worker_schema_migrations (and
// worker_analytics_schema_migrations for history). Several processes may start
// at once: they serialise on a MySQL named lock or on the SQLite write lock,
// and each migration runs once; the lock is released however a migration
// ends. A schema that is already current is only read, so the worker can run
// as a database user with nothing but SELECT, INSERT, UPDATE and DELETE. For
// deployments that keep DDL out of the worker altogether, run [Migrate] (the
// command examples/migrate does) as a privileged user before starting, and
// set [Config].Migrations to [MigrateVerify]: Open then only checks the
// schema, and fails with [ErrSchemaTooOld] when migrations are missing. A
// database migrated by a newer binary is refused with [ErrSchemaTooNew]. The
// provisioning migrations also own km's tables (km creates none; it checks
// them with km.CheckSchema): the de-identified credential table
// worker_km_secrets (version 9, which drops version 7's clear-text
// worker_km_credentials when it is empty, and otherwise leaves its rows for
// km.NewLocalStore to rewrite), and the key service's nonce and audit tables
// (version 10). Every column compared in their queries is binary on MySQL,
// so "acme " and "ACME" never match "acme", and their default collation is
// set to the server's binary NO PAD one.
//
// # Timeouts
//
// A MySQL connection is bounded by [DBConfig].ConnectTimeout (default 5s)
// from dial to authentication, so a wrong address, a server that is not
// MySQL or one that accepts and never answers fails in bounded time, saying
// that no MySQL server answered at host:port. Every read and write is
// bounded by ReadTimeout and WriteTimeout (default 30s), so a frozen server
// fails callers instead of holding them until their context ends. There is
// no server-side statement timeout by default: MySQL's max_execution_time
// covers SELECT only and MariaDB's max_statement_time has another name and
// unit, so a DSN parameter for one fails on the other; add the one your
// server knows to the DSN if you want it.
//
// # Change detection
//
// [Store.Save] compares each observation with the stored row by the SHA-256 of
// its canonical attributes (a JSON object with sorted keys, so key order and
// whitespace do not matter). Unchanged resources cost one read and no write;
// observations older than the stored state are ignored; changes bump the row's
// version, append history and come back as [state.Change] values, all in one
// transaction. Concurrent writers to the same resource are reconciled with
// optimistic concurrency on the version, and the transaction is retried.
// Concurrent saves share transactions (group commit): a save that finds no
// write of the store's in flight commits alone at once; the saves that arrive
// while one is in flight are committed together right after it, in one
// transaction (one fsync), never two saves of the same resource together.
// A failed group is written again save by save, so one save's failure is its
// own. No save waits longer than the transaction in flight and its own.
// Partial observations (a status-only listing) patch the stored attributes
// instead of replacing them, so a resource never flaps between two shapes.
//
// # Deleted resources
//
// After the last page of a complete listing, [Store.Sweep] compares the
// stored resources with what the listing saw. A resource missed once is
// marked; one still missing after a grace period is deleted, leaving a
// tombstone that keeps its version so that a resource seen again continues
// the sequence. A steady state (everything seen) writes nothing.
//
// # Events, jobs and launches
//
// Every change Save and Sweep record, and every job [Store.FinishJob]
// finishes, also writes an [Event] to the outbox table worker_outbox in the
// same transaction; a relay publishes [Store.PendingEvents] and marks them
// with [Store.MarkEventsSent]. [Store.TrackJob] records a running cloud
// operation and FinishJob ends it exactly once, whichever worker gets there
// first. [Store.ClaimLaunch] makes a server launch idempotent by the action's
// key. [Store.GuestOffset] and [Store.PutGuestOffset] keep the guest log
// collector's offsets.
//
// # Usage samples
//
// The servers' usage (CPU, memory, disk and network, [state.Sample]) is a
// time series, not state: [Store.AppendSamples] appends it to the analytics
// database without change detection or events, and keeps an hourly rollup
// beside it. Three tables (analytics migration 2):
//
//	worker_usage_samples     raw samples; PRIMARY KEY (hour, account, server, at), no other index
//	  account VARCHAR(128), server VARCHAR(255)  the account and the server's provider id
//	  hour BIGINT                                 at - at % 3600
//	  at BIGINT                                   Unix seconds (UTC) the sampling interval ended
//	  cpu INT, mem INT                            hundredths of a percent (0–10000)
//	  disk_read, disk_write, net_rx, net_tx BIGINT   bytes per second
//	worker_usage_hourly      PRIMARY KEY (account, server, hour), INDEX (hour)
//	  hour BIGINT                                 Unix seconds of the hour's start
//	  samples INT                                 raw samples it summarises
//	  <metric>_min, <metric>_avg, <metric>_max BIGINT   for cpu, mem, disk_read, disk_write, net_rx, net_tx
//	worker_usage_retention   one row: raw_before BIGINT, the cutoff of the last raw purge
//
// Times are integers, not DATETIME: 8 bytes on MySQL (4 on SQLite), the
// same arithmetic on both (an hour is at - at % 3600), and no time zone to
// get wrong. Both sample tables are SQLite WITHOUT ROWID tables (the rows
// live in the primary key's b-tree) and InnoDB tables clustered on it. The
// raw key leads with the hour, so a purge deletes the oldest range of the
// key, an hour's rollup reads one range per server, one server's samples
// are one seek per hour, and no second index is needed (an index on the
// time took a third of a sample's bytes). A sample takes about 47 bytes on
// a SQLite file and 200 on InnoDB (pages about half full: a poll's rows go
// to each server's place in the hour), rollup share included
// (BenchmarkAppendSamples). One server's rollups are one range of the
// hourly key; the hourly table's index on the hour serves its purge.
//
// Samples are written SampleBatch rows per INSERT, in one transaction with
// their rollups: a sample already stored (same account, server and time) is
// ignored (ON CONFLICT DO NOTHING; ON DUPLICATE KEY UPDATE at = at), and the
// rollup of each (server, hour) a batch touches is recomputed from the raw
// rows of that hour (INSERT … SELECT … GROUP BY, upserted), never
// incremented. So a redelivered poll, overlapping windows and samples that
// arrive late all count once, and a batch of duplicates writes no rollup.
//
// Retention: [Store.PurgeSamples] deletes raw samples before a cutoff
// rounded down to the hour (an hour's raw rows are all kept or all gone) and
// records the cutoff first; AppendSamples then drops samples older than it,
// since recomputing their hour from what is left would shrink a rollup that
// is right (on MySQL the append holds a shared lock on the cutoff row, so a
// purge waits for appends in flight). [Store.PurgeRollups] deletes rollups.
// Both delete in batches, oldest first. The root
// package's Worker keeps raw samples 7 days and rollups 400 days by
// default (Config.Analytics): 10,000 servers sampled every 20 seconds hold
// about 300 million raw rows and, after a year, 88 million rollups. Read
// them with [Store.UsageSamples] and [Store.UsageRollups] ([UsageHour]).
//
// # What a host calls, and what is the worker's protocol
//
// A host reads: [Store.Resource], [Store.Resources], [Store.History],
// [Store.UsageSamples], [Store.UsageRollups],
// [Store.Job], [Store.LaunchIntent], [Store.ListPoison], [Store.GetPoison]
// and [Store.Describe]. It writes observed state with [Store.Save] (the
// StateSink), and, when it opened the store itself, its own tables through
// [Store.DB] and exactly-once effects through [Store.RunOnce]; [Open],
// [Migrate] and [Store.Close] manage the store.
//
// The other methods are the steps of the worker's protocol, each used by
// one part of the root package's Worker through a small interface:
// [Store.Sweep] (the poll runner); [Store.TrackJob], [Store.RunningJobs] and
// [Store.FinishJob] (the job tracker); [Store.ClaimLaunch],
// [Store.RenewLaunch] and [Store.RecordLaunch] (the launcher);
// [Store.PendingEvents], [Store.MarkEventsSent] and [Store.PurgeSentEvents]
// (the outbox relay); [Store.Defer], [Store.DueDeferred] and
// [Store.DeleteDeferred] (retries parked by the subscriber, republished by
// the pump); [Store.AddPoison] and [Store.MarkPoisonReplayed] (poisoning
// and replay); [Store.FlushHistory] (the history copy);
// [Store.GuestOffset] and [Store.PutGuestOffset] (guest logs);
// [Store.PurgeInbox] (the inbox purge); [Store.AppendSamples] (the poll
// runner), [Store.PurgeSamples] and [Store.PurgeRollups] (the sample
// purges). They are exported so that the worker
// can use a store a host opened, and so that a host can implement
// worker.Store on a database of its own; a host that runs a worker does not
// call them: an event marked sent that was never published, or a launch
// claimed outside the launcher, breaks the guarantees the worker gives.
// Worker.Store gives hosts the reads alone.
//
// # Exactly-once effects (the inbox)
//
// [Store.RunOnce] records an action's type and idempotency key in the inbox
// (table worker_inbox) and runs the caller's database writes in the same
// transaction: the key is recorded if and only if the writes commit, so a
// redelivered action finds its key and its effect is not made twice, even
// when the process died between the commit and the acknowledgement. Keys
// are compared byte for byte (VARBINARY on MySQL: a VARCHAR under
// utf8mb4_bin ignores trailing spaces). [Store.PurgeInbox] deletes old
// records; the root package's Worker purges those older than its retention
// (7 days, or twice its retry budget).
//
// # Errors
//
// Errors wrap sentinels callers can branch on with errors.Is:
//
//   - [ErrUnavailable]: the database could not be used (unreachable, not
//     answering in time, read-only, out of connections, connection lost).
//     The call can succeed later: wait the outage out, or let the message be
//     redelivered.
//   - [ErrInvalid]: the input or configuration is refused, including values
//     the database itself refuses. Retrying cannot help: treat it as
//     permanent.
//   - [ErrNotFound]: the requested row does not exist.
//   - [ErrSchemaTooOld] and [ErrSchemaTooNew]: from [Open] and [Migrate],
//     the schema does not match the binary.
//
// A context that ends is reported as the context's error. Anything else is
// unexpected. The store logs nothing about a failed statement: the error is
// returned, for the caller to log once. Errors, and every formatter of
// [Config] and [DBConfig], name a MySQL database by its user, host and
// database, never its password.
//
// # Poison messages
//
// [Store.AddPoison] records any message, whatever it holds, so that poisoning
// fails only when the database does: text that is not UTF-8 is stored with
// its bad bytes written as \xNN, an overlong id is shortened
// deterministically, metadata and reason are bounded, and a payload over
// [MaxPoisonPayload] is kept truncated with its size and SHA-256
// ([Parked.Truncated]). Such a record cannot be replayed: check
// [Parked.Replayable] before sending a poison message again.//
// # Backups
//
// [Store.Export] writes every table the store owns (not the migration
// records) as one portable, engine-neutral archive, and [Import] (or
// [Store.Import]) loads it into a new database of either engine: an export
// from SQLite restores into MySQL/MariaDB, which is how an embedded
// deployment moves to production, and back.
//
// The archive is a gzip-compressed stream of JSON lines:
//
//	{"format":"stratusworks-worker-backup","version":1,"created_at":…,"provisioning":"sqlite","analytics":"sqlite","same_database":true,"schema":{"worker_schema_migrations":15,"worker_analytics_schema_migrations":2}}
//	{"table":"worker_resources","db":"provisioning","columns":[{"name":"account","kind":"text"},…],"rows":10000}
//	{"account":"acct-1","kind":"server",…}            one object per row, in primary-key order
//	{"table":"worker_outbox",…,"rows":250,"last_id":310}
//	…
//	{"trailer":{"rows":{"worker_resources":10000,…},"total":43316,"sha256":"…"}}
//
// Values are typed by the column's kind: int (a JSON number), text (a
// string; {"base64":"…"} if it is not UTF-8), bytes (base64, so binary ids,
// payloads and ciphertext survive), time (RFC 3339 with microseconds, UTC),
// bool; NULL is null. last_id is the table's sequence (SQLite's
// sqlite_sequence, MySQL's AUTO_INCREMENT less one), restored so that ids
// issued after a restore never collide with restored or purged ones. The
// trailer's SHA-256 covers every line before it: Import reads and checks the
// whole archive before writing anything, and refuses a truncated or altered
// one with [ErrBadArchive], one from a newer schema with [ErrSchemaTooNew],
// and a database that already holds rows with [ErrNotEmpty]. It then loads
// each table in one transaction of multi-row inserts. An archive of an
// older schema version loads into the current schema when the columns it
// lacks have defaults.
//
// Each database is read inside one read transaction (SQLite: a deferred
// transaction, a snapshot in WAL mode; MySQL: START TRANSACTION WITH
// CONSISTENT SNAPSHOT at REPEATABLE READ), so an export taken while the
// worker writes is consistent: every resource's version has its history row
// and its change event, and the worker resumes on the restored database
// without re-emitting or missing an event. Writers are not blocked, except
// on ":memory:", whose one connection the export holds; on a SQLite file
// the write-ahead log grows until the export ends (it cannot be
// checkpointed past the snapshot), and on MySQL the undo log does. A separate
// analytics database is read in a second transaction, after the first, so
// the pair is not one snapshot: history entries that [Store.FlushHistory]
// moved in between are in both the outbox and history, which is harmless
// (the next flush skips what history has), and none is in neither. Restored
// into a single database, the outbox's entries are merged into history.
//
// km's rows are exported as stored: de-identified and sealed under the
// master keys, which are not in the archive. Export returns (and logs) a
// warning saying so; keep the key files with the backup's secrets, or the
// restored credentials cannot be opened. [ExportOptions].Progress and
// [ImportOptions].Progress report rows per table; [TerminalProgress] draws
// them on a terminal.
//
// The engines' native tools are faster for a same-engine copy and are fine
// for disaster recovery: on MySQL/MariaDB, mariadb-dump (or mysqldump)
// --single-transaction --routines --hex-blob DB > dump.sql, which is
// consistent for InnoDB tables without locking them; on SQLite, the online
// backup API (sqlite3 worker.db ".backup backup.db") or VACUUM INTO
// 'backup.db', both consistent while the worker runs (copying the file
// alone is not, in WAL mode, unless the -wal file is copied with it at a
// checkpoint). Neither moves data between engines.
package persist
