package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/rabbitmq"
)

// TypeHeartbeat is the event every worker process publishes on the events
// queue at every heartbeat; its payload is the process's [Member] as it
// sees itself (without the broker's own check, which is the publish).
const TypeHeartbeat = "worker.heartbeat"

// Defaults of HeartbeatConfig and PingerConfig.
const (
	DefaultHeartbeatInterval  = 10 * time.Second
	DefaultHeartbeatDeadAfter = 3
	DefaultProbeInterval      = time.Minute
	DefaultProbeTimeout       = 10 * time.Second
)

// HeartbeatConfig tunes the heartbeats every process writes (the
// membership view, [Worker.Members]). The zero value is valid.
type HeartbeatConfig struct {
	// Interval is how often the process writes its instance row and
	// publishes a worker.heartbeat event. Default 10s.
	Interval time.Duration
	// DeadAfter is how many beats an instance may miss (by its own
	// interval, on this process's clock) before Members shows it dead.
	// Default 3.
	DeadAfter int
	// Version is the version the process reports. Default: the main
	// module's version from the binary's build information ("(devel)"
	// for a build from a work tree).
	Version string
}

func (c *HeartbeatConfig) setDefaults() {
	c.Interval = cmp.Or(c.Interval, DefaultHeartbeatInterval)
	c.DeadAfter = cmp.Or(c.DeadAfter, DefaultHeartbeatDeadAfter)
	if c.Version == "" {
		c.Version = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			c.Version = bi.Main.Version
		}
	}
}

// Validate reports the first bad field. Zero values stand for the defaults.
func (c HeartbeatConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.Interval < 100*time.Millisecond:
		return configError("Heartbeat.Interval", "is %v, must be at least 100ms", c.Interval)
	case c.DeadAfter < 1:
		return configError("Heartbeat.DeadAfter", "is %d, must be at least 1", c.DeadAfter)
	case len(c.Version) > 255:
		return configError("Heartbeat.Version", "is %d bytes, at most 255", len(c.Version))
	}
	return nil
}

// PingerConfig tunes the probes of a pinger process (RolePinger). The zero
// value is valid.
type PingerConfig struct {
	// ProbeInterval is how often the pinger probes every enabled (not
	// paused) account of the registry. Default 1m.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one account's probe. Default 10s.
	ProbeTimeout time.Duration
}

func (c *PingerConfig) setDefaults() {
	c.ProbeInterval = cmp.Or(c.ProbeInterval, DefaultProbeInterval)
	c.ProbeTimeout = cmp.Or(c.ProbeTimeout, DefaultProbeTimeout)
}

// Validate reports the first bad field. Zero values stand for the defaults.
func (c PingerConfig) Validate() error {
	switch {
	case c.ProbeInterval < 0:
		return configError("Pinger.ProbeInterval", "is %v, must not be negative", c.ProbeInterval)
	case c.ProbeTimeout < 0:
		return configError("Pinger.ProbeTimeout", "is %v, must not be negative", c.ProbeTimeout)
	}
	return nil
}

// MemberStatus is what the membership view makes of an instance's row.
type MemberStatus string

// The statuses of a member.
const (
	MemberAlive   MemberStatus = "alive"   // it beat within DeadAfter beats
	MemberDead    MemberStatus = "dead"    // it missed DeadAfter beats without stopping cleanly
	MemberStopped MemberStatus = "stopped" // it shut down cleanly
)

// Member is one worker process of the deployment, as its last heartbeat
// in the provisioning database describes it: its instance id (new at every
// start), host, pid, roles, version, start, last beat and interval, and
// its last checks of its dependencies (names "mq", "provisioning_db",
// "analytics_db" and, with a key manager, "km"). Roles are "publisher",
// "subscriber" (RoleAll has both) or "pinger".
type Member struct {
	persist.Instance
	// Status is alive, dead or stopped; Alive is Status == MemberAlive.
	Status MemberStatus
	Alive  bool
}

// Probe is one pinger's last probe of one account's cloud endpoint:
// latency, whether it succeeded, whether the cloud accepted the account's
// credential, and the error (never holding a secret).
type Probe = persist.Probe

// memberStore keeps the heartbeats and the probes. *persist.Store
// implements it; a host's Config.Storage may: without it the process
// beats only on the broker and Members and Probes fail.
type memberStore interface {
	PutInstance(ctx context.Context, in persist.Instance) error
	StopInstance(ctx context.Context, id string, at time.Time) error
	Instances(ctx context.Context) ([]persist.Instance, error)
	PurgeInstances(ctx context.Context, beatBefore time.Time) (int, error)
	PutProbes(ctx context.Context, ps ...persist.Probe) error
	Probes(ctx context.Context, account string) ([]persist.Probe, error)
}

