package persist

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Errors of [Store.Export] and [Import]. Both match [ErrInvalid] too.
var (
	// ErrBadArchive means the input is not a complete, intact backup archive
	// of a known format version: truncated, altered after it was written, or
	// not an archive at all. Nothing was written.
	ErrBadArchive = fmt.Errorf("%w: not a complete, intact worker backup archive", ErrInvalid)
	// ErrNotEmpty means the database to restore into already holds rows.
	// Restore into a new database: [Import] never merges or overwrites.
	ErrNotEmpty = fmt.Errorf("%w: the database to restore into is not empty", ErrInvalid)
)

// BackupFormat names the archive format in its header; BackupFormatVersion
// is the version this binary writes and the highest it reads.
const (
	BackupFormat        = "stratusworks-worker-backup"
	BackupFormatVersion = 1
)

// Column kinds of the archive: how a value is written, engine-neutrally.
const (
	kindInt   = "int"   // a JSON number (int64)
	kindText  = "text"  // a JSON string; {"base64": "…"} if not UTF-8
	kindBytes = "bytes" // base64 (standard, padded)
	kindTime  = "time"  // RFC 3339, microseconds, UTC
	kindBool  = "bool"  // true or false
)

const backupTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// backupTable is one table the store owns, in the order it is exported.
type backupTable struct {
	name      string
	analytics bool   // lives in the analytics database
	key       string // ORDER BY: the primary key
	autoID    bool   // id is AUTOINCREMENT / AUTO_INCREMENT
	optional  bool   // may be absent (dropped by a migration)
}

// backupTables is every table of the store's schema but the migration
// records (the archive's header carries the versions instead).
var backupTables = []backupTable{
	{name: tblResources, key: "account, kind, resource_id"},
	{name: tblOutbox, key: "id", autoID: true},
	{name: tblEvents, key: "id", autoID: true},
	{name: tblJobs, key: "id"},
	{name: tblLaunches, key: "idempotency_key"},
	{name: tblPoison, key: "id", autoID: true},
	{name: tblDeferred, key: "id", autoID: true},
	{name: tblOffsets, key: "account, server_id, path"},
	{name: tblInbox, key: "id", autoID: true},
	{name: tblAccounts, key: "id"},
	{name: tblInstances, key: "instance_id"},
	{name: tblProbes, key: "instance_id, account"},
	{name: tblPollHealth, key: "account, kind"},
	{name: tblLeases, key: "name"},
	{name: tblReports, key: "id", autoID: true},
	{name: tblKMCredentials, key: "id", autoID: true, optional: true},
	{name: tblKMSecrets, key: "id", autoID: true},
	{name: tblKMNonces, key: "nonce"},
	{name: tblKMAudit, key: "id", autoID: true},
	{name: tblHistory, analytics: true, key: "id", autoID: true},
	{name: tblSamples, analytics: true, key: "hour, account, server, at"},
	{name: tblHourly, analytics: true, key: "account, server, hour"},
	{name: tblSampleCut, analytics: true, key: "id"},
}

// binaryColumns hold bytes, not text: BLOB on SQLite. On MySQL they share
// VARBINARY with the byte-compared text columns ($BYTES), so the type alone
// cannot tell them apart.
var binaryColumns = map[string]bool{
	tblPoison + ".payload":           true,
	tblDeferred + ".payload":         true,
	tblKMCredentials + ".envelope":   true,
	tblKMSecrets + ".credential_ref": true,
	tblKMSecrets + ".customer_ref":   true,
	tblKMSecrets + ".info":           true,
	tblKMSecrets + ".envelope":       true,
	tblKMNonces + ".nonce":           true,
	tblKMAudit + ".customer_ref":     true,
	tblKMAudit + ".credential_ref":   true,
	tblKMAudit + ".names":            true,
}

// columnKind maps a column's database type to its archive kind.
func columnKind(table, column, dbType string) string {
	t := strings.ToUpper(dbType)
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = t[:i]
	}
	switch {
	case binaryColumns[table+"."+column]:
		return kindBytes
	case t == "DATETIME" || t == "TIMESTAMP":
		return kindTime
	case t == "BOOLEAN" || t == "BOOL" || t == "TINYINT":
		return kindBool
	case strings.Contains(t, "INT"):
		return kindInt
	case strings.Contains(t, "BLOB"):
		return kindBytes
	}
	return kindText
}

