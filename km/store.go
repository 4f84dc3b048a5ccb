package km

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// Store keeps credentials. Implementations: [LocalStore] (encrypted rows in
// the provisioning database), [Client] (a remote key manager), [MemoryStore]
// (tests) and the [Cache] wrapper. Every implementation validates input with
// [Credential.Validate], returns [ErrNotFound] for a missing credential from
// Get and Delete, and never includes secrets in errors or logs.
//
// Credentials returned by Get belong to the caller, who should call
// [Credential.Destroy] when done with them.
type Store interface {
	// Put creates or replaces the credential (Customer, Account, Name).
	Put(ctx context.Context, c Credential) error
	// Get returns the credential, or an error matching ErrNotFound.
	Get(ctx context.Context, customer, account, name string) (Credential, error)
	// Delete removes the credential, or returns an error matching ErrNotFound.
	Delete(ctx context.Context, customer, account, name string) error
	// List describes the customer's credentials, without secrets, ordered by
	// account then name.
	List(ctx context.Context, customer string) ([]CredentialInfo, error)
}

// sealCredential seals everything but the timestamps (the store keeps those).
func sealCredential(kr *Keyring, c Credential) ([]byte, error) {
	c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
	pt := marshalCredential(c)
	defer clear(pt)
	return kr.Seal(c.Binding(), pt)
}

func openCredential(kr *Keyring, b Binding, env []byte) (Credential, error) {
	pt, err := kr.Open(b, env)
	if err != nil {
		return Credential{}, err
	}
	defer pt.Destroy()
	var c Credential
	pt.view(func(b []byte) { c, err = unmarshalCredential(b) })
	if err != nil {
		return Credential{}, errorf(ErrTampered, "credential %s/%s/%s: %v", b.Customer, b.Account, b.Name, err)
	}
	if c.Binding() != b {
		c.Destroy()
		return Credential{}, errorf(ErrTampered, "credential %s/%s/%s: payload names another credential", b.Customer, b.Account, b.Name)
	}
	return c, nil
}

func sortInfos(infos []CredentialInfo) {
	slices.SortFunc(infos, func(a, b CredentialInfo) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Name, b.Name))
	})
}

// MemoryStore is a [Store] that keeps sealed envelopes in memory: secrets
// are encrypted at rest exactly as in [LocalStore]. For tests and examples.
type MemoryStore struct {
	kr  *Keyring
	now func() time.Time
	mu  sync.Mutex
	m   map[Binding]memEntry
}

type memEntry struct {
	info CredentialInfo
	env  []byte
}

// NewMemoryStore returns an empty MemoryStore sealing with kr.
func NewMemoryStore(kr *Keyring) (*MemoryStore, error) {
	if kr == nil {
		return nil, invalidf("memory store: keyring is nil")
	}
	return &MemoryStore{kr: kr, now: time.Now, m: map[Binding]memEntry{}}, nil
}

// Put implements [Store].
func (s *MemoryStore) Put(ctx context.Context, c Credential) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	env, err := sealCredential(s.kr, c)
	if err != nil {
		return err
	}
	hdr, _ := ParseEnvelope(env)
	info := c.Info()
	info.KeyID, info.KeyVersion = hdr.KeyID, hdr.KeyVersion
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	info.CreatedAt, info.UpdatedAt = now, now
	if old, ok := s.m[c.Binding()]; ok {
		info.CreatedAt = old.info.CreatedAt
	}
	s.m[c.Binding()] = memEntry{info: info, env: env}
	return nil
}

// Get implements [Store].
func (s *MemoryStore) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	if err := ctx.Err(); err != nil {
		return Credential{}, err
	}
	b := Binding{customer, account, name}
	s.mu.Lock()
	e, ok := s.m[b]
	s.mu.Unlock()
	if !ok {
		return Credential{}, errorf(ErrNotFound, "credential %s/%s/%s not found", customer, account, name)
	}
	c, err := openCredential(s.kr, b, e.env)
	if err != nil {
		return Credential{}, err
	}
	c.CreatedAt, c.UpdatedAt = e.info.CreatedAt, e.info.UpdatedAt
	return c, nil
}

// Delete implements [Store].
func (s *MemoryStore) Delete(ctx context.Context, customer, account, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := Binding{customer, account, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[b]; !ok {
		return errorf(ErrNotFound, "credential %s/%s/%s not found", customer, account, name)
	}
	delete(s.m, b)
	return nil
}

// List implements [Store].
func (s *MemoryStore) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []CredentialInfo{}
	for b, e := range s.m {
		if b.Customer == customer {
			info := e.info
			info.Meta = maps.Clone(info.Meta)
			info.FieldNames = slices.Clone(info.FieldNames)
			out = append(out, info)
		}
	}
	sortInfos(out)
	return out, nil
}