var _ memberStore = (*persist.Store)(nil)

// ErrNoMembership: the host's Config.Storage does not keep heartbeats.
var ErrNoMembership = errors.New("worker: the store keeps no heartbeats (Config.Storage does not implement them)")

// Dependency names of the heartbeats.
const (
	DependencyMQ           = "mq"
	DependencyProvisioning = "provisioning_db"
	DependencyAnalytics    = "analytics_db"
	DependencyKM           = "km"
)

// instancesKept is how long the row of an instance that stopped beating
// (dead or stopped) is kept before it is purged.
const instancesKept = 24 * time.Hour

// heartbeat is the part that writes this process's instance row and
// publishes its worker.heartbeat event every interval, with its checks of
// its dependencies, and marks the row stopped at a clean shutdown.
type heartbeat struct {
	self    persist.Instance // the static part: id, host, pid, roles, version, start, interval
	store   memberStore      // nil: the host's store keeps none
	pub     *Publisher       // nil: the embedded transport (one process: nothing to tell)
	ttl     time.Duration    // of a heartbeat event: it is stale once its sender would be dead
	checks  []dependencyCheck
	timeout time.Duration // of each check and of the publish
	// stopTimeout bounds each of the stop mark and the last event, within
	// the part of the ShutdownTimeout kept for closing.
	stopTimeout time.Duration
	now         func() time.Time
	scrub       func(string) string
	log         *slog.Logger

	obs observer

	beaten atomic.Bool // a beat ran: there is a row to mark stopped
	dead   atomic.Bool // tests: the process "died": no more beats, no stop mark
}

// dependencyCheck checks one or more dependencies at once (a store pings
// both of its databases).
type dependencyCheck func(ctx context.Context) map[string]error

func (h *heartbeat) run(ctx context.Context) error {
	if h.dead.Load() {
		return nil
	}
	h.beaten.Store(true)
	in := h.self
	in.BeatAt = h.now()
	in.Dependencies = h.check(ctx, in.BeatAt)
	var errs []error
	if h.pub != nil {
		mq := persist.Dependency{Name: DependencyMQ, OK: true, CheckedAt: in.BeatAt}
		if err := h.publish(ctx, in); err != nil {
			mq.OK, mq.Error = false, h.scrub(err.Error())
			errs = append(errs, fmt.Errorf("publish heartbeat: %w", err))
		}
		in.Dependencies = append([]persist.Dependency{mq}, in.Dependencies...)
	} else {
		in.Dependencies = append([]persist.Dependency{{Name: DependencyMQ, OK: true, CheckedAt: in.BeatAt}}, in.Dependencies...)
	}
	if h.store != nil {
		if err := h.store.PutInstance(ctx, in); err != nil {
			h.obs.dbError(opHeartbeat)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// check runs the dependency checks concurrently, each within the timeout.
func (h *heartbeat) check(ctx context.Context, at time.Time) []persist.Dependency {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var mu sync.Mutex
	results := map[string]error{}
	var wg sync.WaitGroup
	for _, c := range h.checks {
		wg.Go(func() {
			r := c(ctx)
			mu.Lock()
			defer mu.Unlock()
			for k, v := range r {
				results[k] = v
			}
		})
	}
	wg.Wait()
	var deps []persist.Dependency
	for _, name := range []string{DependencyProvisioning, DependencyAnalytics, DependencyKM} {
		err, ok := results[name]
		if !ok {
			continue
		}
		d := persist.Dependency{Name: name, OK: err == nil, CheckedAt: at}
		if err != nil {
			d.Error = h.scrub(err.Error())
		}
		deps = append(deps, d)
	}
	return deps
}

func (h *heartbeat) publish(ctx context.Context, in persist.Instance) error {
	m := Member{Instance: in, Status: MemberAlive, Alive: true}
	if !in.StoppedAt.IsZero() {
		m.Status, m.Alive = MemberStopped, false
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	return h.pub.publishExpiring(ctx, Action{Type: TypeHeartbeat, CreatedAt: in.BeatAt.UTC(), Payload: payload}, h.ttl)
}

// publishExpiring publishes one action that the broker may drop unconsumed
// once it is older than ttl (RabbitMQ: a per-message TTL; other transports
// see the metadata key rabbitmq.MetadataExpiration).
func (p *Publisher) publishExpiring(ctx context.Context, a Action, ttl time.Duration) error {
	m, err := encode(a.defaulted(time.Now().UTC()), p.cfg.MaxPayloadBytes)
	if err != nil {
		return err
	}
	m.SetContext(ctx)
	m.Metadata.Set(rabbitmq.MetadataExpiration, strconv.FormatInt(max(ttl.Milliseconds(), 1), 10))
	topic := p.cfg.Topology.Topic(p.cfg.Topology.QueueFor(a.Type))
	if err := p.cfg.Publisher.Publish(topic, m); err != nil {
		p.obs.mqError(opPublish)
		return fmt.Errorf("worker: publish %s to %s: %w", a.Type, topic, err)
	}
	p.obs.published(a.Type)
	return nil
}

// stop marks the row stopped and tells the broker, each within the
// timeout; a process that never beat has nothing to mark.
func (h *heartbeat) stop() {
	if h.dead.Load() || !h.beaten.Load() {
		return
	}
	in := h.self
	in.BeatAt = h.now()
	in.StoppedAt = in.BeatAt
	if h.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.stopTimeout)
		if err := h.store.StopInstance(ctx, in.ID, in.StoppedAt); err != nil {
			h.log.Warn("could not mark this instance stopped: the membership view will show it dead", "instance", in.ID, "err", err)
		}
		cancel()
	}
	if h.pub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.stopTimeout)
		defer cancel()
		if err := h.publish(ctx, in); err != nil {
			h.log.Debug("could not publish the stopping heartbeat", "instance", in.ID, "err", err)
		}
	}
}