// ExportOptions tunes [Store.Export].
type ExportOptions struct {
	// Progress, if set, is called as each table is read: rows written so far
	// of total (at least every 1000 rows, and once at the end of the table).
	// See [TerminalProgress].
	Progress func(table string, rows, total int64)
	// Now stamps the archive's created_at. Default: the store's clock.
	Now time.Time
}

// ImportOptions tunes [Import] and [Store.Import].
type ImportOptions struct {
	// Progress, as for [ExportOptions].
	Progress func(table string, rows, total int64)
}

// TableStats counts one table of an archive.
type TableStats struct {
	Table string
	Rows  int64
}

// ExportStats describes a written archive.
type ExportStats struct {
	Tables   []TableStats
	Rows     int64
	Bytes    int64 // written to w (compressed)
	SHA256   string
	Duration time.Duration
	// Warnings the caller should show: that km credentials are in the
	// archive only as ciphertext, whose master keys are not.
	Warnings []string
}

// ImportStats describes a restore.
type ImportStats struct {
	Tables   []TableStats
	Rows     int64
	Header   BackupHeader
	Duration time.Duration
}

// BackupHeader is the first line of an archive.
type BackupHeader struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Source engines: "sqlite" or "mysql".
	Provisioning Driver `json:"provisioning"`
	Analytics    Driver `json:"analytics"`
	// SameDatabase: one database held both (exported in one snapshot).
	SameDatabase bool `json:"same_database"`
	// Schema maps each migration table to the version its database was at.
	Schema map[string]int `json:"schema"`
}

type backupColumn struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// tableHeader precedes a table's rows.
type tableHeader struct {
	Table   string         `json:"table"`
	DB      string         `json:"db"` // "provisioning" or "analytics"
	Columns []backupColumn `json:"columns"`
	Rows    int64          `json:"rows"`
	// LastID is the last id the table's sequence issued (0: none, or no
	// sequence), restored so later inserts never reuse an id.
	LastID int64 `json:"last_id,omitempty"`
}

type backupTrailer struct {
	Trailer struct {
		Rows   map[string]int64 `json:"rows"`
		Total  int64            `json:"total"`
		SHA256 string           `json:"sha256"` // of every line before this one
	} `json:"trailer"`
}

// Export writes a consistent, engine-neutral archive of every table of the
// store to w (see "Backups" in the package documentation). Each database is
// read inside one read transaction, so the archive is a snapshot of it even
// while the worker writes; a separate analytics database is read in a
// second transaction after the first. km rows are written as stored:
// ciphertext under the master keys, which are not in the archive. On an
// error, what was written to w is no archive ([Import] refuses it).
func (s *Store) Export(ctx context.Context, w io.Writer, opts ExportOptions) (ExportStats, error) {
	start := time.Now()
	created := opts.Now
	if created.IsZero() {
		created = s.now()
	}
	cw := &countWriter{w: w}
	zw := gzip.NewWriter(cw)
	hw := &hashWriter{w: bufio.NewWriterSize(zw, 256<<10), h: sha256.New()}
	stats := ExportStats{}

	hdr := BackupHeader{
		Format: BackupFormat, Version: BackupFormatVersion, CreatedAt: dbTime(created),
		Provisioning: s.prov.driver, Analytics: s.ana.driver, SameDatabase: s.ana == s.prov,
		Schema: map[string]int{},
	}
	for _, m := range s.migrationSets() {
		at, _, err := schemaVersion(ctx, m.d, m.set)
		if err != nil {
			return stats, fmt.Errorf("persist: export: read schema of %s: %w", m.d.desc, err)
		}
		hdr.Schema[m.set.table] = at
	}
	if err := hw.writeJSON(hdr); err != nil {
		return stats, fmt.Errorf("persist: export: %w", err)
	}

	counts := map[string]int64{}
	dbs := []*database{s.prov}
	if s.ana != s.prov {
		dbs = append(dbs, s.ana)
	}
	for _, d := range dbs {
		var tables []backupTable
		for _, t := range backupTables {
			if d == s.ana && t.analytics || d == s.prov && !t.analytics {
				tables = append(tables, t)
			}
		}
		if err := s.exportDatabase(ctx, d, tables, hw, opts.Progress, &stats); err != nil {
			return stats, fmt.Errorf("persist: export %s: %w", d.desc, classify(err))
		}
	}
	for _, t := range stats.Tables {
		counts[t.Table] = t.Rows
		stats.Rows += t.Rows
		if (t.Table == tblKMSecrets || t.Table == tblKMCredentials) && t.Rows > 0 {
			stats.Warnings = append(stats.Warnings, fmt.Sprintf(
				"the archive holds %d km credential rows as ciphertext; the master keys (km key files) are not in it: keep them separately, a restore is useless without them", t.Rows))
		}
	}
	var tr backupTrailer
	tr.Trailer.Rows, tr.Trailer.Total = counts, stats.Rows
	tr.Trailer.SHA256 = hex.EncodeToString(hw.h.Sum(nil))
	stats.SHA256 = tr.Trailer.SHA256
	hw.h = nil // the trailer is not hashed
	if err := hw.writeJSON(tr); err != nil {
		return stats, fmt.Errorf("persist: export: %w", err)
	}
	if err := hw.w.Flush(); err != nil {
		return stats, fmt.Errorf("persist: export: %w", err)
	}
	if err := zw.Close(); err != nil {
		return stats, fmt.Errorf("persist: export: %w", err)
	}
	stats.Bytes, stats.Duration = cw.n, time.Since(start)
	for _, warn := range stats.Warnings {
		s.log.Warn("persist: backup: " + warn)
	}
	s.log.Info("persist: backup written", "db", s.Describe(), "rows", stats.Rows, "bytes", stats.Bytes, "duration", stats.Duration)
	return stats, nil
}

