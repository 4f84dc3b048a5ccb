package persist

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/state"
)

const (
	backupAccounts    = 10
	backupPerAccount  = 1000 // 10,000 resources
	backupCredentials = 3
)

func backupTarget(a int) state.Target {
	return state.Target{Account: fmt.Sprintf("acct-%02d", a), Customer: fmt.Sprintf("cust-%d", a%3), Kind: "server"}
}

// backupSnapshot is account a's listing in round r: every third resource
// changes each round; from round 2 on the last ten are gone.
func backupSnapshot(a, round int, at time.Time) state.Snapshot {
	snap := state.Snapshot{Complete: true}
	for i := range backupPerAccount {
		if round >= 2 && i >= backupPerAccount-10 {
			continue
		}
		rev := 0
		if i%3 == 0 {
			rev = round
		}
		snap.Observations = append(snap.Observations, state.Observation{
			ID:         fmt.Sprintf("vm-%04d", i),
			Attributes: json.RawMessage(fmt.Sprintf(`{"name":"vm %d ünïcode","rev":%d,"cpus":%d,"tags":{"a":"b"}}`, i, rev, i%8)),
			ObservedAt: at,
		})
	}
	return snap
}

func backupKeyring(t testing.TB) *km.Keyring {
	kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{7}, 32))})
	require.NoError(t, err)
	return kr
}

// populate fills s with every kind of row the store keeps.
func populate(t testing.TB, s *Store, clock *testClock) {
	t.Helper()
	ctx := context.Background()
	for round := 1; round <= 3; round++ {
		clock.Set(t0.Add(time.Duration(round) * time.Minute))
		for a := range backupAccounts {
			_, err := s.Save(ctx, backupTarget(a), backupSnapshot(a, round, clock.Now()))
			require.NoError(t, err)
		}
	}
	// Usage samples over two hours, the first pruned (the cutoff is kept).
	_, err0 := s.AppendSamples(ctx, "acct-00", append(series("vm-1", t0, time.Minute, 120), series("vm-2", t0, time.Minute, 120)...))
	require.NoError(t, err0)
	_, err0 = s.PurgeSamples(ctx, t0.Add(time.Hour))
	require.NoError(t, err0)
	// Half the events were relayed.
	evs, err := s.PendingEvents(ctx, 100_000)
	require.NoError(t, err)
	require.NoError(t, s.MarkEventsSent(ctx, eventIDs(evs[:len(evs)/2])...))

	for i := range 30 {
		_, _, err := s.TrackJob(ctx, Job{ID: fmt.Sprintf("job-%02d", i), Account: "acct-00", Kind: "server", OperationID: fmt.Sprintf("op-%d", i),
			Deadline: clock.Now().Add(time.Hour)})
		require.NoError(t, err)
		if i%3 == 0 {
			_, err := s.FinishJob(ctx, fmt.Sprintf("job-%02d", i), JobSucceeded, "vm-0001", json.RawMessage(`{"ok":true}`), "")
			require.NoError(t, err)
		}
	}
	for i := range 20 {
		key := fmt.Sprintf("launch-%02d", i)
		_, _, err := s.ClaimLaunch(ctx, LaunchIntent{Key: key, Account: "acct-01", Customer: "cust-1", Request: json.RawMessage(`{"size":"m1"}`)})
		require.NoError(t, err)
		if i%2 == 0 {
			require.NoError(t, s.RecordLaunch(ctx, key, "vm-new", "op", "job-00"))
		}
	}
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	for i := range 10 {
		p := Parked{MessageUUID: fmt.Sprintf("poison-%d", i), Topic: "actions", ActionType: "server.launch",
			Metadata: map[string]string{"k": "v"}, Payload: binary, Reason: "boom", Attempts: 3}
		require.NoError(t, s.AddPoison(ctx, p))
		d := Parked{MessageUUID: fmt.Sprintf("deferred-%d", i), Topic: "actions", Payload: binary, Attempts: 1}
		require.NoError(t, s.Defer(ctx, d, clock.Now().Add(time.Duration(i)*time.Second)))
	}
	require.NoError(t, s.MarkPoisonReplayed(ctx, 1, 2))
	for i := range 5 {
		_, err := s.PutAccount(ctx, accounts.Account{ID: fmt.Sprintf("acct-%02d", i), Customer: "cust", Credential: "default",
			Settings: json.RawMessage(`{"region":"eu"}`)})
		require.NoError(t, err)
	}
	_, err = s.DeleteAccount(ctx, "acct-04", false)
	require.NoError(t, err)
	for i := range 20 {
		_, err := s.RunOnce(ctx, "server.launch", fmt.Sprintf("key-%d", i), func(*gorm.DB) error { return nil })
		require.NoError(t, err)
	}
	for i := range 5 {
		require.NoError(t, s.PutGuestOffset(ctx, GuestFile{Account: "acct-00", ServerID: "vm-0001", Path: fmt.Sprintf("/var/log/%d", i)},
			GuestOffset{Identity: "ino", Bytes: int64(i), Size: 100, TailHash: "abc", LocalSize: 10}))
	}
	require.NoError(t, s.PutInstance(ctx, Instance{ID: "inst-1", Host: "h", PID: 1, Roles: []string{"poll"}, Version: "v", StartedAt: clock.Now(),
		BeatAt: clock.Now(), Interval: time.Second}))
	require.NoError(t, s.PutProbes(ctx, Probe{Instance: "inst-1", Account: "acct-00", CheckedAt: clock.Now(), Latency: time.Millisecond, OK: true, AuthOK: true}))

	require.NoError(t, s.PutPollHealth(ctx, PollHealth{Account: "acct-00", Kind: "server", Failures: 3, LastError: "throttled", Throttled: true,
		Interval: time.Minute, Since: clock.Now(), LastFailure: clock.Now(), Instance: "inst-1"}))

	ks, err := km.NewLocalStore(s.DB(), backupKeyring(t))
	require.NoError(t, err)
	for i := range backupCredentials {
		require.NoError(t, ks.Put(ctx, km.Credential{Customer: "cust", Account: fmt.Sprintf("acct-%02d", i), Kind: km.KindCloud, Name: "default",
			Fields: map[string]km.Secret{km.FieldAccessKeyID: km.NewSecret([]byte(fmt.Sprintf("AKIA%d", i)))}}))
	}
}