// roleNames are the roles a process reports in its heartbeats.
func roleNames(r Role) []string {
	if r == RoleAll {
		return []string{string(RolePublisher), string(RoleSubscriber)}
	}
	return []string{string(r)}
}

// buildHeartbeat composes the heartbeat part (every role) and, in a
// pinger, the prober, and adds their duties.
func (w *Worker) buildHeartbeat() {
	hc := w.cfg.Heartbeat
	host, _ := os.Hostname()
	if w.instanceID == "" {
		w.instanceID = uuid.NewString()
	}
	ms, _ := w.store.(memberStore)
	h := &heartbeat{
		self: persist.Instance{ID: w.instanceID, Host: host, PID: os.Getpid(), Roles: roleNames(w.cfg.Role),
			Version: hc.Version, StartedAt: w.now(), Interval: hc.Interval},
		stopTimeout: max(closeReserve(w.cfg.ShutdownTimeout)/3, 100*time.Millisecond),
		store:       ms, ttl: time.Duration(hc.DeadAfter) * hc.Interval, timeout: min(hc.Interval, 5*time.Second), now: w.now, scrub: secretScrubber(&w.cfg), log: w.log,
	}
	if k, _ := w.cfg.MQ.transport(); k != transportMemory || w.cfg.Transport.Publisher != nil {
		h.pub = w.pub
	}
	if p, ok := w.store.(interface {
		Ping(ctx context.Context) (provisioning, analytics error)
	}); ok {
		h.checks = append(h.checks, func(ctx context.Context) map[string]error {
			prov, ana := p.Ping(ctx)
			return map[string]error{DependencyProvisioning: prov, DependencyAnalytics: ana}
		})
	}
	var creds km.Store
	switch {
	case w.cfg.Credentials != nil:
		creds = w.cfg.Credentials
	case w.creds != nil:
		creds = w.creds
	}
	if creds != nil {
		h.checks = append(h.checks, func(ctx context.Context) map[string]error {
			return map[string]error{DependencyKM: pingKM(ctx, creds)}
		})
	}
	w.beats = h
	w.duties = append(w.duties, duty{name: "writing heartbeats", every: hc.Interval, run: h.run, log: w.log})
	if ms != nil {
		w.duties = append(w.duties, duty{name: "purging the rows of long-gone instances", every: 10 * time.Minute, timeout: time.Minute,
			run: purger{purge: ms.PurgeInstances, now: w.now, keep: instancesKept}.run, log: w.log})
	}
	if w.cfg.Role == RolePinger {
		w.probes = &prober{instance: w.instanceID, registry: w.accts.reg, providers: w.provs.get, store: ms,
			timeout: w.cfg.Pinger.ProbeTimeout, now: w.now, scrub: h.scrub}
		w.duties = append(w.duties, duty{name: "probing the accounts' clouds", every: w.cfg.Pinger.ProbeInterval,
			timeout: max(w.cfg.Pinger.ProbeInterval, 2*w.cfg.Pinger.ProbeTimeout), run: w.probes.run, log: w.log})
	}
}

// pingKM asks the key manager for a listing no one has: an answer, even
// "not found" or "forbidden", shows it reachable and accepting this
// process's identity.
func pingKM(ctx context.Context, s km.Store) error {
	_, err := s.List(ctx, "worker-heartbeat")
	if err == nil || errors.Is(err, km.ErrNotFound) || errors.Is(err, km.ErrForbidden) {
		return nil
	}
	return err
}