// exportDatabase reads tables of d inside one read transaction.
func (s *Store) exportDatabase(ctx context.Context, d *database, tables []backupTable, hw *hashWriter,
	progress func(string, int64, int64), stats *ExportStats) (err error) {
	pool := d.pools[len(d.pools)-1] // the readers (SQLite file) or the one pool
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	begin := "BEGIN" // deferred: in WAL mode the first read fixes the snapshot
	if d.driver == MySQL {
		if _, err := conn.ExecContext(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return err
		}
		begin = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return fmt.Errorf("begin the read transaction: %w", err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil && err == nil {
			err = rerr
		}
	}()
	dbRole := "provisioning"
	if tables[0].analytics {
		dbRole = "analytics"
	}
	for _, t := range tables {
		exists, err := tableExists(ctx, conn, d.driver, t.name)
		if err != nil {
			return err
		}
		if !exists {
			if t.optional {
				continue
			}
			return fmt.Errorf("table %s is missing", t.name)
		}
		n, err := exportTable(ctx, conn, d.driver, dbRole, t, hw, progress)
		if err != nil {
			return fmt.Errorf("table %s: %w", t.name, err)
		}
		stats.Tables = append(stats.Tables, TableStats{Table: t.name, Rows: n})
	}
	return nil
}

func tableExists(ctx context.Context, conn *sql.Conn, drv Driver, table string) (bool, error) {
	q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if drv == MySQL {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	}
	var n int64
	err := conn.QueryRowContext(ctx, q, table).Scan(&n)
	return n > 0, err
}

var autoIncrementRE = regexp.MustCompile(`AUTO_INCREMENT=(\d+)`)

// lastID reads the last id the table's sequence issued.
func lastID(ctx context.Context, conn *sql.Conn, drv Driver, table string) (int64, error) {
	if drv == MySQL {
		// SHOW CREATE TABLE, unlike information_schema (cached on MySQL 8),
		// shows the live counter.
		var name, ddl string
		if err := conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+table).Scan(&name, &ddl); err != nil {
			return 0, err
		}
		m := autoIncrementRE.FindStringSubmatch(ddl)
		if m == nil {
			return 0, nil
		}
		next, _ := strconv.ParseInt(m[1], 10, 64)
		return max(next-1, 0), nil
	}
	var seq sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT seq FROM sqlite_sequence WHERE name = ?", table).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq.Int64, err
}

