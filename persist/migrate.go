package persist

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"github.com/stratusworks/worker/accounts"
	"strings"
	"time"

	"gorm.io/gorm"
)

// migration is one schema step. Steps are frozen once released: change the
// schema by appending a step, never by editing one.
type migration struct {
	Version int
	Name    string
	Up      func(tx *gorm.DB) error
}

// migrationSet is the ordered list of steps for one role of database and the
// table that records which of them were applied.
type migrationSet struct {
	table string
	steps []migration // Version i+1 at index i
}

// The provisioning database holds current state, the history outbox and the
// message tables; the analytics database holds history. When both are one
// database it runs both sets, each recorded in its own table.
var (
	provisioningMigrations = migrationSet{
		table: "worker_schema_migrations",
		steps: []migration{
			{Version: 1, Name: "create resources, history outbox, poison and deferred tables", Up: createTables(
				resourcesDDL, outboxDDL, poisonDDL, deferredDDL)},
			{Version: 2, Name: "track missing and deleted resources", Up: addColumns(tblResources,
				"missing_since $TIME NULL", "deleted_at $TIME NULL")},
			{Version: 3, Name: "create event outbox table", Up: createTables(eventsDDL)},
			{Version: 4, Name: "create jobs table", Up: createTables(jobsDDL)},
			{Version: 5, Name: "create launch intents table", Up: createTables(launchIntentsDDL)},
			{Version: 6, Name: "create guest log offsets table", Up: createTables(guestOffsetsDDL)},
			{Version: 7, Name: "create km credentials table", Up: createKMCredentials},
			{Version: 8, Name: "record the size and SHA-256 of truncated poison payloads", Up: addColumns(tblPoison,
				"payload_size BIGINT NOT NULL DEFAULT 0", "payload_sha256 CHAR(64) NOT NULL DEFAULT ''")},
			{Version: 9, Name: "create the de-identified km credential table", Up: createKMSecrets},
			{Version: 10, Name: "create inbox table (exactly-once handler effects)", Up: createTables(inboxDDL)},
			{Version: 11, Name: "compare launch keys and job ids byte for byte (MySQL: trailing spaces count)", Up: bytesColumns(
				byteColumn{tblLaunches, "idempotency_key", maxKeyLen},
				byteColumn{tblJobs, "id", maxJobIDLen},
			)},
			{Version: 12, Name: "create the km service's nonce and audit tables", Up: createKMServerTables},
			{Version: 13, Name: "create the account registry", Up: createTables(accountsDDL)},
			{Version: 14, Name: "create the instance heartbeat and account probe tables", Up: createTables(instancesDDL, probesDDL)},
			{Version: 15, Name: "create the poll health table (failing polls per account and kind)", Up: createTables(pollHealthDDL)},
			{Version: 16, Name: "create the lease and forwarded poll report tables (sharded schedule)", Up: createTables(leasesDDL, reportsDDL)},
		},
	}
	analyticsMigrations = migrationSet{
		table: "worker_analytics_schema_migrations",
		steps: []migration{
			{Version: 1, Name: "create resource history table", Up: createTables(historyDDL)},
			{Version: 2, Name: "create the usage sample, hourly rollup and sample retention tables", Up: createUsageTables},
		},
	}
)

