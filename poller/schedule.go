package poller

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/stratusworks/worker/state"
)

// Schedule decides when each poll target is due and hands out dispatches with
// leases. It is safe for concurrent use. See the package documentation.
type Schedule struct {
	mu    sync.Mutex
	cfg   Config
	clock Clock
	loc   *time.Location // of the clock's times, for the times we return
	rng   *rand.Rand

	// The schedule's timeline (every time it stores, in ns) is monotonic:
	// base + (clock.Monotonic() - mono0), where base is the wall-clock time at
	// creation. Wall-clock times are derived only at the edges (see edge).
	base  int64
	mono0 time.Duration

	// targets
	chunks [][]entry // slab; slot s lives at chunks[s>>chunkBits][s&chunkMask]
	nslots uint32    // slots handed out so far
	free   []uint32  // freed slots, reused first
	idx    []uint32  // target index (see index.go): cells hold slot+1
	idxN   int       // targets indexed
	seed   maphash.Seed
	heap   []hitem // due heap over idle and in-flight targets

	// interned names: many targets share them
	kinds       []kindInfo
	kindIDs     map[string]uint32
	customers   []string
	customerIDs map[string]uint32
	accounts    map[string]*account
	accountByID []*account // account id -> account (nil when freed)
	freeAcctIDs []uint32
	ready       []*account // accounts with targets waiting for budget, by readyAt

	lease    uint64 // last lease handed out
	inFlight int
	waiting  int

	armed   int64 // the time Run's timer is set for; wake Run for anything due earlier
	wake    chan struct{}
	running atomic.Bool
}

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// entry is one target, 72 bytes. Names are interned ids; times are on the
// schedule's timeline (ns, see Schedule.base).
type entry struct {
	resource string
	lease    uint64 // the current lease while in flight
	every    int64  // ns; 0 means the kind's registered interval
	due      int64  // when due (idle or waiting) or when the in-flight dispatch was due
	heapIdx  int32  // position in the due heap, -1 when not in it
	account  uint32
	customer uint32
	kind     uint32
	prev     uint32 // the account's target list, slot+1 (0 = none)
	next     uint32
	jit      int32 // jitter (ms) included in due: due - jit is on the target's grid
	failures uint16
	state    uint8
	flags    uint8 // fErr, fListed, fOwnErr
}

// entry states
const (
	stFree     uint8 = iota
	stIdle           // in the heap, keyed by due
	stInFlight       // in the heap, keyed by lease expiry
	stWaiting        // due, in its account's backlog waiting for budget
)

// entry flags: how a failing target takes part in its account's recovery
// (see Schedule.recover).
const (
	// fErr: the last poll failed with an error (not throttled, not lost), so
	// the target backs off because of errors.
	fErr uint8 = 1 << iota
	// fListed: the slot is in its account's failing list.
	fListed
	// fOwnErr: a sibling's success reset the target and it has not succeeded
	// since; its errors are its own, and a sibling's success does not reset
	// it again.
	fOwnErr
)

type kindInfo struct {
	name  string
	every int64 // registered default interval; 0 = not registered
}

type account struct {
	id       uint32
	name     string
	customer uint32
	watched  bool
	head     uint32 // first target, slot+1
	n        int
	lim      *rate.Limiter // nil = unlimited
	paused   int64         // no dispatch before this time
	backlog  []uint32      // due targets waiting for budget, oldest first, from bhead
	bhead    int
	readyAt  int64 // when the next token arrives (while the backlog is not empty)
	readyIdx int32 // position in the ready heap, -1 when not in it
	// failing lists the slots of targets that started backing off because of
	// errors since the account's last successful poll (each with fListed;
	// entries whose slot lost fListed or changed account are stale).
	failing []uint32
}

// New returns an empty Schedule. It fails, naming the field, when cfg is invalid.
func New(cfg Config) (*Schedule, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	s := &Schedule{
		cfg:         cfg,
		clock:       cfg.Clock,
		rng:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		seed:        maphash.MakeSeed(),
		kindIDs:     make(map[string]uint32),
		customers:   []string{""},
		customerIDs: map[string]uint32{"": 0},
		accounts:    make(map[string]*account),
		armed:       math.MaxInt64,
		wake:        make(chan struct{}, 1),
	}
	wall := cfg.Clock.Now()
	s.loc = wall.Location()
	s.base, s.mono0 = wall.UnixNano(), cfg.Clock.Monotonic()
	// Leases start at the wall-clock creation time in ns, so a restarted
	// schedule does not hand out the leases of the previous one still carried
	// by queued polls (a schedule hands out far fewer than one lease per ns).
	// Not the monotonic reading: its origin is per process.
	if wall.UnixNano() > 0 {
		s.lease = uint64(wall.UnixNano())
	}
	return s, nil
}

