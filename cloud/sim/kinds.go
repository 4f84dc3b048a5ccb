package sim

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/stratusworks/worker/cloud"
)

// The kinds beyond servers, firewalls and budgets (regions, volumes, DNS
// records, invoices, …) are kept alike: per account, one slice per kind
// sorted by id, listed in pages, throttled and failed by API name, and
// changed by Drift (created, updated, deleted).

// Kind is the constraint of the generic seeding helpers [Put], [Remove]
// and [Resources]: the resource types of those kinds.
type Kind interface {
	cloud.Region | cloud.DataCenter | cloud.Image | cloud.Volume | cloud.Snapshot |
		cloud.VirtualNetwork | cloud.Address | cloud.LoadBalancer | cloud.DNSZone | cloud.DNSRecord |
		cloud.VPNGateway | cloud.Database | cloud.Distribution | cloud.Certificate |
		cloud.Subscription | cloud.Invoice
}

// kindIdx indexes account.kinds.
type kindIdx uint8

// spec describes how the simulator keeps one kind.
type spec[T any] struct {
	idx     kindIdx
	name    string // the cloud.Kind… name
	service string
	prefix  string // of generated ids
	list    api
	status  api // noAPI: no status-only listing
	id      func(*T) *string
	account func(*T) *string
	state   func(*T) cloud.ResourceState // nil: no state
	clone   func(T) T                    // nil: a copy is a deep copy
	// make returns a new resource with the id; mutate changes one thing of a
	// resource and describes it. Both draw from r only.
	make   func(r *rand.Rand, id string) T
	mutate func(r *rand.Rand, v *T) string
}

// noAPI marks a spec without a status-only listing.
const noAPI = numAPIs

// kindOps is what Drift and Populate need of a spec, whatever its type.
type kindOps interface {
	kind() kindIdx
	kindName() string
	populate(c *Cloud, a *account, r *rand.Rand, n int) // caller holds a.mu
	driftCreate(c *Cloud, a *account, r *rand.Rand) string
	driftUpdate(a *account, r *rand.Rand) string
	driftDelete(a *account, r *rand.Rand) string
	size(a *account) (int, bool) // how many, and whether the account has the kind at all
}

func (s *spec[T]) kind() kindIdx    { return s.idx }
func (s *spec[T]) kindName() string { return s.name }

// items returns the account's resources of the kind, or nil if it has none
// (create: an empty slice is made). The caller holds a.mu.
func (s *spec[T]) items(a *account, create bool) *[]T {
	if p, ok := a.kinds[s.idx].(*[]T); ok {
		return p
	}
	if !create {
		return nil
	}
	p := new([]T)
	a.kinds[s.idx] = p
	return p
}

func (s *spec[T]) export(v T) T {
	if s.clone != nil {
		return s.clone(v)
	}
	return v
}

func (s *spec[T]) search(items []T, id string) (int, bool) {
	return slices.BinarySearchFunc(items, id, func(v T, id string) int { return cmp.Compare(*s.id(&v), id) })
}

// insert stores v, replacing the resource with its id. The caller holds a.mu.
func (s *spec[T]) insert(a *account, v T) {
	p := s.items(a, true)
	i, ok := s.search(*p, *s.id(&v))
	if ok {
		(*p)[i] = v
		return
	}
	*p = slices.Insert(*p, i, v)
}

func (s *spec[T]) newID(c *Cloud) string { return newID(s.prefix, &c.kindSeq[s.idx]) }

func (s *spec[T]) populate(c *Cloud, a *account, r *rand.Rand, n int) {
	s.items(a, true)
	for range n {
		v := s.make(r, s.newID(c))
		*s.account(&v) = a.id
		s.insert(a, v)
	}
}

func (s *spec[T]) size(a *account) (int, bool) {
	p := s.items(a, false)
	if p == nil {
		return 0, false
	}
	return len(*p), true
}

func (s *spec[T]) driftCreate(c *Cloud, a *account, r *rand.Rand) string {
	if s.items(a, false) == nil {
		return ""
	}
	v := s.make(r, s.newID(c))
	*s.account(&v) = a.id
	s.insert(a, v)
	return fmt.Sprintf("%s %s created", s.name, *s.id(&v))
}

func (s *spec[T]) driftUpdate(a *account, r *rand.Rand) string {
	p := s.items(a, false)
	if p == nil || len(*p) == 0 {
		return ""
	}
	v := &(*p)[r.IntN(len(*p))] // listings hand out copies: changing it in place is safe
	return fmt.Sprintf("%s %s: %s", s.name, *s.id(v), s.mutate(r, v))
}

func (s *spec[T]) driftDelete(a *account, r *rand.Rand) string {
	p := s.items(a, false)
	if p == nil || len(*p) == 0 {
		return ""
	}
	i := r.IntN(len(*p))
	id := *s.id(&(*p)[i])
	*p = slices.Delete(*p, i, i+1)
	return fmt.Sprintf("%s %s deleted", s.name, id)
}

