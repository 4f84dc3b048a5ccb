package km_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/km"
)

type rawRow struct {
	ID            uint64
	CredentialRef []byte
	CustomerRef   []byte
	Info          []byte
	Envelope      []byte
	KeyID         string
	KeyVersion    int
	Revision      int64
}

// rawRows reads the rows of the named credentials of customer acme, account
// "1" (found through the store: the table holds no names).
func rawRows(t *testing.T, db *gorm.DB, s *km.LocalStore, names ...string) map[string]rawRow {
	t.Helper()
	out := map[string]rawRow{}
	for _, n := range names {
		id := km.RowID(s, "acme", "1", n)
		require.NotZero(t, id, "row of %s", n)
		var r rawRow
		require.NoError(t, db.Table(km.TableName).Where("id = ?", id).Take(&r).Error)
		out[n] = r
	}
	return out
}

func TestLocalStoreRewrapAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, nil)
	v1 := newKeyring(t, masterKey("prod", 1, 0x11))
	s1 := newLocalStore(t, db, v1)
	const n = 7
	var names []string
	for i := range n {
		names = append(names, fmt.Sprint("cred", i))
		require.NoError(t, s1.Put(ctx, cloudCred("acme", "1", names[i], canary)))
	}
	before := rawRows(t, db, s1, names...)
	for _, r := range before {
		require.Equal(t, 1, r.KeyVersion)
		require.NotContains(t, string(r.Envelope), canary)
	}

	// Rotate: a keyring with v1 and v2; a store over the same table.
	v12 := newKeyring(t, masterKey("prod", 1, 0x11), masterKey("prod", 2, 0x22))
	s12 := newLocalStore(t, db, v12)
	km.SetRewrapBatch(s12, 3) // several batches
	require.NoError(t, s12.Put(ctx, cloudCred("acme", "1", "fresh", canary)))
	require.Equal(t, 2, rawRows(t, db, s12, "fresh")["fresh"].KeyVersion, "new seals use v2")

	res, err := s12.RewrapAll(ctx)
	require.NoError(t, err)
	require.Equal(t, km.RewrapResult{Rewrapped: n}, res)

	after := rawRows(t, db, s12, names...)
	for name, r := range after {
		require.Equal(t, "prod", r.KeyID)
		require.Equal(t, 2, r.KeyVersion, name)
		hdr, err := km.ParseEnvelope(r.Envelope)
		require.NoError(t, err)
		require.Equal(t, 2, hdr.KeyVersion)
		// The payload (nonce + ciphertext, after the 80-byte header for id
		// "prod") is unchanged: only the data key was rewrapped.
		require.Equal(t, before[name].Envelope[80:], r.Envelope[80:])
		require.Equal(t, before[name].Info[80:], r.Info[80:])
		require.Equal(t, before[name].Revision+1, r.Revision)
		require.NotEqual(t, before[name].CredentialRef, r.CredentialRef, "references are keyed by the master key")
		require.Equal(t, before[name].ID, r.ID)
	}
	infos, err := s12.List(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, infos, n+1)
	for _, i := range infos {
		require.Equal(t, 2, i.KeyVersion)
	}

	// v1 can go: a v2-only keyring reads everything.
	s2 := newLocalStore(t, db, newKeyring(t, masterKey("prod", 2, 0x22)))
	for _, name := range names {
		c, err := s2.Get(ctx, "acme", "1", name)
		require.NoError(t, err)
		require.Equal(t, canary, string(c.Field(km.FieldSecretKey).Reveal()))
	}
	infos, err = s2.List(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, infos, n+1)
	// And v1 alone no longer can.
	_, err = s1.Get(ctx, "acme", "1", "cred0")
	require.ErrorIs(t, err, km.ErrUnknownKey)

	res, err = s12.RewrapAll(ctx)
	require.NoError(t, err)
	require.Equal(t, km.RewrapResult{}, res, "nothing left to do")
}