func exportTable(ctx context.Context, conn *sql.Conn, drv Driver, dbRole string, t backupTable, hw *hashWriter,
	progress func(string, int64, int64)) (int64, error) {
	var total int64
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.name).Scan(&total); err != nil {
		return 0, err
	}
	th := tableHeader{Table: t.name, DB: dbRole, Rows: total}
	if t.autoID {
		var err error
		if th.LastID, err = lastID(ctx, conn, drv, t.name); err != nil {
			return 0, fmt.Errorf("read its sequence: %w", err)
		}
	}
	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+t.name+" ORDER BY "+t.key)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	for _, ct := range types {
		th.Columns = append(th.Columns, backupColumn{Name: ct.Name(), Kind: columnKind(t.name, ct.Name(), ct.DatabaseTypeName())})
	}
	if err := hw.writeJSON(th); err != nil {
		return 0, err
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	line := make([]byte, 0, 4096)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		line = line[:0]
		line = append(line, '{')
		for i, c := range th.Columns {
			if i > 0 {
				line = append(line, ',')
			}
			line = strconv.AppendQuote(line, c.Name) // column names are ASCII identifiers
			line = append(line, ':')
			if line, err = appendValue(line, c.Kind, vals[i]); err != nil {
				return n, fmt.Errorf("column %s: %w", c.Name, err)
			}
		}
		line = append(line, '}', '\n')
		if err := hw.write(line); err != nil {
			return n, err
		}
		n++
		if progress != nil && n%1000 == 0 {
			progress(t.name, n, total)
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if n != total {
		return n, fmt.Errorf("read %d rows, counted %d in the same transaction", n, total)
	}
	if progress != nil {
		progress(t.name, n, total)
	}
	return n, nil
}

// appendValue writes v, as the driver returned it, as a JSON value of kind.
func appendValue(b []byte, kind string, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	switch kind {
	case kindInt, kindBool:
		var i int64
		switch v := v.(type) {
		case int64:
			i = v
		case bool:
			if v {
				i = 1
			}
		case []byte:
			var err error
			if i, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return nil, err
			}
		case string:
			var err error
			if i, err = strconv.ParseInt(v, 10, 64); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unexpected %s value %T", kind, v)
		}
		if kind == kindBool {
			return strconv.AppendBool(b, i != 0), nil
		}
		return strconv.AppendInt(b, i, 10), nil
	case kindTime:
		var t time.Time
		if err := (timeScanner{&t}).Scan(v); err != nil {
			return nil, err
		}
		b = append(b, '"')
		b = t.UTC().AppendFormat(b, backupTimeLayout)
		return append(b, '"'), nil
	case kindBytes:
		var raw []byte
		switch v := v.(type) {
		case []byte:
			raw = v
		case string:
			raw = []byte(v)
		default:
			return nil, fmt.Errorf("unexpected bytes value %T", v)
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, raw)
		return append(b, '"'), nil
	default: // text
		var str string
		switch v := v.(type) {
		case string:
			str = v
		case []byte:
			str = string(v)
		default:
			return nil, fmt.Errorf("unexpected text value %T", v)
		}
		if !utf8.ValidString(str) {
			b = append(b, `{"base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, []byte(str))
			return append(b, `"}`...), nil
		}
		enc, err := json.Marshal(str)
		if err != nil {
			return nil, err
		}
		return append(b, enc...), nil
	}
}

// decodeValue turns a JSON value of kind into a driver argument.
func decodeValue(kind string, raw json.RawMessage) (any, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	switch kind {
	case kindInt:
		return strconv.ParseInt(string(raw), 10, 64)
	case kindBool:
		var v bool
		err := json.Unmarshal(raw, &v)
		return v, err
	case kindTime:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return dbTime(t), err
	case kindBytes:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if b == nil {
			b = []byte{} // NOT NULL columns: empty, not NULL
		}
		return b, err
	case kindText:
		if len(raw) > 0 && raw[0] == '{' {
			var o struct{ Base64 string }
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, err
			}
			b, err := base64.StdEncoding.DecodeString(o.Base64)
			return string(b), err
		}
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	return nil, fmt.Errorf("unknown column kind %q", kind)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type hashWriter struct {
	w *bufio.Writer
	h hash.Hash // nil: stop hashing (the trailer)
}

func (h *hashWriter) write(p []byte) error {
	if h.h != nil {
		_, _ = h.h.Write(p)
	}
	_, err := h.w.Write(p)
	return err
}

func (h *hashWriter) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return h.write(append(b, '\n'))
}

// Import restores an archive written by [Store.Export] into the databases of
// cfg, which must be new: it opens them (creating and migrating the
// schema), refuses with [ErrNotEmpty] if any table holds a row, loads every
// table and closes them. See [Store.Import].
func Import(ctx context.Context, r io.Reader, cfg Config, opts ImportOptions) (ImportStats, error) {
	cfg.Migrations = MigrateAuto
	s, err := Open(ctx, cfg)
	if err != nil {
		return ImportStats{}, err
	}
	stats, err := s.Import(ctx, r, opts)
	return stats, errors.Join(err, s.Close())
}

// Import loads an archive written by [Store.Export] into the store's empty
// databases. The whole archive is read and checked first (format version,
// row counts, SHA-256): a truncated or altered one is refused with
// [ErrBadArchive] before anything is written, as is one from a newer schema
// ([ErrSchemaTooNew]); the archive is spooled to a temporary file (in
// os.TempDir) for that. Then each table is loaded in one transaction, ids
// and sequences kept, so later inserts never collide with restored rows.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (ImportStats, error) {
	start := time.Now()
	stats := ImportStats{}
	tmp, err := os.CreateTemp("", "worker-restore-*.jsonl.gz")
	if err != nil {
		return stats, fmt.Errorf("persist: import: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	hdr, headers, err := verifyArchive(io.TeeReader(r, tmp))
	if err != nil {
		return stats, err
	}
	stats.Header = hdr
	for _, m := range s.migrationSets() {
		v := hdr.Schema[m.set.table]
		if v > len(m.set.steps) {
			return stats, fmt.Errorf("persist: import: %w: the archive's %s is at version %d, this binary knows up to %d",
				ErrSchemaTooNew, m.set.table, v, len(m.set.steps))
		}
	}
	known := map[string]backupTable{}
	for _, t := range backupTables {
		known[t.name] = t
	}
	for _, th := range headers {
		if _, ok := known[th.Table]; !ok {
			return stats, fmt.Errorf("persist: import: %w: unknown table %s", ErrBadArchive, th.Table)
		}
	}
	// Refuse a target that holds anything.
	for _, t := range backupTables {
		d := s.dbFor(t)
		ok, err := hasTable(ctx, d, t.name)
		if err != nil {
			return stats, fmt.Errorf("persist: import into %s: %w", d.desc, classify(err))
		}
		if !ok {
			continue
		}
		var n int64
		if err := d.writer.WithContext(ctx).Table(t.name).Count(&n).Error; err != nil {
			return stats, fmt.Errorf("persist: import into %s: %w", d.desc, classify(err))
		}
		if n > 0 {
			return stats, fmt.Errorf("persist: import into %s: %w: %s holds %d rows", d.desc, ErrNotEmpty, t.name, n)
		}
	}

	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return stats, fmt.Errorf("persist: import: %w", err)
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(tmp, 256<<10))
	if err != nil {
		return stats, fmt.Errorf("persist: import: %w: %v", ErrBadArchive, err)
	}
	br := bufio.NewReaderSize(zr, 256<<10)
	if _, err := readLine(br); err != nil { // the header, checked already
		return stats, err
	}
	for _, th := range headers {
		if _, err := readLine(br); err != nil { // the table header
			return stats, err
		}
		t := known[th.Table]
		d := s.dbFor(t)
		if ok, err := hasTable(ctx, d, t.name); err != nil {
			return stats, fmt.Errorf("persist: import into %s: %w", d.desc, classify(err))
		} else if !ok {
			if th.Rows == 0 {
				continue
			}
			return stats, fmt.Errorf("persist: import into %s: the archive has %d rows of %s, which this schema no longer has", d.desc, th.Rows, t.name)
		}
		if err := s.importTable(ctx, d, t, th, br, opts.Progress); err != nil {
			return stats, fmt.Errorf("persist: import %s into %s: %w", t.name, d.desc, classify(err))
		}
		stats.Tables = append(stats.Tables, TableStats{Table: t.name, Rows: th.Rows})
		stats.Rows += th.Rows
	}
	if s.ana == s.prov {
		// An archive of two databases into one: there is no flush to move the
		// history outbox on, so its entries go to history now.
		if err := s.mergeOutbox(ctx); err != nil {
			return stats, fmt.Errorf("persist: import into %s: merge the history outbox: %w", s.prov.desc, classify(err))
		}
	}
	stats.Duration = time.Since(start)
	s.log.Info("persist: backup restored", "db", s.Describe(), "rows", stats.Rows, "duration", stats.Duration,
		"source", hdr.Provisioning, "created_at", hdr.CreatedAt)
	return stats, nil
}

func (s *Store) dbFor(t backupTable) *database {
	if t.analytics {
		return s.ana
	}
	return s.prov
}

func hasTable(ctx context.Context, d *database, table string) (bool, error) {
	q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if d.driver == MySQL {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	}
	var n int64
	err := d.writer.WithContext(ctx).Raw(q, table).Scan(&n).Error
	return n > 0, err
}

// readLine reads one line of an archive, without its newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("persist: import: %w: it ends early (truncated)", ErrBadArchive)
		}
		return nil, fmt.Errorf("persist: import: %w: %v", ErrBadArchive, err)
	}
	return line[:len(line)-1], nil
}

