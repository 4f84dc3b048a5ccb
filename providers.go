package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/km"
)

// ProviderType builds the cloud providers of the accounts of one provider
// type ("sim", "vsphere", or one a host registers with the worker).
type ProviderType struct {
	// New builds the provider of one account from its entry (Settings are
	// the type's settings) and its credential from the key manager (nil
	// when the account names none). The worker calls it lazily, when the
	// account is first used, and again when the entry or the credential
	// changes; cred is wiped when New returns, so New copies what it keeps.
	// A provider that implements io.Closer is closed when it is replaced,
	// when its account is deleted and when the worker closes. Errors should
	// name the setting that is wrong, and wrap cloud.ErrAuthentication when
	// the cloud refused the credential. Required.
	New func(ctx context.Context, a accounts.Account, cred *km.Credential) (cloud.Provider, error)
	// CheckSettings validates an account's settings when it is put, so a
	// bad setting is refused at once rather than at the first poll; its
	// error should match accounts.ErrInvalid and name the setting. Nil: any JSON
	// object is accepted (New still sees it first).
	CheckSettings func(settings json.RawMessage) error
}

// Errors of the account providers.
var (
	// ErrUnknownAccount: an action or a poll names an account that is not in
	// the registry (or was deleted), and there is no Config.Cloud to use
	// instead.
	ErrUnknownAccount = errors.New("worker: account is not in the registry")
	// ErrAccountPaused: the account is paused in the registry.
	ErrAccountPaused = errors.New("worker: account is paused")
)

// accountReader reads one account of the registry, or the record of its
// deletion.
type accountReader interface {
	Account(ctx context.Context, id string) (accounts.Account, error)
}

// providers is the part that owns the open cloud providers of the accounts:
// it builds an account's provider on first use from its registry entry and
// its credential, keeps it while both are unchanged (compared by revision),
// rebuilds it when either changes, and closes it when it is replaced or the
// account is deleted. At most one provider is open per account in use.
type providers struct {
	types    map[string]ProviderType
	accounts accountReader
	creds    km.Store       // nil: no key manager
	fallback cloud.Provider // Config.Cloud: accounts without a provider type, and accounts not in the registry
	log      *slog.Logger

	mu   sync.Mutex
	open map[string]*openProvider
}

// openProvider is one account's provider and what it was built from.
type openProvider struct {
	mu          sync.Mutex // held while building
	accountRev  int64
	credRev     int64
	provider    cloud.Provider
	providerTyp string
}

func newProviders(types map[string]ProviderType, reg accountReader, creds km.Store, fallback cloud.Provider, log *slog.Logger) *providers {
	return &providers{types: types, accounts: reg, creds: creds, fallback: fallback, log: log, open: map[string]*openProvider{}}
}

// pollAccountKey is the context key under which the poll runner keeps the
// registry entry it read when a poll began.
type pollAccountKey struct{}

// withPollAccount returns ctx carrying a, the account entry read at the
// start of a poll: the provider lookups of that poll's cloud calls (one per
// page) use it instead of reading the registry again, so a poll reads the
// registry once whatever its number of pages. A change to the account made
// during the poll takes effect at its next poll.
func withPollAccount(ctx context.Context, a accounts.Account) context.Context {
	return context.WithValue(ctx, pollAccountKey{}, a)
}

// account is the registry entry of id: the one the poll in ctx read, or a
// fresh read.
func (p *providers) account(ctx context.Context, id string) (accounts.Account, error) {
	if a, ok := ctx.Value(pollAccountKey{}).(accounts.Account); ok && a.ID == id {
		return a, nil
	}
	return p.accounts.Account(ctx, id)
}