// dumpStore reads every table of s as canonical lines (columns by name,
// values in the archive's engine-neutral encoding), sorted.
func dumpStore(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, bt := range backupTables {
		d := s.dbFor(bt)
		ok, err := hasTable(ctx, d, bt.name)
		require.NoError(t, err)
		if !ok {
			continue
		}
		rows, err := d.reader.WithContext(ctx).Raw("SELECT * FROM " + bt.name).Rows()
		require.NoError(t, err)
		types, err := rows.ColumnTypes()
		require.NoError(t, err)
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		lines := []string{}
		for rows.Next() {
			require.NoError(t, rows.Scan(ptrs...))
			fields := make([]string, len(types))
			for i, ct := range types {
				v, err := appendValue(nil, columnKind(bt.name, ct.Name(), ct.DatabaseTypeName()), vals[i])
				require.NoError(t, err)
				fields[i] = ct.Name() + "=" + string(v)
			}
			sort.Strings(fields)
			lines = append(lines, strings.Join(fields, " "))
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		sort.Strings(lines)
		out[bt.name] = lines
	}
	return out
}

func requireSameRows(t *testing.T, want, got map[string][]string) {
	t.Helper()
	require.ElementsMatch(t, keys(want), keys(got))
	for table, rows := range want {
		require.Len(t, got[table], len(rows), table)
		for i := range rows {
			if rows[i] != got[table][i] {
				require.Equal(t, rows[i], got[table][i], "table %s, row %d", table, i)
			}
		}
	}
}

func keys(m map[string][]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func sqliteFile(t *testing.T) DBConfig {
	return DBConfig{Driver: SQLite, DSN: filepath.Join(t.TempDir(), "worker.db")}
}

func exportAll(t *testing.T, s *Store) ([]byte, ExportStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := s.Export(context.Background(), &buf, ExportOptions{})
	require.NoError(t, err)
	t.Logf("export %s: %d rows, %d bytes in %v (%.0f rows/s)", s.Describe(), st.Rows, st.Bytes, st.Duration, float64(st.Rows)/st.Duration.Seconds())
	return buf.Bytes(), st
}

func importAll(t *testing.T, archive []byte, db DBConfig) *Store {
	t.Helper()
	st, err := Import(context.Background(), bytes.NewReader(archive), Config{Provisioning: db, Logger: testLogger(t)}, ImportOptions{})
	require.NoError(t, err)
	t.Logf("import into %s: %d rows in %v (%.0f rows/s)", db.Driver, st.Rows, st.Duration, float64(st.Rows)/st.Duration.Seconds())
	return openStore(t, Config{Provisioning: db})
}

// TestBackupRoundTrip: SQLite → archive → MariaDB → archive → SQLite keeps
// every row of every table; the restored store then sees no change in the
// same listing, re-emits no event, decrypts its km credentials and issues
// fresh ids past the restored ones.
func TestBackupRoundTrip(t *testing.T) {
	t.Parallel()
	mysqlDSN := testenv.MySQLDSN(t)
	ctx := context.Background()
	clock := newTestClock()
	src := openStore(t, Config{Provisioning: sqliteFile(t), Now: clock.Now})
	populate(t, src, clock)
	want := dumpStore(t, src)
	require.GreaterOrEqual(t, len(want[tblResources]), backupAccounts*backupPerAccount)
	for _, table := range []string{tblHistory, tblEvents, tblJobs, tblLaunches, tblPoison, tblDeferred, tblAccounts, tblInbox, tblKMSecrets, tblOffsets, tblInstances, tblProbes, tblPollHealth,
		tblSamples, tblHourly, tblSampleCut} {
		require.NotEmpty(t, want[table], table)
	}

	archive1, st := exportAll(t, src)
	require.NotEmpty(t, st.Warnings, "km rows are in the archive: the export warns that the keys are not")

	mdb := DBConfig{Driver: MySQL, DSN: mysqlDSN}
	mid := importAll(t, archive1, mdb)
	requireSameRows(t, want, dumpStore(t, mid))

	archive2, _ := exportAll(t, mid)
	dst := importAll(t, archive2, sqliteFile(t))
	requireSameRows(t, want, dumpStore(t, dst))

	// Import refuses a database that holds rows.
	_, err := Import(ctx, bytes.NewReader(archive1), Config{Provisioning: mdb, Logger: testLogger(t)}, ImportOptions{})
	require.ErrorIs(t, err, ErrNotEmpty)
	require.ErrorIs(t, err, ErrInvalid)

	pendingSrc, err := src.PendingEvents(ctx, 100_000)
	require.NoError(t, err)
	for _, s := range []*Store{mid, dst} {
		for a := range backupAccounts {
			changes, err := s.Save(ctx, backupTarget(a), backupSnapshot(a, 3, t0.Add(3*time.Minute)))
			require.NoError(t, err)
			require.Empty(t, changes, "the restored store takes its own listing for news (%s)", s.Describe())
		}
		pending, err := s.PendingEvents(ctx, 100_000)
		require.NoError(t, err)
		require.Equal(t, eventIDs(pendingSrc), eventIDs(pending), "the same events are pending, none re-emitted")

		require.NoError(t, s.PutPollHealth(ctx, PollHealth{Account: "acct-00", Kind: "server", Failures: 3, LastError: "throttled", Throttled: true,
			Interval: time.Minute, Since: clock.Now(), LastFailure: clock.Now(), Instance: "inst-1"}))

		ks, err := km.NewLocalStore(s.DB(), backupKeyring(t))
		require.NoError(t, err)
		c, err := ks.Get(ctx, "cust", "acct-01", "default")
		require.NoError(t, err)
		var got string
		require.NoError(t, c.Fields[km.FieldAccessKeyID].Use(func(b []byte) error { got = string(b); return nil }))
		require.Equal(t, "AKIA1", got)

		// Sequences continue past the restored ids.
		require.NoError(t, s.AddPoison(ctx, Parked{MessageUUID: "after-restore", Topic: "t", ActionType: "a", Payload: []byte("x")}))
		ps, err := s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		var maxID int64
		for _, p := range ps {
			if p.MessageUUID == "after-restore" {
				require.Greater(t, p.ID, int64(10))
			}
			maxID = max(maxID, p.ID)
		}
		require.Greater(t, maxID, int64(10))
	}
}

// rewriteArchive decompresses an archive, lets edit change its lines (the
// trailer excluded) and, with rehash, writes a trailer that matches.
func rewriteArchive(t *testing.T, archive []byte, edit func(lines []string), rehash bool) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	require.NoError(t, err)
	var lines []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	body, trailer := lines[:len(lines)-1], lines[len(lines)-1]
	edit(body)
	h := sha256.New()
	for _, l := range body {
		h.Write([]byte(l + "\n"))
	}
	if rehash {
		var tr backupTrailer
		require.NoError(t, json.Unmarshal([]byte(trailer), &tr))
		tr.Trailer.SHA256 = hex.EncodeToString(h.Sum(nil))
		b, _ := json.Marshal(tr)
		trailer = string(b)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	for _, l := range append(body, trailer) {
		_, _ = zw.Write([]byte(l + "\n"))
	}
	require.NoError(t, zw.Close())
	return out.Bytes()
}

// TestBackupRefusesDamagedArchives: a truncated, altered, foreign or newer
// archive is refused, and nothing is written.
func TestBackupRefusesDamagedArchives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	src := openStore(t, Config{Provisioning: sqliteFile(t), Now: clock.Now})
	_, err := src.Save(ctx, target, snapshot(obs("i-1", `{"a":1}`, t0), obs("i-2", `{"a":2}`, t0)))
	require.NoError(t, err)
	require.NoError(t, src.AddPoison(ctx, Parked{MessageUUID: "p", Topic: "t", ActionType: "a", Payload: []byte{0, 1, 2}}))
	archive, _ := exportAll(t, src)

	zr, err := gzip.NewReader(bytes.NewReader(archive))
	require.NoError(t, err)
	var plain bytes.Buffer
	_, err = plain.ReadFrom(zr)
	require.NoError(t, err)
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return out.Bytes()
	}
	tamper := func(lines []string) {
		for i, l := range lines {
			if strings.Contains(l, `"i-1"`) && !strings.Contains(l, `"table"`) {
				lines[i] = strings.Replace(l, `\"a\":1`, `\"a\":9`, 1)
				return
			}
		}
		t.Fatal("no row of i-1")
	}
	newer := func(lines []string) {
		lines[0] = strings.Replace(lines[0], fmt.Sprintf(`"worker_schema_migrations":%d`, len(provisioningMigrations.steps)), `"worker_schema_migrations":999`, 1)
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		want    error
	}{
		{"TruncatedCompressed", archive[:len(archive)/2], ErrBadArchive},
		{"TruncatedOnALine", gz(plain.Bytes()[:bytes.LastIndexByte(plain.Bytes()[:plain.Len()-1], '\n')+1]), ErrBadArchive},
		{"Tampered", rewriteArchive(t, archive, tamper, false), ErrBadArchive},
		{"NotAnArchive", gz([]byte("{\"hello\":1}\n")), ErrBadArchive},
		{"Empty", nil, ErrBadArchive},
		{"NewerSchema", rewriteArchive(t, archive, newer, true), ErrSchemaTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := sqliteFile(t)
			_, err := Import(ctx, bytes.NewReader(tc.archive), Config{Provisioning: db, Logger: testLogger(t)}, ImportOptions{})
			require.ErrorIs(t, err, tc.want)
			s := openStore(t, Config{Provisioning: db})
			require.Zero(t, countRows(t, s.DB(), tblResources), "nothing was written")
		})
	}
	t.Run("Intact", func(t *testing.T) {
		s := importAll(t, archive, sqliteFile(t))
		requireSameRows(t, dumpStore(t, src), dumpStore(t, s))
	})
}

