package persist

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// Multi-row statements: a save writes its resource rows, history rows and
// outbox events with one statement per chunk of rows instead of one per row.

// sqliteChunk is how many rows a multi-row statement writes on SQLite. The
// SQLite driver matches each placeholder to its argument with a linear
// search, so binding costs grow with the square of the placeholders per
// statement; with the shared form (see insertSQL) a hundred rows keep that
// below the cost of another statement. MySQL statements take insertBatch
// rows: there, every statement is a round trip.
var sqliteChunk = 100

// chunkRows is the rows per multi-row statement on tx's database.
func chunkRows(tx *gorm.DB) int {
	if Driver(tx.Dialector.Name()) == MySQL {
		return insertBatch
	}
	return sqliteChunk
}

// insertCol is a column of a multi-row INSERT.
type insertCol struct {
	name   string
	shared bool   // one value for every row of the statement (SQLite form)
	expr   string // a constant expression instead of a value, e.g. NULL
}

var (
	resourceCols = []insertCol{
		{name: "account", shared: true}, {name: "kind", shared: true}, {name: "resource_id"},
		{name: "customer", shared: true}, {name: "hash"}, {name: "version"}, {name: "attributes"},
		{name: "observed_at"}, {name: "updated_at", shared: true},
		{name: "missing_since", expr: "NULL"}, {name: "deleted_at", expr: "NULL"},
	}
	historyCols = []insertCol{
		{name: "account", shared: true}, {name: "kind", shared: true}, {name: "resource_id"},
		{name: "customer", shared: true}, {name: "op"}, {name: "version"}, {name: "fields"},
		{name: "attributes"}, {name: "observed_at"}, {name: "recorded_at", shared: true},
	}
	eventCols = []insertCol{
		{name: "event_id"}, {name: "type", shared: true}, {name: "account", shared: true},
		{name: "customer", shared: true}, {name: "kind", shared: true}, {name: "resource_id"},
		{name: "payload"}, {name: "created_at", shared: true}, {name: "sent_at", shared: true},
	}
)

