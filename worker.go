package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/cloud/vsphere"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/rabbitmq"
	"github.com/stratusworks/worker/state"
)

// Worker is the composition root of one worker process. [New] builds its
// parts from a [Config] and wires them together; [Worker.Run] starts them
// and stops them. The parts (see DESIGN.md) each own one capability and
// reach the others only through small interfaces:
//
//   - the [Publisher] and the [Subscriber] (retries, parking, poisoning) on
//     the transport;
//   - in publisher processes, the scheduler (the poll schedule, its
//     dispatches and their outcomes), the outbox relay and the job sync;
//   - in processes that handle actions, the poll runner, the job tracker,
//     the launcher (with Config.Cloud) and the guest-log collector (with
//     Config.GuestLogs);
//   - everywhere, the parked-retry pump, the history flusher and the
//     poison views.
//
// Register handlers with [Worker.Handle] and pollers with [Worker.Register]
// before Run.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	db      *persist.Store // the built-in store, when the worker opened it
	pub     *Publisher
	sub     *Subscriber // in publishers it only consumes poll reports
	clock   clock.Clock
	now     func() time.Time
	closers []func() error // what New opened, closed in order by Close

	// The parts; nil where the role or the configuration has none.
	sched    *scheduler             // publisher roles
	leases   *leaseKeeper           // publisher roles of a shared schedule (Config.Scale)
	polls    *pollRunner            // every role: it keeps the registered pollers
	jobs     *jobTracker            // every role
	launcher *launcher              // with Config.Cloud, in handling roles
	guests   *guestLogs             // with Config.GuestLogs, in handling roles
	poison   poisonViews            // every role
	duties   []duty                 // background duties
	creds    *km.Cache              // with Config.Keyring
	accts    *registry              // every role; its sync in publisher roles
	yielding map[string]HandlerFunc // built-in handlers a host's Handle replaces
	provs    *providers             // every role: each account's provider
	cloud    cloud.Provider
	beats    *heartbeat // every role
	probes   *prober    // pingers
	obs      observer   // Config.Metrics (metrics.go)
	// instanceID identifies this process start in the membership view.
	instanceID string

	mu      sync.Mutex
	ran     bool
	closed  bool
	running chan struct{}
}

// New validates cfg, opens the store (running migrations, unless
// Config.Storage is the host's own) and connects the transport (unless
// Config.Transport is the host's own), and builds the parts. Close the
// worker, or Run it, to release them.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	w := &Worker{cfg: cfg, log: cfg.Logger, running: make(chan struct{}), clock: cfg.Schedule.Clock}
	if w.clock == nil {
		w.clock = clock.Real()
	}
	w.now = w.clock.Now
	if err := w.build(ctx); err != nil {
		return nil, errors.Join(err, w.Close())
	}
	return w, nil
}

