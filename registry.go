package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/stratusworks/worker/accounts"
)

// Built-in action types of the account registry, for a dispatcher that
// manages accounts through the queue.
const (
	TypeAccountPut    = "account.put"    // create or replace an account (payload: accounts.Account)
	TypeAccountDelete = "account.delete" // delete an account (payload: AccountDelete)
)

// AccountDelete is the payload of an "account.delete" action.
type AccountDelete struct {
	ID string `json:"id"`
	// PurgeState deletes the account's stored resources too.
	PurgeState bool `json:"purge_state,omitempty"`
}

// Defaults of the registry sync.
const (
	// DefaultAccountSyncInterval is how often publishers read the registry's
	// changes made by other processes (Config.AccountSyncInterval).
	DefaultAccountSyncInterval = 5 * time.Second
	// accountLookback is how far before the newest change seen the change
	// feed is read again: a change committed late, or stamped by a machine
	// whose clock is a little behind, is still found.
	accountLookback = time.Minute
	// accountFullSync is how often the whole registry is read again, which
	// catches what even the lookback missed.
	accountFullSync = 10 * time.Minute
	accountPage     = 500
)

// accountSchedule is what the registry part asks of the schedule.
type accountSchedule interface {
	follow(a accounts.Account) error
	unfollow(account string) int
}

// registry is the part that owns the account registry of a worker: the
// validated API (Worker.Accounts), the "account.put" and "account.delete"
// handlers, and — in publishers — the sync that makes the schedule follow
// the registry, whoever changed it.
type registry struct {
	reg       *accounts.Registry
	store     accounts.Store
	sched     accountSchedule // nil in subscriber-only processes
	providers *providers
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	applied  map[string]int64 // revision applied to the schedule, by account
	cursor   time.Time        // newest UpdatedAt seen in the change feed
	lastFull time.Time
}

func newRegistry(store accounts.Store, check func(context.Context, accounts.Account) error, sched accountSchedule,
	provs *providers, now func() time.Time, log *slog.Logger) (*registry, error) {
	r := &registry{store: store, sched: sched, providers: provs, now: now, log: log, applied: map[string]int64{}}
	reg, err := accounts.New(accounts.Config{Store: store, Check: check, Changed: r.changed})
	if err != nil {
		return nil, err
	}
	r.reg = reg
	return r, nil
}

// changed applies a write made in this process at once.
func (r *registry) changed(a accounts.Account) {
	if a.Deleted() {
		r.providers.forget(a.ID)
	}
	r.apply(a, true)
}

// apply makes the schedule follow one account; force re-applies an
// unchanged revision.
func (r *registry) apply(a accounts.Account, force bool) {
	if r.sched == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev, ok := r.applied[a.ID]; ok && !force && rev >= a.Revision {
		return
	}
	if a.Deleted() || a.Paused {
		r.sched.unfollow(a.ID)
		if a.Deleted() {
			delete(r.applied, a.ID)
			return
		}
	} else if err := r.sched.follow(a); err != nil {
		r.log.Warn("account not scheduled", "account", a.ID, "customer", a.Customer, "err", err)
		return
	}
	r.applied[a.ID] = a.Revision
}

// sync is the publishers' duty: the whole registry at start and every
// accountFullSync, the change feed in between.
func (r *registry) sync(ctx context.Context) error {
	if r.lastFull.IsZero() || r.now().Sub(r.lastFull) >= accountFullSync {
		return r.fullSync(ctx)
	}
	since := r.cursor.Add(-accountLookback)
	after := ""
	for {
		page, err := r.store.AccountChanges(ctx, since, after, accountPage)
		if err != nil {
			return err
		}
		for _, a := range page {
			if a.Deleted() {
				r.providers.forget(a.ID)
			}
			r.apply(a, false)
			if a.UpdatedAt.After(r.cursor) {
				r.cursor = a.UpdatedAt
			}
		}
		if len(page) < accountPage {
			return nil
		}
		last := page[len(page)-1]
		since, after = last.UpdatedAt, last.ID
	}
}

// fullSync reads every account, schedules the live ones and drops from the
// schedule those no longer in the registry.
func (r *registry) fullSync(ctx context.Context) error {
	start := r.now()
	seen := map[string]bool{}
	newest := r.cursor
	for after := ""; ; {
		page, err := r.store.Accounts(ctx, after, accountPage)
		if err != nil {
			return err
		}
		for _, a := range page {
			seen[a.ID] = true
			r.apply(a, r.lastFull.IsZero())
			if a.UpdatedAt.After(newest) {
				newest = a.UpdatedAt
			}
		}
		if len(page) < accountPage {
			break
		}
		after = page[len(page)-1].ID
	}
	r.mu.Lock()
	var gone []string
	for id := range r.applied {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	r.mu.Unlock()
	for _, id := range gone {
		r.providers.forget(id)
		r.apply(accounts.Account{ID: id, DeletedAt: start}, true)
	}
	if r.lastFull.IsZero() {
		r.log.Info("accounts scheduled from the registry", "accounts", len(seen))
	}
	r.cursor, r.lastFull = newest, start
	return nil
}

// handlers are the registry's action types.
func (r *registry) handlers() map[string]HandlerFunc {
	return map[string]HandlerFunc{TypeAccountPut: r.handlePut, TypeAccountDelete: r.handleDelete}
}

func (r *registry) handlePut(ctx context.Context, a Action) error {
	var in accounts.Account
	if err := a.Decode(&in); err != nil {
		return Permanent(err)
	}
	_, err := r.reg.Put(ctx, in)
	switch {
	case errors.Is(err, accounts.ErrInvalid):
		return Permanent(err)
	case errors.Is(err, accounts.ErrConflict), in.Revision != 0 && errors.Is(err, accounts.ErrNotFound):
		// A redelivered conditional put finds its own write: that is done.
		if cur, gerr := r.reg.Get(ctx, in.ID); gerr == nil && sameAccount(cur, in) {
			return nil
		}
		return Permanent(err)
	}
	return err
}

func (r *registry) handleDelete(ctx context.Context, a Action) error {
	var in AccountDelete
	if err := a.Decode(&in); err != nil {
		return Permanent(err)
	}
	if in.ID == "" {
		return Permanent(fmt.Errorf("%w: account.delete: id is required", ErrInvalidConfig))
	}
	err := r.reg.Delete(ctx, in.ID, accounts.DeleteOptions{PurgeState: in.PurgeState})
	if errors.Is(err, accounts.ErrNotFound) {
		return nil // deleted already: a redelivery, or another dispatcher
	}
	return err
}

// sameAccount compares what a Put sets.
func sameAccount(a, b accounts.Account) bool {
	return a.ID == b.ID && a.Customer == b.Customer && a.Provider == b.Provider &&
		bytes.Equal(a.Settings, b.Settings) && a.Credential == b.Credential && a.Paused == b.Paused &&
		a.PausedReason == b.PausedReason && maps.Equal(a.Intervals, b.Intervals) && maps.Equal(a.Labels, b.Labels)
}

// watch is Worker.Watch: the account is created in the registry with no
// provider type (Config.Cloud, or the host's pollers) unless it is there
// already, in which case only its customer is updated.
func (r *registry) watch(ctx context.Context, account, customer string) error {
	a, err := r.reg.Get(ctx, account)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		_, err = r.reg.Put(ctx, accounts.Account{ID: account, Customer: customer})
		return err
	case err != nil:
		return err
	case a.Customer == customer:
		r.apply(a, false)
		return nil
	}
	a.Customer = customer
	_, err = r.reg.Put(ctx, a)
	return err
}