// verifyArchive reads a whole archive and checks its structure, counts and
// hash, returning its header and table headers.
func verifyArchive(r io.Reader) (BackupHeader, []tableHeader, error) {
	var hdr BackupHeader
	bad := func(format string, args ...any) (BackupHeader, []tableHeader, error) {
		return hdr, nil, fmt.Errorf("persist: import: %w: %s", ErrBadArchive, fmt.Sprintf(format, args...))
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(r, 256<<10))
	if err != nil {
		return bad("not gzip: %v", err)
	}
	br := bufio.NewReaderSize(zr, 256<<10)
	h := sha256.New()
	next := func() ([]byte, error) {
		line, err := readLine(br)
		if err == nil {
			h.Write(line)
			h.Write([]byte{'\n'})
		}
		return line, err
	}
	line, err := next()
	if err != nil {
		return hdr, nil, err
	}
	if err := json.Unmarshal(line, &hdr); err != nil || hdr.Format != BackupFormat {
		return bad("no archive header")
	}
	if hdr.Version < 1 || hdr.Version > BackupFormatVersion {
		return bad("format version %d; this binary reads up to %d", hdr.Version, BackupFormatVersion)
	}
	var headers []tableHeader
	counts := map[string]int64{}
	var total int64
	for {
		sum := hex.EncodeToString(h.Sum(nil))
		line, err := readLine(br)
		if err != nil {
			return hdr, nil, err
		}
		if strings.HasPrefix(string(line), `{"trailer":`) {
			var tr backupTrailer
			if err := json.Unmarshal(line, &tr); err != nil {
				return bad("unreadable trailer: %v", err)
			}
			if tr.Trailer.SHA256 != sum {
				return bad("SHA-256 mismatch: the archive was altered or damaged")
			}
			if tr.Trailer.Total != total || len(tr.Trailer.Rows) != len(counts) {
				return bad("row counts do not match the trailer")
			}
			for k, v := range tr.Trailer.Rows {
				if counts[k] != v {
					return bad("row count of %s does not match the trailer", k)
				}
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return bad("data after the trailer")
			}
			if _, err := io.Copy(io.Discard, zr); err != nil { // gzip checks its CRC at the end
				return bad("%v", err)
			}
			return hdr, headers, nil
		}
		h.Write(line)
		h.Write([]byte{'\n'})
		var th tableHeader
		if err := json.Unmarshal(line, &th); err != nil || th.Table == "" || len(th.Columns) == 0 {
			return bad("expected a table header")
		}
		if _, dup := counts[th.Table]; dup {
			return bad("table %s twice", th.Table)
		}
		for i := int64(0); i < th.Rows; i++ {
			if _, err := next(); err != nil {
				return hdr, nil, err
			}
		}
		counts[th.Table] = th.Rows
		total += th.Rows
		headers = append(headers, th)
	}
}

