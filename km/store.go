package km

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// Store keeps credentials. Implementations: [LocalStore] (encrypted,
// de-identified rows in the provisioning database), [Client] (a remote key
// service), [MemoryStore] (tests) and the [Cache] wrapper. Every
// implementation validates input with [Credential.Validate] (identifiers in
// Get, Delete and List too: no leading or trailing white space, no control
// characters), compares identifiers byte for byte, returns [ErrNotFound] for
// a missing credential from Get and Delete, and never includes secrets in
// errors or logs.
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

// ConditionalStore is a [Store] with writes conditional on the revision the
// caller last read ([Credential.Revision], [CredentialInfo.Revision]), so
// that two writers (or a replayed request) cannot silently undo each other's
// change. [LocalStore], [MemoryStore], [Client] and [Cache] implement it
// ([Cache] and [Client] when what they wrap or talk to does).
type ConditionalStore interface {
	Store
	// PutIf writes c only if the stored credential is at revision (0: only
	// if it does not exist) and returns the new revision; otherwise it fails
	// with an error matching ErrConflict.
	PutIf(ctx context.Context, c Credential, revision int64) (int64, error)
	// DeleteIf deletes the credential only if it is at revision: ErrConflict
	// if it is at another, ErrNotFound if it does not exist.
	DeleteIf(ctx context.Context, customer, account, name string, revision int64) error
}

// revisionPutter is a Store whose unconditional Put can report the revision
// it wrote (so the key service can return it).
type revisionPutter interface {
	putRevision(ctx context.Context, c Credential) (int64, error)
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
	c, err := openedCredential(pt)
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

// MemoryStore is a [ConditionalStore] that keeps sealed envelopes in memory:
// secrets are encrypted at rest exactly as in [LocalStore]. For tests and
// examples.
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
	_, err := s.write(ctx, c, 0, false)
	return err
}

func (s *MemoryStore) putRevision(ctx context.Context, c Credential) (int64, error) {
	return s.write(ctx, c, 0, false)
}

// PutIf implements [ConditionalStore].
func (s *MemoryStore) PutIf(ctx context.Context, c Credential, revision int64) (int64, error) {
	return s.write(ctx, c, revision, true)
}

func (s *MemoryStore) write(ctx context.Context, c Credential, revision int64, conditional bool) (int64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	env, err := sealCredential(s.kr, c)
	if err != nil {
		return 0, err
	}
	hdr, _ := ParseEnvelope(env)
	info := c.Info()
	info.KeyID, info.KeyVersion = hdr.KeyID, hdr.KeyVersion
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	info.CreatedAt, info.UpdatedAt, info.Revision = now, now, 1
	old, ok := s.m[c.Binding()]
	if conditional && old.info.Revision != revision {
		return 0, errorf(ErrConflict, "put credential %s/%s/%s: it is at revision %d, not %d", c.Customer, c.Account, c.Name, old.info.Revision, revision)
	}
	if ok {
		info.CreatedAt, info.Revision = old.info.CreatedAt, old.info.Revision+1
	}
	s.m[c.Binding()] = memEntry{info: info, env: env}
	return info.Revision, nil
}

// Get implements [Store].
func (s *MemoryStore) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	if err := validateKey(customer, account, name); err != nil {
		return Credential{}, err
	}
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
	c.CreatedAt, c.UpdatedAt, c.Revision = e.info.CreatedAt, e.info.UpdatedAt, e.info.Revision
	return c, nil
}

// Delete implements [Store].
func (s *MemoryStore) Delete(ctx context.Context, customer, account, name string) error {
	return s.remove(ctx, customer, account, name, 0, false)
}

// DeleteIf implements [ConditionalStore].
func (s *MemoryStore) DeleteIf(ctx context.Context, customer, account, name string, revision int64) error {
	return s.remove(ctx, customer, account, name, revision, true)
}

func (s *MemoryStore) remove(ctx context.Context, customer, account, name string, revision int64, conditional bool) error {
	if err := validateKey(customer, account, name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := Binding{customer, account, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[b]
	if !ok {
		return errorf(ErrNotFound, "credential %s/%s/%s not found", customer, account, name)
	}
	if conditional && e.info.Revision != revision {
		return errorf(ErrConflict, "delete credential %s/%s/%s: it is at revision %d, not %d", customer, account, name, e.info.Revision, revision)
	}
	delete(s.m, b)
	return nil
}

// List implements [Store].
func (s *MemoryStore) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	if err := validateID("Customer", customer); err != nil {
		return nil, err
	}
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