// build opens what the worker needs and composes its parts.
func (w *Worker) build(ctx context.Context) error {
	cfg := &w.cfg
	if err := w.openStore(ctx); err != nil {
		return err
	}
	pub, sub, declarer, consumers, err := w.transport(ctx)
	if err != nil {
		return err
	}
	pc := PublisherConfig{
		Publisher: pub, Declarer: declarer, Topology: cfg.Topology, MaxPayloadBytes: cfg.MaxPayloadBytes,
	}
	if kind, _ := cfg.MQ.transport(); kind == transportAMQP && cfg.Transport.Publisher == nil {
		// Packing pays where the cost is per message: RabbitMQ (Config.MQ.PackActions).
		pc.PackActions, pc.PackBytes = cfg.MQ.PackActions, cfg.MQ.PackBytes
	}
	if w.pub, err = NewPublisher(pc); err != nil {
		return err
	}
	if err := w.buildSubscriber(pub, sub, consumers); err != nil {
		return err
	}
	if err := w.openCredentials(); err != nil {
		return err
	}

	// The parts.
	w.instanceID = uuid.NewString()
	if cfg.Role.schedules() {
		if w.sched, err = newScheduler(cfg.Schedule, w.pub, w.now, w.log); err != nil {
			return err
		}
		if err := w.buildSharing(); err != nil {
			return err
		}
	}
	if err := w.buildAccounts(); err != nil {
		return err
	}
	var out dispatchOutcomes = remoteOutcomes{pub: w.pub, now: w.now,
		inFlight: cmp.Or(cfg.Schedule.InFlightTimeout, poller.DefaultInFlightTimeout)}
	var jobSched jobScheduler
	if w.sched != nil {
		out, jobSched = w.sched, w.sched
	}
	w.polls = newPollRunner(w.store, w.store, cfg.DeletionGrace)
	w.jobs = &jobTracker{store: w.store, sched: jobSched, cloud: w.cloud, now: w.now,
		checkEvery: cfg.JobCheckInterval, timeout: cfg.JobTimeout}
	w.poison = poisonViews{store: w.store, pub: w.pub, maxBytes: cfg.MaxPayloadBytes}
	handlers := map[string]HandlerFunc{}
	if cfg.Role.handles() {
		handlers[TypePoll] = scheduled(out, w.log, w.polls.run)
		addHandlers(handlers, w.jobs.handlers(out, w.log))
		w.launcher = &launcher{store: w.store, cloud: w.cloud, jobs: w.jobs, clock: w.clock,
			window: cfg.LaunchConsistencyWindow, source: cfg.SourceCIDR, port: cfg.ManagementPort, log: w.log}
		// These give way to a host's handler of the same type (registered
		// at Run unless the host registered its own).
		w.yielding = map[string]HandlerFunc{}
		addHandlers(w.yielding, w.accts.handlers())
		addHandlers(w.yielding, w.launcher.handlers())
	}
	if err := w.buildGuestLogs(out, handlers); err != nil {
		return err
	}
	if w.sched != nil {
		addHandlers(handlers, w.sched.handlers())
	}
	for typ, h := range handlers {
		if err := w.sub.Handle(typ, h); err != nil {
			return err
		}
	}
	w.duties = w.buildDuties()
	w.buildHeartbeat()
	if w.sched != nil {
		w.sched.persistHealth(w.store, w.instanceID)
	}
	return w.instrument()
}

func addHandlers(dst, src map[string]HandlerFunc) {
	for k, v := range src {
		dst[k] = v
	}
}

// openStore opens the built-in store, or takes the host's.
func (w *Worker) openStore(ctx context.Context) error {
	if w.cfg.Storage != nil {
		w.store = w.cfg.Storage
		return nil
	}
	sc := w.cfg.Store
	if sc.Logger == nil {
		sc.Logger = w.log
	}
	if sc.Now == nil {
		sc.Now = w.now // one clock for the schedule, the store and the handlers
	}
	db, err := persist.Open(ctx, sc)
	if err != nil {
		return fmt.Errorf("worker: open store: %w", err)
	}
	w.db, w.store = db, db
	w.closers = append(w.closers, db.Close)
	return nil
}

// buildSubscriber builds the subscriber on the transport, with the store to
// park and poison in and the transport's extras where it has them: holding
// a message for a wait, and dead-lettering.
func (w *Worker) buildSubscriber(pub message.Publisher, sub message.Subscriber, consumers int) error {
	cfg := &w.cfg
	delayer, _ := pub.(DelayPublisher)
	var deadLetters func(string) bool
	if dl, ok := sub.(interface{ DeadLettering(queue string) bool }); ok {
		deadLetters = dl.DeadLettering
	}
	var poison PoisonStore = w.store
	if k, _ := cfg.MQ.transport(); k == transportAMQP || cfg.Transport.Publisher != nil {
		// A copy of every poisoned action on the broker's poison queue.
		poison = mirroredPoison{store: w.store, pub: pub, topic: cfg.Topology.Topic(QueuePoison), log: w.log}
	}
	var err error
	w.sub, err = NewSubscriber(SubscriberConfig{
		Subscriber:      sub,
		Topology:        cfg.Topology,
		Consumers:       consumers,
		Concurrency:     cfg.Concurrency,
		HandlerTimeout:  cfg.HandlerTimeout,
		Retry:           cfg.Retry,
		Poison:          poison,
		Defer:           w.store,
		Delay:           delayer,
		DeadLetters:     deadLetters,
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		DrainTimeout:    drainTimeout(cfg.ShutdownTimeout),
		Middleware:      cfg.Middleware,
		Logger:          cfg.Logger,
		Now:             w.now,
	})
	return err
}