// TestBackupLive: an export taken while Save keeps writing is one
// snapshot: every stored version of every resource has its history row and
// its change event, and the archive restores and runs.
func TestBackupLive(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		if b.db(t).DSN == MemoryDSN {
			t.Skip("one connection: the export holds it, writers wait (covered by the file)")
		}
		ctx := context.Background()
		src := openStore(t, Config{Provisioning: b.db(t), Now: time.Now})
		for a := range 3 {
			_, err := src.Save(ctx, backupTarget(a), backupSnapshot(a, 1, t0))
			require.NoError(t, err)
		}
		var (
			stop   atomic.Bool
			wg     sync.WaitGroup
			saves  atomic.Int64
			werr   error
			rounds = 2
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				rounds++
				for a := range 3 {
					if _, err := src.Save(ctx, backupTarget(a), backupSnapshot(a, rounds, time.Now())); err != nil {
						werr = err
						return
					}
					saves.Add(1)
				}
			}
		}()
		for saves.Load() < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		var archive bytes.Buffer
		progress := map[string]int64{}
		var during int64
		_, err := src.Export(ctx, &archive, ExportOptions{Progress: func(table string, rows, total int64) {
			require.LessOrEqual(t, rows, total)
			progress[table] = rows
			if table == tblResources && during == 0 {
				// Mid-table, inside the read transaction: let writes commit.
				n := saves.Load()
				deadline := time.Now().Add(20 * time.Second)
				for saves.Load() < n+2 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				during = saves.Load() - n
			}
		}})
		require.NoError(t, err)
		before := saves.Load()
		for saves.Load() < before+2 {
			time.Sleep(10 * time.Millisecond)
		}
		stop.Store(true)
		wg.Wait()
		require.NoError(t, werr)
		require.Equal(t, int64(3*backupPerAccount), progress[tblResources])
		require.GreaterOrEqual(t, during, int64(2), "saves committed while the export read")

		dst := importAll(t, archive.Bytes(), sqliteFile(t))
		// Every version 1..v of every resource has a history row and an event.
		type key struct{ account, id string }
		versions := map[key]int64{}
		rows, err := dst.DB().Raw("SELECT account, resource_id, version FROM " + tblResources).Rows()
		require.NoError(t, err)
		for rows.Next() {
			var k key
			var v int64
			require.NoError(t, rows.Scan(&k.account, &k.id, &v))
			versions[k] = v
		}
		require.NoError(t, rows.Close())
		count := func(table string) map[key]int64 {
			m := map[key]int64{}
			rows, err := dst.DB().Raw("SELECT account, resource_id, COUNT(*), MAX(version) FROM " + table + " GROUP BY account, resource_id").Rows()
			if table == tblEvents {
				rows, err = dst.DB().Raw("SELECT account, resource_id, COUNT(*), 0 FROM " + table + " GROUP BY account, resource_id").Rows()
			}
			require.NoError(t, err)
			defer rows.Close()
			for rows.Next() {
				var k key
				var n, mx int64
				require.NoError(t, rows.Scan(&k.account, &k.id, &n, &mx))
				m[k] = n
				if table != tblEvents {
					require.Equal(t, n, mx, "history of %v has no gaps", k)
				}
			}
			return m
		}
		history, events := count(tblHistory), count(tblEvents)
		var changed int
		for k, v := range versions {
			require.Equal(t, v, history[k], "history rows of %v", k)
			require.Equal(t, v, events[k], "change events of %v", k)
			if v > 1 {
				changed++
			}
		}
		require.NotZero(t, changed, "the archive caught writes in flight")
		// It runs: the next listing is news only where it differs.
		_, err = dst.Save(ctx, backupTarget(0), backupSnapshot(0, 1, time.Now()))
		require.NoError(t, err)
	})
}

