package sim

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/stratusworks/worker/cloud"
)

// Name is the provider name reported by [Cloud.Name].
const Name = "sim"

// Cloud is an in-memory simulated cloud. It implements [cloud.Provider] and,
// directly, [cloud.Compute], [cloud.Network], [cloud.Billing] and
// [cloud.Operations], and every optional service of package cloud
// ([cloud.Volumes], [cloud.DNS], …; see services.go). It is safe for
// concurrent use.
type Cloud struct {
	cfg        Config
	disabled   map[string]bool
	rateLimits [numAPIs]*Limit

	mu         sync.RWMutex
	accounts   map[string]*account
	accountIDs []string // sorted, for deterministic Drift

	serverSeq, ipSeq, opSeq, fwSeq, ruleSeq, budgetSeq atomic.Uint64
	kindSeq                                            [numKinds]atomic.Uint64

	calls [numAPIs]atomic.Int64

	armed    atomic.Int64 // queued FailNext errors + accounts down: 0 skips faultMu
	faultMu  sync.Mutex
	failNext [numAPIs][]error
	down     map[string]error

	rngMu sync.Mutex
	rng   *rand.Rand
}

var (
	_ cloud.Provider   = (*Cloud)(nil)
	_ cloud.Compute    = (*Cloud)(nil)
	_ cloud.Network    = (*Cloud)(nil)
	_ cloud.Billing    = (*Cloud)(nil)
	_ cloud.Operations = (*Cloud)(nil)
)

// New returns an empty cloud (no accounts) configured by cfg, or the error of
// cfg.Validate.
func New(cfg Config) (*Cloud, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cloud{
		cfg:      cfg,
		disabled: make(map[string]bool, len(cfg.Disable)),
		accounts: make(map[string]*account),
		down:     make(map[string]error),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)),
	}
	for _, s := range cfg.Disable {
		c.disabled[s] = true
	}
	for name, l := range cfg.RateLimits {
		op, _ := lookupAPI(name)
		c.rateLimits[op] = &l
	}
	return c, nil
}

// Name returns "sim".
func (c *Cloud) Name() string { return Name }

// Compute returns c, or an error matching cloud.ErrNotSupported if the
// service is disabled.
func (c *Cloud) Compute() (cloud.Compute, error) {
	if c.disabled[ServiceCompute] {
		return nil, cloud.NotSupported(Name, ServiceCompute)
	}
	return c, nil
}

// Network returns c, or an error matching cloud.ErrNotSupported if the
// service is disabled.
func (c *Cloud) Network() (cloud.Network, error) {
	if c.disabled[ServiceNetwork] {
		return nil, cloud.NotSupported(Name, ServiceNetwork)
	}
	return c, nil
}

// Billing returns c, or an error matching cloud.ErrNotSupported if the
// service is disabled.
func (c *Cloud) Billing() (cloud.Billing, error) {
	if c.disabled[ServiceBilling] {
		return nil, cloud.NotSupported(Name, ServiceBilling)
	}
	return c, nil
}

// Operations returns c, or an error matching cloud.ErrNotSupported if the
// service is disabled.
func (c *Cloud) Operations() (cloud.Operations, error) {
	if c.disabled[ServiceOperations] {
		return nil, cloud.NotSupported(Name, ServiceOperations)
	}
	return c, nil
}

// account is one tenant's resources. Its mutex guards everything below it.
type account struct {
	id       string
	limiters [numAPIs]*rate.Limiter // nil: not limited

	mu          sync.RWMutex
	servers     []server // sorted by id
	active      int      // servers counted by the quota
	dying       int      // servers STOPPING or TERMINATED still stored
	nextSweep   int64
	ops         map[string]*operation
	nextOpSweep int64
	firewalls   []*firewall // sorted by id
	budgets     []cloud.Budget
	// kinds holds, per kindIdx, a *[]T sorted by id (see spec), or nil when
	// the account has none of the kind.
	kinds [numKinds]any
}

func (c *Cloud) lookup(id string) *account {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.accounts[id]
}