// Register sets the default interval of a kind of resource and schedules the
// kind for every watched account. Registering a kind again changes the
// interval of its targets that have no interval of their own, from their next
// due time on.
func (s *Schedule) Register(kind string, every time.Duration) error {
	if kind == "" {
		return fmt.Errorf("%w: Register: empty kind", ErrInvalidTarget)
	}
	if err := checkInterval(every, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.internKind(kind)
	first := s.kinds[k].every == 0
	s.kinds[k].every = int64(every)
	if first {
		now := s.now()
		for _, a := range s.accountByID { // by id, not map order: deterministic by Seed
			if a != nil && a.watched {
				s.ensure(a, k, "", a.customer, 0, now)
			}
		}
	}
	return nil
}

// Watch schedules every registered kind (and every kind registered later) for
// an account, on behalf of a customer. Watching a watched account again only
// updates its customer.
func (s *Schedule) Watch(account, customer string) error {
	if account == "" {
		return fmt.Errorf("%w: Watch: empty account", ErrInvalidTarget)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(account, true)
	a.watched = true
	if c := s.internCustomer(customer); c != a.customer {
		old := a.customer
		a.customer = c
		for sl := a.head; sl != 0; sl = s.ent(sl - 1).next {
			if e := s.ent(sl - 1); e.customer == old {
				e.customer = c
			}
		}
	}
	now := s.now()
	for k := range s.kinds {
		if s.kinds[k].every > 0 {
			s.ensure(a, uint32(k), "", a.customer, 0, now)
		}
	}
	return nil
}

// Unwatch removes every target of the account, including those added with
// Set, and forgets its budget. Outstanding dispatches for them become stale:
// [Schedule.Current] reports false and [Schedule.Report] ignores them.
// It returns the number of targets removed.
func (s *Schedule) Unwatch(account string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[account]
	if a == nil {
		return 0
	}
	n := a.n
	// drop the backlog wholesale (remove would scan it once per target)
	for _, sl := range a.backlog[a.bhead:] {
		s.ent(sl).state = stIdle
	}
	s.waiting -= len(a.backlog) - a.bhead
	a.backlog, a.bhead = nil, 0
	for a.head != 0 {
		sl := a.head - 1
		s.remove(sl, s.ent(sl))
	}
	a.watched = false
	s.freeAccount(a)
	return n
}

// Set adds a target with its own interval, or changes the interval of an
// existing one; every ≤ 0 means the kind's registered interval. Use it for a
// single resource (t.Resource set) that must be polled at its own pace, or for
// a kind-wide target of an account that is not watched. A shorter interval
// takes effect at once; a longer one from the target's next due time.
func (s *Schedule) Set(t state.Target, every time.Duration) error {
	if t.Account == "" || t.Kind == "" {
		return fmt.Errorf("%w: Set: target %q needs an account and a kind", ErrInvalidTarget, t)
	}
	if err := checkInterval(every, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.kindIDs[t.Kind]
	if every <= 0 && (!ok || s.kinds[k].every == 0) {
		return fmt.Errorf("%w: Set: kind %q is not registered and no interval was given", ErrInvalidTarget, t.Kind)
	}
	if !ok {
		k = s.internKind(t.Kind)
	}
	a := s.account(t.Account, true)
	c := a.customer
	if t.Customer != "" {
		c = s.internCustomer(t.Customer)
	}
	if a.n == 0 && !a.watched {
		a.customer = c
	}
	now := s.now()
	sl, existed := s.ensure(a, k, t.Resource, c, int64(max(every, 0)), now)
	if existed {
		e := s.ent(sl)
		e.every = int64(max(every, 0))
		e.customer = c
		if ev := s.every(e); e.state == stIdle && e.due > now+ev {
			e.due, e.jit = now+ev, 0
			s.hset(int(e.heapIdx), e.due)
			s.notify(e.due)
		}
	}
	return nil
}

// Remove removes a target. Its outstanding dispatch, if any, becomes stale.
// It reports whether the target was scheduled.
func (s *Schedule) Remove(t state.Target) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.lookup(t)
	if !ok {
		return false
	}
	a := s.accountByID[s.ent(sl).account]
	s.remove(sl, s.ent(sl))
	if a.n == 0 && !a.watched {
		s.freeAccount(a)
	}
	return true
}

// Entry describes one scheduled target.
type Entry struct {
	Target state.Target
	// Every is the target's interval (its own, or its kind's).
	Every time.Duration
	// NextDue is when the target is next due; while it is in flight, when its
	// lease expires (and it becomes due again unless reported).
	NextDue time.Time
	// InFlight reports that a poll was dispatched and not yet reported.
	InFlight bool
	// Waiting reports that the target is due but its account has no budget.
	Waiting bool
	// Failures counts consecutive failed, throttled or lost polls.
	Failures int
	// Lease is the lease of the outstanding dispatch while InFlight.
	Lease uint64
}

// Lookup returns the schedule entry of a target.
func (s *Schedule) Lookup(t state.Target) (Entry, bool) {
	ed := s.edge()
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.lookup(t)
	if !ok {
		return Entry{}, false
	}
	e := s.ent(sl)
	en := Entry{
		Target:   s.target(e),
		Every:    time.Duration(s.every(e)),
		NextDue:  s.wall(e.due, ed),
		InFlight: e.state == stInFlight,
		Waiting:  e.state == stWaiting,
		Failures: int(e.failures),
		Lease:    e.lease,
	}
	if e.heapIdx >= 0 {
		en.NextDue = s.wall(s.heap[e.heapIdx].key, ed)
	}
	return en, true
}

// Stats counts what the schedule holds.
type Stats struct {
	Targets  int // scheduled targets
	InFlight int // targets with an outstanding dispatch
	Waiting  int // due targets waiting for their account's budget
	Accounts int // accounts known (watched or with targets)
}

// Stats returns current counts.
func (s *Schedule) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Targets: s.idxN, InFlight: s.inFlight, Waiting: s.waiting, Accounts: len(s.accounts)}
}