// importTable loads th.Rows rows of t from br in one transaction.
func (s *Store) importTable(ctx context.Context, d *database, t backupTable, th tableHeader, br *bufio.Reader,
	progress func(string, int64, int64)) error {
	pool := d.pools[0] // the writer (SQLite file) or the one pool
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()

	cols := make([]string, len(th.Columns))
	for i, c := range th.Columns {
		cols[i] = c.Name
	}
	prefix := "INSERT INTO " + t.name + " (" + strings.Join(cols, ", ") + ") VALUES "
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	maxParams := 30000
	if d.driver == SQLite {
		maxParams = 200 // the driver binds each parameter in time linear in their number
	}
	maxRows := max(1, min(500, maxParams/len(cols)))
	maxBytes := min(d.maxRow/2, 8<<20)
	var (
		args  []any
		n     int64
		batch int
		size  int64
		maxID int64
	)
	var full *sql.Stmt // the statement of a full batch, prepared once
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	flush := func() error {
		if batch == 0 {
			return nil
		}
		q := prefix + strings.TrimSuffix(strings.Repeat(one+", ", batch), ", ")
		if batch == maxRows {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, q); err != nil {
					return err
				}
			}
			if _, err := full.ExecContext(ctx, args...); err != nil {
				return err
			}
		} else if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		args, batch, size = args[:0], 0, 0
		return nil
	}
	idCol := -1
	if t.autoID {
		for i, c := range cols {
			if c == "id" {
				idCol = i
			}
		}
	}
	for ; n < th.Rows; n++ {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			return fmt.Errorf("%w: row %d: %v", ErrBadArchive, n+1, err)
		}
		for i, c := range th.Columns {
			raw, ok := obj[c.Name]
			if !ok {
				return fmt.Errorf("%w: row %d has no column %s", ErrBadArchive, n+1, c.Name)
			}
			v, err := decodeValue(c.Kind, raw)
			if err != nil {
				return fmt.Errorf("%w: row %d, column %s: %v", ErrBadArchive, n+1, c.Name, err)
			}
			if i == idCol {
				if id, ok := v.(int64); ok {
					maxID = max(maxID, id)
				}
			}
			args = append(args, v)
			size += int64(len(raw))
		}
		batch++
		if batch >= maxRows || size >= maxBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if progress != nil && (n+1)%1000 == 0 {
			progress(t.name, n+1, th.Rows)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	last := max(th.LastID, maxID)
	if t.autoID && last > 0 && d.driver == SQLite {
		// Explicit ids already raised the sequence to the largest; the
		// source's may be higher (rows since deleted).
		if _, err := tx.ExecContext(ctx, "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?", last, t.name, last); err != nil {
			return fmt.Errorf("restore its sequence: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)", t.name, last, t.name); err != nil {
			return fmt.Errorf("restore its sequence: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if t.autoID && last > 0 && d.driver == MySQL {
		// DDL: after the commit (it would commit implicitly).
		if err := d.writer.WithContext(ctx).Exec(fmt.Sprintf("ALTER TABLE %s AUTO_INCREMENT = %d", t.name, last+1)).Error; err != nil {
			return fmt.Errorf("restore its sequence: %w", err)
		}
	}
	if progress != nil {
		progress(t.name, n, th.Rows)
	}
	return nil
}

// TerminalProgress returns an [ExportOptions].Progress (or
// [ImportOptions].Progress) that draws one updating line per table on w, a
// terminal: "worker_resources  12000/50000  24%".
func TerminalProgress(w io.Writer) func(table string, rows, total int64) {
	return func(table string, rows, total int64) {
		pct := int64(100)
		if total > 0 {
			pct = rows * 100 / total
		}
		end := ""
		if rows >= total {
			end = "\n"
		}
		_, _ = fmt.Fprintf(w, "\r%-28s %10d/%-10d %3d%%%s", table, rows, total, pct, end)
	}
}

// mergeOutbox moves the history outbox's entries into history (a single
// database has no outbox of its own), skipping versions history has.
func (s *Store) mergeOutbox(ctx context.Context) error {
	cols := "account, kind, resource_id, customer, op, version, fields, attributes, observed_at, recorded_at"
	return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Exec("INSERT INTO " + tblHistory + " (" + cols + ") SELECT " + cols + " FROM " + tblOutbox + " o" +
			" WHERE NOT EXISTS (SELECT 1 FROM " + tblHistory + " h WHERE h.account = o.account AND h.kind = o.kind" +
			" AND h.resource_id = o.resource_id AND h.version = o.version) ORDER BY o.id").Error
		if err != nil {
			return err
		}
		return tx.Exec("DELETE FROM " + tblOutbox).Error
	})
}