// get returns the provider of an account.
func (p *providers) get(ctx context.Context, account string) (cloud.Provider, error) {
	a, err := p.account(ctx, account)
	switch {
	case errors.Is(err, accounts.ErrNotFound) || (err == nil && a.Deleted()):
		if err == nil {
			p.forget(account)
		}
		if p.fallback != nil {
			return p.fallback, nil
		}
		return nil, fmt.Errorf("%w: %q (and there is no Config.Cloud)", ErrUnknownAccount, account)
	case err != nil:
		return nil, fmt.Errorf("worker: account %q: %w", account, err)
	case a.Paused:
		return nil, fmt.Errorf("%w: %q: %s", ErrAccountPaused, account, a.PausedReason)
	case a.Provider == "":
		if p.fallback == nil {
			return nil, fmt.Errorf("worker: account %q has no provider type and there is no Config.Cloud", account)
		}
		return p.fallback, nil
	}
	typ, ok := p.types[a.Provider]
	if !ok {
		return nil, fmt.Errorf("worker: account %q: provider type %q is not registered (Config.Providers)", account, a.Provider)
	}
	var cred *km.Credential
	if a.Credential != "" {
		if p.creds == nil {
			return nil, fmt.Errorf("worker: account %q names credential %q but the worker has no key manager (Config.Keyring or Config.Credentials)", account, a.Credential)
		}
		c, err := p.creds.Get(ctx, a.Customer, a.ID, a.Credential)
		if err != nil {
			return nil, fmt.Errorf("worker: account %q: credential %q: %w", account, a.Credential, err)
		}
		defer c.Destroy()
		cred = &c
	}
	var credRev int64
	if cred != nil {
		credRev = cred.Revision
	}

	p.mu.Lock()
	op := p.open[account]
	if op == nil {
		op = &openProvider{}
		p.open[account] = op
	}
	p.mu.Unlock()
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.provider != nil && op.accountRev == a.Revision && op.credRev == credRev && op.providerTyp == a.Provider {
		return op.provider, nil
	}
	built, err := typ.New(ctx, a, cred)
	if err != nil {
		return nil, fmt.Errorf("worker: account %q: provider %q: %w", account, a.Provider, err)
	}
	if built == nil {
		return nil, fmt.Errorf("worker: account %q: provider %q: the factory returned no provider", account, a.Provider)
	}
	old := op.provider
	op.provider, op.accountRev, op.credRev, op.providerTyp = built, a.Revision, credRev, a.Provider
	if old != nil {
		p.log.Info("account provider rebuilt", "account", account, "provider", a.Provider,
			"account_revision", a.Revision, "credential_revision", credRev)
		p.closeProvider(account, old)
	}
	return built, nil
}

// forget closes the provider of a deleted account.
func (p *providers) forget(account string) {
	p.mu.Lock()
	op := p.open[account]
	delete(p.open, account)
	p.mu.Unlock()
	if op == nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.provider != nil {
		p.closeProvider(account, op.provider)
		op.provider = nil
	}
}

// openCount is how many providers are open.
func (p *providers) openCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, op := range p.open {
		op.mu.Lock()
		if op.provider != nil {
			n++
		}
		op.mu.Unlock()
	}
	return n
}

func (p *providers) closeProvider(account string, c cloud.Provider) {
	if cl, ok := c.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			p.log.Warn("closing an account's provider failed", "account", account, "err", err)
		}
	}
}

// close closes every open provider.
func (p *providers) close() error {
	p.mu.Lock()
	open := p.open
	p.open = map[string]*openProvider{}
	p.mu.Unlock()
	var errs []error
	for account, op := range open {
		op.mu.Lock()
		if cl, ok := op.provider.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				errs = append(errs, fmt.Errorf("account %q: %w", account, err))
			}
		}
		op.provider = nil
		op.mu.Unlock()
	}
	return errors.Join(errs...)
}

// routedCloud is the cloud.Provider the built-in handlers and the standard
// pollers use: every call goes to the provider of the account it names.
type routedCloud struct{ p *providers }

var _ cloud.Provider = routedCloud{}

func (routedCloud) Name() string { return "accounts" }

func (r routedCloud) Compute() (cloud.Compute, error)       { return routedCompute(r), nil }
func (r routedCloud) Network() (cloud.Network, error)       { return routedNetwork(r), nil }
func (r routedCloud) Billing() (cloud.Billing, error)       { return routedBilling(r), nil }
func (r routedCloud) Operations() (cloud.Operations, error) { return routedOperations(r), nil }

