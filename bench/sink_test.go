package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // registers "sqlite" for the baseline
	"github.com/google/uuid"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

const (
	sinkBatch     = 100  // observations per Save, and rows per baseline transaction
	sinkResources = 5000 // resources in the table; batches cycle over them
	sinkAccount   = "acct-0042"
	sinkCustomer  = "cust-0042"
	sinkKind      = "server"
)

// BenchmarkStateSink is pair 4: saving batches of sinkBatch observations of
// sinkResources resources that exist already, every observation changed
// (new attributes), on SQLite (a WAL file, synchronous=NORMAL, as the store
// opens it) and on MariaDB (a fresh database). Rate: observations saved per
// second.
//
//	ours      persist.Store.Save (the StateSink): canonical JSON, hash,
//	          stored rows read, one transaction with the row writes and the
//	          history rows, the changes returned with their changed fields
//	baseline  hand-written database/sql, one transaction per batch: read the
//	          batch's stored hashes and versions, one multi-row upsert of the
//	          changed rows, one multi-row insert of their history rows and one
//	          of their outbox rows (a change event each: the observation as
//	          JSON; it has no "before", since only hashes were read)
//	upsert    the multi-row upsert alone, one transaction per batch: the limit
//	ours-steady, baseline-steady
//	          re-saving unchanged observations: both must write nothing
//	          (checked after the timed part); rate of observations compared
func BenchmarkStateSink(b *testing.B) {
	for _, db := range []string{"SQLite", "MariaDB"} {
		b.Run(db, func(b *testing.B) {
			b.Run("ours", func(b *testing.B) { sinkOurs(b, db, true) })
			b.Run("baseline", func(b *testing.B) { sinkRaw(b, db, rawSave) })
			b.Run("upsert", func(b *testing.B) { sinkRaw(b, db, rawUpsertOnly) })
			b.Run("ours-steady", func(b *testing.B) { sinkOurs(b, db, false) })
			b.Run("baseline-steady", func(b *testing.B) { sinkRaw(b, db, rawSave) })
		})
	}
}

// sinkDB returns a fresh database of the given kind.
func sinkDB(b *testing.B, db string) persist.DBConfig {
	if db == "SQLite" {
		return persist.DBConfig{Driver: persist.SQLite, DSN: filepath.Join(b.TempDir(), "bench.db")}
	}
	return persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(b)}
}

