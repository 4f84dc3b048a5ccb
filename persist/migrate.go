package persist

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

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
		},
	}
	analyticsMigrations = migrationSet{
		table: "worker_analytics_schema_migrations",
		steps: []migration{
			{Version: 1, Name: "create resource history table", Up: createTables(historyDDL)},
		},
	}
)

// Table names.
const (
	tblResources = "worker_resources"
	tblHistory   = "worker_resource_history"
	tblOutbox    = "worker_history_outbox"
	tblPoison    = "worker_poison"
	tblDeferred  = "worker_deferred"
)

// tableDef is dialect-neutral DDL. Column types use tokens that ddlTypes
// replaces per dialect, so both dialects get the same schema in effect:
// string comparison is binary (case-sensitive) on both, times keep
// microseconds, and JSON and payloads have no practical size limit.
type tableDef struct {
	name       string
	columns    []string
	primaryKey string // columns, if not an $ID column
	unique     []string
	indexes    []string // each "col[, col]"; named <table>_<cols>_idx
}

var ddlTypes = map[Driver]*strings.Replacer{
	SQLite: strings.NewReplacer(
		"$ID", "INTEGER PRIMARY KEY AUTOINCREMENT",
		"$TEXT", "TEXT",
		"$BLOB", "BLOB",
		"$TIME", "DATETIME",
	),
	MySQL: strings.NewReplacer(
		"$ID", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
		"$TEXT", "LONGTEXT",
		"$BLOB", "LONGBLOB",
		"$TIME", "DATETIME(6)",
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

// migrate brings every database of the store up to date.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.migrateDatabase(ctx, s.prov, provisioningMigrations); err != nil {
		return err
	}
	return s.migrateDatabase(ctx, s.ana, analyticsMigrations)
}

// migrateDatabase applies the missing steps of set, safely when several
// processes start at once: on MySQL under a named server lock held by one
// connection, on SQLite inside one IMMEDIATE transaction (the write lock), so
// a second process waits, then finds the steps applied.
func (s *Store) migrateDatabase(ctx context.Context, d *database, set migrationSet) error {
	db := d.writer.WithContext(ctx)
	var applied []int
	var err error
	switch d.driver {
	case MySQL:
		err = db.Connection(func(conn *gorm.DB) error {
			lock := migrationLockName(conn)
			var got sql.NullInt64
			if err := conn.Raw("SELECT GET_LOCK(?, ?)", lock, 60).Scan(&got).Error; err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
			if !got.Valid || got.Int64 != 1 {
				return fmt.Errorf("take migration lock %s: timed out after 60s", lock)
			}
			defer func() {
				// Release even when ctx is done; a pooled connection must not keep the lock.
				var released sql.NullInt64
				if err := conn.WithContext(context.WithoutCancel(ctx)).Raw("SELECT RELEASE_LOCK(?)", lock).Scan(&released).Error; err != nil {
					s.log.Warn("persist: release migration lock", "db", d.desc, "err", err)
				}
			}()
			applied, err = s.applyMigrations(conn, set)
			return err
		})
	default:
		err = db.Transaction(func(tx *gorm.DB) error {
			applied, err = s.applyMigrations(tx, set)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("persist: migrate %s (%s): %w", d.desc, set.table, err)
	}
	for _, v := range applied {
		m := set.steps[v-1]
		s.log.Info("persist: applied migration", "db", d.desc, "table", set.table, "version", m.Version, "name", m.Name)
	}
	return nil
}

// migrationLockName is per database: unrelated databases on one server
// migrate independently. MySQL limits lock names to 64 characters.
func migrationLockName(conn *gorm.DB) string {
	sum := sha256.Sum256([]byte(conn.Migrator().CurrentDatabase()))
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