// page returns the resources after the token, at most the page size.
func (s *spec[T]) page(c *Cloud, a *account, op api, opts cloud.ListOptions, each func(*T)) (string, error) {
	size, after, err := c.pageArgs(op, opts)
	if err != nil {
		return "", err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	p := s.items(a, false)
	if p == nil {
		return "", nil
	}
	items := *p
	i := 0
	if after != "" {
		i = sort.Search(len(items), func(i int) bool { return *s.id(&items[i]) > after })
	}
	end := min(i+size, len(items))
	for k := i; k < end; k++ {
		each(&items[k])
	}
	if end < len(items) {
		return encodeToken(*s.id(&items[end-1])), nil
	}
	return "", nil
}

// list is the full listing of a kind.
func list[T any](ctx context.Context, c *Cloud, s *spec[T], accountID string, opts cloud.ListOptions) (cloud.Page[T], error) {
	a, _, err := c.begin(ctx, s.list, accountID)
	if err != nil {
		return cloud.Page[T]{}, err
	}
	var out cloud.Page[T]
	out.NextToken, err = s.page(c, a, s.list, opts, func(v *T) { out.Items = append(out.Items, s.export(*v)) })
	if err != nil {
		return cloud.Page[T]{}, err
	}
	return out, nil
}

// listStatus is the status-only listing of a kind.
func listStatus[T any](ctx context.Context, c *Cloud, s *spec[T], accountID string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	a, _, err := c.begin(ctx, s.status, accountID)
	if err != nil {
		return cloud.Page[cloud.ResourceStatus]{}, err
	}
	var out cloud.Page[cloud.ResourceStatus]
	out.NextToken, err = s.page(c, a, s.status, opts, func(v *T) {
		out.Items = append(out.Items, cloud.ResourceStatus{ID: *s.id(v), State: s.state(v)})
	})
	if err != nil {
		return cloud.Page[cloud.ResourceStatus]{}, err
	}
	return out, nil
}

// specOf returns the spec of T.
func specOf[T Kind]() *spec[T] {
	for _, k := range kindSpecs {
		if s, ok := k.(*spec[T]); ok {
			return s
		}
	}
	panic(fmt.Sprintf("sim: no spec for %T", *new(T))) // Kind and kindSpecs disagree
}

// Put stores a resource of one of the kinds beyond servers, firewalls and
// budgets for seeding tests, creating the account if needed, and returns it
// as stored: the ID is generated if empty and Account is set. A resource with
// the ID of a stored one replaces it (an update, as the cloud's own would
// be). Drift creates, changes and deletes resources of the kinds an account
// has.
func Put[T Kind](c *Cloud, accountID string, v T) (T, error) {
	s := specOf[T]()
	a, err := c.ensureAccount(accountID)
	if err != nil {
		return v, err
	}
	v = s.export(v)
	*s.account(&v) = accountID
	a.mu.Lock()
	defer a.mu.Unlock()
	if *s.id(&v) == "" {
		*s.id(&v) = s.newID(c)
	}
	s.insert(a, v)
	return s.export(v), nil
}

// Remove deletes a resource stored by [Put], [Cloud.Populate] or Drift, or
// returns an error matching cloud.ErrNotFound.
func Remove[T Kind](c *Cloud, accountID, id string) error {
	s := specOf[T]()
	a := c.lookup(accountID)
	if a == nil {
		return fmt.Errorf("sim: Remove: account %q: %w", accountID, cloud.ErrNotFound)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := s.items(a, false)
	if p == nil {
		return fmt.Errorf("sim: Remove: %s %q in account %q: %w", s.name, id, accountID, cloud.ErrNotFound)
	}
	i, ok := s.search(*p, id)
	if !ok {
		return fmt.Errorf("sim: Remove: %s %q in account %q: %w", s.name, id, accountID, cloud.ErrNotFound)
	}
	*p = slices.Delete(*p, i, i+1)
	return nil
}

// Resources returns the account's resources of a kind, in id order.
func Resources[T Kind](c *Cloud, accountID string) []T {
	s := specOf[T]()
	a := c.lookup(accountID)
	if a == nil {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	p := s.items(a, false)
	if p == nil {
		return nil
	}
	out := make([]T, 0, len(*p))
	for _, v := range *p {
		out = append(out, s.export(v))
	}
	return out
}

// Populate adds n resources of every kind beyond servers, firewalls and
// budgets to the account (creating it if needed), and so makes Drift change
// those kinds there too; n may be 0. The resources depend on the seed, the
// account id and what the account already holds, not on other accounts.
// [Config.Resources] populates every new account this way.
func (c *Cloud) Populate(accountID string, n int) error {
	if n < 0 {
		return fmt.Errorf("sim: Populate: n %d is negative: %w", n, ErrInvalidRequest)
	}
	a, err := c.ensureAccount(accountID)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c.populate(a, n)
	return nil
}

// populate adds n resources of every kind. The caller holds a.mu or is the
// only one who knows a.
func (c *Cloud) populate(a *account, n int) {
	h := fnv.New64a()
	h.Write([]byte(a.id))
	for _, k := range kindSpecs {
		have, _ := k.size(a)
		r := rand.New(rand.NewPCG(uint64(c.cfg.Seed)^h.Sum64(), uint64(k.kind())<<32|uint64(have)))
		k.populate(c, a, r, n)
	}
}

// offers returns nil, or the error of a disabled service.
func (c *Cloud) offers(service string) error {
	if c.disabled[service] {
		return cloud.NotSupported(Name, service)
	}
	return nil
}
