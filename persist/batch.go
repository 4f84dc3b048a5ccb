package persist

import (
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"
)

// Multi-row statements: a save writes its resource rows, history rows and
// outbox events with one statement per chunk of rows instead of one per row.

// sqliteChunk is how many rows a multi-row statement writes on SQLite. The
// SQLite driver matches each placeholder to its argument with a linear
// search, so binding costs grow with the square of the placeholders per
// statement; a few dozen rows keep that small against the per-statement
// cost. MySQL statements take insertBatch rows: there, every statement is a
// round trip.
var sqliteChunk = 20

// chunkRows is the rows per multi-row statement on tx's database.
func chunkRows(tx *gorm.DB) int {
	if Driver(tx.Dialector.Name()) == MySQL {
		return insertBatch
	}
	return sqliteChunk
}

// Columns the multi-row statements write, in argument order.
const (
	resourceWriteCols = "account, kind, resource_id, customer, hash, version, attributes, observed_at, updated_at, missing_since, deleted_at"
	historyWriteCols  = "account, kind, resource_id, customer, op, version, fields, attributes, observed_at, recorded_at"
	eventWriteCols    = "event_id, type, account, customer, kind, resource_id, payload, created_at, sent_at"
)

// resourceValues is one row of the resources upsert: the placeholders of the
// nine written columns, and NULL for missing_since and deleted_at.
const resourceValues = "(?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"

// upsertResourcesSQL returns the conditional upsert of n resource rows. A row
// is inserted when its key is new and updated only when the stored version is
// the one just below the written one; a row whose version check fails is
// left alone, which the caller detects from the affected-row count
// (upsertAffected).
func upsertResourcesSQL(d Driver, n int) string {
	var b strings.Builder
	b.Grow(len("INSERT INTO  () VALUES ") + len(tblResources) + len(resourceWriteCols) + n*(len(resourceValues)+2) + 700)
	b.WriteString("INSERT INTO " + tblResources + " (" + resourceWriteCols + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(resourceValues)
	}
	if d == MySQL {
		// Assignments run left to right and see the columns already assigned,
		// so version, which every condition reads, goes last.
		const match = "version = VALUES(version) - 1"
		for i, col := range []string{"customer", "hash", "attributes", "observed_at", "updated_at"} {
			if i == 0 {
				b.WriteString(" ON DUPLICATE KEY UPDATE ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(col + " = IF(" + match + ", VALUES(" + col + "), " + col + ")")
		}
		b.WriteString(", missing_since = IF(" + match + ", NULL, missing_since)")
		b.WriteString(", deleted_at = IF(" + match + ", NULL, deleted_at)")
		b.WriteString(", version = IF(" + match + ", VALUES(version), version)")
		return b.String()
	}
	b.WriteString(" ON CONFLICT (account, kind, resource_id) DO UPDATE SET" +
		" customer = excluded.customer, hash = excluded.hash, version = excluded.version," +
		" attributes = excluded.attributes, observed_at = excluded.observed_at, updated_at = excluded.updated_at," +
		" missing_since = NULL, deleted_at = NULL" +
		" WHERE " + tblResources + ".version = excluded.version - 1")
	return b.String()
}

// upsertAffected is the affected-row count of an upsert whose every row
// passed its check: on MySQL an updated row counts 2 (the store's connections
// never set clientFoundRows), on SQLite 1.
func upsertAffected(d Driver, rows []rowWrite) int64 {
	n := int64(len(rows))
	if d == MySQL {
		for _, w := range rows {
			if w.prevVersion > 0 {
				n++
			}
		}
	}
	return n
}

// upsertResources creates and updates resource rows inside tx with one
// statement per insertBatch rows. It fails with errConflict when another
// writer created or changed one of the rows since they were read.
func upsertResources(tx *gorm.DB, rows []rowWrite) error {
	d := Driver(tx.Dialector.Name())
	for chunk := range slices.Chunk(rows, chunkRows(tx)) {
		args := make([]any, 0, 9*len(chunk))
		for _, w := range chunk {
			r := &w.row
			args = append(args, r.Account, r.Kind, r.ResourceID, r.Customer, r.Hash, r.Version, r.Attributes, r.ObservedAt, r.UpdatedAt)
		}
		res := tx.Table(tblResources).Exec(upsertResourcesSQL(d, len(chunk)), args...)
		if res.Error != nil {
			return fmt.Errorf("upsert %s: %w", tblResources, res.Error)
		}
		if res.RowsAffected != upsertAffected(d, chunk) {
			return errConflict
		}
	}
	return nil
}

// insertHistory writes history rows to table (the history table or the
// history outbox) inside tx.
func insertHistory(tx *gorm.DB, table string, rows []historyRow) error {
	for chunk := range slices.Chunk(rows, chunkRows(tx)) {
		args := make([]any, 0, 10*len(chunk))
		for i := range chunk {
			r := &chunk[i]
			args = append(args, r.Account, r.Kind, r.ResourceID, r.Customer, r.Op, r.Version, r.Fields, r.Attributes, r.ObservedAt, r.RecordedAt)
		}
		if err := tx.Table(table).Exec(insertSQL(table, historyWriteCols, 10, len(chunk)), args...).Error; err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

// insertEvents writes outbox rows inside tx.
func insertEvents(tx *gorm.DB, events []eventRow) error {
	for chunk := range slices.Chunk(events, chunkRows(tx)) {
		args := make([]any, 0, 9*len(chunk))
		for i := range chunk {
			e := &chunk[i]
			args = append(args, e.EventID, e.Type, e.Account, e.Customer, e.Kind, e.ResourceID, e.Payload, e.CreatedAt, e.SentAt)
		}
		if err := tx.Table(tblEvents).Exec(insertSQL(tblEvents, eventWriteCols, 9, len(chunk)), args...).Error; err != nil {
			return fmt.Errorf("insert %s: %w", tblEvents, err)
		}
	}
	return nil
}

// insertSQL returns a plain INSERT of n rows of cols placeholders each.
func insertSQL(table, columns string, cols, n int) string {
	row := "(" + placeholders(cols) + ")"
	var b strings.Builder
	b.Grow(len(table) + len(columns) + 30 + n*(len(row)+2))
	b.WriteString("INSERT INTO " + table + " (" + columns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// placeholders returns n comma-separated placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