// buildGuestLogs schedules the collection kind (publishers) and builds the
// collector (processes that handle actions). NewCollector fails when this
// host has no address inside the source network: such a subscriber could
// not reach any guest.
func (w *Worker) buildGuestLogs(out dispatchOutcomes, handlers map[string]HandlerFunc) error {
	gl := w.cfg.GuestLogs
	if !gl.enabled() {
		return nil
	}
	if w.sched != nil {
		if err := w.sched.register(guestLogsKind, gl.Interval); err != nil {
			return fmt.Errorf("worker: guest logs: %w", err)
		}
	}
	if !w.cfg.Role.handles() {
		return nil
	}
	c, err := guest.NewCollector(gl.collectorConfig(&w.cfg, storeOffsets{w.store}, w.creds))
	if err != nil {
		return fmt.Errorf("%w: GuestLogs: %w", ErrInvalidConfig, err)
	}
	kind := gl.ServerKind
	if kind == "" {
		kind = DefaultServerKind
	}
	w.guests = &guestLogs{store: w.store, collector: c, kind: kind, log: w.log}
	addHandlers(handlers, w.guests.handlers(out))
	w.log.Info("guest log collection enabled", "every", gl.Interval, "source", c.SourceAddr().String())
	return nil
}

// BuiltinProviderTypes returns the provider types every worker knows:
// "sim" (package cloud/sim) and "vsphere" (cloud/vsphere). Config.Providers
// adds to them. A tool that writes the registry without a worker (the
// service's accounts command) checks accounts against them.
func BuiltinProviderTypes() map[string]ProviderType {
	return map[string]ProviderType{
		"sim":     {New: sim.NewAccountProvider, CheckSettings: sim.CheckAccountSettings},
		"vsphere": {New: vsphere.NewAccountProvider, CheckSettings: vsphere.CheckAccountSettings},
	}
}

// buildAccounts composes the account registry and the account providers.
func (w *Worker) buildAccounts() error {
	types := BuiltinProviderTypes()
	maps.Copy(types, w.cfg.Providers)
	var creds km.Store
	if w.creds != nil {
		creds = w.creds
	}
	if w.cfg.Credentials != nil {
		c, err := km.NewCache(w.cfg.Credentials, w.cfg.CredentialCacheTTL, nil)
		if err != nil {
			return fmt.Errorf("worker: credentials: %w", err)
		}
		creds = c
	}
	w.provs = newProviders(types, w.store, creds, w.cfg.Cloud, w.log)
	w.cloud = routedCloud{p: w.provs}
	check := func(_ context.Context, a accounts.Account) error {
		if a.Provider != "" {
			t, ok := types[a.Provider]
			if !ok {
				return &accounts.FieldError{Field: "provider", Value: a.Provider,
					Problem: fmt.Sprintf("is not a registered provider type (known: %s)", strings.Join(slices.Sorted(maps.Keys(types)), ", "))}
			}
			if t.CheckSettings != nil {
				if err := t.CheckSettings(a.Settings); err != nil {
					return err
				}
			}
		}
		if a.Credential != "" && creds == nil {
			return &accounts.FieldError{Field: "credential", Value: a.Credential,
				Problem: "names a credential but the worker has no key manager (Config.Keyring or Config.Credentials)"}
		}
		return nil
	}
	var sched accountSchedule
	if w.sched != nil {
		sched = w.sched
	}
	var err error
	w.accts, err = newRegistry(w.store, check, sched, w.provs, w.now, w.log)
	return err
}