// TestBackupCatalog: every worker_* table of a migrated database is in the
// archive's list (or is a migration record), and each column has the same
// engine-neutral kind on SQLite and MySQL.
func TestBackupCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kinds := map[string]map[string]string{}
	for _, b := range []backend{backends[0], backends[2]} {
		s := openStore(t, Config{Provisioning: b.db(t)})
		q := "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'worker_%'"
		if s.prov.driver == MySQL {
			q = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'worker_%'"
		}
		var names []string
		require.NoError(t, s.DB().WithContext(ctx).Raw(q).Scan(&names).Error)
		listed := map[string]bool{provisioningMigrations.table: true, analyticsMigrations.table: true}
		for _, bt := range backupTables {
			listed[bt.name] = true
		}
		for _, n := range names {
			require.True(t, listed[n], "table %s is not backed up", n)
			rows, err := s.DB().Raw("SELECT * FROM " + n + " LIMIT 0").Rows()
			require.NoError(t, err)
			types, err := rows.ColumnTypes()
			require.NoError(t, err)
			require.NoError(t, rows.Close())
			for _, ct := range types {
				k := columnKind(n, ct.Name(), ct.DatabaseTypeName())
				col := n + "." + ct.Name()
				if kinds[col] == nil {
					kinds[col] = map[string]string{}
				}
				kinds[col][string(s.prov.driver)] = k
			}
		}
	}
	for col, byDriver := range kinds {
		require.Equal(t, byDriver[string(SQLite)], byDriver[string(MySQL)], "kind of %s", col)
	}
}

