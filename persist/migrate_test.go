package persist

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/state"
)

func TestMigrationStepsAreOrdered(t *testing.T) {
	t.Parallel()
	for _, set := range []migrationSet{provisioningMigrations, analyticsMigrations} {
		require.NotEmpty(t, set.steps, set.table)
		for i, m := range set.steps {
			require.Equal(t, i+1, m.Version, "%s step %d", set.table, i)
			require.NotEmpty(t, m.Name)
			require.NotNil(t, m.Up)
		}
	}
}

// requireMigratedOnce checks that every known version is recorded exactly once.
func requireMigratedOnce(t *testing.T, s *Store) {
	t.Helper()
	for _, set := range []migrationSet{provisioningMigrations, analyticsMigrations} {
		var rows []struct {
			Version int
			N       int
		}
		require.NoError(t, s.DB().Raw("SELECT version, COUNT(*) AS n FROM "+set.table+" GROUP BY version ORDER BY version").Scan(&rows).Error)
		require.Len(t, rows, len(set.steps), set.table)
		for i, r := range rows {
			require.Equal(t, i+1, r.Version, set.table)
			require.Equal(t, 1, r.N, "%s version %d", set.table, r.Version)
		}
	}
	for _, table := range []string{tblResources, tblHistory, tblOutbox, tblPoison, tblDeferred,
		tblEvents, tblJobs, tblLaunches, tblOffsets, tblKMSecrets, tblKMNonces, tblKMAudit, tblInbox} {
		require.True(t, s.DB().Migrator().HasTable(table), table)
	}
	for _, col := range []string{"missing_since", "deleted_at"} {
		require.True(t, s.DB().Migrator().HasColumn(tblResources, col), col)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.db(t)
		s := openStore(t, Config{Provisioning: db})
		requireMigratedOnce(t, s)

		// Migrating again is a no-op.
		require.NoError(t, s.migrate(context.Background()))
		requireMigratedOnce(t, s)
		if b.reopenable {
			s2 := openStore(t, Config{Provisioning: db})
			requireMigratedOnce(t, s2)
		}

		// A version this binary does not know: refuse to run on it.
		require.NoError(t, s.DB().Exec("INSERT INTO "+provisioningMigrations.table+" (version, name, applied_at) VALUES (?, ?, ?)",
			len(provisioningMigrations.steps)+1, "from the future", t0).Error)
		err := s.migrate(context.Background())
		require.ErrorIs(t, err, ErrSchemaTooNew)
		require.ErrorContains(t, err, fmt.Sprintf("version %d", len(provisioningMigrations.steps)+1))
		if b.reopenable {
			_, err := Open(context.Background(), Config{Provisioning: db, Logger: testLogger(t)})
			require.ErrorIs(t, err, ErrSchemaTooNew)
		}
	})
}

// Environment of the helper process started by TestMigrateConcurrentProcesses.
const (
	helperDriverEnv = "PERSIST_TEST_HELPER_DRIVER"
	helperDSNEnv    = "PERSIST_TEST_HELPER_DSN"
	helperStartEnv  = "PERSIST_TEST_HELPER_START" // unix nanoseconds to start at
)

// TestHelperMigrate is not a test: it is the child process of
// TestMigrateConcurrentProcesses. Without its environment it does nothing.
func TestHelperMigrate(t *testing.T) {
	if os.Getenv(helperDSNEnv) == "" {
		return
	}
	start, err := strconv.ParseInt(testenv.MustEnv(helperStartEnv), 10, 64)
	require.NoError(t, err)
	time.Sleep(time.Until(time.Unix(0, start)))
	s, err := Open(context.Background(), Config{Provisioning: DBConfig{
		Driver: Driver(testenv.MustEnv(helperDriverEnv)),
		DSN:    testenv.MustEnv(helperDSNEnv),
	}})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// TestMigrateConcurrentProcesses starts several processes that migrate the
// same empty database at the same instant. All must succeed and each
// migration must be recorded exactly once.
func TestMigrateConcurrentProcesses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		db   func(t *testing.T) DBConfig
	}{
		{"SQLiteFile", func(t *testing.T) DBConfig { return DBConfig{Driver: SQLite, DSN: filepath.Join(t.TempDir(), "w.db")} }},
		{"MySQL", func(t *testing.T) DBConfig { return DBConfig{Driver: MySQL, DSN: testenv.MySQLDSN(t)} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.db(t)
			const procs = 3
			start := time.Now().Add(2 * time.Second) // after every child has started up
			var wg sync.WaitGroup
			outs := make([]string, procs)
			errs := make([]error, procs)
			for i := range procs {
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMigrate$", "-test.count=1", "-test.v")
				cmd.Env = append(os.Environ(),
					helperDriverEnv+"="+string(db.Driver),
					helperDSNEnv+"="+db.DSN,
					helperStartEnv+"="+strconv.FormatInt(start.UnixNano(), 10),
				)
				wg.Go(func() {
					out, err := cmd.CombinedOutput()
					outs[i], errs[i] = string(out), err
				})
			}
			wg.Wait()
			applied := 0
			for i := range procs {
				require.NoError(t, errs[i], "process %d:\n%s", i, outs[i])
				require.Contains(t, outs[i], "persist: store open", "process %d really opened the store", i)
				applied += strings.Count(outs[i], "persist: applied migration")
			}
			require.Equal(t, len(provisioningMigrations.steps)+len(analyticsMigrations.steps), applied,
				"exactly one process applies each migration")

			s := openStore(t, Config{Provisioning: db})
			requireMigratedOnce(t, s)
		})
	}
}

