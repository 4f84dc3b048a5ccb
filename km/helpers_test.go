package km_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
)

// canary is a distinctive secret value that must never show up anywhere but
// in Reveal's output.
const canary = "CANARY-9f3b7e21-d4c8-4a6f-b1e0-5c2a9d7f3e18"

// keyBytes returns a fixed test master key: 32 copies of b.
func keyBytes(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func masterKey(id string, version int, b byte) km.MasterKey {
	return km.MasterKey{ID: id, Version: version, Key: km.NewSecret(keyBytes(b))}
}

func newKeyring(t testing.TB, keys ...km.MasterKey) *km.Keyring {
	t.Helper()
	kr, err := km.NewKeyring(keys...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = kr.Close() })
	return kr
}

// newDB opens a fresh SQLite database in t.TempDir(), migrated by persist
// (the one owner of km's tables), with one connection. log, if non-nil,
// receives GORM's SQL log (with parameters).
func newDB(t testing.TB, log logger.Interface) *gorm.DB {
	t.Helper()
	if log == nil {
		log = logger.Discard
	}
	path := filepath.Join(t.TempDir(), "km.db")
	require.NoError(t, persist.Migrate(context.Background(), persist.Config{
		Provisioning: persist.DBConfig{DSN: path}, Logger: slog.New(slog.DiscardHandler)}))
	db, err := gorm.Open(sqlite.Open(path+"?_pragma=busy_timeout(5000)"), &gorm.Config{Logger: log})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

// newRawDB opens a fresh SQLite database that no migration has touched.
func newRawDB(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "raw.db")), &gorm.Config{Logger: logger.Discard})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

// newMySQLDB opens a fresh MariaDB/MySQL database (skipping without
// WORKER_TEST_MYSQL_DSN), migrated by persist.
func newMySQLDB(t testing.TB, log logger.Interface) *gorm.DB {
	t.Helper()
	if log == nil {
		log = logger.Discard
	}
	dsn := testenv.MySQLDSN(t)
	require.NoError(t, persist.Migrate(context.Background(), persist.Config{
		Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, Logger: slog.New(slog.DiscardHandler)}))
	mc, err := mysqldriver.ParseDSN(dsn)
	require.NoError(t, err)
	mc.ParseTime, mc.Loc = true, time.UTC
	db, err := gorm.Open(mysql.Open(mc.FormatDSN()), &gorm.Config{Logger: log})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

// backends are the databases the storage attacks run against.
var backends = map[string]func(t testing.TB, log logger.Interface) *gorm.DB{
	"SQLite":  newDB,
	"MariaDB": newMySQLDB,
}

func newLocalStore(t testing.TB, db *gorm.DB, kr *km.Keyring) *km.LocalStore {
	t.Helper()
	s, err := km.NewLocalStore(db, kr)
	require.NoError(t, err)
	return s
}

// cloudCred returns a cloud credential whose secret key is secret.
func cloudCred(customer, account, name, secret string) km.Credential {
	return km.Credential{
		Customer: customer, Account: account, Provider: "aws", Kind: km.KindCloud, Name: name,
		Fields: map[string]km.Secret{
			km.FieldAccessKeyID: km.NewSecretString("AKIA-" + name),
			km.FieldSecretKey:   km.NewSecretString(secret),
		},
		Meta: map[string]string{"region": "eu-west-1"},
	}
}

// requireNoLeak fails if s contains needle in the clear, hex or base64.
func requireNoLeak(t testing.TB, s, needle, where string) {
	t.Helper()
	for _, form := range []string{
		needle,
		hex.EncodeToString([]byte(needle)),
		strings.ToUpper(hex.EncodeToString([]byte(needle))),
		base64.StdEncoding.EncodeToString([]byte(needle)),
		base64.StdEncoding.EncodeToString([]byte(needle))[:len(needle)/2], // unaligned prefixes
		base64.RawURLEncoding.EncodeToString([]byte(needle)),
	} {
		require.NotContains(t, s, form, "secret leaked into %s", where)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a goroutine-safe bytes.Buffer for log capture.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newMemoryStore(t testing.TB, kr *km.Keyring) *km.MemoryStore {
	t.Helper()
	s, err := km.NewMemoryStore(kr)
	require.NoError(t, err)
	return s
}

// moveEnvelope copies row from's envelope onto row to (an attacker with
// write access to the table).
func moveEnvelope(t testing.TB, db *gorm.DB, from, to uint64) {
	t.Helper()
	require.NotZero(t, from)
	require.NotZero(t, to)
	require.NoError(t, db.Exec("UPDATE "+km.TableName+" SET envelope = (SELECT envelope FROM "+km.TableName+" WHERE id = ?) WHERE id = ?", from, to).Error)
}