// historyComplete requires that every resource of s at version v has
// history rows 1..v.
func historyComplete(t *testing.T, s *Store) {
	t.Helper()
	var gaps int64
	require.NoError(t, s.ana.reader.Raw("SELECT COUNT(*) FROM (SELECT account, kind, resource_id, COUNT(*) AS n, MAX(version) AS mx FROM "+
		tblHistory+" GROUP BY account, kind, resource_id) g WHERE n <> mx").Scan(&gaps).Error)
	require.Zero(t, gaps, "history has gaps")
	var versions, history int64
	require.NoError(t, s.prov.reader.Raw("SELECT COALESCE(SUM(version), 0) FROM "+tblResources).Scan(&versions).Error)
	require.NoError(t, s.ana.reader.Raw("SELECT COUNT(*) FROM "+tblHistory).Scan(&history).Error)
	require.Equal(t, versions, history, "one history row per version")
}

// TestBackupSeparateAnalytics: a store with an analytics database (history
// partly still in the outbox) restores into one database, where the outbox
// is merged into history, and into two, where the flush moves it on.
func TestBackupSeparateAnalytics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	src := openStore(t, Config{Provisioning: sqliteFile(t), Analytics: sqliteFile(t), Now: clock.Now})
	for round := 1; round <= 3; round++ {
		clock.Set(t0.Add(time.Duration(round) * time.Minute))
		_, err := src.Save(ctx, backupTarget(0), backupSnapshot(0, round, clock.Now()))
		require.NoError(t, err)
		if round == 1 {
			_, err := src.FlushHistory(ctx)
			require.NoError(t, err)
		}
	}
	require.NotZero(t, countRows(t, src.DB(), tblOutbox))
	archive, st := exportAll(t, src)
	require.Contains(t, st.Tables, TableStats{Table: tblHistory, Rows: backupPerAccount})

	for _, db := range []DBConfig{{Driver: MySQL, DSN: testenv.MySQLDSN(t)}, sqliteFile(t)} {
		one := importAll(t, archive, db)
		require.Zero(t, countRows(t, one.DB(), tblOutbox))
		historyComplete(t, one)
	}
	prov, ana := sqliteFile(t), sqliteFile(t)
	_, err := Import(ctx, bytes.NewReader(archive), Config{Provisioning: prov, Analytics: ana, Logger: testLogger(t)}, ImportOptions{})
	require.NoError(t, err)
	two := openStore(t, Config{Provisioning: prov, Analytics: ana})
	requireSameRows(t, dumpStore(t, src), dumpStore(t, two))
	_, err = two.FlushHistory(ctx)
	require.NoError(t, err)
	historyComplete(t, two)
}