// secretScrubber replaces the passwords of the configuration (the AMQP
// URL's, the databases' DSNs') in a text: the parts' errors are redacted
// already, and this makes sure of it before an error is stored.
func secretScrubber(cfg *Config) func(string) string {
	var secrets []string
	if u, err := url.Parse(cfg.MQ.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for _, db := range []persist.DBConfig{cfg.Store.Provisioning, cfg.Store.Analytics} {
		if db.Driver != persist.MySQL {
			continue
		}
		if mc, err := mysql.ParseDSN(db.DSN); err == nil && mc.Passwd != "" {
			secrets = append(secrets, mc.Passwd)
		}
	}
	return func(s string) string {
		for _, p := range secrets {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
		return s
	}
}

// prober is the part of a pinger that probes every enabled account's cloud
// endpoint through the account's provider and records the outcome, keyed
// by this instance and the account.
type prober struct {
	instance  string
	registry  *accounts.Registry
	providers func(ctx context.Context, account string) (cloud.Provider, error)
	store     memberStore // nil: nowhere to record
	timeout   time.Duration
	now       func() time.Time
	scrub     func(string) string
}

// probeConcurrency is how many accounts a pinger probes at once.
const probeConcurrency = 8

func (p *prober) run(ctx context.Context) error {
	if p.store == nil {
		return ErrNoMembership
	}
	after := ""
	for {
		page, err := p.registry.List(ctx, accounts.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return err
		}
		var enabled []accounts.Account
		for _, a := range page.Accounts {
			if !a.Paused {
				enabled = append(enabled, a)
			}
		}
		probes := make([]persist.Probe, len(enabled))
		var g errgroup.Group
		g.SetLimit(probeConcurrency)
		for i, a := range enabled {
			g.Go(func() error { probes[i] = p.probe(ctx, a.ID); return nil })
		}
		_ = g.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := p.store.PutProbes(ctx, probes...); err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
}

// probe checks one account: its provider is built (which logs in, for
// most clouds), then pinged (cloud.Pinger) or asked for one server status.
func (p *prober) probe(ctx context.Context, account string) persist.Probe {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	err := func() error {
		prov, err := p.providers(ctx, account)
		if err != nil {
			return err
		}
		if pg, ok := prov.(cloud.Pinger); ok {
			return pg.Ping(ctx, account)
		}
		c, err := prov.Compute()
		if err != nil {
			return err
		}
		_, err = c.ListServerStatus(ctx, account, cloud.ListOptions{PageSize: 1})
		return err
	}()
	r := persist.Probe{Instance: p.instance, Account: account, CheckedAt: p.now(), Latency: time.Since(start),
		OK: err == nil, AuthOK: !errors.Is(err, cloud.ErrAuthentication)}
	if err != nil {
		r.Error = p.scrub(err.Error())
	}
	return r
}

// InstanceID identifies this process in the membership view: random, new
// at every start of a worker.
func (w *Worker) InstanceID() string { return w.instanceID }

// Members is the membership view: every worker process of the deployment
// that beat in the last day, from the provisioning database, in instance
// id order. An instance is alive while its last beat is within
// Heartbeat.DeadAfter of its own beat intervals of this process's clock
// (keep the processes' clocks in step), stopped once it shut down cleanly,
// and dead otherwise (killed, hung, or cut off from the database).
func (w *Worker) Members(ctx context.Context) ([]Member, error) {
	ms, ok := w.store.(memberStore)
	if !ok {
		return nil, ErrNoMembership
	}
	ins, err := ms.Instances(ctx)
	if err != nil {
		return nil, fmt.Errorf("worker: members: %w", err)
	}
	now := w.now()
	out := make([]Member, 0, len(ins))
	for _, in := range ins {
		m := Member{Instance: in, Status: MemberDead}
		switch {
		case !in.StoppedAt.IsZero():
			m.Status = MemberStopped
		case now.Sub(in.BeatAt) <= time.Duration(w.cfg.Heartbeat.DeadAfter)*in.Interval:
			m.Status, m.Alive = MemberAlive, true
		}
		out = append(out, m)
	}
	return out, nil
}

// Probes returns the pingers' last probes of an account's cloud endpoint,
// one per pinger instance, or of every account when account is "" (in
// account, then instance order). Probes of an account no longer probed
// (deleted, paused) are kept for a day.
func (w *Worker) Probes(ctx context.Context, account string) ([]Probe, error) {
	ms, ok := w.store.(memberStore)
	if !ok {
		return nil, ErrNoMembership
	}
	ps, err := ms.Probes(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("worker: probes: %w", err)
	}
	return ps, nil
}
