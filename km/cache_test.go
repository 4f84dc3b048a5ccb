package km_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/km"
)

// countingStore counts Gets and keeps every credential it returned, so tests
// can see the cache wipe them.
type countingStore struct {
	km.Store
	mu       sync.Mutex
	gets     int
	returned []km.Credential
}

func (s *countingStore) Get(ctx context.Context, customer, account, name string) (km.Credential, error) {
	c, err := s.Store.Get(ctx, customer, account, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if err == nil {
		s.returned = append(s.returned, c)
	}
	return c, err
}

func (s *countingStore) stats() (int, []km.Credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, append([]km.Credential(nil), s.returned...)
}

func newCache(t *testing.T, ttl time.Duration) (*km.Cache, *countingStore, *fakeClock) {
	t.Helper()
	backend := &countingStore{Store: newMemoryStore(t, newKeyring(t, masterKey("prod", 1, 0x11)))}
	clock := newFakeClock()
	c, err := km.NewCache(backend, ttl, clock.Now)
	require.NoError(t, err)
	require.NoError(t, backend.Store.Put(context.Background(), cloudCred("acme", "1", "default", canary)))
	return c, backend, clock
}

func TestCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	secretOf := func(t *testing.T, c km.Credential) string {
		t.Helper()
		return string(c.Field(km.FieldSecretKey).Reveal())
	}

	t.Run("HitWithinTTL", func(t *testing.T) {
		t.Parallel()
		c, backend, clock := newCache(t, time.Minute)
		for range 3 {
			got, err := c.Get(ctx, "acme", "1", "default")
			require.NoError(t, err)
			require.Equal(t, canary, secretOf(t, got))
			got.Destroy() // callers own their copy
			clock.Advance(59 * time.Second / 3)
		}
		gets, _ := backend.stats()
		require.Equal(t, 1, gets)
		require.Equal(t, 1, c.Len())
	})
	t.Run("ExpiresAfterTTLAndWipesEvicted", func(t *testing.T) {
		t.Parallel()
		c, backend, clock := newCache(t, time.Minute)
		_, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		clock.Advance(time.Minute)
		got, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.Equal(t, canary, secretOf(t, got))
		gets, returned := backend.stats()
		require.Equal(t, 2, gets)
		require.True(t, returned[0].Field(km.FieldSecretKey).IsZero(), "the expired copy was wiped")
		require.False(t, returned[1].Field(km.FieldSecretKey).IsZero())
	})
	t.Run("SweepWipesIdleEntries", func(t *testing.T) {
		t.Parallel()
		c, backend, clock := newCache(t, time.Minute)
		require.NoError(t, backend.Store.Put(ctx, cloudCred("acme", "1", "other", "x")))
		_, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		clock.Advance(2 * time.Minute)
		_, err = c.Get(ctx, "acme", "1", "other") // touches another key only
		require.NoError(t, err)
		_, returned := backend.stats()
		require.True(t, returned[0].Field(km.FieldSecretKey).IsZero())
		require.Equal(t, 1, c.Len())
	})
	t.Run("PutInvalidates", func(t *testing.T) {
		t.Parallel()
		c, backend, _ := newCache(t, time.Hour)
		_, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.NoError(t, c.Put(ctx, cloudCred("acme", "1", "default", "rotated")))
		got, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.Equal(t, "rotated", secretOf(t, got))
		gets, returned := backend.stats()
		require.Equal(t, 2, gets)
		require.True(t, returned[0].Field(km.FieldSecretKey).IsZero())
	})
	t.Run("DeleteInvalidates", func(t *testing.T) {
		t.Parallel()
		c, _, _ := newCache(t, time.Hour)
		_, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.NoError(t, c.Delete(ctx, "acme", "1", "default"))
		_, err = c.Get(ctx, "acme", "1", "default")
		require.ErrorIs(t, err, km.ErrNotFound)
		require.Equal(t, 0, c.Len())
	})
	t.Run("PurgeWipesEverything", func(t *testing.T) {
		t.Parallel()
		c, backend, _ := newCache(t, time.Hour)
		_, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		c.Purge()
		require.Equal(t, 0, c.Len())
		_, returned := backend.stats()
		require.True(t, returned[0].Field(km.FieldSecretKey).IsZero())
	})
	t.Run("CallerDestroyDoesNotAffectCache", func(t *testing.T) {
		t.Parallel()
		c, backend, _ := newCache(t, time.Hour)
		a, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		a.Destroy()
		b, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.Equal(t, canary, secretOf(t, b))
		gets, _ := backend.stats()
		require.Equal(t, 1, gets)
	})
	t.Run("InvalidConfig", func(t *testing.T) {
		t.Parallel()
		_, err := km.NewCache(nil, time.Minute, nil)
		require.ErrorIs(t, err, km.ErrInvalid)
		_, err = km.NewCache(newMemoryStore(t, newKeyring(t, masterKey("p", 1, 1))), 0, nil)
		require.ErrorIs(t, err, km.ErrInvalid)
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		c, _, clock := newCache(t, time.Second)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 25 {
					got, err := c.Get(ctx, "acme", "1", "default")
					if err == nil {
						_ = secretOf(t, got)
						got.Destroy()
					}
					clock.Advance(100 * time.Millisecond)
				}
			})
		}
		wg.Go(func() {
			for range 10 {
				_ = c.Put(ctx, cloudCred("acme", "1", "default", canary))
			}
		})
		wg.Wait()
		got, err := c.Get(ctx, "acme", "1", "default")
		require.NoError(t, err)
		require.Equal(t, canary, secretOf(t, got))
	})
}