func TestLocalStoreRewrapAllFailuresAndConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, nil)
	v1 := newKeyring(t, masterKey("prod", 1, 0x11))
	other := newKeyring(t, masterKey("legacy", 9, 0x99))
	require.NoError(t, newLocalStore(t, db, v1).Put(ctx, cloudCred("acme", "1", "a", canary)))
	require.NoError(t, newLocalStore(t, db, v1).Put(ctx, cloudCred("acme", "1", "b", canary)))
	require.NoError(t, newLocalStore(t, db, other).Put(ctx, cloudCred("acme", "1", "orphan", canary)))

	v12 := newKeyring(t, masterKey("prod", 1, 0x11), masterKey("prod", 10, 0x22))
	s := newLocalStore(t, db, v12)
	old := newLocalStore(t, db, v1)
	raced := false
	km.SetBeforeRewrapUpdate(s, func() {
		if !raced { // a host still on v1 writes row "a" between read and update
			raced = true
			require.NoError(t, old.Put(ctx, cloudCred("acme", "1", "a", "written-concurrently")))
		}
	})
	res, err := s.RewrapAll(ctx)
	require.ErrorIs(t, err, km.ErrUnknownKey)
	// The table holds no names: the failed row is named by its id.
	require.Contains(t, err.Error(), fmt.Sprintf("credential row %d", km.RowID(newLocalStore(t, db, other), "acme", "1", "orphan")))
	requireNoLeak(t, err.Error(), canary, "error")
	require.Equal(t, km.RewrapResult{Rewrapped: 1, Conflicts: 1, Failed: 1}, res)

	got, err := s.Get(ctx, "acme", "1", "a")
	require.NoError(t, err)
	require.Equal(t, "written-concurrently", string(got.Field(km.FieldSecretKey).Reveal()), "the concurrent Put was not overwritten")

	km.SetBeforeRewrapUpdate(s, nil)
	res, err = s.RewrapAll(ctx)
	require.ErrorIs(t, err, km.ErrUnknownKey)
	require.Equal(t, km.RewrapResult{Rewrapped: 1, Failed: 1}, res, "the second run picks up the conflicted row")
}

// TestLocalStoreRotationDuplicates: during a rotation a host that already
// has the new key and one that does not may each create the same
// credential, under different references. Readers take the newest, a write
// folds them into one row, and RewrapAll removes the superseded one.
func TestLocalStoreRotationDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, nil)
	oldHost := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x11)))
	newHost := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x11), masterKey("prod", 2, 0x22)))
	require.NoError(t, newHost.Put(ctx, cloudCred("acme", "1", "dup", "from-new-host")))
	require.NoError(t, oldHost.Put(ctx, cloudCred("acme", "1", "dup", "from-old-host")))
	var n int64
	require.NoError(t, db.Table(km.TableName).Count(&n).Error)
	require.EqualValues(t, 2, n)

	got, err := newHost.Get(ctx, "acme", "1", "dup")
	require.NoError(t, err)
	require.Equal(t, "from-new-host", string(got.Field(km.FieldSecretKey).Reveal()), "the row under the current key wins")
	infos, err := newHost.List(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, infos, 1)

	res, err := newHost.RewrapAll(ctx)
	require.NoError(t, err)
	require.Equal(t, km.RewrapResult{Superseded: 1}, res)
	require.NoError(t, db.Table(km.TableName).Count(&n).Error)
	require.EqualValues(t, 1, n)
}

