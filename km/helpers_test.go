package km_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stratusworks/worker/km"
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

// newDB opens a fresh SQLite database in t.TempDir() with one connection.
// log, if non-nil, receives GORM's SQL log (with parameters).
func newDB(t testing.TB, log logger.Interface) *gorm.DB {
	t.Helper()
	if log == nil {
		log = logger.Discard
	}
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "km.db")+"?_pragma=busy_timeout(5000)"),
		&gorm.Config{Logger: log})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return db
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