// insertSQL returns an INSERT of n rows into table. In the plain form every
// row has a placeholder per column (expr columns excepted). In the shared
// form, for SQLite, shared columns have one placeholder for the whole
// statement, which comes before the rows' in argument order:
//
//	INSERT INTO t (a, b) SELECT ?, column1 FROM (VALUES (?), (?)) WHERE true
//
// Each placeholder costs the SQLite driver an allocation and a search over
// the arguments, so values that every row shares are bound once.
func insertSQL(table string, cols []insertCol, n int, shared bool) string {
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
	perRow := 0
	if shared {
		b.WriteString("SELECT ")
		for i, c := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			switch {
			case c.expr != "":
				b.WriteString(c.expr)
			case c.shared:
				b.WriteByte('?')
			default:
				perRow++
				b.WriteString("column" + strconv.Itoa(perRow))
			}
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
	if shared {
		// WHERE true: an upsert clause after INSERT ... SELECT must not be
		// parsed as a join constraint.
		b.WriteString(") WHERE true")
	}
	return b.String()
}

// upsertResourcesSQL returns the conditional upsert of n resource rows (see
// insertSQL for shared). A row is inserted when its key is new and updated
// only when the stored version is the one just below the written one; a row
// whose version check fails is left alone, which the caller detects from the
// affected-row count (upsertAffected).
func upsertResourcesSQL(d Driver, n int, shared bool) string {
	var b strings.Builder
	b.WriteString(insertSQL(tblResources, resourceCols, n, shared))
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

// sharedForm reports whether a chunk of rows is written in insertSQL's
// shared form: on SQLite, when every row has the same shared values.
func sharedForm[T any](tx *gorm.DB, chunk []T, shared func(*T) [6]any) bool {
	if Driver(tx.Dialector.Name()) != SQLite {
		return false
	}
	first := shared(&chunk[0])
	for i := 1; i < len(chunk); i++ {
		if shared(&chunk[i]) != first {
			return false
		}
	}
	return true
}

// upsertResources creates and updates resource rows inside tx with one
// statement per chunk. It fails with errConflict when another writer created
// or changed one of the rows since they were read.
func upsertResources(tx *gorm.DB, rows []rowWrite) error {
	d := Driver(tx.Dialector.Name())
	sharedOf := func(w *rowWrite) [6]any { return [6]any{w.row.Account, w.row.Kind, w.row.Customer, w.row.UpdatedAt} }
	for chunk := range slices.Chunk(rows, chunkRows(tx)) {
		shared := sharedForm(tx, chunk, sharedOf)
		args := make([]any, 0, 9*len(chunk))
		if shared {
			r := &chunk[0].row
			args = append(args, r.Account, r.Kind, r.Customer, r.UpdatedAt)
		}
		for i := range chunk {
			r := &chunk[i].row
			if shared {
				args = append(args, r.ResourceID, r.Hash, r.Version, r.Attributes, r.ObservedAt)
			} else {
				args = append(args, r.Account, r.Kind, r.ResourceID, r.Customer, r.Hash, r.Version, r.Attributes, r.ObservedAt, r.UpdatedAt)
			}
		}
		q := cachedSQL(stmtKey{d, tblResources, len(chunk), shared}, func() string { return upsertResourcesSQL(d, len(chunk), shared) })
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
	sharedOf := func(r *historyRow) [6]any { return [6]any{r.Account, r.Kind, r.Customer, r.RecordedAt} }
	for chunk := range slices.Chunk(rows, chunkRows(tx)) {
		shared := sharedForm(tx, chunk, sharedOf)
		args := make([]any, 0, 10*len(chunk))
		if shared {
			r := &chunk[0]
			args = append(args, r.Account, r.Kind, r.Customer, r.RecordedAt)
		}
		for i := range chunk {
			r := &chunk[i]
			if shared {
				args = append(args, r.ResourceID, r.Op, r.Version, r.Fields, r.Attributes, r.ObservedAt)
			} else {
				args = append(args, r.Account, r.Kind, r.ResourceID, r.Customer, r.Op, r.Version, r.Fields, r.Attributes, r.ObservedAt, r.RecordedAt)
			}
		}
		q := cachedSQL(stmtKey{table: table, rows: len(chunk), shared: shared}, func() string { return insertSQL(table, historyCols, len(chunk), shared) })
		if err := tx.Table(table).Exec(q, args...).Error; err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

// insertEvents writes outbox rows inside tx.
func insertEvents(tx *gorm.DB, events []eventRow) error {
	sharedOf := func(e *eventRow) [6]any {
		var sent any
		if e.SentAt != nil {
			sent = *e.SentAt
		}
		return [6]any{e.Type, e.Account, e.Customer, e.Kind, e.CreatedAt, sent}
	}
	for chunk := range slices.Chunk(events, chunkRows(tx)) {
		shared := sharedForm(tx, chunk, sharedOf)
		args := make([]any, 0, 9*len(chunk))
		if shared {
			e := &chunk[0]
			args = append(args, e.Type, e.Account, e.Customer, e.Kind, e.CreatedAt, e.SentAt)
		}
		for i := range chunk {
			e := &chunk[i]
			if shared {
				args = append(args, e.EventID, e.ResourceID, e.Payload)
			} else {
				args = append(args, e.EventID, e.Type, e.Account, e.Customer, e.Kind, e.ResourceID, e.Payload, e.CreatedAt, e.SentAt)
			}
		}
		q := cachedSQL(stmtKey{table: tblEvents, rows: len(chunk), shared: shared}, func() string { return insertSQL(tblEvents, eventCols, len(chunk), shared) })
		if err := tx.Table(tblEvents).Exec(q, args...).Error; err != nil {
			return fmt.Errorf("insert %s: %w", tblEvents, err)
		}
	}
	return nil
}

// stmtKey identifies the text of a multi-row statement.
type stmtKey struct {
	driver Driver // for statements that differ by dialect
	table  string
	rows   int
	shared bool
}

// statements caches multi-row statement texts: the same few shapes (page
// sizes) usually repeat on every save. It keeps the first maxStatements.
var (
	statements     sync.Map // stmtKey -> string
	statementCount atomic.Int32
)

const maxStatements = 64

func cachedSQL(k stmtKey, build func() string) string {
	if q, ok := statements.Load(k); ok {
		return q.(string)
	}
	q := build()
	if statementCount.Add(1) <= maxStatements {
		statements.Store(k, q)
	}
	return q
}

// placeholders returns n comma-separated placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