// service finds an account's provider and one of its services.
func service[S any](ctx context.Context, r routedCloud, account string, get func(cloud.Provider) (S, error)) (S, error) {
	p, err := r.p.get(ctx, account)
	if err != nil {
		var zero S
		return zero, err
	}
	return get(p)
}

func compute(p cloud.Provider) (cloud.Compute, error)       { return p.Compute() }
func network(p cloud.Provider) (cloud.Network, error)       { return p.Network() }
func billing(p cloud.Provider) (cloud.Billing, error)       { return p.Billing() }
func operations(p cloud.Provider) (cloud.Operations, error) { return p.Operations() }

type routedCompute routedCloud

func (r routedCompute) ListServers(ctx context.Context, account string, o cloud.ListOptions) (cloud.ServerPage, error) {
	c, err := service(ctx, routedCloud(r), account, compute)
	if err != nil {
		return cloud.ServerPage{}, err
	}
	return c.ListServers(ctx, account, o)
}

func (r routedCompute) ListServerStatus(ctx context.Context, account string, o cloud.ListOptions) (cloud.StatusPage, error) {
	c, err := service(ctx, routedCloud(r), account, compute)
	if err != nil {
		return cloud.StatusPage{}, err
	}
	return c.ListServerStatus(ctx, account, o)
}

func (r routedCompute) GetServer(ctx context.Context, account, id string) (cloud.Server, error) {
	c, err := service(ctx, routedCloud(r), account, compute)
	if err != nil {
		return cloud.Server{}, err
	}
	return c.GetServer(ctx, account, id)
}

func (r routedCompute) FindServersByTag(ctx context.Context, account, key, value string) ([]cloud.Server, error) {
	c, err := service(ctx, routedCloud(r), account, compute)
	if err != nil {
		return nil, err
	}
	return c.FindServersByTag(ctx, account, key, value)
}

func (r routedCompute) Launch(ctx context.Context, account string, req cloud.LaunchRequest) (cloud.Operation, error) {
	c, err := service(ctx, routedCloud(r), account, compute)
	if err != nil {
		return cloud.Operation{}, err
	}
	return c.Launch(ctx, account, req)
}

func (r routedCompute) Terminate(ctx context.Context, account, id string) (cloud.Operation, error) {
	c, err := service(ctx, routedCloud(r), account, compute)
	if err != nil {
		return cloud.Operation{}, err
	}
	return c.Terminate(ctx, account, id)
}

type routedNetwork routedCloud

func (r routedNetwork) ListFirewalls(ctx context.Context, account string, o cloud.ListOptions) (cloud.FirewallPage, error) {
	n, err := service(ctx, routedCloud(r), account, network)
	if err != nil {
		return cloud.FirewallPage{}, err
	}
	return n.ListFirewalls(ctx, account, o)
}

func (r routedNetwork) Authorize(ctx context.Context, account, firewallID string, rule cloud.Rule) (cloud.Rule, error) {
	n, err := service(ctx, routedCloud(r), account, network)
	if err != nil {
		return cloud.Rule{}, err
	}
	return n.Authorize(ctx, account, firewallID, rule)
}

func (r routedNetwork) Revoke(ctx context.Context, account, firewallID, ruleID string) error {
	n, err := service(ctx, routedCloud(r), account, network)
	if err != nil {
		return err
	}
	return n.Revoke(ctx, account, firewallID, ruleID)
}

type routedBilling routedCloud

func (r routedBilling) ListBudgets(ctx context.Context, account string) ([]cloud.Budget, error) {
	b, err := service(ctx, routedCloud(r), account, billing)
	if err != nil {
		return nil, err
	}
	return b.ListBudgets(ctx, account)
}

type routedOperations routedCloud

func (r routedOperations) Operation(ctx context.Context, account, id string) (cloud.Operation, error) {
	o, err := service(ctx, routedCloud(r), account, operations)
	if err != nil {
		return cloud.Operation{}, err
	}
	return o.Operation(ctx, account, id)
}