// TestAddColumnsRerun runs the column step again, as after a crash between
// its DDL (not transactional on MySQL) and recording its version.
func TestAddColumnsRerun(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		require.NoError(t, provisioningMigrations.steps[1].Up(s.DB()))
		require.NoError(t, createKMSecrets(s.DB()))
		require.NoError(t, createKMServerTables(s.DB()))
	})
}

// TestKMCredentialsTable checks that the km tables created by persist's
// migrations are what km checks for (km.CheckSchema), that km issues no DDL
// of its own, and that identifiers compare byte for byte on both dialects.
func TestKMCredentialsTable(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		cfg := b.db(t)
		s := openStore(t, Config{Provisioning: cfg})
		var mu sync.Mutex
		var ddl []string
		name := "persist_test:record_ddl"
		require.NoError(t, s.DB().Callback().Raw().After("gorm:raw").Register(name, func(db *gorm.DB) {
			sql := strings.ToUpper(strings.TrimSpace(db.Statement.SQL.String()))
			for _, verb := range []string{"CREATE", "ALTER", "DROP"} {
				if strings.HasPrefix(sql, verb) {
					mu.Lock()
					ddl = append(ddl, db.Statement.SQL.String())
					mu.Unlock()
				}
			}
		}))
		ctx := context.Background()
		require.NoError(t, km.CheckSchema(ctx, s.DB()))
		require.False(t, s.DB().Migrator().HasTable(tblKMCredentials), "version 9 drops the empty clear-text table")

		kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{7}, 32))})
		require.NoError(t, err)
		t.Cleanup(func() { _ = kr.Close() })
		ks, err := km.NewLocalStore(s.DB(), kr)
		require.NoError(t, err)
		for _, name := range []string{"default", "Default"} { // case-sensitive on both dialects
			require.NoError(t, ks.Put(ctx, km.Credential{Customer: "acme", Account: "a-1", Kind: km.KindCloud, Name: name,
				Fields: map[string]km.Secret{"secret": km.NewSecret([]byte("s3cret-" + name))}}))
		}
		c, err := ks.Get(ctx, "acme", "a-1", "Default")
		require.NoError(t, err)
		require.NoError(t, c.Field("secret").Use(func(p []byte) error {
			require.Equal(t, "s3cret-Default", string(p))
			return nil
		}))
		require.EqualValues(t, 2, countRows(t, s.DB(), tblKMSecrets))
		require.Empty(t, ddl, "km must not create or alter tables")

		// The one text-like column compared in queries, byte for byte.
		var n int64
		require.NoError(t, s.DB().Table(tblKMSecrets).Where("key_id = ?", "test ").Count(&n).Error)
		require.Zero(t, n)
		require.NoError(t, s.DB().Table(tblKMSecrets).Where("key_id = ?", "TEST").Count(&n).Error)
		require.Zero(t, n)
		if cfg.Driver == MySQL {
			var coll string
			require.NoError(t, s.DB().Raw("SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", tblKMSecrets).Scan(&coll).Error)
			require.Contains(t, []string{"utf8mb4_nopad_bin", "utf8mb4_0900_bin"}, coll, "the binary NO PAD collation, set explicitly")
		}
	})
}

// TestKMLegacyTableKept: version 9 keeps a clear-text km table that still
// has rows (km moves them, holding the keys; see km.LocalStore.MigrateLegacy)
// and drops an empty one.
func TestKMLegacyTableKept(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		if !b.reopenable {
			return
		}
		ctx := context.Background()
		db := b.db(t)
		s := openStore(t, Config{Provisioning: db})
		// Back to version 8, with one credential row in the version-7 table.
		require.NoError(t, s.DB().Exec("DROP TABLE "+tblKMSecrets).Error)
		require.NoError(t, s.DB().Exec("DELETE FROM "+provisioningMigrations.table+" WHERE version >= 9").Error)
		require.NoError(t, createKMCredentials(s.DB()))
		require.NoError(t, s.DB().Table(tblKMCredentials).Create(map[string]any{
			"customer": "acme", "account": "1", "name": "n", "kind": "cloud", "field_names": "[]", "meta": "{}",
			"envelope": []byte("sealed"), "key_id": "k", "key_version": 1, "created_at": time.Now(), "updated_at": time.Now(),
		}).Error)

		require.NoError(t, Migrate(ctx, Config{Provisioning: db, Logger: testLogger(t)}))
		requireMigratedOnce(t, s)
		require.EqualValues(t, 1, countRows(t, s.DB(), tblKMCredentials), "rows only km can rewrite are kept")
	})
}