// ensureAccount returns the account, creating it if needed.
func (c *Cloud) ensureAccount(id string) (*account, error) {
	if id == "" {
		return nil, fmt.Errorf("sim: account id must not be empty: %w", ErrInvalidRequest)
	}
	if a := c.lookup(id); a != nil {
		return a, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accounts[id]; a != nil {
		return a, nil
	}
	a := &account{id: id, ops: make(map[string]*operation)}
	for op, l := range c.rateLimits {
		if l != nil {
			a.limiters[op] = rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst)
		}
	}
	if n := c.cfg.Resources; n > 0 {
		c.populate(a, n) // no one else knows a yet
	}
	c.accounts[id] = a
	i, _ := slices.BinarySearch(c.accountIDs, id)
	c.accountIDs = slices.Insert(c.accountIDs, i, id)
	return a, nil
}

// AddAccount creates an account; adding an existing one does nothing. Calls
// naming an account that was never added fail with an error matching
// cloud.ErrNotFound (the seeding methods AddServer, AddFirewall, SetBudget,
// Put and Populate create the account themselves). A new account starts
// with Config.Resources resources of each kind beyond servers, firewalls and
// budgets.
func (c *Cloud) AddAccount(id string) error {
	_, err := c.ensureAccount(id)
	return err
}

// Accounts returns the account ids, sorted.
func (c *Cloud) Accounts() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.accountIDs)
}

// now returns the clock reading in Unix nanoseconds.
func (c *Cloud) now() int64 { return c.cfg.Now().UnixNano() }

// begin runs what every API call has in common, in this order: context,
// disabled service, call count, latency, FailNext, account down, unknown
// account, rate limit, ErrorRate. It returns the account and the time.
func (c *Cloud) begin(ctx context.Context, op api, accountID string) (*account, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("sim: %s: %w", op, err)
	}
	if c.disabled[apiService[op]] {
		return nil, 0, cloud.NotSupported(Name, apiService[op])
	}
	n := c.calls[op].Add(1)
	if d := c.cfg.Faults.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, fmt.Errorf("sim: %s: %w", op, ctx.Err())
		case <-t.C:
		}
	}
	if c.armed.Load() > 0 {
		if err := c.injected(op, accountID); err != nil {
			return nil, 0, err
		}
	}
	a := c.lookup(accountID)
	if a == nil {
		return nil, 0, fmt.Errorf("sim: %s: account %q: %w", op, accountID, cloud.ErrNotFound)
	}
	t := c.cfg.Now()
	if lim := a.limiters[op]; lim != nil {
		if wait, ok := take(lim, t); !ok {
			return nil, 0, &cloud.ThrottledError{API: op.String(), RetryAfter: wait}
		}
	}
	if r := c.cfg.Faults.ErrorRate; r > 0 && c.chance(op, n) < r {
		return nil, 0, fmt.Errorf("sim: %s: injected fault (call %d): %w", op, n, cloud.ErrCommunication)
	}
	return a, t.UnixNano(), nil
}

// take takes a token, or reports how long until one is available.
func take(lim *rate.Limiter, now time.Time) (time.Duration, bool) {
	if lim.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - lim.TokensAt(now)
	wait := time.Duration(math.Ceil(missing / float64(lim.Limit()) * float64(time.Second)))
	// Guard against float rounding: advancing the clock by wait must be enough.
	for range 64 {
		if wait > 0 && lim.TokensAt(now.Add(wait)) >= 1 {
			break
		}
		wait += wait/1_000_000 + 1
	}
	return wait, false
}