func checkInterval(every time.Duration, zeroOK bool) error {
	if (every <= 0 && !zeroOK) || every > MaxInterval {
		return fmt.Errorf("%w: interval %v must be in (0, %v]", ErrInvalidTarget, every, MaxInterval)
	}
	return nil
}

// now returns the current time on the schedule's timeline.
func (s *Schedule) now() int64 { return s.base + int64(s.clock.Monotonic()-s.mono0) }

// edge relates the schedule's timeline to the wall clock at one moment: a
// time t on the timeline is the wall-clock time t + skew. The skew is zero
// until the wall clock is stepped.
type edge struct {
	now  int64 // the schedule's current time
	skew int64 // wall clock − timeline, ns
}

func (s *Schedule) edge() edge {
	now := s.now()
	return edge{now: now, skew: s.clock.Now().UnixNano() - now}
}

// wall converts a time on the timeline to the wall clock.
func (s *Schedule) wall(t int64, ed edge) time.Time { return time.Unix(0, t+ed.skew).In(s.loc) }

// at converts a wall-clock time to the timeline.
func (ed edge) at(t time.Time) int64 { return t.UnixNano() - ed.skew }

func (s *Schedule) ent(slot uint32) *entry {
	return &s.chunks[slot>>chunkBits][slot&chunkMask]
}

func (s *Schedule) every(e *entry) int64 {
	if e.every > 0 {
		return e.every
	}
	return s.kinds[e.kind].every
}

func (s *Schedule) target(e *entry) state.Target {
	return state.Target{
		Account:  s.accountByID[e.account].name,
		Customer: s.customers[e.customer],
		Kind:     s.kinds[e.kind].name,
		Resource: e.resource,
	}
}

func (s *Schedule) lookup(t state.Target) (uint32, bool) {
	a := s.accounts[t.Account]
	k, ok := s.kindIDs[t.Kind]
	if a == nil || !ok {
		return 0, false
	}
	i := s.idxFind(a.id, k, t.Resource)
	if i < 0 {
		return 0, false
	}
	return s.idx[i] - 1, true
}

func (s *Schedule) internKind(kind string) uint32 {
	if k, ok := s.kindIDs[kind]; ok {
		return k
	}
	kind = strings.Clone(kind)
	k := uint32(len(s.kinds))
	s.kinds = append(s.kinds, kindInfo{name: kind})
	s.kindIDs[kind] = k
	return k
}

func (s *Schedule) internCustomer(c string) uint32 {
	if id, ok := s.customerIDs[c]; ok {
		return id
	}
	c = strings.Clone(c)
	id := uint32(len(s.customers))
	s.customers = append(s.customers, c)
	s.customerIDs[c] = id
	return id
}

// account returns the account named name, creating it if create is set.
func (s *Schedule) account(name string, create bool) *account {
	if a := s.accounts[name]; a != nil || !create {
		return a
	}
	name = strings.Clone(name)
	a := &account{name: name, readyIdx: -1}
	if n := len(s.freeAcctIDs); n > 0 {
		a.id = s.freeAcctIDs[n-1]
		s.freeAcctIDs = s.freeAcctIDs[:n-1]
		s.accountByID[a.id] = a
	} else {
		a.id = uint32(len(s.accountByID))
		s.accountByID = append(s.accountByID, a)
	}
	lim := s.cfg.Budget
	if s.cfg.Budgets != nil {
		if l := s.cfg.Budgets(name); l != (Limit{}) && l.validate("") == nil {
			lim = l.normalized()
		}
	}
	if !lim.unlimited() {
		a.lim = rate.NewLimiter(rate.Limit(lim.PerSecond), lim.Burst)
	}
	s.accounts[name] = a
	return a
}