// TestMigrateVerify: in verify mode Open never changes the schema: an
// unmigrated or partly migrated database is refused with ErrSchemaTooOld,
// naming the versions; once Migrate has run, Open works.
func TestMigrateVerify(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.db(t)
		verify := Config{Provisioning: db, Migrations: MigrateVerify, Logger: testLogger(t)}
		_, err := Open(ctx, verify)
		require.ErrorIs(t, err, ErrSchemaTooOld)
		require.ErrorContains(t, err, fmt.Sprintf("%s is at version 0, this binary needs version %d; run the migrations first",
			provisioningMigrations.table, len(provisioningMigrations.steps)))
		if !b.reopenable {
			return // every Open of ":memory:" is a new, empty database
		}
		if db.Driver == SQLite {
			s, err := Open(ctx, Config{Provisioning: DBConfig{DSN: db.DSN}, Migrations: MigrateVerify, Logger: testLogger(t)})
			require.ErrorIs(t, err, ErrSchemaTooOld, "verify mode created nothing: still version 0")
			require.Nil(t, s)
		}

		require.NoError(t, Migrate(ctx, Config{Provisioning: db, Logger: testLogger(t)}))
		s := openStore(t, verify)
		requireMigratedOnce(t, s)
		require.NoError(t, s.AddPoison(ctx, Parked{MessageUUID: "m-1", Topic: "t"}))

		// Partly migrated: a binary one step ahead of the schema.
		last := len(provisioningMigrations.steps)
		require.NoError(t, s.DB().Exec("DELETE FROM "+provisioningMigrations.table+" WHERE version = ?", last).Error)
		_, err = Open(ctx, verify)
		require.ErrorIs(t, err, ErrSchemaTooOld)
		require.ErrorContains(t, err, fmt.Sprintf("is at version %d, this binary needs version %d", last-1, last))
		// The analytics set is checked too.
		require.NoError(t, Migrate(ctx, Config{Provisioning: db, Logger: testLogger(t)}))
		require.NoError(t, s.DB().Exec("DELETE FROM "+analyticsMigrations.table).Error)
		_, err = Open(ctx, verify)
		require.ErrorIs(t, err, ErrSchemaTooOld)
		require.ErrorContains(t, err, analyticsMigrations.table+" is at version 0")

		// A newer binary's schema is refused in verify mode as well.
		require.NoError(t, Migrate(ctx, Config{Provisioning: db, Logger: testLogger(t)}))
		require.NoError(t, s.DB().Exec("INSERT INTO "+provisioningMigrations.table+" (version, name, applied_at) VALUES (?, ?, ?)",
			last+1, "from the future", t0).Error)
		_, err = Open(ctx, verify)
		require.ErrorIs(t, err, ErrSchemaTooNew)
		require.ErrorIs(t, Migrate(ctx, Config{Provisioning: db, Logger: testLogger(t)}), ErrSchemaTooNew)
	})
}

// TestMigrateReport: Migrate logs what it applied and the version each
// database is at, and a second run applies nothing.
func TestMigrateReport(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cfg := Config{Provisioning: DBConfig{DSN: filepath.Join(t.TempDir(), "w.db")},
		Logger: slog.New(slog.NewTextHandler(&out, nil))}
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, cfg))
	require.Equal(t, len(provisioningMigrations.steps)+len(analyticsMigrations.steps), strings.Count(out.String(), "persist: applied migration"))
	require.Contains(t, out.String(), fmt.Sprintf("persist: schema up to date\" db=\"sqlite %s\" table=%s version=%d applied=%d",
		cfg.Provisioning.DSN, provisioningMigrations.table, len(provisioningMigrations.steps), len(provisioningMigrations.steps)))
	out.Reset()
	require.NoError(t, Migrate(ctx, cfg))
	require.NotContains(t, out.String(), "persist: applied migration")
	require.Contains(t, out.String(), fmt.Sprintf("version=%d applied=0", len(analyticsMigrations.steps)))
}

