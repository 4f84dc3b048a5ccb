package persist

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// Multi-row statements: a save writes its resource rows, history rows and
// outbox events with one statement per chunk of rows instead of one per row.

// sqliteChunk is how many rows a multi-row statement writes on SQLite. The
// SQLite driver matches each placeholder to its argument with a linear
// search, so binding costs grow with the square of the placeholders per
// statement; with the values rows share bound once (see multiInsert), a
// hundred rows keep that below the cost of another statement. MySQL
// statements take insertBatch rows: there, every statement is a round trip.
const sqliteChunk = 100

// chunkRows is the rows per multi-row statement on tx's database.
func chunkRows(tx *gorm.DB) int {
	if Driver(tx.Dialector.Name()) == MySQL {
		return insertBatch
	}
	return sqliteChunk
}

// insertCol is a column of a multi-row INSERT.
type insertCol struct {
	name  string
	share bool   // may take one value for every row of a statement (SQLite)
	expr  string // a constant expression instead of a value, e.g. NULL
}

// Columns of the multi-row statements. Those marked share usually have one
// value for a whole save: its target, its time, an observation time set
// for a whole page.
var (
	resourceCols = []insertCol{
		{name: "account", share: true}, {name: "kind", share: true}, {name: "resource_id"},
		{name: "customer", share: true}, {name: "hash"}, {name: "version"}, {name: "attributes"},
		{name: "observed_at", share: true}, {name: "updated_at", share: true},
		{name: "missing_since", expr: "NULL"}, {name: "deleted_at", expr: "NULL"},
	}
	historyCols = []insertCol{
		{name: "account", share: true}, {name: "kind", share: true}, {name: "resource_id"},
		{name: "customer", share: true}, {name: "op", share: true}, {name: "version"}, {name: "fields"},
		{name: "attributes"}, {name: "observed_at", share: true}, {name: "recorded_at", share: true},
	}
	eventCols = []insertCol{
		{name: "event_id"}, {name: "type", share: true}, {name: "account", share: true},
		{name: "customer", share: true}, {name: "kind", share: true}, {name: "resource_id"},
		{name: "payload"}, {name: "created_at", share: true}, {name: "sent_at", share: true},
	}
)

// multiInsert builds a multi-row INSERT of n rows into table. row appends
// the values of row i, one per column that has no expr, in column order.
//
// On SQLite, columns marked share whose value is the same in every row get
// one placeholder for the whole statement, before the rows' placeholders:
//
//	INSERT INTO t (a, b) SELECT ?, column1 FROM (VALUES (?), (?)) WHERE true
//
// The SQLite driver allocates a copy of every argument and finds each
// placeholder's argument with a linear search, so values bound once instead
// of once per row save both. suffix is appended to the statement (an upsert
// clause).
func multiInsert(d Driver, table string, cols []insertCol, suffix string, n int, row func(i int, dst []any) []any) (string, []any) {
	width := 0
	for _, c := range cols {
		if c.expr == "" {
			width++
		}
	}
	vals := make([]any, 0, n*width)
	for i := range n {
		vals = row(i, vals)
	}
	var mask uint64 // bit j: value column j is bound once
	if d == SQLite && n > 1 {
		j := 0
		for _, c := range cols {
			if c.expr != "" {
				continue
			}
			if c.share && sameInEveryRow(vals, j, width) {
				mask |= 1 << j
			}
			j++
		}
	}
	args := vals
	if mask != 0 {
		args = make([]any, 0, len(vals))
		for j := range width {
			if mask&(1<<j) != 0 {
				args = append(args, vals[j])
			}
		}
		for i := range n {
			for j := range width {
				if mask&(1<<j) == 0 {
					args = append(args, vals[i*width+j])
				}
			}
		}
	}
	return insertSQL(table, cols, n, mask) + suffix, args
}

// sameInEveryRow reports whether value column j is the same in every row.
func sameInEveryRow(vals []any, j, width int) bool {
	for k := j + width; k < len(vals); k += width {
		if vals[k] != vals[j] {
			return false
		}
	}
	return true
}

