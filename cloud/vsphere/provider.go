package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// Name is the provider's name, as returned by [Provider.Name].
const Name = "vsphere"

// ErrClosed is returned by calls on a closed [Provider].
var ErrClosed = errors.New("vsphere: provider closed")

// Provider is a [cloud.Provider] for one vCenter (every datacenter of it, or
// those Config.Datacenter or Config.Datacenters name), reached through one
// authenticated session. It implements [cloud.Compute] and
// [cloud.Operations], and the optional services [cloud.DataCenters],
// [cloud.Images], [cloud.Volumes], [cloud.Snapshots], [cloud.Networks] and
// [cloud.Addresses]; Network and Billing are not supported, nor are the
// other optional services. A Provider is safe for concurrent use. Close it
// to log out.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	account string

	client *vim25.Client
	sm     *session.Manager
	pc     *property.Collector

	// only is the set of datacenters Config.Datacenter(s) names; nil: all.
	only map[types.ManagedObjectReference]bool
	dcMu sync.RWMutex
	dcs  []datacenter // covered, by reference; refreshed by listings

	placeMu sync.Mutex
	place   *placement // nil until the first launch resolves it

	loginMu  sync.Mutex
	loginGen uint64 // bumped at each successful re-login

	fieldsMu sync.Mutex
	fields   map[int32]string // custom field key -> name
	keys     map[string]int32 // custom field name -> key (VirtualMachine or global fields)

	ops *opLog

	usage usageState // server analytics (analytics.go)

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ cloud.Provider   = (*Provider)(nil)
	_ cloud.Compute    = (*Provider)(nil)
	_ cloud.Operations = (*Provider)(nil)
)

// New validates cfg, connects and logs in to vCenter, and resolves the
// datacenters it covers. It does not look at the launch placement (Folder,
// ResourcePool, Datastore, LaunchDatacenter): a provider that only polls
// works whatever the inventory, and the first [Provider.Launch] resolves
// and checks those. Login failures match cloud.ErrAuthentication; an
// unreachable vCenter matches cloud.ErrCommunication; datacenter names that
// do not resolve match cloud.ErrNotFound and ErrInvalidConfig and name the
// Config field and the datacenters there are. No error contains the
// password.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Templates = maps.Clone(cfg.Templates)
	cfg.Sizes = maps.Clone(cfg.Sizes)
	u, _ := cfg.parseURL()

	sc := soap.NewClient(u, cfg.Insecure)
	sc.Timeout = cfg.Timeout
	if cfg.CAFile != "" {
		if err := sc.SetRootCAs(cfg.CAFile); err != nil {
			return nil, configError("CAFile", "%v", err)
		}
	}
	c, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, wrap(ctx, "connect", err)
	}
	p := &Provider{
		cfg:     cfg,
		log:     cfg.Logger,
		account: cfg.Account,
		client:  c,
		sm:      session.NewManager(c),
		pc:      property.DefaultCollector(c),
		ops:     newOpLog(maxTrackedOperations),
	}
	if err := p.login(ctx); err != nil {
		return nil, wrap(ctx, "login", err)
	}
	if err := p.resolveDatacenters(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Provider) login(ctx context.Context) error {
	return p.sm.Login(ctx, url.UserPassword(p.cfg.Username, p.cfg.Password.Reveal()))
}

// relogin logs in again unless another goroutine already did since gen.
func (p *Provider) relogin(ctx context.Context, gen uint64) error {
	p.loginMu.Lock()
	defer p.loginMu.Unlock()
	if p.loginGen != gen {
		return nil
	}
	// Log out first: when vCenter still knows the session (it refused one
	// call, say), Login on it fails. An expired session just says so.
	_ = p.sm.Logout(ctx)
	if err := p.login(ctx); err != nil {
		return err
	}
	p.loginGen++
	return nil
}

func (p *Provider) generation() uint64 {
	p.loginMu.Lock()
	defer p.loginMu.Unlock()
	return p.loginGen
}

// do runs f; if vCenter says the session has expired, it logs in again and
// runs f once more (safe: a NotAuthenticated call did nothing). The result
// is mapped to the cloud error taxonomy and prefixed with op.
func (p *Provider) do(ctx context.Context, op string, f func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vsphere: %s: %w", op, err)
	}
	if p.closed.Load() {
		return fmt.Errorf("vsphere: %s: %w", op, ErrClosed)
	}
	gen := p.generation()
	err := f(ctx)
	if isNotAuthenticated(err) {
		if lerr := p.relogin(ctx, gen); lerr != nil {
			return wrap(ctx, op+": re-login", lerr)
		}
		err = f(ctx)
	}
	return wrap(ctx, op, err)
}

// checkAccount rejects calls for an account this connection does not serve.
func (p *Provider) checkAccount(op, account string) error {
	if account != p.account {
		return fmt.Errorf("vsphere: %s: account %q: %w (this provider serves account %q)",
			op, account, cloud.ErrNotFound, p.account)
	}
	return nil
}

// Name returns "vsphere".
func (p *Provider) Name() string { return Name }

// Account returns the account id this provider serves.
func (p *Provider) Account() string { return p.account }

// Datacenters returns the inventory paths of the datacenters the provider
// covers, as of its last listing, sorted.
func (p *Provider) Datacenters() []string {
	p.dcMu.RLock()
	defer p.dcMu.RUnlock()
	paths := make([]string, len(p.dcs))
	for i, dc := range p.dcs {
		paths[i] = dc.path
	}
	slices.Sort(paths)
	return paths
}

// Compute returns the provider itself.
func (p *Provider) Compute() (cloud.Compute, error) { return p, nil }

// Operations returns the provider itself.
func (p *Provider) Operations() (cloud.Operations, error) { return p, nil }

// Network is not supported: vSphere alone has no security groups. Port
// filtering per VM needs NSX (distributed firewall), a separate product with
// its own API; host firewalls (HostFirewallSystem) protect ESXi hosts, not
// guests.
func (p *Provider) Network() (cloud.Network, error) { return nil, cloud.NotSupported(Name, "network") }

// Billing is not supported: vCenter keeps no prices, budgets or spend.
// Showback needs VMware Aria (vRealize) Operations, a separate product.
func (p *Provider) Billing() (cloud.Billing, error) { return nil, cloud.NotSupported(Name, "billing") }

// Close logs out of vCenter. Calls after Close fail. Close is idempotent.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.sm.Logout(ctx); err != nil && !isNotAuthenticated(err) {
			p.closeErr = wrap(ctx, "logout", err)
		}
		p.client.CloseIdleConnections()
	})
	return p.closeErr
}

// retrieveView retrieves props of every object of kind under root, through a
// container view that it destroys afterwards.
func (p *Provider) retrieveView(ctx context.Context, root types.ManagedObjectReference, kind string, props []string, dst any) error {
	v, err := view.NewManager(p.client).CreateContainerView(ctx, root, []string{kind}, true)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = v.Destroy(dctx)
	}()
	return v.Retrieve(ctx, []string{kind}, props, dst)
}

// notFoundField reports that a Config field names nothing in the inventory.
func notFoundField(field, value string, choices []string, err error) error {
	var nf *find.NotFoundError
	if !errors.As(err, &nf) {
		return err
	}
	if len(choices) > 0 {
		return fmt.Errorf("%w: %w: %s %q not found (choices: %s)", cloud.ErrNotFound, ErrInvalidConfig,
			field, value, strings.Join(choices, ", "))
	}
	return fmt.Errorf("%w: %w: %s %q not found", cloud.ErrNotFound, ErrInvalidConfig, field, value)
}