// TestMigrateLockReleasedOnFailure: a step that fails still releases the
// migration lock (MySQL GET_LOCK, SQLite's write transaction), so the next
// migration, on another connection or in another process, does not wait.
func TestMigrateLockReleasedOnFailure(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.db(t)
		s := openStore(t, Config{Provisioning: db})
		failing := migrationSet{table: "worker_test_failing_migrations", steps: []migration{
			{Version: 1, Name: "fine", Up: func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error }},
			{Version: 2, Name: "broken", Up: func(tx *gorm.DB) error { return tx.Exec("SELECT * FROM worker_no_such_table").Error }},
		}}
		// Well under the 60s a held lock would make the next migration wait.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for range 2 {
			_, _, err := s.migrateDatabase(ctx, s.prov, failing)
			require.ErrorContains(t, err, "version 2 (broken)")
			require.ErrorContains(t, err, "worker_no_such_table")
			require.NoError(t, ctx.Err(), "the second attempt did not wait for a lock")
		}
		if db.Driver == MySQL {
			var dbName string
			require.NoError(t, s.DB().Raw("SELECT DATABASE()").Scan(&dbName).Error)
			var holder sql.NullInt64
			require.NoError(t, s.DB().Raw("SELECT IS_USED_LOCK(?)", migrationLockName(dbName)).Scan(&holder).Error)
			require.False(t, holder.Valid, "nobody holds the migration lock")
		}
		require.NoError(t, s.DB().Exec("DELETE FROM "+provisioningMigrations.table+" WHERE version = ?", len(provisioningMigrations.steps)).Error)
		require.NoError(t, s.migrate(ctx), "this process migrates")
		if b.reopenable {
			require.NoError(t, s.DB().Exec("DELETE FROM "+provisioningMigrations.table+" WHERE version = ?", len(provisioningMigrations.steps)).Error)
			require.NoError(t, Migrate(ctx, Config{Provisioning: db, Logger: testLogger(t)}), "another connection migrates")
		}
		requireMigratedOnce(t, s)
		require.NoError(t, ctx.Err())
	})
}

// TestLeastPrivilegeUser runs the worker as a MySQL user with only SELECT,
// INSERT, UPDATE and DELETE on a database migrated beforehand: Open works in
// verify mode and in the default mode, and so do writes and reads. On an
// unmigrated database verify mode says what to do, and the default mode
// fails for want of CREATE.
func TestLeastPrivilegeUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rootDSN := testenv.MySQLDSN(t)
	emptyDSN := testenv.MySQLDSN(t)
	require.NoError(t, Migrate(ctx, Config{Provisioning: DBConfig{Driver: MySQL, DSN: rootDSN}, Logger: testLogger(t)}))

	root, err := mysql.ParseDSN(rootDSN)
	require.NoError(t, err)
	empty, err := mysql.ParseDSN(emptyDSN)
	require.NoError(t, err)
	admin, err := sql.Open("mysql", rootDSN)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	user, password := "wrk_"+testenv.Suffix(), "pw-"+testenv.Suffix()
	_, err = admin.Exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'")
	require.NoError(t, err)
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'"); err != nil {
			t.Logf("drop user %s: %v", user, err)
		}
	})
	for _, db := range []string{root.DBName, empty.DBName} {
		_, err = admin.Exec("GRANT SELECT, INSERT, UPDATE, DELETE ON `" + db + "`.* TO '" + user + "'@'%'")
		require.NoError(t, err)
	}
	asUser := func(db string) DBConfig {
		c := root.Clone()
		c.User, c.Passwd, c.DBName = user, password, db
		return DBConfig{Driver: MySQL, DSN: c.FormatDSN()}
	}

	for _, mode := range []MigrationMode{MigrateVerify, ""} {
		s := openStore(t, Config{Provisioning: asUser(root.DBName), Migrations: mode})
		require.NoError(t, s.AddPoison(ctx, Parked{MessageUUID: "m-" + string(mode), Topic: "t", Payload: []byte("p")}))
		list, err := s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.NotEmpty(t, list)
		_, err = s.Save(ctx, state.Target{Account: "a", Kind: "server"}, state.Snapshot{Observations: []state.Observation{
			{ID: "i-" + string(mode), Attributes: json.RawMessage(`{"n":1}`)}}})
		require.NoError(t, err)
		_, err = s.Resource(ctx, "a", "server", "i-"+string(mode))
		require.NoError(t, err)
	}
	require.NoError(t, Migrate(ctx, Config{Provisioning: asUser(root.DBName), Logger: testLogger(t)}), "a current schema needs no DDL")

	_, err = Open(ctx, Config{Provisioning: asUser(empty.DBName), Migrations: MigrateVerify, Logger: testLogger(t)})
	require.ErrorIs(t, err, ErrSchemaTooOld)
	require.ErrorContains(t, err, fmt.Sprintf("is at version 0, this binary needs version %d", len(provisioningMigrations.steps)))
	_, err = Open(ctx, Config{Provisioning: asUser(empty.DBName), Logger: testLogger(t)})
	require.ErrorContains(t, err, "CREATE command denied")
}