// openPopulated opens a store on a fresh database (migrating it) and saves
// every resource once (round 0).
func openPopulated(b *testing.B, db string) (*persist.Store, persist.DBConfig) {
	b.Helper()
	cfg := sinkDB(b, db)
	s, err := persist.Open(context.Background(), persist.Config{Provisioning: cfg, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	for j := range sinkResources / sinkBatch {
		if _, err := s.Save(context.Background(), sinkTarget, snapshot(j, 0)); err != nil {
			b.Fatal(err)
		}
	}
	return s, cfg
}

var sinkTarget = state.Target{Account: sinkAccount, Customer: sinkCustomer, Kind: sinkKind}

// attrs is a resource's attributes in round r: about 250 bytes, canonical
// (sorted keys, no spaces) so that the baseline's hash of the bytes as given
// agrees with the store's hash of the canonical form.
func attrs(id string, r int) []byte {
	return fmt.Appendf(nil, `{"id":%q,"image":"debian-13","ip":"10.0.%d.%d","name":"web-%s","round":%d,"size":"m1.small","state":"running","tags":{"env":"prod","team":"platform"},"zone":"eu-west-1a"}`,
		id, len(id)%200, r%250, id, r)
}

func resourceID(j, k int) string { return fmt.Sprintf("i-0abc%08x", j*sinkBatch+k) }

// snapshot is batch j (resources j*sinkBatch ...) in round r.
func snapshot(j, r int) state.Snapshot {
	obs := make([]state.Observation, sinkBatch)
	for k := range obs {
		id := resourceID(j, k)
		obs[k] = state.Observation{ID: id, Attributes: attrs(id, r)}
	}
	return state.Snapshot{Observations: obs}
}

// batchOf returns the batch and round of the i-th timed save: changed
// rounds start at 1; steady saves repeat round 0.
func batchOf(i int, changed bool) (j, r int) {
	nb := sinkResources / sinkBatch
	if !changed {
		return i % nb, 0
	}
	return i % nb, 1 + i/nb
}

func sinkOurs(b *testing.B, db string, changed bool) {
	s, _ := openPopulated(b, db)
	defer s.Close()
	ctx := context.Background()
	snaps := make([]state.Snapshot, b.N)
	for i := range snaps {
		snaps[i] = snapshot(batchOf(i, changed))
	}
	before := writeMark(b, sqlDB(b, s))
	changes := 0

	b.ResetTimer()
	begin := time.Now()
	for i := range snaps {
		ch, err := s.Save(ctx, sinkTarget, snaps[i])
		if err != nil {
			b.Fatal(err)
		}
		changes += len(ch)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	reportRate(b, b.N*sinkBatch, elapsed, "rows/s")
	checkWrites(b, changed, changes, before, writeMark(b, sqlDB(b, s)))
}

func sqlDB(b *testing.B, s *persist.Store) *sql.DB {
	b.Helper()
	d, err := s.DB().DB()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// mark is what a save changes in the tables: history rows, latest update.
type mark struct {
	history int
	updated string
}

func writeMark(b *testing.B, db *sql.DB) mark {
	b.Helper()
	var m mark
	var updated sql.NullString
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM worker_resource_history), (SELECT CAST(MAX(updated_at) AS CHAR) FROM worker_resources)").Scan(&m.history, &updated); err != nil {
		b.Fatal(err)
	}
	m.updated = updated.String
	return m
}

// checkWrites fails a steady-state run that wrote anything, and a changed
// run that did not write one history row per observation.
func checkWrites(b *testing.B, changed bool, changes int, before, after mark) {
	b.Helper()
	if !changed {
		if changes != 0 || after != before {
			b.Fatalf("steady state wrote: %d changes, history %d -> %d rows, max(updated_at) %s -> %s",
				changes, before.history, after.history, before.updated, after.updated)
		}
		b.ReportMetric(float64(after.history-before.history), "rows-written")
		return
	}
	if want := b.N * sinkBatch; after.history-before.history != want || (changes != 0 && changes != want) {
		b.Fatalf("changed run: %d changes, %d history rows, want %d", changes, after.history-before.history, want)
	}
}

// rawDB opens the baseline's own connection to the populated database, set
// up as the store sets up its writer.
func rawDB(b *testing.B, db string, cfg persist.DBConfig) *sql.DB {
	b.Helper()
	var (
		d   *sql.DB
		err error
	)
	if db == "SQLite" {
		d, err = sql.Open("sqlite", cfg.DSN+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		d.SetMaxOpenConns(1)
	} else {
		d, err = sql.Open("mysql", cfg.DSN)
	}
	if err != nil {
		b.Fatal(err)
	}
	return d
}

type rawWriter func(ctx context.Context, tx *sql.Tx, mysql bool, obs []state.Observation, now time.Time) (int, error)

func sinkRaw(b *testing.B, db string, write rawWriter) {
	s, cfg := openPopulated(b, db)
	_ = s.Close()
	d := rawDB(b, db, cfg)
	defer d.Close()
	changed := !strings.HasSuffix(b.Name(), "-steady")
	ctx := context.Background()
	snaps := make([]state.Snapshot, b.N)
	for i := range snaps {
		snaps[i] = snapshot(batchOf(i, changed))
	}
	before := writeMark(b, d)

	b.ResetTimer()
	begin := time.Now()
	for i := range snaps {
		tx, err := d.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := write(ctx, tx, db == "MariaDB", snaps[i].Observations, time.Now().UTC().Truncate(time.Microsecond)); err != nil {
			_ = tx.Rollback()
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	reportRate(b, b.N*sinkBatch, elapsed, "rows/s")
	if !changed || strings.HasSuffix(b.Name(), "/baseline") { // upsert writes no history
		checkWrites(b, changed, 0, before, writeMark(b, d))
	}
}

const resourceCols = "account, kind, resource_id, customer, hash, version, attributes, observed_at, updated_at"

// rawSave is the hand-written equivalent of Save for one batch.
func rawSave(ctx context.Context, tx *sql.Tx, mysql bool, obs []state.Observation, now time.Time) (int, error) {
	args := []any{sinkAccount, sinkKind}
	for _, o := range obs {
		args = append(args, o.ID)
	}
	rows, err := tx.QueryContext(ctx, "SELECT resource_id, hash, version FROM worker_resources WHERE account = ? AND kind = ? AND resource_id IN ("+placeholders(len(obs))+")", args...)
	if err != nil {
		return 0, err
	}
	type stored struct {
		hash    string
		version int64
	}
	have := make(map[string]stored, len(obs))
	for rows.Next() {
		var id string
		var s stored
		if err := rows.Scan(&id, &s.hash, &s.version); err != nil {
			rows.Close()
			return 0, err
		}
		have[id] = s
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}

	var up, hist, events []any
	n := 0
	for _, o := range obs {
		sum := sha256.Sum256(o.Attributes)
		h := hex.EncodeToString(sum[:])
		old, ok := have[o.ID]
		if ok && old.hash == h {
			continue
		}
		op := "created"
		if ok {
			op = "updated"
		}
		v := old.version + 1
		up = append(up, sinkAccount, sinkKind, o.ID, sinkCustomer, h, v, string(o.Attributes), now, now)
		hist = append(hist, sinkAccount, sinkKind, o.ID, sinkCustomer, op, v, "[]", string(o.Attributes), now, now)
		payload, err := json.Marshal(state.Change{Op: state.ChangeOp(op), Version: v, After: &o,
			Target: state.Target{Account: sinkAccount, Customer: sinkCustomer, Kind: sinkKind, Resource: o.ID}})
		if err != nil {
			return 0, err
		}
		events = append(events, uuid.NewString(), sinkKind+".changed", sinkAccount, sinkCustomer, sinkKind, o.ID, string(payload), now)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, upsertSQL(mysql, n), up...); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO worker_resource_history (account, kind, resource_id, customer, op, version, fields, attributes, observed_at, recorded_at) VALUES "+rowsOf(n, 10), hist...); err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO worker_outbox (event_id, type, account, customer, kind, resource_id, payload, created_at) VALUES "+rowsOf(n, 8), events...)
	return n, err
}

// rawUpsertOnly writes every observation with one multi-row upsert and
// nothing else: the limit for a batch of changed rows.
func rawUpsertOnly(ctx context.Context, tx *sql.Tx, mysql bool, obs []state.Observation, now time.Time) (int, error) {
	up := make([]any, 0, 9*len(obs))
	for i, o := range obs {
		sum := sha256.Sum256(o.Attributes)
		up = append(up, sinkAccount, sinkKind, o.ID, sinkCustomer, hex.EncodeToString(sum[:]), int64(i), string(o.Attributes), now, now)
	}
	_, err := tx.ExecContext(ctx, upsertSQL(mysql, len(obs)), up...)
	return len(obs), err
}

func upsertSQL(mysql bool, n int) string {
	q := "INSERT INTO worker_resources (" + resourceCols + ") VALUES " + rowsOf(n, 9)
	if mysql {
		return q + " ON DUPLICATE KEY UPDATE customer = VALUES(customer), hash = VALUES(hash), version = VALUES(version), attributes = VALUES(attributes), observed_at = VALUES(observed_at), updated_at = VALUES(updated_at)"
	}
	return q + " ON CONFLICT (account, kind, resource_id) DO UPDATE SET customer = excluded.customer, hash = excluded.hash, version = excluded.version, attributes = excluded.attributes, observed_at = excluded.observed_at, updated_at = excluded.updated_at"
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func rowsOf(n, cols int) string {
	row := "(" + placeholders(cols) + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}
