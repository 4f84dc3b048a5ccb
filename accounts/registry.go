package accounts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound means there is no such account (or it was deleted).
	ErrNotFound = errors.New("accounts: account not found")
	// ErrConflict means a conditional write found another revision: the
	// account changed since it was read. Read it again and retry.
	ErrConflict = errors.New("accounts: account changed concurrently")
)

// Store keeps accounts durably. package persist implements it in the
// provisioning database (table worker_accounts); a host that brings its own
// store implements it there.
type Store interface {
	// PutAccount creates or replaces an account (a is valid). It stamps
	// CreatedAt (kept on replace), UpdatedAt and Revision, and returns what
	// it stored. When a.Revision is not zero it replaces only that
	// revision, and fails with ErrConflict otherwise (ErrNotFound when the
	// account does not exist). Putting a deleted account creates it anew.
	PutAccount(ctx context.Context, a Account) (Account, error)
	// Account returns the account, the record of its deletion (DeletedAt
	// set) if it was deleted, or ErrNotFound if it never existed.
	Account(ctx context.Context, id string) (Account, error)
	// Accounts returns up to limit live accounts with IDs greater than
	// after, in ID order (bytewise).
	Accounts(ctx context.Context, after string, limit int) ([]Account, error)
	// DeleteAccount deletes a live account, keeping a record of the
	// deletion (DeletedAt) for AccountChanges, and announces it with an
	// "account.deleted" event. With purgeState it also deletes the
	// account's stored resources. It returns the deleted record, or
	// ErrNotFound.
	DeleteAccount(ctx context.Context, id string, purgeState bool) (Account, error)
	// AccountChanges returns up to limit accounts, live or deleted, whose
	// UpdatedAt is after since, or equal to it with an ID greater than
	// afterID, ordered by (UpdatedAt, ID).
	AccountChanges(ctx context.Context, since time.Time, afterID string, limit int) ([]Account, error)
}

// Config configures a Registry. Only Store is required.
type Config struct {
	// Store keeps the accounts. Required.
	Store Store
	// Check, if set, is called by Put after the account's own validation:
	// the worker uses it to check that the provider type is registered and
	// that it accepts the settings. Its error is returned as is (wrap
	// ErrInvalid for bad input).
	Check func(ctx context.Context, a Account) error
	// Changed, if set, is called after every successful write with what
	// was stored (DeletedAt set for a deletion). The worker applies it to
	// its schedule and its provider cache at once; other processes see the
	// change through Store.AccountChanges.
	Changed func(a Account)
}

// Registry is the validated API over a Store: Put, Get, List, Pause, Resume
// and Delete. It is safe for concurrent use.
type Registry struct {
	cfg Config
}

// New returns a Registry over cfg.Store.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("accounts: Config.Store is required")
	}
	return &Registry{cfg: cfg}, nil
}

// Put validates a and creates or replaces the account (see Store.PutAccount
// for Revision). It returns what was stored.
func (r *Registry) Put(ctx context.Context, a Account) (Account, error) {
	if err := a.Validate(); err != nil {
		return Account{}, err
	}
	if r.cfg.Check != nil {
		if err := r.cfg.Check(ctx, a); err != nil {
			return Account{}, err
		}
	}
	stored, err := r.cfg.Store.PutAccount(ctx, a.Clone())
	if err != nil {
		return Account{}, fmt.Errorf("accounts: put %q: %w", a.ID, err)
	}
	r.changed(stored)
	return stored, nil
}

// Get returns the account with the given id, or an error matching
// ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (Account, error) {
	a, err := r.cfg.Store.Account(ctx, id)
	if err == nil && a.Deleted() {
		err = ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("accounts: get %q: %w", id, err)
	}
	return a, nil
}

// ListOptions selects a page of accounts.
type ListOptions struct {
	// After is the Next of the previous page; empty for the first.
	After string
	// Limit is the page size. Default 100, at most 1000.
	Limit int
}

// Page is one page of accounts in ID order.
type Page struct {
	Accounts []Account
	// Next is the After of the next page; empty on the last page.
	Next string
}

// List returns a page of accounts.
func (r *Registry) List(ctx context.Context, o ListOptions) (Page, error) {
	if o.Limit < 0 || o.Limit > 1000 {
		return Page{}, invalid("limit", fmt.Sprint(o.Limit), "must be between 0 (default 100) and 1000")
	}
	limit := cmp.Or(o.Limit, 100)
	as, err := r.cfg.Store.Accounts(ctx, o.After, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("accounts: list: %w", err)
	}
	p := Page{Accounts: as}
	if len(as) > limit {
		p.Accounts = as[:limit]
		p.Next = as[limit-1].ID
	}
	return p, nil
}

// Pause stops the account's polls until Resume; reason says why (it shows
// in the account). Pausing a paused account updates the reason.
func (r *Registry) Pause(ctx context.Context, id, reason string) error {
	return r.update(ctx, id, "pause", func(a *Account) bool {
		if a.Paused && a.PausedReason == reason {
			return false
		}
		a.Paused, a.PausedReason = true, reason
		return true
	})
}

// Resume polls a paused account again. Resuming a running account does
// nothing.
func (r *Registry) Resume(ctx context.Context, id string) error {
	return r.update(ctx, id, "resume", func(a *Account) bool {
		if !a.Paused {
			return false
		}
		a.Paused, a.PausedReason = false, ""
		return true
	})
}

// update is a read-modify-write by revision, retried when another writer
// got in between.
func (r *Registry) update(ctx context.Context, id, op string, change func(*Account) bool) error {
	for attempt := 0; ; attempt++ {
		a, err := r.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("accounts: %s: %w", op, err)
		}
		if !change(&a) {
			return nil
		}
		if err := a.Validate(); err != nil {
			return err
		}
		stored, err := r.cfg.Store.PutAccount(ctx, a)
		if errors.Is(err, ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("accounts: %s %q: %w", op, id, err)
		}
		r.changed(stored)
		return nil
	}
}

// DeleteOptions says what Delete does with the account's state.
type DeleteOptions struct {
	// PurgeState deletes the account's stored resources too. By default
	// they are kept (and no longer updated).
	PurgeState bool
}

// Delete deletes an account: its polls stop (in this process at once, in
// others within their registry sync), an "account.deleted" event is
// published, and its state is kept or purged as o says. The account's
// credential in the key manager is left alone. Deleting an account that
// does not exist fails with ErrNotFound.
func (r *Registry) Delete(ctx context.Context, id string, o DeleteOptions) error {
	a, err := r.cfg.Store.DeleteAccount(ctx, id, o.PurgeState)
	if err != nil {
		return fmt.Errorf("accounts: delete %q: %w", id, err)
	}
	r.changed(a)
	return nil
}

func (r *Registry) changed(a Account) {
	if r.cfg.Changed != nil {
		r.cfg.Changed(a.Clone())
	}
}
