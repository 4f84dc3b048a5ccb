// Package persist stores what the worker knows in a relational database
// through GORM: the current state of every observed cloud resource, its
// history, the outbox of change and job events, tracked jobs, launch
// intents, guest log offsets, poison messages and deferred retries. It
// implements the root package's StateSink with [Store.Save].
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
// and each migration runs once. A database migrated by a newer binary is
// refused with [ErrSchemaTooNew]. The provisioning migrations also create
// km's credential table (worker_km_credentials) exactly as km.Migrate would,
// case-sensitive on MySQL too.
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
// key. [Store.GuestOffsets] keeps the guest log collector's offsets.
//
// # Errors
//
// Errors wrap [ErrNotFound], [ErrSchemaTooNew] and [ErrInvalid] where callers
// need to branch. Errors about a MySQL database name its user, host and
// database, never its password.
package persist