func TestLocalStoreIntegrity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*gorm.DB, *km.LocalStore, uint64, uint64) {
		db := newDB(t, nil)
		s := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x11)))
		require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "a", canary)))
		require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "b", "other-secret")))
		return db, s, km.RowID(s, "acme", "1", "a"), km.RowID(s, "acme", "1", "b")
	}
	const tbl = km.TableName
	cases := []struct {
		name   string
		sql    string // %[1]d: row a, %[2]d: row b
		target string
		list   bool // the attack shows in List (info envelopes), not Get
	}{
		{"EnvelopeMovedToOtherRow", `UPDATE ` + tbl + ` SET envelope = (SELECT envelope FROM ` + tbl + ` WHERE id = %[1]d) WHERE id = %[2]d`, "b", false},
		{"ReferenceMovedToOtherRow", `UPDATE ` + tbl + ` SET customer_ref = credential_ref WHERE id = %[1]d;` +
			`UPDATE ` + tbl + ` SET credential_ref = x'00' WHERE id = %[1]d;` +
			`UPDATE ` + tbl + ` SET credential_ref = (SELECT customer_ref FROM ` + tbl + ` WHERE id = %[1]d) WHERE id = %[2]d`, "a", false},
		{"CiphertextFlipped", `UPDATE ` + tbl + ` SET envelope = substr(envelope, 1, length(envelope) - 1) || x'00' WHERE id = %[1]d`, "a", false},
		{"EnvelopeTruncated", `UPDATE ` + tbl + ` SET envelope = substr(envelope, 1, 40) WHERE id = %[1]d`, "a", false},
		{"InfoMovedToOtherRow", `UPDATE ` + tbl + ` SET info = (SELECT info FROM ` + tbl + ` WHERE id = %[1]d) WHERE id = %[2]d`, "", true},
		{"InfoFlipped", `UPDATE ` + tbl + ` SET info = substr(info, 1, length(info) - 1) || x'00' WHERE id = %[1]d`, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, s, a, b := setup(t)
			for _, stmt := range strings.Split(fmt.Sprintf(tc.sql, a, b), ";") {
				require.NoError(t, db.Exec(stmt).Error)
			}
			var err error
			if tc.list {
				_, err = s.List(ctx, "acme")
			} else {
				_, err = s.Get(ctx, "acme", "1", tc.target)
			}
			require.ErrorIs(t, err, km.ErrTampered)
			requireNoLeak(t, err.Error(), canary, "error")
		})
	}
	t.Run("WrongMasterKey", func(t *testing.T) {
		t.Parallel()
		db, _, _, _ := setup(t)
		// Same id and version, other bytes: its references differ, so the
		// row is not found, and the miss says why.
		wrong := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x12)))
		_, err := wrong.Get(ctx, "acme", "1", "a")
		require.ErrorIs(t, err, km.ErrWrongKey)
		require.ErrorIs(t, wrong.Delete(ctx, "acme", "1", "a"), km.ErrWrongKey)
		unknown := newLocalStore(t, db, newKeyring(t, masterKey("other", 2, 0x12)))
		_, err = unknown.Get(ctx, "acme", "1", "a")
		require.ErrorIs(t, err, km.ErrUnknownKey)
		require.ErrorIs(t, err, km.ErrNotFound)
		require.ErrorContains(t, err, `under master keys the keyring does not hold ("prod" v1)`)
	})
	t.Run("NoPlaintextInDatabase", func(t *testing.T) {
		t.Parallel()
		db, s, _, _ := setup(t)
		for _, r := range rawRows(t, db, s, "a", "b") {
			require.False(t, bytes.Contains(r.Envelope, []byte(canary)))
			require.False(t, bytes.Contains(r.Envelope, []byte("AKIA-")))
		}
	})
	t.Run("NilArguments", func(t *testing.T) {
		t.Parallel()
		_, err := km.NewLocalStore(nil, newKeyring(t, masterKey("prod", 1, 1)))
		require.ErrorIs(t, err, km.ErrInvalid)
		_, err = km.NewLocalStore(newDB(t, nil), nil)
		require.ErrorIs(t, err, km.ErrInvalid)
		_, err = km.NewMemoryStore(nil)
		require.ErrorIs(t, err, km.ErrInvalid)
	})
}