func (s *Schedule) freeAccount(a *account) {
	s.readyRemove(a)
	delete(s.accounts, a.name)
	s.accountByID[a.id] = nil
	s.freeAcctIDs = append(s.freeAcctIDs, a.id)
}

// ensure adds the target (a, kind, resource) unless it exists; it returns the
// slot and whether the target existed.
func (s *Schedule) ensure(a *account, kind uint32, resource string, customer uint32, every, now int64) (uint32, bool) {
	if i := s.idxFind(a.id, kind, resource); i >= 0 {
		return s.idx[i] - 1, true
	}
	sl := s.alloc()
	e := s.ent(sl)
	*e = entry{
		resource: strings.Clone(resource),
		every:    every,
		account:  a.id,
		customer: customer,
		kind:     kind,
		state:    stIdle,
		next:     a.head,
	}
	if a.head != 0 {
		s.ent(a.head - 1).prev = sl + 1
	}
	a.head = sl + 1
	a.n++
	s.idxInsert(sl)
	e.due = now + s.spread(s.every(e))
	s.hpush(sl, e.due)
	s.notify(e.due)
	return sl, false
}

// spread returns the offset of a first due time from now for a target with
// interval ev: uniform in [0, min(ev, InitialSpread)].
func (s *Schedule) spread(ev int64) int64 {
	spread := ev
	if s.cfg.InitialSpread < 0 {
		return 0
	} else if s.cfg.InitialSpread > 0 {
		spread = min(spread, int64(s.cfg.InitialSpread))
	}
	if spread <= 0 {
		return 0
	}
	return s.rng.Int64N(spread + 1)
}

func (s *Schedule) alloc() uint32 {
	if n := len(s.free); n > 0 {
		sl := s.free[n-1]
		s.free = s.free[:n-1]
		return sl
	}
	sl := s.nslots
	if sl&chunkMask == 0 {
		s.chunks = append(s.chunks, make([]entry, chunkSize))
	}
	s.nslots++
	return sl
}

// remove unschedules the target in slot sl; the account record stays.
func (s *Schedule) remove(sl uint32, e *entry) {
	a := s.accountByID[e.account]
	switch e.state {
	case stInFlight:
		s.inFlight--
	case stWaiting:
		s.unqueue(a, sl)
	}
	if e.heapIdx >= 0 {
		s.hremove(int(e.heapIdx))
	}
	if e.prev != 0 {
		s.ent(e.prev - 1).next = e.next
	} else {
		a.head = e.next
	}
	if e.next != 0 {
		s.ent(e.next - 1).prev = e.prev
	}
	a.n--
	s.idxDelete(s.idxFind(e.account, e.kind, e.resource))
	*e = entry{heapIdx: -1}
	s.free = append(s.free, sl)
}

// notify wakes Run if a target became due before the time it sleeps until.
func (s *Schedule) notify(due int64) {
	if due < s.armed {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Targets returns the entries of an account's targets (in no particular
// order), for handing them over to another schedule: see [Schedule.SetDue].
func (s *Schedule) Targets(account string) []Entry {
	ed := s.edge()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[account]
	if a == nil {
		return nil
	}
	out := make([]Entry, 0, a.n)
	for sl := a.head; sl != 0; sl = s.ent(sl - 1).next {
		e := s.ent(sl - 1)
		en := Entry{Target: s.target(e), Every: time.Duration(s.every(e)), NextDue: s.wall(e.due, ed),
			InFlight: e.state == stInFlight, Waiting: e.state == stWaiting, Failures: int(e.failures), Lease: e.lease}
		if e.heapIdx >= 0 && e.state != stInFlight {
			en.NextDue = s.wall(s.heap[e.heapIdx].key, ed)
		}
		out = append(out, en)
	}
	return out
}

// SetDue makes an idle target due at due (on the wall clock, as the clock's
// Now reads it), in place of the time the schedule chose: a schedule that
// takes targets over from another continues their grid. It reports whether
// the target is scheduled and idle (a target in flight or waiting for budget
// is left alone).
func (s *Schedule) SetDue(t state.Target, due time.Time) bool {
	ed := s.edge()
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.lookup(t)
	if !ok {
		return false
	}
	e := s.ent(sl)
	if e.state != stIdle || e.heapIdx < 0 {
		return false
	}
	e.due, e.jit = ed.at(due), 0
	s.hset(int(e.heapIdx), e.due)
	s.notify(e.due)
	return true
}