// Table names.
const (
	tblResources  = "worker_resources"
	tblHistory    = "worker_resource_history"
	tblOutbox     = "worker_history_outbox"
	tblPoison     = "worker_poison"
	tblDeferred   = "worker_deferred"
	tblEvents     = "worker_outbox" // change and job events for the relay
	tblJobs       = "worker_jobs"
	tblLaunches   = "worker_launch_intents"
	tblOffsets    = "worker_guest_offsets"
	tblInbox      = "worker_inbox"            // keys of actions whose effect committed (RunOnce)
	tblAccounts   = "worker_accounts"         // the account registry (package accounts)
	tblInstances  = "worker_instances"        // worker processes' heartbeats (membership)
	tblProbes     = "worker_probes"           // pingers' probes of the accounts' clouds
	tblPollHealth = "worker_poll_health"      // failing polls per account and kind (the schedule's transitions)
	tblLeases     = "worker_leases"           // shard, relay and presence leases of publishers
	tblReports    = "worker_schedule_reports" // poll outcomes forwarded to their shard's owner
	// km's tables (see kmschema.go); persist owns their DDL so that the
	// provisioning database's schema is versioned in one place.
	tblKMCredentials = "worker_km_credentials" // km.LegacyTableName: clear identifiers, up to version 8
	tblKMSecrets     = "worker_km_secrets"     // km.TableName: de-identified, from version 9
	tblKMNonces      = "worker_km_nonces"      // km.NonceTableName: the key service's replay guard
	tblKMAudit       = "worker_km_audit"       // km.AuditTableName: the key service's audit log
)

// tableDef is dialect-neutral DDL. Column types use tokens that ddlTypes
// replaces per dialect, so both dialects get the same schema in effect:
// string comparison is binary (case-sensitive) on both, times keep
// microseconds, and JSON and payloads have no practical size limit.
//
// $BYTES(n) is a string compared byte for byte, trailing spaces included:
// VARBINARY on MySQL, where a VARCHAR under utf8mb4_bin still compares with
// PAD SPACE ('a' = 'a '), and TEXT on SQLite (BINARY collation; the TEXT
// affinity keeps "1" and "1.0" apart, which VARBINARY's NUMERIC would not).
type tableDef struct {
	name       string
	columns    []string
	primaryKey string // columns, if not an $ID column
	// withoutRowID makes a SQLite table a WITHOUT ROWID table, stored in its
	// primary key's b-tree (no separate rowid tree): for narrow rows with a
	// composite key, such as usage samples.
	withoutRowID bool
	unique       []string
	indexes      []string // each "col[, col]"; named <table>_<cols>_idx
}

var ddlTypes = map[Driver]*strings.Replacer{
	SQLite: strings.NewReplacer(
		"$ID", "INTEGER PRIMARY KEY AUTOINCREMENT",
		"$TEXT", "TEXT",
		"$BLOB", "BLOB",
		"$TIME", "DATETIME",
		"$BYTES", "TEXT",
	),
	MySQL: strings.NewReplacer(
		"$ID", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
		"$TEXT", "LONGTEXT",
		"$BLOB", "LONGBLOB",
		"$TIME", "DATETIME(6)",
		"$BYTES", "VARBINARY",
	),
}

// Key columns are sized so that the widest unique index stays under InnoDB's
// 3072-byte limit with utf8mb4: (128+64+255)*4 = 1788 bytes.
const (
	maxAccountLen  = 128
	maxKindLen     = 64
	maxResourceLen = 255
	maxCustomerLen = 128
	maxUUIDLen     = 191
	maxTopicLen    = 255
	maxActionLen   = 128
	maxEventIDLen  = 64
	maxEventType   = 128
	maxJobIDLen    = 191
	maxOpIDLen     = 255
	maxStateLen    = 16
	maxKeyLen      = 255 // launch idempotency keys: as long as an Action.Key (byte-compared since v11)
	maxPathLen     = 320 // guest log paths: (128+255+320)*4 = 2812 bytes of key
	maxIdentityLen = 255
	maxTailHashLen = 64
	maxInboxKeyLen = 255 // as long as an Action.Key may be; bytes, not characters
)

var resourceKeyDDLColumns = []string{
	fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
	fmt.Sprintf("kind VARCHAR(%d) NOT NULL", maxKindLen),
	fmt.Sprintf("resource_id VARCHAR(%d) NOT NULL", maxResourceLen),
	fmt.Sprintf("customer VARCHAR(%d) NOT NULL", maxCustomerLen),
}

