package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// ScaleMode says whether the publisher processes of a deployment share the
// schedule through leases in the provisioning database.
type ScaleMode string

// Scale modes.
const (
	// ScaleAuto (the default, "") shares the schedule when MQ.URL is
	// RabbitMQ, the transport that reaches several machines, and keeps one
	// in-process schedule otherwise.
	ScaleAuto ScaleMode = ""
	// ScaleShared always shares: the targets are sharded by account and each
	// shard is leased by one live publisher process at a time.
	ScaleShared ScaleMode = "shared"
	// ScaleSingle never shares: this process owns the whole schedule, with
	// no lease and no extra statement. Run one publisher process only.
	ScaleSingle ScaleMode = "single"
)

// Defaults of ScaleConfig.
const (
	DefaultLeasePeriod = 15 * time.Second
	DefaultShards      = 64
	MaxShards          = 4096
)

// ScaleConfig is how several publisher processes share the schedule and
// the outbox relay. See "Scaling out" in the package documentation.
type ScaleConfig struct {
	// Mode: ScaleAuto (default), ScaleShared or ScaleSingle.
	Mode ScaleMode
	// LeasePeriod is how long a publisher holds a lease (a shard of the
	// schedule, the outbox relay) without renewing it; it renews every
	// LeasePeriod/3. A SIGKILLed publisher's shards are taken over within
	// about 4/3 LeasePeriod, and a publisher that could not renew stops
	// dispatching LeasePeriod/5 before its leases expire, so clocks must
	// agree within that margin (NTP). Default 15s (DefaultLeasePeriod);
	// 1s-10m.
	LeasePeriod time.Duration
	// Shards is how many shards the accounts are spread over (by a stable
	// hash of the account id). It must be the same in every publisher of a
	// deployment, and at least the number of publishers for all to work.
	// Default 64 (DefaultShards); 1-4096.
	Shards int
}

func (c ScaleConfig) validate() error {
	switch {
	case c.Mode != ScaleAuto && c.Mode != ScaleShared && c.Mode != ScaleSingle:
		return configError("Scale.Mode", "%q is not a mode (want \"\", %q or %q)", c.Mode, ScaleShared, ScaleSingle)
	case c.LeasePeriod != 0 && (c.LeasePeriod < time.Second || c.LeasePeriod > 10*time.Minute):
		return configError("Scale.LeasePeriod", "is %v, must be 1s-10m (0: %v)", c.LeasePeriod, DefaultLeasePeriod)
	case c.Shards < 0 || c.Shards > MaxShards:
		return configError("Scale.Shards", "is %d, must be 1-%d (0: %d)", c.Shards, MaxShards, DefaultShards)
	}
	return nil
}