// dumpTable renders every column of every row of table, as a database dump
// would, with binary values also in hex and base64.
func dumpTable(t *testing.T, db *gorm.DB, table string) string {
	t.Helper()
	rows, err := db.Table(table).Rows()
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var b strings.Builder
	b.WriteString(strings.Join(cols, ",") + "\n")
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		for _, v := range vals {
			if raw, ok := v.([]byte); ok {
				fmt.Fprintf(&b, "%s|%s|%s,", raw, hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw))
				continue
			}
			fmt.Fprintf(&b, "%v,", v)
		}
		b.WriteString("\n")
	}
	require.NoError(t, rows.Err())
	return b.String()
}

// Distinctive identifiers for the dump test.
const (
	dumpCustomer = "CUSTOMER-Zebulon-Industries"
	dumpAccount  = "ACCOUNT-arn-aws-987654"
	dumpName     = "CREDNAME-deploy-production"
	dumpProvider = "PROVIDER-quasar-cloud"
	dumpMeta     = "META-region-mars-north-1"
)

// TestTableDumpIsDeidentified is the attack of issue 18 (storage): a dump of
// the km table, every column of every row, shows no customer, account or
// credential name, nor provider or metadata, in clear, hex or base64; yet
// listing by customer works.
func TestTableDumpIsDeidentified(t *testing.T) {
	t.Parallel()
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t, nil)
			s := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x11)))
			for i := range 3 {
				c := cloudCred(dumpCustomer, fmt.Sprint(dumpAccount, i), fmt.Sprint(dumpName, i), canary)
				c.Provider = dumpProvider
				c.Meta = map[string]string{"region": dumpMeta}
				require.NoError(t, s.Put(ctx, c))
			}
			dump := dumpTable(t, db, km.TableName)
			require.Contains(t, dump, "credential_ref", "the dump has the table's columns")
			for _, needle := range []string{dumpCustomer, dumpAccount, dumpName, dumpProvider, dumpMeta, canary, "AKIA-" + dumpName} {
				requireNoLeak(t, dump, needle, "the table dump")
			}
			require.False(t, db.Migrator().HasTable(km.LegacyTableName), "persist dropped the empty clear-text table")

			infos, err := s.List(ctx, dumpCustomer)
			require.NoError(t, err)
			require.Len(t, infos, 3)
			require.Equal(t, dumpProvider, infos[0].Provider)
			require.Equal(t, dumpMeta, infos[0].Meta["region"])
		})
	}
}