// chance returns a number in [0, 1) fixed by the seed, the API and the call
// number: the same calls fail for the same seed whatever else runs.
func (c *Cloud) chance(op api, n int64) float64 {
	x := uint64(c.cfg.Seed) ^ (uint64(op)+1)*0x9e3779b97f4a7c15 ^ uint64(n)*0xd1b54a32d192ed03
	// splitmix64 finalizer
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (c *Cloud) injected(op api, accountID string) error {
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	if q := c.failNext[op]; len(q) > 0 {
		err := q[0]
		q[0] = nil
		c.failNext[op] = q[1:]
		c.armed.Add(-1)
		return fmt.Errorf("sim: %s: injected failure: %w", op, err)
	}
	if err, ok := c.down[accountID]; ok {
		return fmt.Errorf("sim: %s: account %q is down: %w", op, accountID, err)
	}
	return nil
}

// FailNext makes the next call of api (any account) fail with err wrapped.
// Several calls queue up: each fails one call, in order. It panics if api is
// not one of the API names (APIListServers, …).
func (c *Cloud) FailNext(apiName string, err error) {
	op, ok := lookupAPI(apiName)
	if !ok {
		panic(fmt.Sprintf("sim: FailNext: unknown API %q", apiName))
	}
	if err == nil {
		panic("sim: FailNext: nil error")
	}
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	c.failNext[op] = append(c.failNext[op], err)
	c.armed.Add(1)
}

// SetAccountDown makes every call naming the account fail with err wrapped,
// until it is called again with a nil err. Other accounts are unaffected.
// The account need not exist.
func (c *Cloud) SetAccountDown(accountID string, err error) {
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	_, was := c.down[accountID]
	switch {
	case err != nil && !was:
		c.armed.Add(1)
	case err == nil && was:
		c.armed.Add(-1)
	}
	if err == nil {
		delete(c.down, accountID)
	} else {
		c.down[accountID] = err
	}
}

// Calls returns how many calls of the API were made, whatever their outcome
// (throttled and failed calls count; calls with a context already done and
// calls to a disabled service do not). Calls("") returns the total.
func (c *Cloud) Calls(apiName string) int {
	if apiName == "" {
		var n int64
		for i := range c.calls {
			n += c.calls[i].Load()
		}
		return int(n)
	}
	op, ok := lookupAPI(apiName)
	if !ok {
		return 0
	}
	return int(c.calls[op].Load())
}

// ResetCalls sets every call count to zero. The ErrorRate sequence restarts
// with the counts.
func (c *Cloud) ResetCalls() {
	for i := range c.calls {
		c.calls[i].Store(0)
	}
}

// pageArgs returns the page size and the id after which the page starts.
func (c *Cloud) pageArgs(op api, opts cloud.ListOptions) (int, string, error) {
	size := opts.PageSize
	switch {
	case size < 0:
		return 0, "", fmt.Errorf("sim: %s: page size %d is negative: %w", op, size, ErrInvalidRequest)
	case size == 0:
		size = c.cfg.DefaultPageSize
	case size > c.cfg.MaxPageSize:
		size = c.cfg.MaxPageSize
	}
	if opts.PageToken == "" {
		return size, "", nil
	}
	after, err := decodeToken(opts.PageToken)
	if err != nil {
		return 0, "", fmt.Errorf("sim: %s: %w", op, err)
	}
	return size, after, nil
}

// Page tokens carry the last id of the previous page. Resources are kept
// sorted by id and new ids are larger than old ones, so a page starts after
// that id whatever was inserted or removed meanwhile.
const tokenPrefix = "sim1."

func encodeToken(lastID string) string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

func decodeToken(tok string) (string, error) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if ok {
		b, err := base64.RawURLEncoding.DecodeString(rest)
		if err == nil && len(b) > 0 {
			return string(b), nil
		}
	}
	return "", fmt.Errorf("malformed page token %q: %w", tok, ErrInvalidRequest)
}

// newID formats prefix-%08x: fixed width, so ids sort in creation order (up
// to 2^32 ids of a kind, far beyond what a simulation makes).
func newID(prefix string, seq *atomic.Uint64) string {
	var hex [16]byte
	h := strconv.AppendUint(hex[:0], seq.Add(1), 16)
	var buf [32]byte
	b := append(buf[:0], prefix...)
	for i := len(h); i < 8; i++ {
		b = append(b, '0')
	}
	return string(append(b, h...))
}