var (
	resourcesDDL = tableDef{
		name: tblResources,
		columns: append(append([]string{}, resourceKeyDDLColumns...),
			"hash CHAR(64) NOT NULL",
			"version BIGINT NOT NULL",
			"attributes $TEXT NOT NULL",
			"observed_at $TIME NOT NULL",
			"updated_at $TIME NOT NULL",
		),
		primaryKey: "account, kind, resource_id",
	}
	historyDDLColumns = append(append([]string{"id $ID"}, resourceKeyDDLColumns...),
		"op VARCHAR(16) NOT NULL",
		"version BIGINT NOT NULL",
		"fields $TEXT NOT NULL",
		"attributes $TEXT NOT NULL",
		"observed_at $TIME NOT NULL",
		"recorded_at $TIME NOT NULL",
	)
	historyDDL = tableDef{
		name:    tblHistory,
		columns: historyDDLColumns,
		unique:  []string{"account, kind, resource_id, version"},
	}
	outboxDDL = tableDef{
		name:    tblOutbox,
		columns: historyDDLColumns,
		unique:  []string{"account, kind, resource_id, version"},
	}
	parkedDDLColumns = []string{
		"id $ID",
		fmt.Sprintf("message_uuid VARCHAR(%d) NOT NULL", maxUUIDLen),
		fmt.Sprintf("topic VARCHAR(%d) NOT NULL", maxTopicLen),
		"metadata $TEXT NOT NULL",
		"payload $BLOB NOT NULL",
		"attempts INT NOT NULL",
	}
	poisonDDL = tableDef{
		name: tblPoison,
		columns: append(append([]string{}, parkedDDLColumns...),
			fmt.Sprintf("action_type VARCHAR(%d) NOT NULL", maxActionLen),
			"reason $TEXT NOT NULL",
			"failed_at $TIME NOT NULL",
			"replayed_at $TIME NULL",
		),
		unique:  []string{"message_uuid"},
		indexes: []string{"failed_at"},
	}
	deferredDDL = tableDef{
		name: tblDeferred,
		columns: append(append([]string{}, parkedDDLColumns...),
			"due_at $TIME NOT NULL",
			"created_at $TIME NOT NULL",
		),
		unique:  []string{"message_uuid"},
		indexes: []string{"due_at"},
	}
)

