package persist

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
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
		tblEvents, tblJobs, tblLaunches, tblOffsets, tblKMCredentials} {
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
		require.NoError(t, createKMCredentials(s.DB()))
	})
}

// TestKMCredentialsTable checks that the km credential table created by
// persist's migrations is the one km's own GORM model expects: km.Migrate
// finds nothing to create or alter, and a LocalStore works on it.
func TestKMCredentialsTable(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
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
		require.NoError(t, km.Migrate(ctx, s.DB()))
		require.Empty(t, ddl, "km.Migrate must find the table as its model describes it")

		kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{7}, 32))})
		require.NoError(t, err)
		t.Cleanup(func() { _ = kr.Close() })
		ks, err := km.NewLocalStore(s.DB(), kr)
		require.NoError(t, err)
		require.Empty(t, ddl)
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
		require.EqualValues(t, 2, countRows(t, s.DB(), tblKMCredentials))
	})
}