// openCredentials opens the embedded credential store when a keyring is set.
func (w *Worker) openCredentials() error {
	if w.cfg.Keyring == nil {
		return nil
	}
	ls, err := km.NewLocalStore(w.db.DB(), w.cfg.Keyring)
	if err != nil {
		return fmt.Errorf("worker: credential store: %w", err)
	}
	if w.creds, err = km.NewCache(ls, w.cfg.CredentialCacheTTL, nil); err != nil {
		return fmt.Errorf("worker: credential store: %w", err)
	}
	return nil
}

// jobSyncEvery is how often publishers look for running jobs that other
// processes stored.
const jobSyncEvery = 30 * time.Second

// buildDuties lists the background duties, each run on its own goroutine:
// a hung database stalls only the duties that need it.
func (w *Worker) buildDuties() []duty {
	every := w.cfg.DeferredInterval
	ds := []duty{
		{name: "republishing parked retries", every: every, run: deferredPump{store: w.store, pub: w.pub, now: w.now}.run},
		{name: "copying history to the analytics database", every: every, timeout: time.Minute, run: historyFlusher{store: w.store}.run},
	}
	if w.sched != nil {
		ds = append(ds,
			duty{name: "following the account registry", every: w.cfg.AccountSyncInterval, run: w.accts.sync},
			duty{name: "publishing change events", every: every, run: (&relay{store: w.store, pub: w.pub, lease: w.leases}).run},
			duty{name: "purging published events", every: 10 * time.Minute, timeout: 5 * time.Minute,
				run: w.relayOnly(purger{purge: w.store.PurgeSentEvents, now: w.now, keep: sentEventsKept}.run)},
			duty{name: "scheduling running jobs", every: jobSyncEvery, timeout: time.Minute, run: w.jobs.sync},
		)
		ds = append(ds, w.sampleDuties()...)
	}
	if w.leases != nil {
		ds = append(ds, duty{name: "applying poll reports forwarded by other publishers", every: forwardEvery, run: w.sched.applyForwarded})
	} else if k, _ := w.cfg.MQ.transport(); w.sched != nil && (k != transportMemory || w.cfg.Transport.Publisher != nil) {
		ds = append(ds, duty{name: "looking for other publishers", every: min(time.Minute, 3*w.cfg.Heartbeat.Interval), run: w.warnOtherPublishers})
	}
	ds = append(ds, w.inboxDuties()...)
	for i := range ds {
		ds[i].log = w.log
	}
	return ds
}