var (
	eventsDDL = tableDef{
		name: tblEvents,
		columns: []string{
			"id $ID",
			fmt.Sprintf("event_id VARCHAR(%d) NOT NULL", maxEventIDLen),
			fmt.Sprintf("type VARCHAR(%d) NOT NULL", maxEventType),
			fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
			fmt.Sprintf("customer VARCHAR(%d) NOT NULL", maxCustomerLen),
			fmt.Sprintf("kind VARCHAR(%d) NOT NULL", maxKindLen),
			fmt.Sprintf("resource_id VARCHAR(%d) NOT NULL", maxResourceLen),
			"payload $TEXT NOT NULL",
			"created_at $TIME NOT NULL",
			"sent_at $TIME NULL",
		},
		unique:  []string{"event_id"},
		indexes: []string{"sent_at, id"},
	}
	jobsDDL = tableDef{
		name: tblJobs,
		columns: []string{
			fmt.Sprintf("id VARCHAR(%d) NOT NULL", maxJobIDLen),
			fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
			fmt.Sprintf("customer VARCHAR(%d) NOT NULL", maxCustomerLen),
			fmt.Sprintf("kind VARCHAR(%d) NOT NULL", maxKindLen),
			fmt.Sprintf("operation_id VARCHAR(%d) NOT NULL", maxOpIDLen),
			fmt.Sprintf("resource_id VARCHAR(%d) NOT NULL", maxResourceLen),
			fmt.Sprintf("state VARCHAR(%d) NOT NULL", maxStateLen),
			"result $TEXT NULL",
			"error $TEXT NOT NULL",
			"deadline $TIME NULL",
			"created_at $TIME NOT NULL",
			"updated_at $TIME NOT NULL",
			"version BIGINT NOT NULL",
		},
		primaryKey: "id",
		indexes:    []string{"state, id"},
	}
	// The key column is idempotency_key: KEY is reserved in MySQL.
	launchIntentsDDL = tableDef{
		name: tblLaunches,
		columns: []string{
			fmt.Sprintf("idempotency_key VARCHAR(%d) NOT NULL", maxKeyLen),
			fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
			fmt.Sprintf("customer VARCHAR(%d) NOT NULL", maxCustomerLen),
			"request $TEXT NOT NULL",
			fmt.Sprintf("state VARCHAR(%d) NOT NULL", maxStateLen),
			fmt.Sprintf("server_id VARCHAR(%d) NOT NULL", maxResourceLen),
			fmt.Sprintf("operation_id VARCHAR(%d) NOT NULL", maxOpIDLen),
			fmt.Sprintf("job_id VARCHAR(%d) NOT NULL", maxJobIDLen),
			"claimed_at $TIME NOT NULL",
			"updated_at $TIME NOT NULL",
		},
		primaryKey: "idempotency_key",
	}
	// The inbox (RunOnce). The key is unique per action type, compared byte
	// for byte; the id orders the purge's batches.
	inboxDDL = tableDef{
		name: tblInbox,
		columns: []string{
			"id $ID",
			fmt.Sprintf("action_type $BYTES(%d) NOT NULL", maxActionLen),
			fmt.Sprintf("idempotency_key $BYTES(%d) NOT NULL", maxInboxKeyLen),
			"handled_at $TIME NOT NULL",
		},
		unique:  []string{"action_type, idempotency_key"},
		indexes: []string{"handled_at"},
	}
	// The account registry. Identifiers are compared byte for byte; the
	// (updated_at, id) index serves the schedules' change feed.
	accountsDDL = tableDef{
		name: tblAccounts,
		columns: []string{
			fmt.Sprintf("id $BYTES(%d) NOT NULL", accounts.MaxIDLen),
			fmt.Sprintf("customer $BYTES(%d) NOT NULL", accounts.MaxCustomerLen),
			fmt.Sprintf("provider VARCHAR(%d) NOT NULL", accounts.MaxProviderLen),
			"settings $TEXT NOT NULL",
			fmt.Sprintf("credential $BYTES(%d) NOT NULL", accounts.MaxCredentialLen),
			"paused BOOLEAN NOT NULL",
			"paused_reason $TEXT NOT NULL",
			"intervals $TEXT NOT NULL",
			"labels $TEXT NOT NULL",
			"created_at $TIME NOT NULL",
			"updated_at $TIME NOT NULL",
			"deleted_at $TIME NULL",
			"revision BIGINT NOT NULL",
		},
		primaryKey: "id",
		indexes:    []string{"updated_at, id"},
	}
	guestOffsetsDDL = tableDef{
		name: tblOffsets,
		columns: []string{
			fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
			fmt.Sprintf("server_id VARCHAR(%d) NOT NULL", maxResourceLen),
			fmt.Sprintf("path VARCHAR(%d) NOT NULL", maxPathLen),
			fmt.Sprintf("identity VARCHAR(%d) NOT NULL", maxIdentityLen),
			"bytes BIGINT NOT NULL",
			"size BIGINT NOT NULL",
			fmt.Sprintf("tail_hash VARCHAR(%d) NOT NULL", maxTailHashLen),
			"local_size BIGINT NOT NULL",
			"updated_at $TIME NOT NULL",
		},
		primaryKey: "account, server_id, path",
	}
)