// insertSQL returns the text of multiInsert's statement; bit j of shared
// marks value column j as bound once.
func insertSQL(table string, cols []insertCol, n int, shared uint64) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.name)
	}
	b.WriteString(") ")
	var row strings.Builder
	row.WriteByte('(')
	if shared != 0 {
		b.WriteString("SELECT ")
		j, perRow := 0, 0
		for i, c := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			switch {
			case c.expr != "":
				b.WriteString(c.expr)
				continue
			case shared&(1<<j) != 0:
				b.WriteByte('?')
			default:
				perRow++
				b.WriteString("column" + strconv.Itoa(perRow))
			}
			j++
		}
		row.WriteString(placeholders(perRow))
		b.WriteString(" FROM (VALUES ")
	} else {
		for i, c := range cols {
			if i > 0 {
				row.WriteString(", ")
			}
			if c.expr != "" {
				row.WriteString(c.expr)
			} else {
				row.WriteByte('?')
			}
		}
		b.WriteString("VALUES ")
	}
	row.WriteByte(')')
	b.Grow(n * (row.Len() + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row.String())
	}
	if shared != 0 {
		// WHERE true: an upsert clause after INSERT ... SELECT must not be
		// parsed as a join constraint.
		b.WriteString(") WHERE true")
	}
	return b.String()
}

// upsertSuffix is the upsert clause of the resources upsert. A row is
// inserted when its key is new and updated only when the stored version is
// the one just below the written one; a row whose version check fails is
// left alone, which the caller detects from the affected-row count
// (upsertAffected).
func upsertSuffix(d Driver) string {
	if d == MySQL {
		// Assignments run left to right and see the columns already assigned,
		// so version, which every condition reads, goes last.
		const match = "version = VALUES(version) - 1"
		var b strings.Builder
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
	return " ON CONFLICT (account, kind, resource_id) DO UPDATE SET" +
		" customer = excluded.customer, hash = excluded.hash, version = excluded.version," +
		" attributes = excluded.attributes, observed_at = excluded.observed_at, updated_at = excluded.updated_at," +
		" missing_since = NULL, deleted_at = NULL" +
		" WHERE " + tblResources + ".version = excluded.version - 1"
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
// statement per chunk. It fails with errConflict when another writer created
// or changed one of the rows since they were read.
func upsertResources(tx *gorm.DB, rows []rowWrite) error {
	d := Driver(tx.Dialector.Name())
	for chunk := range slices.Chunk(rows, chunkRows(tx)) {
		q, args := multiInsert(d, tblResources, resourceCols, upsertSuffix(d), len(chunk), func(i int, dst []any) []any {
			r := &chunk[i].row
			return append(dst, r.Account, r.Kind, r.ResourceID, r.Customer, r.Hash, r.Version, r.Attributes, r.ObservedAt, r.UpdatedAt)
		})
		res := tx.Table(tblResources).Exec(q, args...)
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
	d := Driver(tx.Dialector.Name())
	for chunk := range slices.Chunk(rows, chunkRows(tx)) {
		q, args := multiInsert(d, table, historyCols, "", len(chunk), func(i int, dst []any) []any {
			r := &chunk[i]
			return append(dst, r.Account, r.Kind, r.ResourceID, r.Customer, r.Op, r.Version, r.Fields, r.Attributes, r.ObservedAt, r.RecordedAt)
		})
		if err := tx.Table(table).Exec(q, args...).Error; err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

// insertEvents writes outbox rows inside tx.
func insertEvents(tx *gorm.DB, events []eventRow) error {
	d := Driver(tx.Dialector.Name())
	for chunk := range slices.Chunk(events, chunkRows(tx)) {
		q, args := multiInsert(d, tblEvents, eventCols, "", len(chunk), func(i int, dst []any) []any {
			e := &chunk[i]
			var sent any // nil, or the time: pointers would compare by address
			if e.SentAt != nil {
				sent = *e.SentAt
			}
			return append(dst, e.EventID, e.Type, e.Account, e.Customer, e.Kind, e.ResourceID, e.Payload, e.CreatedAt, sent)
		})
		if err := tx.Table(tblEvents).Exec(q, args...).Error; err != nil {
			return fmt.Errorf("insert %s: %w", tblEvents, err)
		}
	}
	return nil
}

// placeholders returns n comma-separated placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
