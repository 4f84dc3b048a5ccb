package persist

import (
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// The km package's tables. persist is their one owner: km never creates or
// alters a table, it checks the schema (km.CheckSchema) and fails with
// km.ErrSchema when these migrations have not run.
//
// Every column that is compared in a query (row references, key ids, nonces,
// client identities) has a binary type on MySQL/MariaDB (BINARY, VARBINARY),
// so comparisons are byte for byte with no padding and no case folding on
// every server version, and the tables' default collation is set explicitly
// to the server's binary NO PAD collation (utf8mb4_nopad_bin on MariaDB,
// utf8mb4_0900_bin on MySQL 8; MySQL 5.7 has none, and utf8mb4_bin, which
// no compared column uses, is the fallback). On SQLite, BLOB columns compare
// with memcmp and text columns are declared COLLATE BINARY.

// kmCredentialsDDL is version 7's table, with customer, account and name in
// clear text. Version 9 replaces it (km moves its rows to worker_km_secrets
// and empties it; version 9 drops it when it is already empty). Frozen.
var kmCredentialsDDL = map[Driver][]string{
	// One line, backquoted names and DEFAULT "", exactly as GORM writes it.
	SQLite: {
		"CREATE TABLE IF NOT EXISTS `" + tblKMCredentials + "` (`id` integer PRIMARY KEY AUTOINCREMENT," +
			"`customer` text NOT NULL,`account` text NOT NULL,`name` text NOT NULL," +
			"`provider` text NOT NULL DEFAULT \"\",`kind` text NOT NULL,`field_names` text NOT NULL," +
			"`meta` text NOT NULL,`envelope` blob NOT NULL,`key_id` text NOT NULL,`key_version` integer NOT NULL," +
			"`revision` integer NOT NULL DEFAULT 1,`created_at` datetime NOT NULL,`updated_at` datetime NOT NULL)",
		`CREATE UNIQUE INDEX IF NOT EXISTS ux_worker_km_credentials_key ON ` + tblKMCredentials + ` (customer, account, name)`,
		`CREATE INDEX IF NOT EXISTS ix_worker_km_credentials_keyver ON ` + tblKMCredentials + ` (key_id, key_version)`,
	},
	MySQL: {
		`CREATE TABLE IF NOT EXISTS ` + tblKMCredentials + ` (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	customer VARCHAR(191) NOT NULL,
	account VARCHAR(191) NOT NULL,
	name VARCHAR(191) NOT NULL,
	provider VARCHAR(191) NOT NULL DEFAULT '',
	kind VARCHAR(16) NOT NULL,
	field_names TEXT NOT NULL,
	meta TEXT NOT NULL,
	envelope LONGBLOB NOT NULL,
	key_id VARCHAR(64) NOT NULL,
	key_version BIGINT NOT NULL,
	revision BIGINT NOT NULL DEFAULT 1,
	created_at DATETIME(3) NOT NULL,
	updated_at DATETIME(3) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY ux_worker_km_credentials_key (customer, account, name),
	KEY ix_worker_km_credentials_keyver (key_id, key_version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	},
}

func createKMCredentials(tx *gorm.DB) error {
	for _, stmt := range kmCredentialsDDL[Driver(tx.Dialector.Name())] {
		if err := tx.Exec(stmt).Error; err != nil {
			return fmt.Errorf("create table %s: %w", tblKMCredentials, err)
		}
	}
	return nil
}

// kmTypes are the per-dialect column types of km's tables.
var kmTypes = map[Driver]*strings.Replacer{
	SQLite: strings.NewReplacer(
		"$ID", "INTEGER PRIMARY KEY AUTOINCREMENT",
		"$REF", "BLOB", // an HMAC-SHA256 row reference, 32 bytes
		"$VREF", "BLOB", // a reference or empty
		"$KEYID", "TEXT COLLATE BINARY",
		"$NAME", "TEXT COLLATE BINARY",
		"$SHORT", "TEXT COLLATE BINARY",
		"$NONCE", "BLOB",
		"$BLOB", "BLOB",
		"$TIME", "DATETIME",
	),
	MySQL: strings.NewReplacer(
		"$ID", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
		"$REF", "BINARY(32)",
		"$VREF", "VARBINARY(32)",
		"$KEYID", "VARBINARY(64)",
		"$NAME", "VARBINARY(255)",
		"$SHORT", "VARBINARY(32)",
		"$NONCE", "VARBINARY(32)",
		"$BLOB", "LONGBLOB",
		"$TIME", "DATETIME(6)",
	),
}

// kmSecretsDDL is the de-identified credential table: customer, account and
// name appear only as keyed references and inside sealed envelopes (info:
// the names and metadata, for listing; envelope: the whole credential).
var kmSecretsDDL = []string{
	`CREATE TABLE IF NOT EXISTS ` + tblKMSecrets + ` (
	id $ID,
	credential_ref $REF NOT NULL,
	customer_ref $REF NOT NULL,
	key_id $KEYID NOT NULL,
	key_version BIGINT NOT NULL,
	info $BLOB NOT NULL,
	envelope $BLOB NOT NULL,
	revision BIGINT NOT NULL,
	created_at $TIME NOT NULL,
	updated_at $TIME NOT NULL,
	CONSTRAINT worker_km_secrets_credential_ref_key UNIQUE (credential_ref)$MYSQLINDEXES
)$TABLEOPTS`,
	`CREATE INDEX IF NOT EXISTS worker_km_secrets_customer_ref_idx ON ` + tblKMSecrets + ` (customer_ref)`,
	`CREATE INDEX IF NOT EXISTS worker_km_secrets_key_id_key_version_idx ON ` + tblKMSecrets + ` (key_id, key_version)`,
}

// kmServerDDL: the key service's replay guard (one row per accepted nonce,
// kept until its timestamp can no longer pass the skew check; the primary
// key makes a nonce single-use across every replica sharing the database)
// and its audit log (who did what to which credential, when, from where;
// the credential named by keyed references and a sealed copy of its names).
var kmServerDDL = []string{
	`CREATE TABLE IF NOT EXISTS ` + tblKMNonces + ` (
	nonce $NONCE NOT NULL PRIMARY KEY,
	expires_at $TIME NOT NULL$MYSQLNONCEINDEX
)$TABLEOPTS`,
	`CREATE INDEX IF NOT EXISTS worker_km_nonces_expires_at_idx ON ` + tblKMNonces + ` (expires_at)`,
	`CREATE TABLE IF NOT EXISTS ` + tblKMAudit + ` (
	id $ID,
	at $TIME NOT NULL,
	client $NAME NOT NULL,
	peer $NAME NOT NULL,
	remote $NAME NOT NULL,
	op $SHORT NOT NULL,
	outcome $SHORT NOT NULL,
	reason $NAME NOT NULL,
	customer_ref $VREF NOT NULL,
	credential_ref $VREF NOT NULL,
	key_id $KEYID NOT NULL,
	key_version BIGINT NOT NULL,
	names $BLOB NOT NULL$MYSQLAUDITINDEXES
)$TABLEOPTS`,
	`CREATE INDEX IF NOT EXISTS worker_km_audit_at_idx ON ` + tblKMAudit + ` (at)`,
	`CREATE INDEX IF NOT EXISTS worker_km_audit_customer_ref_idx ON ` + tblKMAudit + ` (customer_ref)`,
	`CREATE INDEX IF NOT EXISTS worker_km_audit_client_idx ON ` + tblKMAudit + ` (client)`,
}

// kmStatements expands km DDL for the dialect. MySQL has no CREATE INDEX IF
// NOT EXISTS, so there the indexes go into CREATE TABLE (and the separate
// statements are dropped); SQLite gets them as separate, idempotent
// statements.
func kmStatements(tx *gorm.DB, ddl []string) ([]string, error) {
	d := Driver(tx.Dialector.Name())
	opts, mysqlIdx := "", map[string]string{"$MYSQLINDEXES": "", "$MYSQLNONCEINDEX": "", "$MYSQLAUDITINDEXES": ""}
	if d == MySQL {
		coll, err := noPadBinaryCollation(tx)
		if err != nil {
			return nil, err
		}
		opts = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + coll
		mysqlIdx = map[string]string{
			"$MYSQLINDEXES": ",\n\tINDEX worker_km_secrets_customer_ref_idx (customer_ref)" +
				",\n\tINDEX worker_km_secrets_key_id_key_version_idx (key_id, key_version)",
			"$MYSQLNONCEINDEX": ",\n\tINDEX worker_km_nonces_expires_at_idx (expires_at)",
			"$MYSQLAUDITINDEXES": ",\n\tINDEX worker_km_audit_at_idx (at)" +
				",\n\tINDEX worker_km_audit_customer_ref_idx (customer_ref)" +
				",\n\tINDEX worker_km_audit_client_idx (client)",
		}
	}
	var out []string
	for _, stmt := range ddl {
		if d == MySQL && strings.HasPrefix(stmt, "CREATE INDEX") {
			continue
		}
		for k, v := range mysqlIdx {
			stmt = strings.ReplaceAll(stmt, k, v)
		}
		stmt = strings.ReplaceAll(stmt, "$TABLEOPTS", opts)
		out = append(out, kmTypes[d].Replace(stmt))
	}
	return out, nil
}

// noPadBinaryCollation names the server's utf8mb4 collation that compares
// byte for byte without padding.
func noPadBinaryCollation(tx *gorm.DB) (string, error) {
	var names []string
	err := tx.Raw("SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')").
		Scan(&names).Error
	if err != nil {
		return "", fmt.Errorf("read the server's collations: %w", err)
	}
	for _, want := range []string{"utf8mb4_nopad_bin", "utf8mb4_0900_bin"} {
		for _, n := range names {
			if n == want {
				return n, nil
			}
		}
	}
	return "utf8mb4_bin", nil // MySQL 5.7: every compared column is binary anyway
}

func execAll(tx *gorm.DB, table string, ddl []string) error {
	stmts, err := kmStatements(tx, ddl)
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	for _, stmt := range stmts {
		if err := tx.Exec(stmt).Error; err != nil {
			return fmt.Errorf("create table %s: %w", table, err)
		}
	}
	return nil
}

// createKMSecrets creates the de-identified table and drops version 7's
// table if it holds no rows (a new database, or one that never stored a
// credential). A non-empty one is left for km, which alone holds the master
// keys needed to rewrite its rows: km.NewLocalStore moves each row to the new
// table and deletes it (km.LocalStore.MigrateLegacy).
func createKMSecrets(tx *gorm.DB) error {
	if err := execAll(tx, tblKMSecrets, kmSecretsDDL); err != nil {
		return err
	}
	if !tx.Migrator().HasTable(tblKMCredentials) {
		return nil
	}
	var n int64
	if err := tx.Table(tblKMCredentials).Count(&n).Error; err != nil {
		return fmt.Errorf("count rows of %s: %w", tblKMCredentials, err)
	}
	if n > 0 {
		return nil
	}
	if err := tx.Exec("DROP TABLE " + tblKMCredentials).Error; err != nil {
		return fmt.Errorf("drop the empty table %s: %w", tblKMCredentials, err)
	}
	return nil
}

func createKMServerTables(tx *gorm.DB) error {
	return execAll(tx, tblKMNonces+", "+tblKMAudit, kmServerDDL)
}
