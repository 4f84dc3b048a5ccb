package km

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"
)

// Tables of this package. The provisioning database's versioned migrations
// (persist.Migrate, or persist.Open with its default migration mode) create
// them; km never creates or alters a table, it only checks them
// ([CheckSchema]).
const (
	// TableName is the de-identified credential table of [LocalStore]
	// (persist migration 9).
	TableName = "worker_km_secrets"
	// LegacyTableName is the credential table up to persist migration 8,
	// with customer, account and name in clear text. [NewLocalStore] moves
	// its rows to TableName ([LocalStore.MigrateLegacy]).
	LegacyTableName = "worker_km_credentials"
	// NonceTableName is the key service's replay guard (persist migration 10).
	NonceTableName = "worker_km_nonces"
	// AuditTableName is the key service's audit log (persist migration 10).
	AuditTableName = "worker_km_audit"
)

// tableSpec is what this package needs of a table: its columns, and which of
// them are compared in queries (and so must compare byte for byte).
type tableSpec struct {
	name      string
	migration int
	columns   []string
	compared  []string
}

var (
	secretsSpec = tableSpec{name: TableName, migration: 9,
		columns:  []string{"id", "credential_ref", "customer_ref", "key_id", "key_version", "info", "envelope", "revision", "created_at", "updated_at"},
		compared: []string{"credential_ref", "customer_ref", "key_id"}}
	noncesSpec = tableSpec{name: NonceTableName, migration: 10,
		columns: []string{"nonce", "expires_at"}, compared: []string{"nonce"}}
	auditSpec = tableSpec{name: AuditTableName, migration: 10,
		columns:  []string{"id", "at", "client", "peer", "remote", "op", "outcome", "reason", "customer_ref", "credential_ref", "key_id", "key_version", "names"},
		compared: []string{"client", "customer_ref", "credential_ref"}}
)

// CheckSchema checks, reading only, that db holds [LocalStore]'s table as
// persist's migrations create it: every column present, and every column
// that is compared in a query comparing byte for byte (a binary type on
// MySQL/MariaDB, no NOCASE or RTRIM collation on SQLite), so that "ACME" or
// "acme " can never match acme's row. Errors match [ErrSchema] and say
// which migration to run.
func CheckSchema(ctx context.Context, db *gorm.DB) error {
	return checkTables(ctx, db, secretsSpec)
}

func checkTables(ctx context.Context, db *gorm.DB, specs ...tableSpec) error {
	if db == nil {
		return invalidf("check schema: db is nil")
	}
	db = db.WithContext(ctx)
	for _, t := range specs {
		if err := checkTable(db, t); err != nil {
			return err
		}
	}
	return nil
}

func checkTable(db *gorm.DB, t tableSpec) error {
	fail := func(format string, args ...any) error {
		return errorf(ErrSchema, "table %s: %s; run the provisioning database's migrations (persist.Migrate, version %d or later)",
			t.name, fmt.Sprintf(format, args...), t.migration)
	}
	if !db.Migrator().HasTable(t.name) {
		return fail("does not exist")
	}
	cols, err := db.Migrator().ColumnTypes(t.name)
	if err != nil {
		return fmt.Errorf("km: check schema: read the columns of %s: %w", t.name, err)
	}
	types := map[string]string{}
	for _, c := range cols {
		types[strings.ToLower(c.Name())] = strings.ToUpper(c.DatabaseTypeName())
	}
	for _, want := range t.columns {
		if _, ok := types[want]; !ok {
			return fail("has no column %s", want)
		}
	}
	switch db.Dialector.Name() {
	case "mysql":
		for _, c := range t.compared {
			if typ := types[c]; !slices.Contains([]string{"BINARY", "VARBINARY"}, typ) {
				return fail("column %s has type %s; it must be BINARY or VARBINARY so that it compares byte for byte, without padding or case folding", c, typ)
			}
		}
	case "sqlite":
		var ddl string
		if err := db.Raw("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", t.name).Scan(&ddl).Error; err != nil {
			return fmt.Errorf("km: check schema: read the definition of %s: %w", t.name, err)
		}
		up := strings.ToUpper(ddl)
		for _, bad := range []string{"NOCASE", "RTRIM"} {
			if strings.Contains(up, bad) {
				return fail("declares collation %s; identifiers must compare byte for byte (BINARY)", bad)
			}
		}
	}
	return nil
}