// addColumns adds columns ("name type", with $-tokens) that are not there
// yet. Neither dialect has a portable ADD COLUMN IF NOT EXISTS, and MySQL
// DDL is not transactional, so each column is checked first: a step
// interrupted half-way runs again cleanly.
func addColumns(table string, columns ...string) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error {
		d := Driver(tx.Dialector.Name())
		for _, col := range columns {
			name, _, _ := strings.Cut(col, " ")
			if tx.Migrator().HasColumn(table, name) {
				continue
			}
			if err := tx.Exec(ddlTypes[d].Replace("ALTER TABLE " + table + " ADD COLUMN " + col)).Error; err != nil {
				return fmt.Errorf("add column %s.%s: %w", table, name, err)
			}
		}
		return nil
	}
}

// byteColumn is a NOT NULL string column that bytesColumns makes compare
// byte for byte.
type byteColumn struct {
	table, name string
	size        int
}

// bytesColumns turns VARCHAR key columns into $BYTES ones: on MySQL a
// VARCHAR compares with PAD SPACE even under utf8mb4_bin, so the keys "k"
// and "k " were one key (a second launch with such a key would have been
// taken for a redelivery). SQLite compares bytes already: nothing to do.
// Existing rows convert as they are (no two could differ only in trailing
// spaces).
func bytesColumns(cols ...byteColumn) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error {
		if Driver(tx.Dialector.Name()) != MySQL {
			return nil
		}
		for _, c := range cols {
			if err := tx.Exec(fmt.Sprintf("ALTER TABLE %s MODIFY %s VARBINARY(%d) NOT NULL", c.table, c.name, c.size)).Error; err != nil {
				return fmt.Errorf("compare %s.%s byte for byte: %w", c.table, c.name, err)
			}
		}
		return nil
	}
}

func indexName(table, cols, suffix string) string {
	return table + "_" + strings.NewReplacer(", ", "_", ",", "_").Replace(cols) + "_" + suffix
}

// statements returns the DDL that creates the table on the given dialect.
// Every statement is idempotent (IF NOT EXISTS) because MySQL DDL is not
// transactional: a step interrupted half-way must be able to run again.
func (t tableDef) statements(d Driver) []string {
	defs := append([]string{}, t.columns...)
	if t.primaryKey != "" {
		defs = append(defs, "PRIMARY KEY ("+t.primaryKey+")")
	}
	for _, u := range t.unique {
		defs = append(defs, "CONSTRAINT "+indexName(t.name, u, "key")+" UNIQUE ("+u+")")
	}
	var after []string
	for _, ix := range t.indexes {
		name := indexName(t.name, ix, "idx")
		if d == MySQL { // MySQL has no CREATE INDEX IF NOT EXISTS; keep it in the table
			defs = append(defs, "INDEX "+name+" ("+ix+")")
		} else {
			after = append(after, "CREATE INDEX IF NOT EXISTS "+name+" ON "+t.name+" ("+ix+")")
		}
	}
	create := "CREATE TABLE IF NOT EXISTS " + t.name + " (\n\t" + strings.Join(defs, ",\n\t") + "\n)"
	if d == MySQL {
		create += " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
	} else if t.withoutRowID {
		create += " WITHOUT ROWID"
	}
	stmts := []string{ddlTypes[d].Replace(create)}
	return append(stmts, after...)
}

func createTables(tables ...tableDef) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error {
		d := Driver(tx.Dialector.Name())
		for _, t := range tables {
			for _, stmt := range t.statements(d) {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("create table %s: %w", t.name, err)
				}
			}
		}
		return nil
	}
}

// How long a migration waits for another process's migration to finish, and
// for the lock to be released at the end.
const (
	migrationLockWait = 60 * time.Second
	releaseTimeout    = 5 * time.Second
)

// Migrate brings the schema of cfg's databases up to date and returns: the
// separate migration step of a deployment whose runtime database user may
// not change the schema (see [MigrateVerify]). It connects as [Open] does,
// applies the missing migrations of the provisioning and the analytics
// database, logs each one it applies and the version each database is at
// (Info, to cfg.Logger), and closes its connections. cfg.Migrations is
// ignored. Running it on a current schema changes nothing; several
// processes may run it at once. It fails with [ErrSchemaTooNew] when a newer
// binary migrated a database.
func Migrate(ctx context.Context, cfg Config) error {
	s, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.migrateAll(ctx, true)
}

