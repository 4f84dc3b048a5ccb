package km_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/km"
)

// Compile-time checks: every implementation is a Store.
var (
	_ km.Store = (*km.LocalStore)(nil)
	_ km.Store = (*km.MemoryStore)(nil)
	_ km.Store = (*km.Client)(nil)
	_ km.Store = (*km.Cache)(nil)

	_ km.ConditionalStore = (*km.LocalStore)(nil)
	_ km.ConditionalStore = (*km.MemoryStore)(nil)
	_ km.ConditionalStore = (*km.Client)(nil)
	_ km.ConditionalStore = (*km.Cache)(nil)
)

// storeFactories builds each Store implementation over a fresh backend.
var storeFactories = map[string]func(t *testing.T) km.Store{
	"MemoryStore": func(t *testing.T) km.Store {
		return newMemoryStore(t, newKeyring(t, masterKey("prod", 1, 0x11)))
	},
	"LocalStoreSQLite": func(t *testing.T) km.Store {
		return newLocalStore(t, newDB(t, nil), newKeyring(t, masterKey("prod", 1, 0x11)))
	},
	"Client": func(t *testing.T) km.Store {
		return newService(t, serviceOptions{}).client(t, "admin", clientOptions{})
	},
	"ClientPayloadLayer": func(t *testing.T) km.Store {
		return newService(t, serviceOptions{payload: true}).client(t, "admin", clientOptions{})
	},
	"ClientOverMariaDB": func(t *testing.T) km.Store {
		return newService(t, serviceOptions{db: newMySQLDB(t, nil)}).client(t, "admin", clientOptions{})
	},
	"CacheOverLocalStore": func(t *testing.T) km.Store {
		backend := newLocalStore(t, newDB(t, nil), newKeyring(t, masterKey("prod", 1, 0x11)))
		c, err := km.NewCache(backend, time.Minute, nil)
		require.NoError(t, err)
		return c
	},
}

// TestStoreConformance runs the same behaviour checks against every Store.
func TestStoreConformance(t *testing.T) {
	t.Parallel()
	for name, newStore := range storeFactories {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testStore(t, newStore)
		})
	}
}

func testStore(t *testing.T, newStore func(t *testing.T) km.Store) {
	ctx := context.Background()
	t.Run("PutGetRoundTrip", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		in := cloudCred("acme", "123456", "default", canary)
		require.NoError(t, s.Put(ctx, in))
		got, err := s.Get(ctx, "acme", "123456", "default")
		require.NoError(t, err)
		require.Equal(t, in.Info().FieldNames, got.FieldNames())
		require.Equal(t, canary, string(got.Field(km.FieldSecretKey).Reveal()))
		require.Equal(t, "AKIA-default", string(got.Field(km.FieldAccessKeyID).Reveal()))
		require.Equal(t, in.Meta, got.Meta)
		require.Equal(t, "aws", got.Provider)
		require.Equal(t, km.KindCloud, got.Kind)
		require.False(t, got.CreatedAt.IsZero())
		require.False(t, got.UpdatedAt.IsZero())
		got.Destroy()

		again, err := s.Get(ctx, "acme", "123456", "default")
		require.NoError(t, err)
		require.Equal(t, canary, string(again.Field(km.FieldSecretKey).Reveal()), "destroying a fetched credential must not affect the store")
	})
	t.Run("PutReplaces", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "default", "old")))
		first, err := s.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		ssh := km.Credential{
			Customer: "acme", Account: "1", Name: "default", Kind: km.KindSSH,
			Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecretString("-----BEGIN OPENSSH PRIVATE KEY-----")},
		}
		require.NoError(t, s.Put(ctx, ssh))
		got, err := s.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.Equal(t, km.KindSSH, got.Kind)
		require.Equal(t, []string{km.FieldPrivateKey}, got.FieldNames())
		require.Empty(t, got.Meta)
		require.Equal(t, first.CreatedAt, got.CreatedAt, "CreatedAt survives a replace")
		require.False(t, got.UpdatedAt.Before(first.UpdatedAt))
	})
	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.Get(ctx, "acme", "1", "missing")
		require.ErrorIs(t, err, km.ErrNotFound)
		require.ErrorIs(t, s.Delete(ctx, "acme", "1", "missing"), km.ErrNotFound)
		require.NoError(t, s.Put(ctx, cloudCred("acme", "1", "x", canary)))
		require.NoError(t, s.Delete(ctx, "acme", "1", "x"))
		_, err = s.Get(ctx, "acme", "1", "x")
		require.ErrorIs(t, err, km.ErrNotFound)
		requireNoLeak(t, err.Error(), canary, "error")
	})
	t.Run("ListWithoutSecrets", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, c := range []km.Credential{
			cloudCred("acme", "b-account", "default", canary),
			cloudCred("acme", "a-account", "zeta", canary),
			cloudCred("acme", "a-account", "alpha", canary),
			cloudCred("other", "a-account", "alpha", canary),
		} {
			require.NoError(t, s.Put(ctx, c))
		}
		infos, err := s.List(ctx, "acme")
		require.NoError(t, err)
		var got []string
		for _, i := range infos {
			got = append(got, i.Account+"/"+i.Name)
			require.Equal(t, "acme", i.Customer)
			require.Equal(t, []string{km.FieldAccessKeyID, km.FieldSecretKey}, i.FieldNames)
			require.Equal(t, map[string]string{"region": "eu-west-1"}, i.Meta)
			require.Equal(t, km.KindCloud, i.Kind)
		}
		require.Equal(t, []string{"a-account/alpha", "a-account/zeta", "b-account/default"}, got)
		b, err := json.Marshal(infos)
		require.NoError(t, err)
		requireNoLeak(t, string(b)+fmt.Sprintf("%+v", infos), canary, "listing")

		empty, err := s.List(ctx, "nobody")
		require.NoError(t, err)
		require.Empty(t, empty)
	})
	t.Run("OddIdentifiers", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		c := cloudCred("acme corp/eu", "arn:aws:iam::123/456", "deploy key %2F ü?#", canary)
		require.NoError(t, s.Put(ctx, c))
		got, err := s.Get(ctx, c.Customer, c.Account, c.Name)
		require.NoError(t, err)
		require.Equal(t, c.Binding(), got.Binding())
		infos, err := s.List(ctx, c.Customer)
		require.NoError(t, err)
		require.Len(t, infos, 1)
		require.NoError(t, s.Delete(ctx, c.Customer, c.Account, c.Name))
	})
	t.Run("InvalidPut", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		bad := cloudCred("acme", "", "default", canary)
		err := s.Put(ctx, bad)
		require.ErrorIs(t, err, km.ErrInvalid)
		require.Contains(t, err.Error(), "Account")
	})
	t.Run("ConcurrentUse", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		errs := make(chan error, 8)
		for i := range 4 {
			go func() {
				name := fmt.Sprint("n", i)
				for j := range 3 {
					if err := s.Put(ctx, cloudCred("acme", "1", name, fmt.Sprint("v", j))); err != nil {
						errs <- err
						return
					}
					if _, err := s.Get(ctx, "acme", "1", name); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range 4 {
			require.NoError(t, <-errs)
		}
		infos, err := s.List(ctx, "acme")
		require.NoError(t, err)
		require.Len(t, infos, 4)
	})
}