// TestLookAlikeNamesCannotTouchARow is the attack of issue 18 (point 3) on
// both engines: "acme " is refused outright, and "ACME" is another customer,
// whose writes and deletes leave acme's row alone.
func TestLookAlikeNamesCannotTouchARow(t *testing.T) {
	t.Parallel()
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t, nil)
			s := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x11)))
			require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "default", canary)))
			requireAcmeIntact := func(t *testing.T) {
				t.Helper()
				got, err := s.Get(ctx, "acme", "1", "default")
				require.NoError(t, err)
				require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
				require.EqualValues(t, 1, got.Revision, "never written since")
			}

			for _, look := range []struct{ customer, account, name string }{
				{"acme ", "1", "default"}, {" acme", "1", "default"}, {"acme\t", "1", "default"},
				{"acme\u00a0", "1", "default"}, {"ac\x00me", "1", "default"}, {"acme\u200b", "1", "default"},
				{"acme", "1 ", "default"}, {"acme", "1", "default "}, {"acme", "1", "default\n"},
			} {
				err := s.Put(ctx, cloudCred(look.customer, look.account, look.name, "evil"))
				require.ErrorIs(t, err, km.ErrInvalid, "%q", look)
				_, err = s.Get(ctx, look.customer, look.account, look.name)
				require.ErrorIs(t, err, km.ErrInvalid, "%q", look)
				require.ErrorIs(t, s.Delete(ctx, look.customer, look.account, look.name), km.ErrInvalid, "%q", look)
				_, err = s.List(ctx, look.customer)
				if look.customer != "acme" {
					require.ErrorIs(t, err, km.ErrInvalid, "%q", look)
				}
			}
			requireAcmeIntact(t)

			for _, other := range []struct{ customer, account, name string }{
				{"ACME", "1", "default"}, {"Acme", "1", "default"}, {"acme", "1", "DEFAULT"}, {"acmé", "1", "default"},
			} {
				_, err := s.Get(ctx, other.customer, other.account, other.name)
				require.ErrorIs(t, err, km.ErrNotFound, "%q", other)
				require.ErrorIs(t, s.Delete(ctx, other.customer, other.account, other.name), km.ErrNotFound, "%q", other)
				require.NoError(t, s.Put(ctx, cloudCred(other.customer, other.account, other.name, "evil")))
				requireAcmeIntact(t)
				require.NoError(t, s.Delete(ctx, other.customer, other.account, other.name))
				requireAcmeIntact(t)
			}
			infos, err := s.List(ctx, "acme")
			require.NoError(t, err)
			require.Len(t, infos, 1)
			infos, err = s.List(ctx, "ACME")
			require.NoError(t, err)
			require.Empty(t, infos)

			// The one text column compared in queries compares byte for byte
			// in the database too.
			var n int64
			require.NoError(t, db.Table(km.TableName).Where("key_id = ?", "prod ").Count(&n).Error)
			require.Zero(t, n, "'prod ' must not match 'prod'")
			require.NoError(t, db.Table(km.TableName).Where("key_id = ?", "PROD").Count(&n).Error)
			require.Zero(t, n, "'PROD' must not match 'prod'")
		})
	}
}

// legacyDDL is persist's frozen migration 7 (the clear-text table), to build
// a database as a version-8 binary left it.
var legacyDDL = map[string][]string{
	"sqlite": {
		"CREATE TABLE `worker_km_credentials` (`id` integer PRIMARY KEY AUTOINCREMENT," +
			"`customer` text NOT NULL,`account` text NOT NULL,`name` text NOT NULL," +
			"`provider` text NOT NULL DEFAULT \"\",`kind` text NOT NULL,`field_names` text NOT NULL," +
			"`meta` text NOT NULL,`envelope` blob NOT NULL,`key_id` text NOT NULL,`key_version` integer NOT NULL," +
			"`revision` integer NOT NULL DEFAULT 1,`created_at` datetime NOT NULL,`updated_at` datetime NOT NULL)",
		`CREATE UNIQUE INDEX ux_worker_km_credentials_key ON worker_km_credentials (customer, account, name)`,
	},
	"mysql": {`CREATE TABLE worker_km_credentials (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, customer VARCHAR(191) NOT NULL, account VARCHAR(191) NOT NULL,
	name VARCHAR(191) NOT NULL, provider VARCHAR(191) NOT NULL DEFAULT '', kind VARCHAR(16) NOT NULL,
	field_names TEXT NOT NULL, meta TEXT NOT NULL, envelope LONGBLOB NOT NULL, key_id VARCHAR(64) NOT NULL,
	key_version BIGINT NOT NULL, revision BIGINT NOT NULL DEFAULT 1, created_at DATETIME(3) NOT NULL,
	updated_at DATETIME(3) NOT NULL, PRIMARY KEY (id), UNIQUE KEY ux_worker_km_credentials_key (customer, account, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`},
}