// migrate brings every database of the store up to date.
func (s *Store) migrate(ctx context.Context) error { return s.migrateAll(ctx, false) }

// migrateAll brings every database of the store up to date; with report it
// logs the version each one is at.
func (s *Store) migrateAll(ctx context.Context, report bool) error {
	for _, m := range s.migrationSets() {
		version, applied, err := s.migrateDatabase(ctx, m.d, m.set)
		if err != nil {
			return err
		}
		if report {
			s.log.Info("persist: schema up to date", "db", m.d.desc, "table", m.set.table, "version", version, "applied", len(applied))
		}
	}
	return nil
}

type dbMigrations struct {
	d   *database
	set migrationSet
}

// migrationSets pairs each database of the store with its migrations.
func (s *Store) migrationSets() []dbMigrations {
	return []dbMigrations{{s.prov, provisioningMigrations}, {s.ana, analyticsMigrations}}
}

// verifySchema checks, reading only, that every database of the store has
// every migration applied: [ErrSchemaTooOld] if not, [ErrSchemaTooNew] if a
// newer binary migrated it.
func (s *Store) verifySchema(ctx context.Context) error {
	for _, m := range s.migrationSets() {
		at, current, err := schemaVersion(ctx, m.d, m.set)
		if err != nil {
			return fmt.Errorf("persist: check schema of %s: %w", m.d.desc, err)
		}
		if !current {
			return fmt.Errorf("persist: check schema of %s: %w: %s is at version %d, this binary needs version %d; "+
				"run the migrations first (persist.Migrate, e.g. examples/migrate) as a user allowed to change the schema",
				m.d.desc, ErrSchemaTooOld, m.set.table, at, len(m.set.steps))
		}
	}
	return nil
}

// schemaVersion reads which steps of set the database has applied, without
// a lock and without DDL. at is the highest version up to which every step
// is applied; current reports whether that is all of them. A version this
// binary does not know fails with [ErrSchemaTooNew].
func schemaVersion(ctx context.Context, d *database, set migrationSet) (at int, current bool, err error) {
	db := d.writer.WithContext(ctx)
	exists := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if d.driver == MySQL {
		exists = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	}
	var versions []int
	err = retry(ctx, func() error {
		versions = nil
		var n int64
		if err := db.Raw(exists, set.table).Scan(&n).Error; err != nil || n == 0 {
			return err
		}
		return db.Table(set.table).Order("version").Pluck("version", &versions).Error
	})
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", set.table, err)
	}
	done := make(map[int]bool, len(versions))
	for _, v := range versions {
		if v > len(set.steps) {
			return 0, false, fmt.Errorf("%w: %s has version %d, this binary knows up to %d", ErrSchemaTooNew, set.table, v, len(set.steps))
		}
		done[v] = true
	}
	for done[at+1] {
		at++
	}
	return at, at == len(set.steps), nil
}

// migrateDatabase applies the missing steps of set, safely when several
// processes start at once: on MySQL under a named server lock held by one
// connection, on SQLite inside one IMMEDIATE transaction (the write lock), so
// a second process waits, then finds the steps applied. A current schema is
// only read: no lock, no DDL. It returns the version the database is at and
// the versions it applied.
func (s *Store) migrateDatabase(ctx context.Context, d *database, set migrationSet) (version int, applied []int, err error) {
	at, current, err := schemaVersion(ctx, d, set)
	if err != nil {
		return 0, nil, fmt.Errorf("persist: migrate %s (%s): %w", d.desc, set.table, err)
	}
	if current {
		return at, nil, nil
	}
	switch d.driver {
	case MySQL:
		applied, err = s.migrateMySQL(ctx, d, set)
	default:
		err = d.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			applied, err = s.applyMigrations(tx, set)
			return err
		})
	}
	if err != nil {
		return 0, nil, fmt.Errorf("persist: migrate %s (%s): %w", d.desc, set.table, classify(err))
	}
	for _, v := range applied {
		m := set.steps[v-1]
		s.log.Info("persist: applied migration", "db", d.desc, "table", set.table, "version", m.Version, "name", m.Name)
	}
	return len(set.steps), applied, nil
}