// TestBackupMemory: a ":memory:" store exports and imports through
// Store.Import, with progress on a terminal.
func TestBackupMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	_, err := src.Save(ctx, backupTarget(0), backupSnapshot(0, 1, t0))
	require.NoError(t, err)
	var archive, term bytes.Buffer
	_, err = src.Export(ctx, &archive, ExportOptions{Progress: TerminalProgress(&term)})
	require.NoError(t, err)
	require.Contains(t, term.String(), "\r"+fmt.Sprintf("%-28s %10d/%-10d %3d%%", tblResources, 1000, 1000, 100)+"\n")

	dst := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	st, err := dst.Import(ctx, bytes.NewReader(archive.Bytes()), ImportOptions{Progress: TerminalProgress(&term)})
	require.NoError(t, err)
	require.Equal(t, BackupFormatVersion, st.Header.Version)
	require.Equal(t, SQLite, st.Header.Provisioning)
	requireSameRows(t, dumpStore(t, src), dumpStore(t, dst))
	_, err = dst.Import(ctx, bytes.NewReader(archive.Bytes()), ImportOptions{})
	require.ErrorIs(t, err, ErrNotEmpty)
}

// BenchmarkBackup measures export and import of the populated store
// (10,000 resources with history, events and the rest) on SQLite files,
// and on MariaDB when WORKER_TEST_MYSQL_DSN is set:
//
//	go test ./persist -run '^$' -bench Backup -benchtime 3x
func BenchmarkBackup(b *testing.B) {
	clock := newTestClock()
	ctx := context.Background()
	src, err := Open(ctx, Config{Provisioning: DBConfig{DSN: filepath.Join(b.TempDir(), "src.db")}, Now: clock.Now, Logger: quietLogger()})
	require.NoError(b, err)
	defer src.Close()
	populate(b, src, clock)
	var archive bytes.Buffer
	st, err := src.Export(ctx, &archive, ExportOptions{})
	require.NoError(b, err)
	targets := []struct {
		name string
		db   func() DBConfig
	}{{"SQLite", func() DBConfig { return DBConfig{DSN: filepath.Join(b.TempDir(), "dst.db")} }}}
	if os.Getenv("WORKER_TEST_MYSQL_DSN") != "" {
		targets = append(targets, struct {
			name string
			db   func() DBConfig
		}{"MariaDB", func() DBConfig { return DBConfig{Driver: MySQL, DSN: testenv.MySQLDSN(b)} }})
	}
	b.Run("ExportSQLite", func(b *testing.B) {
		for b.Loop() {
			_, err := src.Export(ctx, io.Discard, ExportOptions{})
			require.NoError(b, err)
		}
		b.ReportMetric(float64(st.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	for _, tg := range targets {
		b.Run("Import"+tg.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dst, err := Open(ctx, Config{Provisioning: tg.db(), Logger: quietLogger()})
				require.NoError(b, err)
				b.StartTimer()
				_, err = dst.Import(ctx, bytes.NewReader(archive.Bytes()), ImportOptions{})
				require.NoError(b, err)
				b.StopTimer()
				require.NoError(b, dst.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(st.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestBackupValueCodec: every kind of value survives the archive's
// encoding as the drivers return it, NULL and text that is not UTF-8
// included.
func TestBackupValueCodec(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for _, tc := range []struct {
		name string
		kind string
		in   any // as a driver returns it
		json string
		out  any // as Import binds it
	}{
		{"Null", kindText, nil, `null`, nil},
		{"Int", kindInt, int64(-42), `-42`, int64(-42)},
		{"IntAsText", kindInt, []byte("9007199254740993"), `9007199254740993`, int64(9007199254740993)},
		{"BoolFromInt", kindBool, int64(1), `true`, true},
		{"Text", kindText, "ü \"q\" \n", `"ü \"q\" \n"`, "ü \"q\" \n"},
		{"TextAsBytes", kindText, []byte("acct"), `"acct"`, "acct"},
		{"TextNotUTF8", kindText, "a\xffb", `{"base64":"Yf9i"}`, "a\xffb"},
		{"Bytes", kindBytes, []byte{0, 1, 0xff}, `"AAH/"`, []byte{0, 1, 0xff}},
		{"EmptyBytes", kindBytes, []byte{}, `""`, []byte{}},
		{"Time", kindTime, at, `"2025-03-01T12:00:00.123456Z"`, at},
		{"TimeAsSQLiteText", kindTime, "2025-03-01 12:00:00.123456+00:00", `"2025-03-01T12:00:00.123456Z"`, at},
		{"TimeOtherZone", kindTime, at.In(time.FixedZone("x", 3600)), `"2025-03-01T12:00:00.123456Z"`, at},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := appendValue(nil, tc.kind, tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.json, string(b))
			v, err := decodeValue(tc.kind, b)
			require.NoError(t, err)
			require.Equal(t, tc.out, v)
		})
	}
}