// TestMigrateLegacyRows: rows a version-8 binary wrote in clear text are
// rewritten into the de-identified table when a LocalStore opens, keeping
// their timestamps; a row whose key is missing stays, and reading it says
// why, until the key is there.
func TestMigrateLegacyRows(t *testing.T) {
	t.Parallel()
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t, nil)
			for _, stmt := range legacyDDL[db.Dialector.Name()] {
				require.NoError(t, db.Exec(stmt).Error)
			}
			kr := newKeyring(t, masterKey("prod", 1, 0x11))
			lost := newKeyring(t, masterKey("lost", 5, 0x55))
			created := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
			insert := func(kr *km.Keyring, c km.Credential) {
				env := km.LegacyEnvelope(kr, c)
				hdr, err := km.ParseEnvelope(env)
				require.NoError(t, err)
				require.NoError(t, db.Table(km.LegacyTableName).Create(map[string]any{
					"customer": c.Customer, "account": c.Account, "name": c.Name, "provider": c.Provider, "kind": string(c.Kind),
					"field_names": `[]`, "meta": `{}`, "envelope": env, "key_id": hdr.KeyID, "key_version": hdr.KeyVersion,
					"revision": 3, "created_at": created, "updated_at": created.Add(time.Hour),
				}).Error)
			}
			for i := range 3 {
				c := cloudCred(dumpCustomer, dumpAccount, fmt.Sprint(dumpName, i), canary)
				c.Provider = dumpProvider
				insert(kr, c)
			}
			insert(lost, cloudCred(dumpCustomer, dumpAccount, "needs-the-lost-key", canary))

			s := newLocalStore(t, db, kr)
			var left []string
			require.NoError(t, db.Table(km.LegacyTableName).Pluck("name", &left).Error)
			require.Equal(t, []string{"needs-the-lost-key"}, left, "moved rows are gone from the clear-text table")
			dump := dumpTable(t, db, km.TableName)
			for _, needle := range []string{dumpCustomer, dumpAccount, dumpName, dumpProvider, canary} {
				requireNoLeak(t, dump, needle, "the new table")
			}
			got, err := s.Get(ctx, dumpCustomer, dumpAccount, dumpName+"1")
			require.NoError(t, err)
			require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
			require.Equal(t, dumpProvider, got.Provider)
			require.True(t, created.Equal(got.CreatedAt), "CreatedAt kept: %s", got.CreatedAt)
			require.True(t, created.Add(time.Hour).Equal(got.UpdatedAt))
			infos, err := s.List(ctx, dumpCustomer)
			require.NoError(t, err)
			require.Len(t, infos, 3)

			_, err = s.Get(ctx, dumpCustomer, dumpAccount, "needs-the-lost-key")
			require.ErrorIs(t, err, km.ErrUnknownKey)
			require.ErrorContains(t, err, "still in the legacy table")
			res, err := s.MigrateLegacy(ctx)
			require.ErrorIs(t, err, km.ErrUnknownKey)
			require.Equal(t, km.LegacyResult{Failed: 1}, res)

			// With the key added, the next read moves the row.
			require.NoError(t, kr.Add(masterKey("lost", 5, 0x55)))
			got, err = s.Get(ctx, dumpCustomer, dumpAccount, "needs-the-lost-key")
			require.NoError(t, err)
			require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
			var n int64
			require.NoError(t, db.Table(km.LegacyTableName).Count(&n).Error)
			require.Zero(t, n)
			res, err = s.MigrateLegacy(ctx)
			require.NoError(t, err)
			require.Equal(t, km.LegacyResult{}, res, "nothing left; running again is harmless")
		})
	}
}