// transport builds the publisher and subscriber sides of the configured MQ,
// or takes the host's.
func (w *Worker) transport(ctx context.Context) (message.Publisher, message.Subscriber, message.SubscribeInitializer, int, error) {
	if t := w.cfg.Transport; t.Publisher != nil {
		var declarer message.SubscribeInitializer
		if d, ok := t.Subscriber.(message.SubscribeInitializer); ok {
			declarer = d
		} else if d, ok := t.Publisher.(message.SubscribeInitializer); ok {
			declarer = d
		}
		consumers := 1
		if t.Competing {
			consumers = w.cfg.MQ.Consumers
		}
		return t.Publisher, t.Subscriber, declarer, consumers, nil
	}
	kind, _ := w.cfg.MQ.transport()
	wmLog := watermill.NewSlogLoggerWithLevelMapping(w.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	if kind == transportMemory {
		mem := newMemoryPubSub(wmLog)
		w.closers = append([]func() error{mem.Close}, w.closers...)
		return mem, mem, mem, 1, nil
	}
	if kind == transportSQLite {
		return w.sqliteTransport(ctx)
	}
	// The transport does not hold deliveries back (MaxInFlight = Prefetch):
	// the Subscriber's Concurrency bounds the handlers, and each message is
	// acked on its own as soon as its handler is done.
	rc := rabbitmq.Config{URL: w.cfg.MQ.URL, Prefetch: w.cfg.MQ.Prefetch, MaxInFlight: w.cfg.MQ.Prefetch,
		PublishTimeout: w.cfg.MQ.PublishTimeout,
		Headers:        sentAsHeader, Logger: w.log,
		// A message rejected as a last resort (it could not even be
		// poisoned) goes to the poison queue rather than being dropped.
		DeadLetter: func(queue string) string {
			if poison := w.cfg.Topology.Topic(QueuePoison); queue != poison {
				return poison
			}
			return ""
		}}
	// The subscriber side is created in every role: it also declares the
	// queues for the publisher (Config.Topology), so nothing published before
	// a subscriber exists is lost.
	sub, err := rabbitmq.NewSubscriber(ctx, rc)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("worker: %w", err)
	}
	pub, err := rabbitmq.NewPublisher(ctx, rc)
	if err != nil {
		_ = sub.Close()
		return nil, nil, nil, 0, fmt.Errorf("worker: %w", err)
	}
	// Transport before store: publisher, then subscriber.
	w.closers = append([]func() error{pub.Close, sub.Close}, w.closers...)
	return pub, sub, sub, w.cfg.MQ.Consumers, nil
}

// Handle registers h for actions of the given type. Call it before Run. A
// host's handler for a built-in type that yields (server.launch,
// account.put, account.delete) replaces the built-in one.
func (w *Worker) Handle(actionType string, h Handler) error {
	if !w.cfg.Role.handles() {
		return fmt.Errorf("%w: Handle(%q) on a %s worker", ErrRoleNotSupported, actionType, w.cfg.Role)
	}
	if err := w.sub.Handle(actionType, h); err != nil {
		return err
	}
	w.mu.Lock()
	delete(w.yielding, actionType)
	w.mu.Unlock()
	w.obs.knowType(actionType)
	return nil
}

// HandleFunc registers f for actions of the given type. Call it before Run.
func (w *Worker) HandleFunc(actionType string, f func(ctx context.Context, a Action) error) error {
	return w.Handle(actionType, HandlerFunc(f))
}

