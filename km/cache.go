package km

import (
	"context"
	"sync"
	"time"
)

// Cache is a [Store] that keeps credentials fetched with Get for a fixed
// time-to-live. It caches its own copies: Get returns a clone each time, so
// callers may (and should) destroy what they receive, and the cache wipes
// its copies when they expire, are replaced or invalidated, and on
// [Cache.Purge]. Put and Delete invalidate the entry before and after
// writing through, and a Get that raced with them does not cache what it
// read. List is not cached. Safe for concurrent use.
type Cache struct {
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu        sync.Mutex
	entries   map[Binding]cacheEntry
	gen       uint64 // bumped on every invalidation
	lastSweep time.Time
}

type cacheEntry struct {
	cred    Credential
	expires time.Time
}

// NewCache wraps store. ttl must be positive; now defaults to time.Now.
func NewCache(store Store, ttl time.Duration, now func() time.Time) (*Cache, error) {
	if store == nil {
		return nil, invalidf("cache: store is nil")
	}
	if ttl <= 0 {
		return nil, invalidf("cache: ttl must be positive, got %s", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{store: store, ttl: ttl, now: now, entries: map[Binding]cacheEntry{}}, nil
}

// Get implements [Store].
func (c *Cache) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	b := Binding{customer, account, name}
	now := c.now()
	c.mu.Lock()
	c.sweepLocked(now)
	if e, ok := c.entries[b]; ok {
		if now.Before(e.expires) {
			out := e.cred.Clone()
			c.mu.Unlock()
			return out, nil
		}
		delete(c.entries, b)
		e.cred.Destroy()
	}
	gen := c.gen
	c.mu.Unlock()

	cred, err := c.store.Get(ctx, customer, account, name)
	if err != nil {
		return Credential{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen { // invalidated while fetching: what we read may be stale
		return cred, nil
	}
	if old, ok := c.entries[b]; ok {
		old.cred.Destroy()
	}
	c.entries[b] = cacheEntry{cred: cred, expires: c.now().Add(c.ttl)}
	return cred.Clone(), nil
}

// Put implements [Store].
func (c *Cache) Put(ctx context.Context, cred Credential) error {
	c.Invalidate(cred.Customer, cred.Account, cred.Name)
	defer c.Invalidate(cred.Customer, cred.Account, cred.Name)
	return c.store.Put(ctx, cred)
}

// Delete implements [Store].
func (c *Cache) Delete(ctx context.Context, customer, account, name string) error {
	c.Invalidate(customer, account, name)
	defer c.Invalidate(customer, account, name)
	return c.store.Delete(ctx, customer, account, name)
}

func (c *Cache) putRevision(ctx context.Context, cred Credential) (int64, error) {
	rp, ok := c.store.(revisionPutter)
	if !ok {
		return 0, c.Put(ctx, cred)
	}
	c.Invalidate(cred.Customer, cred.Account, cred.Name)
	defer c.Invalidate(cred.Customer, cred.Account, cred.Name)
	return rp.putRevision(ctx, cred)
}

// PutIf implements [ConditionalStore] when the wrapped store does; otherwise
// it fails with an error matching [ErrInvalid].
func (c *Cache) PutIf(ctx context.Context, cred Credential, revision int64) (int64, error) {
	cs, ok := c.store.(ConditionalStore)
	if !ok {
		return 0, invalidf("cache: the wrapped store (%T) has no conditional writes", c.store)
	}
	c.Invalidate(cred.Customer, cred.Account, cred.Name)
	defer c.Invalidate(cred.Customer, cred.Account, cred.Name)
	return cs.PutIf(ctx, cred, revision)
}

// DeleteIf implements [ConditionalStore] when the wrapped store does;
// otherwise it fails with an error matching [ErrInvalid].
func (c *Cache) DeleteIf(ctx context.Context, customer, account, name string, revision int64) error {
	cs, ok := c.store.(ConditionalStore)
	if !ok {
		return invalidf("cache: the wrapped store (%T) has no conditional writes", c.store)
	}
	c.Invalidate(customer, account, name)
	defer c.Invalidate(customer, account, name)
	return cs.DeleteIf(ctx, customer, account, name, revision)
}

// List implements [Store]; it is not cached.
func (c *Cache) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	return c.store.List(ctx, customer)
}

// Invalidate drops and wipes the cached copy of one credential.
func (c *Cache) Invalidate(customer, account, name string) {
	b := Binding{customer, account, name}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.entries[b]; ok {
		delete(c.entries, b)
		e.cred.Destroy()
	}
}

// Purge drops and wipes every cached credential.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for b, e := range c.entries {
		delete(c.entries, b)
		e.cred.Destroy()
	}
}

// Len returns the number of cached credentials, expired or not.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// sweepLocked wipes expired entries, at most once per ttl.
func (c *Cache) sweepLocked(now time.Time) {
	if now.Sub(c.lastSweep) < c.ttl {
		return
	}
	c.lastSweep = now
	for b, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, b)
			e.cred.Destroy()
		}
	}
}