// migrateMySQL applies the missing steps of set on a connection of its own,
// opened for the purpose with a read timeout long enough for DDL on a large
// table, holding the database's named lock. The lock is released however
// the steps end; if releasing fails, closing the connection (which always
// happens) ends the session and so frees the lock.
func (s *Store) migrateMySQL(ctx context.Context, d *database, set migrationSet) ([]int, error) {
	mc := d.mysql.Clone()
	mc.ReadTimeout = max(mc.ReadTimeout, migrationReadTimeout)
	pool, err := newMySQLPool(mc)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	pool.SetMaxOpenConns(1)
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	var dbName string
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return nil, fmt.Errorf("read the database name: %w", err)
	}
	lock := migrationLockName(dbName)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, int64(migrationLockWait/time.Second)).Scan(&got); err != nil {
		return nil, fmt.Errorf("take migration lock %s: %w", lock, err)
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, fmt.Errorf("take migration lock %s: another process has held it for %s", lock, migrationLockWait)
	}
	defer func() {
		// Release even when ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if _, err := conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", lock); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // never pool a session that may hold the lock
		}
	}()
	// A fresh session per statement on this connection: an error of one
	// statement does not stick to the next.
	tx := d.writer.Session(&gorm.Session{NewDB: true, Context: ctx})
	tx.Statement.ConnPool = conn
	return s.applyMigrations(tx, set)
}

// migrationLockName is per database: unrelated databases on one server
// migrate independently. MySQL limits lock names to 64 characters. Binaries
// of every version must derive the same name.
func migrationLockName(database string) string {
	sum := sha256.Sum256([]byte(database))
	return "stratusworks_worker_migrate_" + hex.EncodeToString(sum[:8])
}

// applyMigrations runs on a connection that holds the migration lock and
// returns the versions it applied.
func (s *Store) applyMigrations(tx *gorm.DB, set migrationSet) ([]int, error) {
	d := Driver(tx.Dialector.Name())
	create := ddlTypes[d].Replace("CREATE TABLE IF NOT EXISTS " + set.table + " (\n\tversion INT NOT NULL PRIMARY KEY,\n\tname VARCHAR(255) NOT NULL,\n\tapplied_at $TIME NOT NULL\n)")
	if d == MySQL {
		create += " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
	}
	if err := tx.Exec(create).Error; err != nil {
		return nil, fmt.Errorf("create %s: %w", set.table, err)
	}
	var versions []int
	if err := tx.Table(set.table).Order("version").Pluck("version", &versions).Error; err != nil {
		return nil, fmt.Errorf("read %s: %w", set.table, err)
	}
	done := make(map[int]bool, len(versions))
	for _, v := range versions {
		if v > len(set.steps) {
			return nil, fmt.Errorf("%w: %s has version %d, this binary knows up to %d", ErrSchemaTooNew, set.table, v, len(set.steps))
		}
		done[v] = true
	}
	var applied []int
	for _, m := range set.steps {
		if done[m.Version] {
			continue
		}
		if err := m.Up(tx); err != nil {
			return nil, fmt.Errorf("version %d (%s): %w", m.Version, m.Name, err)
		}
		rec := map[string]any{"version": m.Version, "name": m.Name, "applied_at": dbTime(s.now())}
		if err := tx.Table(set.table).Create(rec).Error; err != nil {
			return nil, fmt.Errorf("record version %d: %w", m.Version, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}