func (c *ScaleConfig) setDefaults() {
	if c.LeasePeriod == 0 {
		c.LeasePeriod = DefaultLeasePeriod
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
}

// Lease names.
const (
	shardLeasePrefix  = "shard/"
	memberLeasePrefix = "member/"
	relayLease        = "relay"
)

func shardLeaseName(i int) string { return shardLeasePrefix + fmt.Sprintf("%04d", i) }

// shardOf is the shard of an account: FNV-1a of its id.
func shardOf(account string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return int(h.Sum32() % uint32(shards))
}

// leaseStore is what the lease keeper needs of the store.
type leaseStore interface {
	EnsureLeases(ctx context.Context, names ...string) error
	Leases(ctx context.Context, prefix string) ([]persist.Lease, error)
	RenewLeases(ctx context.Context, owner string, until time.Time) (int, error)
	ClaimLease(ctx context.Context, name, owner string, gen int64, now, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, name, owner, handoff string) (bool, error)
	TakeHandoff(ctx context.Context, name, owner string, gen int64) (string, error)
	CreateLease(ctx context.Context, name, owner string, until time.Time) error
	DeleteLease(ctx context.Context, name, owner string) error
	PurgeLeases(ctx context.Context, prefix string, olderThan time.Time) (int, error)
	ForwardReports(ctx context.Context, rs ...persist.ForwardedReport) error
	ForwardedReports(ctx context.Context, shards []int, limit int) ([]persist.ForwardedReport, error)
	DeleteForwardedReports(ctx context.Context, ids ...int64) error
}

// shardOwner is what the lease keeper tells the schedule: it owns a shard
// now (with what the last owner handed over, if it let the shard go), or no
// longer does (release: it lets it go and returns the handoff).
type shardOwner interface {
	acquire(shard int, gen int64, handoff string)
	lose(shard int, release bool) (handoff string)
}

// held is a lease this process holds: its generation and the local
// deadline after which it acts as if it did not (fencing).
type held struct {
	gen      int64
	deadline time.Time // monotonic: from the start of the last renewal, less the margin
}

// leaseKeeper is the part that holds this publisher's leases in the
// provisioning database: its presence, its fair share of the schedule's
// shards, and maybe the outbox relay. Every LeasePeriod/3 it renews them
// all in one statement, reads the lease table in another, and claims or
// releases shards to hold ceil(shards / live publishers); a claim is a
// conditional update on the lease's generation, so one claimer wins.
type leaseKeeper struct {
	store  leaseStore
	self   string
	shards int
	period time.Duration
	margin time.Duration
	now    func() time.Time
	sched  shardOwner
	log    *slog.Logger
	// acquired runs after a round that acquired shards (the job sync).
	acquired func(ctx context.Context)

	mu     sync.Mutex
	held   map[string]held // by lease name
	expiry time.Time       // the earliest expiry of another's lease, at the last round
	rounds atomic.Int64
}

func newLeaseKeeper(store leaseStore, self string, cfg ScaleConfig, now func() time.Time, sched shardOwner, log *slog.Logger) *leaseKeeper {
	return &leaseKeeper{store: store, self: self, shards: cfg.Shards, period: cfg.LeasePeriod,
		margin: cfg.LeasePeriod / 5, now: now, sched: sched, log: log, held: map[string]held{}}
}

// owns returns the generation of a shard's lease while this process holds
// it and its local deadline has not passed.
func (k *leaseKeeper) owns(shard int) (int64, bool) {
	return k.holds(shardLeaseName(shard))
}

func (k *leaseKeeper) holds(name string) (int64, bool) {
	k.mu.Lock()
	h, ok := k.held[name]
	k.mu.Unlock()
	if !ok || !k.now().Before(h.deadline) {
		return 0, false
	}
	return h.gen, true
}

// heldShards lists the shards held (deadline or not).
func (k *leaseKeeper) heldShards() []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []int
	for name := range k.held {
		if i, ok := shardIndex(name); ok {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

func shardIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, shardLeasePrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// run keeps the leases until ctx is done, then releases them all (with the
// handoff of every shard) so that a rolling restart loses no interval.
func (k *leaseKeeper) run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	f := newFailureLog(k.log, "keeping the schedule's leases")
	for {
		select {
		case <-ctx.Done():
			k.releaseAll()
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, k.period/3)
		err := k.round(rctx)
		cancel()
		if ctx.Err() != nil {
			k.releaseAll()
			return nil
		}
		if err != nil {
			f.failed(err)
		} else {
			f.ok()
		}
		t.Reset(k.wait())
	}
}

// wait is the time to the next round: a third of the lease period, or
// just after the earliest expiry of another's lease if that is sooner, so
// that a dead publisher's shards are claimed as soon as they are free.
func (k *leaseKeeper) wait() time.Duration {
	d := k.period / 3
	k.mu.Lock()
	expiry := k.expiry
	k.mu.Unlock()
	if !expiry.IsZero() {
		d = min(d, max(expiry.Sub(k.now())+expiryGrace, expiryGrace))
	}
	return d
}

// expiryGrace is how long after a lease's expiry its claim is tried.
const expiryGrace = 50 * time.Millisecond

// join creates the lease rows that are missing and this process's
// presence lease, when the lease table lacks them.
func (k *leaseKeeper) join(ctx context.Context, rows []persist.Lease, until time.Time) (bool, error) {
	have := map[string]bool{}
	for _, l := range rows {
		have[l.Name] = l.Name != memberLeasePrefix+k.self || l.Owner == k.self
	}
	var missing []string
	for i := range k.shards {
		if !have[shardLeaseName(i)] {
			missing = append(missing, shardLeaseName(i))
		}
	}
	if !have[relayLease] {
		missing = append(missing, relayLease)
	}
	if err := k.store.EnsureLeases(ctx, missing...); err != nil {
		return false, err
	}
	if !have[memberLeasePrefix+k.self] {
		if err := k.store.CreateLease(ctx, memberLeasePrefix+k.self, k.self, until); err != nil {
			return false, err
		}
		missing = append(missing, memberLeasePrefix+k.self)
	}
	return len(missing) > 0, nil
}

// round renews, reads and rebalances once.
func (k *leaseKeeper) round(ctx context.Context) error {
	defer k.rounds.Add(1)
	k.expire() // a process paused past its deadlines drops those shards first
	start := k.now()
	until := start.Add(k.period)
	deadline := start.Add(k.period - k.margin)
	if _, err := k.store.RenewLeases(ctx, k.self, until); err != nil {
		k.expire()
		return err
	}
	rows, err := k.store.Leases(ctx, "")
	if err != nil {
		k.expire()
		return err
	}
	if changed, err := k.join(ctx, rows, until); err != nil {
		k.expire()
		return err
	} else if changed {
		if rows, err = k.store.Leases(ctx, ""); err != nil {
			k.expire()
			return err
		}
	}
	live := 0
	var mine []persist.Lease
	var free []persist.Lease
	relayFree := false
	var relayRow persist.Lease
	var expiry time.Time // the earliest expiry of another's live lease
	for _, l := range rows {
		alive := l.Owner != "" && l.ExpiresAt.After(start)
		if alive && l.Owner != k.self && (expiry.IsZero() || l.ExpiresAt.Before(expiry)) {
			expiry = l.ExpiresAt
		}
		switch {
		case strings.HasPrefix(l.Name, memberLeasePrefix):
			if alive {
				live++
			}
		case l.Name == relayLease:
			if l.Owner == k.self {
				mine = append(mine, l)
			} else if !alive {
				relayFree, relayRow = true, l
			}
		default:
			i, ok := shardIndex(l.Name)
			if !ok || i >= k.shards {
				continue // a shard of a larger Scale.Shards elsewhere: ignored
			}
			if l.Owner == k.self {
				mine = append(mine, l)
			} else if !alive {
				free = append(free, l)
			}
		}
	}
	live = max(live, 1)
	k.mu.Lock()
	k.expiry = expiry
	k.mu.Unlock()
	// What the table says is ours; what we held and is not, is lost.
	owned := map[string]int64{}
	for _, l := range mine {
		owned[l.Name] = l.Generation
	}
	k.mu.Lock()
	var lost []string
	for name, h := range k.held {
		if g, ok := owned[name]; !ok || g != h.gen {
			lost = append(lost, name)
			delete(k.held, name)
		}
	}
	var gained []string
	for name, g := range owned {
		if h, ok := k.held[name]; ok {
			h.deadline = deadline
			k.held[name] = h
		} else {
			k.held[name] = held{gen: g, deadline: deadline}
			gained = append(gained, name)
		}
	}
	k.mu.Unlock()
	for _, name := range lost {
		if i, ok := shardIndex(name); ok {
			k.sched.lose(i, false)
			k.log.Warn("schedule shard lost to another publisher", "shard", i)
		}
	}
	acquired := false
	for _, name := range gained {
		if i, ok := shardIndex(name); ok {
			k.sched.acquire(i, owned[name], "")
			acquired = true
		}
	}
	// Rebalance to the fair share.
	fair := (k.shards + live - 1) / live
	nShards := 0
	for name := range owned {
		if _, ok := shardIndex(name); ok {
			nShards++
		}
	}
	if nShards > fair {
		k.release(ctx, nShards-fair)
	} else if nShards < fair && len(free) > 0 {
		rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		for _, l := range free {
			if nShards >= fair {
				break
			}
			ok, err := k.store.ClaimLease(ctx, l.Name, k.self, l.Generation, start, until)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			i, _ := shardIndex(l.Name)
			handoff, err := k.store.TakeHandoff(ctx, l.Name, k.self, l.Generation+1)
			if err != nil {
				k.log.Warn("the handoff of an acquired shard could not be read: its targets start afresh", "shard", i, "err", err)
			}
			k.mu.Lock()
			k.held[l.Name] = held{gen: l.Generation + 1, deadline: deadline}
			k.mu.Unlock()
			k.sched.acquire(i, l.Generation+1, handoff)
			nShards++
			acquired = true
		}
	}
	if relayFree {
		if ok, err := k.store.ClaimLease(ctx, relayLease, k.self, relayRow.Generation, start, until); err != nil {
			return err
		} else if ok {
			k.mu.Lock()
			k.held[relayLease] = held{gen: relayRow.Generation + 1, deadline: deadline}
			k.mu.Unlock()
		}
	}
	// The presence of publishers gone for an hour (SIGKILLed: a clean
	// shutdown deletes its own) is purged now and then, by the relay.
	if _, relay := k.holds(relayLease); relay && k.rounds.Load()%purgeRounds == 0 {
		if _, err := k.store.PurgeLeases(ctx, memberLeasePrefix, start.Add(-time.Hour)); err != nil {
			k.log.Warn("the presence of publishers long gone could not be purged", "err", err)
		}
	}
	if acquired && k.acquired != nil {
		k.acquired(ctx)
	}
	return nil
}

// expire drops every lease whose local deadline has passed (a renewal
// failed): the schedule stops dispatching for their shards.
func (k *leaseKeeper) expire() {
	now := k.now()
	k.mu.Lock()
	var lost []string
	for name, h := range k.held {
		if !now.Before(h.deadline) {
			lost = append(lost, name)
			delete(k.held, name)
		}
	}
	k.mu.Unlock()
	var shards []int
	for _, name := range lost {
		if i, ok := shardIndex(name); ok {
			k.sched.lose(i, false)
			shards = append(shards, i)
		}
	}
	// One line for the shards lost together (a renewal that failed loses
	// them all at once), not one per shard.
	if len(shards) > 0 {
		slices.Sort(shards)
		k.log.Warn("schedule shards fenced: their leases ran out before they could be renewed (a slow database, or this process was paused); other publishers may own them now",
			"shards", len(shards), "first", shards[0], "last", shards[len(shards)-1])
	}
}

// fence drops a shard whose deadline passed before the keeper noticed (the
// scheduler found it at dispatch).
func (k *leaseKeeper) fence(shard int) {
	name := shardLeaseName(shard)
	k.mu.Lock()
	h, ok := k.held[name]
	if ok && !k.now().Before(h.deadline) {
		delete(k.held, name)
	} else {
		ok = false
	}
	k.mu.Unlock()
	if ok {
		k.sched.lose(shard, false)
	}
}

// release lets n shards go, with their handoff (n < 0: all). Shards it
// could not release in the database (it is down, or ctx ended) are still
// let go here, and reported in one line: each is taken over when its lease
// expires.
func (k *leaseKeeper) release(ctx context.Context, n int) {
	var failed []int
	var firstErr error
	for _, i := range k.heldShards() {
		if n == 0 {
			break
		}
		name := shardLeaseName(i)
		k.mu.Lock()
		delete(k.held, name)
		k.mu.Unlock()
		handoff := k.sched.lose(i, true)
		err := ctx.Err() // once the time to release is up, the rest are not tried
		if err == nil {
			_, err = k.store.ReleaseLease(ctx, name, k.self, handoff)
		}
		if err != nil {
			failed = append(failed, i)
			if firstErr == nil {
				firstErr = err
			}
		}
		n--
	}
	if len(failed) > 0 {
		k.log.Warn("schedule shards could not be released: each is taken over when its lease expires",
			"shards", len(failed), "first", failed[0], "last", failed[len(failed)-1], "err", firstErr)
	}
}

// releaseAll lets every lease go at shutdown.
func (k *leaseKeeper) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k.release(ctx, -1)
	k.mu.Lock()
	_, relay := k.held[relayLease]
	k.held = map[string]held{}
	k.mu.Unlock()
	if relay {
		_, _ = k.store.ReleaseLease(ctx, relayLease, k.self, "")
	}
	if err := k.store.DeleteLease(ctx, memberLeasePrefix+k.self, k.self); err != nil {
		k.log.Warn("the publisher's presence lease could not be deleted: it expires", "err", err)
	}
}

// handoffEntry is one target's next due time, as a releasing owner hands it
// over (Unix ms; every in ms).
type handoffEntry struct {
	T     state.Target `json:"t"`
	Due   int64        `json:"due"`
	Every int64        `json:"every,omitempty"`
}

func encodeHandoff(es []handoffEntry) string {
	if len(es) == 0 {
		return ""
	}
	b, _ := json.Marshal(es)
	return string(b)
}

func decodeHandoff(s string) []handoffEntry {
	if s == "" {
		return nil
	}
	var es []handoffEntry
	if json.Unmarshal([]byte(s), &es) != nil {
		return nil
	}
	return es
}

// forwardEvery is how often a publisher of a shared schedule reads the
// poll reports forwarded to its shards.
const forwardEvery = 500 * time.Millisecond

// purgeRounds is how many lease rounds go between purges of old presence.
const purgeRounds = 100

// buildSharing makes the scheduler one of several when Config.Scale says
// so: a lease keeper on the store, and the scheduler's shards.
func (w *Worker) buildSharing() error {
	sc := w.cfg.Scale
	shared := sc.Mode == ScaleShared
	if sc.Mode == ScaleAuto && w.cfg.Transport.Publisher == nil {
		k, _ := w.cfg.MQ.transport()
		shared = k == transportAMQP
	}
	if !shared {
		return nil
	}
	ls, ok := w.store.(leaseStore)
	if !ok {
		return configError("Scale.Mode", "shares the schedule through leases, but the store (%T) keeps none: use the built-in store or Scale.Mode %q", w.store, ScaleSingle)
	}
	w.leases = newLeaseKeeper(ls, w.instanceID, sc, w.now, w.sched, w.log)
	w.leases.acquired = func(ctx context.Context) {
		if err := w.jobs.sync(ctx); err != nil {
			w.log.Warn("the jobs of acquired schedule shards could not be read; the job sync retries", "err", err)
		}
	}
	w.sched.share(w.leases, ls, w.instanceID, sc, cmp.Or(w.cfg.Schedule.InFlightTimeout, poller.DefaultInFlightTimeout))
	return nil
}

// relayOnly runs a duty of the outbox only in the relay lease's holder
// (every process when the schedule is not shared).
func (w *Worker) relayOnly(run func(context.Context) error) func(context.Context) error {
	if w.leases == nil {
		return run
	}
	return func(ctx context.Context) error {
		if _, ok := w.leases.holds(relayLease); !ok {
			return nil
		}
		return run(ctx)
	}
}

// warnOtherPublishers is the duty of a publisher that owns the whole
// schedule (Scale.Mode single) on a transport other processes share: it
// warns when the membership view shows another live publisher, which
// would poll every target a second time.
func (w *Worker) warnOtherPublishers(ctx context.Context) error {
	ms, err := w.Members(ctx)
	if errors.Is(err, ErrNoMembership) {
		return nil
	} else if err != nil {
		return err
	}
	started := w.beats.self.StartedAt
	for _, m := range ms {
		// One that beat again after this process started runs beside it
		// (not the previous process of a restart, not yet taken for dead).
		if m.Alive && m.ID != w.instanceID && slices.Contains(m.Roles, string(RolePublisher)) && m.BeatAt.After(started.Add(m.Interval)) {
			w.log.Warn("another publisher process is running, but this one owns the whole schedule: every target is polled twice "+
				"and poll reports go astray; set Scale.Mode (schedule.sharing) to shared in every publisher, or run one",
				"other", m.ID, "host", m.Host, "pid", m.PID)
			return nil
		}
	}
	return nil
}
