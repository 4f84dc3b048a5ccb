package km_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/km"
)

type rawRow struct {
	Name       string
	Envelope   []byte
	KeyID      string
	KeyVersion int
	Revision   int64
}

func rawRows(t *testing.T, db *gorm.DB) map[string]rawRow {
	t.Helper()
	var rows []rawRow
	require.NoError(t, db.Table(km.TableName).Select("name", "envelope", "key_id", "key_version", "revision").Find(&rows).Error)
	out := map[string]rawRow{}
	for _, r := range rows {
		out[r.Name] = r
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
	for i := range n {
		require.NoError(t, s1.Put(ctx, cloudCred("acme", "1", fmt.Sprint("cred", i), canary)))
	}
	before := rawRows(t, db)
	for _, r := range before {
		require.Equal(t, 1, r.KeyVersion)
		require.NotContains(t, string(r.Envelope), canary)
	}

	// Rotate: a keyring with v1 and v2; a store over the same table.
	v12 := newKeyring(t, masterKey("prod", 1, 0x11), masterKey("prod", 2, 0x22))
	s12 := newLocalStore(t, db, v12)
	km.SetRewrapBatch(s12, 3) // several batches
	require.NoError(t, s12.Put(ctx, cloudCred("acme", "1", "fresh", canary)))
	require.Equal(t, 2, rawRows(t, db)["fresh"].KeyVersion, "new seals use v2")

	res, err := s12.RewrapAll(ctx)
	require.NoError(t, err)
	require.Equal(t, km.RewrapResult{Rewrapped: n}, res)

	after := rawRows(t, db)
	for name, r := range after {
		require.Equal(t, "prod", r.KeyID)
		require.Equal(t, 2, r.KeyVersion, name)
		if name == "fresh" {
			continue
		}
		hdr, err := km.ParseEnvelope(r.Envelope)
		require.NoError(t, err)
		require.Equal(t, 2, hdr.KeyVersion)
		// The payload (nonce + ciphertext, after the 80-byte header for id
		// "prod") is unchanged: only the data key was rewrapped.
		require.Equal(t, before[name].Envelope[80:], r.Envelope[80:])
		require.Equal(t, before[name].Revision+1, r.Revision)
	}
	infos, err := s12.List(ctx, "acme")
	require.NoError(t, err)
	for _, i := range infos {
		require.Equal(t, 2, i.KeyVersion)
	}

	// v1 can go: a v2-only keyring reads everything.
	s2 := newLocalStore(t, db, newKeyring(t, masterKey("prod", 2, 0x22)))
	for i := range n {
		c, err := s2.Get(ctx, "acme", "1", fmt.Sprint("cred", i))
		require.NoError(t, err)
		require.Equal(t, canary, string(c.Field(km.FieldSecretKey).Reveal()))
	}
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
	require.Contains(t, err.Error(), "acme/1/orphan")
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

func TestLocalStoreIntegrity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*gorm.DB, *km.LocalStore) {
		db := newDB(t, nil)
		s := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x11)))
		require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "a", canary)))
		require.NoError(t, s.Put(ctx, cloudCred("acme", "2", "b", "other-secret")))
		return db, s
	}
	cases := []struct {
		name   string
		sql    string
		target string
		want   error
	}{
		{"EnvelopeMovedToOtherRow", `UPDATE worker_km_credentials SET envelope = (SELECT envelope FROM worker_km_credentials WHERE name = 'a') WHERE name = 'b'`, "b", km.ErrTampered},
		{"RowRenamed", `UPDATE worker_km_credentials SET account = '9' WHERE name = 'a'`, "a", km.ErrTampered},
		{"CiphertextFlipped", `UPDATE worker_km_credentials SET envelope = substr(envelope, 1, length(envelope) - 1) || x'00' WHERE name = 'a'`, "a", km.ErrTampered},
		{"EnvelopeTruncated", `UPDATE worker_km_credentials SET envelope = substr(envelope, 1, 40) WHERE name = 'a'`, "a", km.ErrTampered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, s := setup(t)
			require.NoError(t, db.Exec(tc.sql).Error)
			account := "1"
			if tc.target == "b" {
				account = "2"
			} else if tc.name == "RowRenamed" {
				account = "9"
			}
			_, err := s.Get(ctx, "acme", account, tc.target)
			require.ErrorIs(t, err, tc.want)
			requireNoLeak(t, err.Error(), canary, "error")
		})
	}
	t.Run("WrongMasterKey", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		wrong := newLocalStore(t, db, newKeyring(t, masterKey("prod", 1, 0x12)))
		_, err := wrong.Get(ctx, "acme", "1", "a")
		require.ErrorIs(t, err, km.ErrWrongKey)
	})
	t.Run("NoPlaintextInDatabase", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		for _, r := range rawRows(t, db) {
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