// TestLocalStoreChecksTheSchema: km creates no table; without persist's
// migrations, or with a table whose compared columns fold case or padding,
// NewLocalStore refuses with ErrSchema saying what to run.
func TestLocalStoreChecksTheSchema(t *testing.T) {
	t.Parallel()
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	t.Run("Unmigrated", func(t *testing.T) {
		t.Parallel()
		db := newRawDB(t)
		_, err := km.NewLocalStore(db, kr)
		require.ErrorIs(t, err, km.ErrSchema)
		require.ErrorContains(t, err, "worker_km_secrets: does not exist; run the provisioning database's migrations (persist.Migrate, version 9 or later)")
		require.False(t, db.Migrator().HasTable(km.TableName), "km created nothing")
	})
	t.Run("SQLiteNoCase", func(t *testing.T) {
		t.Parallel()
		db := newRawDB(t)
		require.NoError(t, db.Exec(`CREATE TABLE worker_km_secrets (id INTEGER PRIMARY KEY, credential_ref BLOB, customer_ref BLOB,
			key_id TEXT COLLATE NOCASE, key_version INTEGER, info BLOB, envelope BLOB, revision INTEGER, created_at DATETIME, updated_at DATETIME)`).Error)
		_, err := km.NewLocalStore(db, kr)
		require.ErrorIs(t, err, km.ErrSchema)
		require.ErrorContains(t, err, "NOCASE")
	})
	t.Run("MariaDBCaseInsensitiveColumn", func(t *testing.T) {
		t.Parallel()
		db := newMySQLDB(t, nil)
		require.NoError(t, db.Exec(`ALTER TABLE worker_km_secrets MODIFY key_id VARCHAR(64) COLLATE utf8mb4_general_ci NOT NULL`).Error)
		_, err := km.NewLocalStore(db, kr)
		require.ErrorIs(t, err, km.ErrSchema)
		require.ErrorContains(t, err, "column key_id has type VARCHAR")
	})
}

// TestConditionalWrites: PutIf and DeleteIf act only at the revision read,
// so a stale writer (or a replayed request) cannot undo a newer change.
func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stores := map[string]func(t *testing.T) km.ConditionalStore{
		"LocalStoreSQLite": func(t *testing.T) km.ConditionalStore {
			return newLocalStore(t, newDB(t, nil), newKeyring(t, masterKey("p", 1, 1)))
		},
		"LocalStoreMariaDB": func(t *testing.T) km.ConditionalStore {
			return newLocalStore(t, newMySQLDB(t, nil), newKeyring(t, masterKey("p", 1, 1)))
		},
		"MemoryStore": func(t *testing.T) km.ConditionalStore { return newMemoryStore(t, newKeyring(t, masterKey("p", 1, 1))) },
		"Cache": func(t *testing.T) km.ConditionalStore {
			c, err := km.NewCache(newMemoryStore(t, newKeyring(t, masterKey("p", 1, 1))), time.Minute, nil)
			require.NoError(t, err)
			return c
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			rev, err := s.PutIf(ctx, cloudCred("acme", "1", "c", "v1"), 0)
			require.NoError(t, err)
			require.EqualValues(t, 1, rev)
			_, err = s.PutIf(ctx, cloudCred("acme", "1", "c", "again"), 0)
			require.ErrorIs(t, err, km.ErrConflict, "revision 0 means: only if absent")

			got, err := s.Get(ctx, "acme", "1", "c")
			require.NoError(t, err)
			require.EqualValues(t, 1, got.Revision)
			rev, err = s.PutIf(ctx, cloudCred("acme", "1", "c", "v2"), got.Revision)
			require.NoError(t, err)
			require.EqualValues(t, 2, rev)
			_, err = s.PutIf(ctx, cloudCred("acme", "1", "c", "stale"), 1)
			require.ErrorIs(t, err, km.ErrConflict)
			require.ErrorContains(t, err, "revision 2, not 1")
			require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "c", "v3")), "Put ignores revisions")

			infos, err := s.List(ctx, "acme")
			require.NoError(t, err)
			require.EqualValues(t, 3, infos[0].Revision)
			require.ErrorIs(t, s.DeleteIf(ctx, "acme", "1", "c", 2), km.ErrConflict)
			require.NoError(t, s.DeleteIf(ctx, "acme", "1", "c", 3))
			require.ErrorIs(t, s.DeleteIf(ctx, "acme", "1", "c", 3), km.ErrNotFound)
			_, err = s.PutIf(ctx, cloudCred("acme", "1", "c", "gone"), 3)
			require.ErrorIs(t, err, km.ErrConflict, "the credential no longer exists")
		})
	}
}