// Register adds a poller for its kind, polled every interval (the kind's
// default; Schedule sets per-resource intervals). Call it before Run, in every
// process: publishers schedule the kind, subscribers run its polls.
func (w *Worker) Register(p Poller, every time.Duration) error {
	if p == nil {
		return fmt.Errorf("%w: Register: poller is nil", ErrInvalidConfig)
	}
	kind := p.Kind()
	if !validType(kind) || kind == jobKind || kind == guestLogsKind {
		return fmt.Errorf("%w: Register: kind %q must be a-z 0-9 . _ - and not %q or %q", ErrInvalidConfig, kind, jobKind, guestLogsKind)
	}
	if every <= 0 {
		return fmt.Errorf("%w: Register(%q): interval %v must be positive", ErrInvalidConfig, kind, every)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ran {
		return fmt.Errorf("%w: Register(%q) must be called before Run", ErrAlreadyRunning, kind)
	}
	if w.polls.has(kind) {
		return fmt.Errorf("worker: a poller for kind %q is already registered", kind)
	}
	if w.sched != nil {
		if err := w.sched.register(kind, every); err != nil {
			return fmt.Errorf("worker: Register(%q): %w", kind, err)
		}
	}
	w.polls.register(p)
	w.obs.knowType(kind + ".changed")
	w.obs.knowType(kind + ".deleted")
	return nil
}

// Watch puts an account of a customer in the account registry, with no
// provider type of its own (Config.Cloud, or pollers that bring their own
// provider, serve it), unless it is there already — then only its customer
// is updated. Every publisher process then polls every registered kind for
// it, now and after restarts. For an account with its own provider type,
// credential or intervals, use Worker.Accounts().Put.
func (w *Worker) Watch(account, customer string) error {
	switch {
	case account == "":
		return fmt.Errorf("%w: Watch: account is required", ErrInvalidConfig)
	case customer == "":
		return fmt.Errorf("%w: Watch(%q): customer is required (logs and credentials are kept per customer)", ErrInvalidConfig, account)
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryWriteTimeout)
	defer cancel()
	if err := w.accts.watch(ctx, account, customer); err != nil {
		if errors.Is(err, accounts.ErrInvalid) {
			return fmt.Errorf("%w: Watch: %w", ErrInvalidConfig, err)
		}
		return fmt.Errorf("worker: Watch(%q): %w", account, err)
	}
	return nil
}

// Unwatch deletes an account from the registry (its stored state is kept)
// and returns how many of this process's schedule targets it removed.
// Polls already dispatched for it are dropped as stale.
func (w *Worker) Unwatch(account string) int {
	n := 0
	if w.sched != nil {
		n = w.sched.unfollow(account)
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryWriteTimeout)
	defer cancel()
	if err := w.accts.reg.Delete(ctx, account, accounts.DeleteOptions{}); err != nil && !errors.Is(err, accounts.ErrNotFound) {
		w.log.Warn("Unwatch: the account could not be deleted from the registry", "account", account, "err", err)
	}
	return n
}

// registryWriteTimeout bounds Watch and Unwatch, which take no context.
const registryWriteTimeout = 30 * time.Second

// Accounts is the account registry, in the provisioning database: put,
// get, list, pause, resume and delete the accounts this deployment polls.
// Every publisher process follows it; see package accounts.
func (w *Worker) Accounts() *accounts.Registry { return w.accts.reg }

// Cloud is the cloud of every account: each call goes to the provider of
// the account it names, built from the registry (or Config.Cloud). Give it
// to the standard pollers (cloud.ServerPoller{Compute: …}) so that one
// poller serves every account on every provider type.
func (w *Worker) Cloud() cloud.Provider { return w.cloud }

// AccountHealth reports how an account's polls are going when they are
// failing: how many in a row, the last error, since when. ok is false
// when the account's last poll succeeded (or none ran), always in a
// subscriber-only process, which has no schedule, and in a publisher that
// does not own the account's shard of a shared schedule.
func (w *Worker) AccountHealth(account string) (h AccountHealth, ok bool) {
	if w.sched == nil {
		return AccountHealth{}, false
	}
	return w.sched.accountHealth(account)
}

// Schedule polls one target at its own interval: a single resource polled more
// often than its kind, or a kind for one account without Watch. It lives in
// this process: when publishers share the schedule (Config.Scale), call it
// in every publisher; the one that owns the account's shard polls it.
func (w *Worker) Schedule(t state.Target, every time.Duration) error {
	if w.sched == nil {
		return fmt.Errorf("%w: Schedule on a %s worker", ErrRoleNotSupported, w.cfg.Role)
	}
	if !w.polls.has(t.Kind) {
		return fmt.Errorf("%w: Schedule(%s): no poller registered for kind %q", ErrInvalidConfig, t, t.Kind)
	}
	return w.sched.setTarget(t, every)
}

// ScheduleIdle reports whether the poll schedule has nothing to do at the
// clock's now: no dispatch (poll, job check, log collection) awaits its
// outcome and none is due. A worker without a schedule (RoleSubscriber) is
// always idle. Tests that move a fake clock (Config.Schedule.Clock; package
// workertest) call it after each move to know that the work which came due
// has finished.
func (w *Worker) ScheduleIdle() bool {
	if w.sched == nil {
		return true
	}
	return w.sched.idle()
}

// TrackJob follows a cloud operation a dispatcher started until the cloud says
// it finished, or until its Deadline (default: now + Config.JobTimeout). The
// job is stored first, so tracking survives a restart; it is idempotent by
// Job.ID. When the job ends, a "job.completed", "job.failed" or
// "job.timed_out" event is published exactly once, however many workers check
// it. A job needs ID, Account and OperationID (or ResourceID: then the
// server's state decides: RUNNING succeeds, ERROR or TERMINATED fails).
func (w *Worker) TrackJob(ctx context.Context, j persist.Job) error { return w.jobs.track(ctx, j) }

// Poisoned lists actions in the poison store, newest first.
func (w *Worker) Poisoned(ctx context.Context, q PoisonQuery) ([]PoisonedAction, error) {
	return w.poison.list(ctx, q)
}

// Replay publishes a poisoned action again, with its attempt count and retry
// budget reset, and marks the record replayed. If it fails again it returns
// to the poison store (the same record, updated). Replaying twice delivers it
// twice: handlers are idempotent by Action.Key. A record whose body was kept
// truncated cannot be replayed.
func (w *Worker) Replay(ctx context.Context, id int64) error { return w.poison.replayOne(ctx, id) }

// ReplayAll replays every poisoned action not replayed yet and returns how many
// it replayed. Actions whose body the poison store kept only in part (it was
// too large for the database) cannot be replayed and are left out.
func (w *Worker) ReplayAll(ctx context.Context) (int, error) { return w.poison.replayAll(ctx) }

// Credentials is the embedded key manager's credential store (encrypted in
// the provisioning database, cached for Config.CredentialCacheTTL), or nil
// when Config.Keyring is not set. Put customers' cloud and SSH credentials
// in it; guest-log collection reads SSH logins from it.
func (w *Worker) Credentials() *km.Cache { return w.creds }

// Publisher returns the worker's publisher. It works before Run: what it
// publishes waits in its queue until a subscriber takes it.
func (w *Worker) Publisher() *Publisher { return w.pub }

// Publish is shorthand for w.Publisher().Publish.
func (w *Worker) Publish(ctx context.Context, actions ...Action) error {
	return w.pub.Publish(ctx, actions...)
}

// Store returns a read-only view of the worker's store: observed resources
// and their history, tracked jobs, launch intents. It is nil when
// Config.Storage is the host's own and does not implement [StoreView].
// Poisoned actions are read with [Worker.Poisoned].
func (w *Worker) Store() StoreView {
	if v, ok := w.store.(StoreView); ok {
		return storeView{v}
	}
	return nil
}

// Sink returns the [StateSink] the worker saves polls to (the built-in
// store, or Config.Storage): a handler that observes state saves it here,
// and gets back only what changed.
func (w *Worker) Sink() StateSink { return stateSink{w.store} }

// Running is closed when Run has started consuming.
func (w *Worker) Running() <-chan struct{} { return w.running }

// Run runs the worker's parts until ctx is done: the subscriber consumes
// (unless this is a publisher-only worker), the schedule dispatches (unless
// it is subscriber-only), and the background duties run. When ctx is done,
// or a part fails, it stops taking actions, lets in-flight handlers finish
// and closes the transport and the store, all within ShutdownTimeout. It
// returns nil after a clean shutdown.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.ran || w.closed {
		w.mu.Unlock()
		return ErrAlreadyRunning
	}
	w.ran = true
	yielding := w.yielding
	w.yielding = nil
	w.mu.Unlock()
	for typ, h := range yielding {
		if err := w.sub.Handle(typ, h); err != nil {
			return fmt.Errorf("worker: built-in handler %q: %w", typ, err)
		}
	}
	// A process that consumes the heartbeats' queue for other events but
	// has no use for the heartbeats takes them as read: they are liveness
	// for whoever listens, not work, and must not fill the poison store.
	if q := w.cfg.Topology.QueueFor(TypeHeartbeat); slices.Contains(w.sub.Queues(), q) && !w.sub.handles(TypeHeartbeat) {
		if err := w.sub.Handle(TypeHeartbeat, HandlerFunc(func(context.Context, Action) error { return nil })); err != nil {
			return fmt.Errorf("worker: built-in handler %q: %w", TypeHeartbeat, err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	if len(w.sub.Queues()) > 0 {
		g.Go(func() error { return w.sub.Run(gctx) })
		select {
		case <-w.sub.Running():
		case <-gctx.Done(): // it failed to start, or ctx ended first
		}
	} else if w.cfg.Role != RolePinger {
		w.log.Warn("worker has no handlers: it will not consume any queue")
	}
	if w.sched != nil && gctx.Err() == nil {
		// Every account of the registry is on the schedule before Run
		// reports running; if the database is away, the sync duty keeps
		// trying.
		sctx, cancel := context.WithTimeout(gctx, registryWriteTimeout)
		if err := w.accts.sync(sctx); err != nil {
			w.log.Warn("the account registry could not be read at start; retrying in the background", "err", err)
		}
		cancel()
		if w.leases != nil {
			// The first shards are owned before Run reports running.
			lctx, cancel := context.WithTimeout(gctx, w.cfg.Scale.LeasePeriod/3)
			if err := w.leases.round(lctx); err != nil {
				w.log.Warn("the schedule's leases could not be taken at start; retrying in the background", "err", err)
			}
			cancel()
			g.Go(func() error { return w.leases.run(gctx) })
		}
		g.Go(func() error { return w.sched.run(gctx) })
	}
	for _, d := range w.duties {
		g.Go(func() error { d.loop(gctx); return nil })
	}
	close(w.running)
	w.log.Info("worker running", "role", w.cfg.Role, "transport", w.describeMQ(), "store", w.describeStore())

	<-gctx.Done()
	// ShutdownTimeout bounds everything from here: the subscriber drains
	// within it less closeReserve, then the transport and store close.
	stopped := make(chan error, 1)
	go func() { stopped <- errors.Join(g.Wait(), w.Close()) }()
	t := time.NewTimer(w.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case err := <-stopped:
		w.log.Info("worker stopped")
		return err
	case <-t.C:
		w.log.Error("shutdown did not finish within ShutdownTimeout; returning without waiting longer",
			"shutdown_timeout", w.cfg.ShutdownTimeout)
		return fmt.Errorf("worker: shutdown did not finish within ShutdownTimeout (%v): a handler, the transport or the store is hung", w.cfg.ShutdownTimeout)
	}
}

// drainTimeout is how long in-flight handlers get at shutdown: the
// ShutdownTimeout less closeReserve.
func drainTimeout(shutdown time.Duration) time.Duration { return shutdown - closeReserve(shutdown) }

// closeReserve is the part of the ShutdownTimeout kept for abandoning
// handlers that ignore their cancelled context and for closing the transport
// and the store: a fifth, at most 3s.
func closeReserve(shutdown time.Duration) time.Duration { return min(shutdown/5, 3*time.Second) }

func (w *Worker) describeMQ() string {
	if p := w.cfg.Transport.Publisher; p != nil {
		return fmt.Sprintf("host transport (%T)", p)
	}
	if k, _ := w.cfg.MQ.transport(); k == transportMemory {
		return "memory (gochannel)"
	} else if k == transportSQLite {
		return w.describeSQLiteQueue()
	}
	return redactedURL(w.cfg.MQ.URL)
}

func (w *Worker) describeStore() string {
	if d, ok := w.store.(interface{ Describe() string }); ok {
		return d.Describe()
	}
	return fmt.Sprintf("host store (%T)", w.store)
}

// Close releases the transport and the store that New opened (not those the
// host passed in). Run calls it on return; call it yourself only for a
// worker you never run. It is safe to call more than once.
func (w *Worker) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	if w.beats != nil {
		w.beats.stop() // a clean shutdown: the membership view shows it stopped, not dead
	}
	if w.creds != nil {
		w.creds.Purge() // wipes the cached secrets
	}
	var err error
	if w.provs != nil {
		err = w.provs.close()
	}
	for _, c := range w.closers {
		err = errors.Join(err, c())
	}
	return err
}
