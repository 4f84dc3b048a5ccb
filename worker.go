package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/rabbitmq"
	"github.com/stratusworks/worker/state"
)

// Worker wires a transport, a [Publisher], a [Subscriber] and a
// [persist.Store] into one process. Create it with [New], register handlers
// with [Worker.Handle], then call [Worker.Run].
type Worker struct {
	cfg    Config
	log    *slog.Logger
	store  *persist.Store
	pub    *Publisher
	sub    *Subscriber      // in publishers it only consumes poll reports
	sched  *poller.Schedule // nil in RoleSubscriber
	guests *guest.Collector // nil unless GuestLogs is enabled in a subscriber
	creds  *km.Cache        // nil without Config.Keyring

	pollers     map[string]Poller
	clock       poller.Clock // Config.Schedule.Clock, or the system clock
	now         func() time.Time
	afterLaunch func() error // tests: runs right after the cloud launch call

	closers []func() error // transport parts, closed in order after the subscriber stops

	mu      sync.Mutex
	ran     bool
	closed  bool
	running chan struct{}
}

// New validates cfg, opens the store (running migrations) and connects the
// transport. Close the worker, or Run it, to release them.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Store.Logger == nil {
		cfg.Store.Logger = cfg.Logger
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, running: make(chan struct{}), pollers: map[string]Poller{}, now: time.Now}
	w.clock = cfg.Schedule.Clock
	if w.clock == nil {
		w.clock = poller.RealClock()
	}
	w.now = w.clock.Now
	if cfg.Role != RoleSubscriber {
		sched, err := poller.New(cfg.Schedule)
		if err != nil {
			return nil, fmt.Errorf("%w: Schedule: %w", ErrInvalidConfig, err)
		}
		w.sched = sched
	}

	if cfg.Store.Now == nil {
		cfg.Store.Now = w.now // one clock for the schedule, the store and the handlers
		w.cfg.Store.Now = w.now
	}
	store, err := persist.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("worker: open store: %w", err)
	}
	w.store = store

	pub, sub, declarer, consumers, err := w.transport(ctx)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	w.pub, err = NewPublisher(PublisherConfig{
		Publisher: pub, Declarer: declarer, Topology: cfg.Topology, MaxPayloadBytes: cfg.MaxPayloadBytes,
	})
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	delayer, _ := pub.(DelayPublisher)
	var deadLetters func(string) bool
	if dl, ok := sub.(interface{ DeadLettering(queue string) bool }); ok {
		deadLetters = dl.DeadLettering
	}
	var poison PoisonStore = store
	if kind, _ := cfg.MQ.transport(); kind == transportAMQP {
		poison = mirroredPoison{store: store, pub: pub, topic: w.pub.Topology().Topic(QueuePoison), log: w.log}
	}
	{
		w.sub, err = NewSubscriber(SubscriberConfig{
			Subscriber:      sub,
			Topology:        cfg.Topology,
			Consumers:       consumers,
			Concurrency:     cfg.Concurrency,
			HandlerTimeout:  cfg.HandlerTimeout,
			Retry:           cfg.Retry,
			Poison:          poison,
			Defer:           store,
			MaxPayloadBytes: cfg.MaxPayloadBytes,
			DrainTimeout:    drainTimeout(cfg.ShutdownTimeout),
			Logger:          cfg.Logger,
			Middleware:      cfg.Middleware,
			Delay:           delayer,
			DeadLetters:     deadLetters,
			Now:             w.now,
		})
		if err != nil {
			_ = w.Close()
			return nil, err
		}
	}
	if err := w.openCredentials(); err != nil {
		_ = w.Close()
		return nil, err
	}
	if err := w.setupGuestLogs(); err != nil {
		_ = w.Close()
		return nil, err
	}
	if err := w.builtins(); err != nil {
		_ = w.Close()
		return nil, err
	}
	return w, nil
}

// builtins registers the handlers the worker itself provides.
func (w *Worker) builtins() error {
	var hs []struct {
		typ string
		h   HandlerFunc
	}
	add := func(typ string, h HandlerFunc) {
		hs = append(hs, struct {
			typ string
			h   HandlerFunc
		}{typ, h})
	}
	if w.cfg.Role != RolePublisher {
		add(TypePoll, w.scheduled(w.pollDispatched))
		add(TypeJobCheck, w.scheduled(w.checkDispatchedJob))
		add(TypeJobTrack, w.handleJobTrack)
		if w.cfg.Cloud != nil {
			add(TypeServerLaunch, w.handleLaunch)
		}
		if w.guests != nil {
			add(TypeGuestLogs, w.scheduled(w.collectDispatched))
		}
	}
	if w.sched != nil {
		add(TypePollReport, w.handlePollReport)
	}
	for _, b := range hs {
		if err := w.sub.Handle(b.typ, b.h); err != nil {
			return err
		}
	}
	return nil
}

// transport builds the publisher and subscriber sides of the configured MQ.
func (w *Worker) transport(ctx context.Context) (message.Publisher, message.Subscriber, message.SubscribeInitializer, int, error) {
	kind, _ := w.cfg.MQ.transport()
	wmLog := watermill.NewSlogLoggerWithLevelMapping(w.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	if kind == transportMemory {
		mem := newMemoryPubSub(wmLog)
		w.closers = append(w.closers, mem.Close)
		return mem, mem, mem, 1, nil
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
	w.closers = append(w.closers, sub.Close)
	pub, err := rabbitmq.NewPublisher(ctx, rc)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("worker: %w", err)
	}
	w.closers = append([]func() error{pub.Close}, w.closers...)
	return pub, sub, sub, w.cfg.MQ.Consumers, nil
}

// Handle registers h for actions of the given type. Call it before Run.
func (w *Worker) Handle(actionType string, h Handler) error {
	if w.cfg.Role == RolePublisher {
		return fmt.Errorf("%w: Handle(%q) on a %s worker", ErrRoleNotSupported, actionType, w.cfg.Role)
	}
	return w.sub.Handle(actionType, h)
}

// HandleFunc registers f for actions of the given type. Call it before Run.
func (w *Worker) HandleFunc(actionType string, f func(ctx context.Context, a Action) error) error {
	return w.Handle(actionType, HandlerFunc(f))
}

// Publisher returns the worker's publisher. It works before Run: what it
// publishes waits in its queue until a subscriber takes it.
func (w *Worker) Publisher() *Publisher { return w.pub }

// Publish is shorthand for w.Publisher().Publish.
func (w *Worker) Publish(ctx context.Context, actions ...Action) error {
	return w.pub.Publish(ctx, actions...)
}

// Store returns the worker's store: its [StateSink], and the poison and
// deferred tables.
func (w *Worker) Store() *persist.Store { return w.store }

// Running is closed when Run has started consuming.
func (w *Worker) Running() <-chan struct{} { return w.running }

// Run runs the worker until ctx is done: the subscriber consumes (unless this
// is a publisher-only worker), parked retries are republished when due, and
// history is copied to the analytics database.
// When ctx is done it stops taking actions, lets in-flight handlers finish
// within ShutdownTimeout, then closes the transport and the store. It returns
// nil after a clean shutdown.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.ran || w.closed {
		w.mu.Unlock()
		return ErrAlreadyRunning
	}
	w.ran = true
	w.mu.Unlock()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)

	if w.sub != nil && len(w.sub.Queues()) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.sub.Run(runCtx); err != nil {
				errs <- err
				cancel()
			}
		}()
		select {
		case <-w.sub.Running():
		case err := <-errs:
			cancel()
			wg.Wait()
			return errors.Join(err, w.Close())
		}
	} else if w.sub != nil {
		w.log.Warn("worker has no handlers: it will not consume any queue")
	}
	if w.sched != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.sched.Run(runCtx, w.dispatch); err != nil {
				errs <- fmt.Errorf("worker: schedule: %w", err)
				cancel()
			}
		}()
	}
	for _, d := range w.duties() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.loop(runCtx)
		}()
	}
	close(w.running)
	w.log.Info("worker running", "role", w.cfg.Role, "transport", w.describeMQ(), "store", w.store.Describe())

	<-runCtx.Done()
	// ShutdownTimeout bounds everything from here: the subscriber drains
	// within it less closeReserve, then the transport and store close.
	stopped := make(chan error, 1)
	go func() {
		wg.Wait()
		close(errs)
		var err error
		for e := range errs {
			err = errors.Join(err, e)
		}
		stopped <- errors.Join(err, w.Close())
	}()
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
	if k, _ := w.cfg.MQ.transport(); k == transportMemory {
		return "memory (gochannel)"
	}
	return redactedURL(w.cfg.MQ.URL)
}

// duties are the worker's background jobs, each on its own goroutine: a
// hung database stalls only the duties that need it.
func (w *Worker) duties() []duty {
	every := w.cfg.DeferredInterval
	ds := []duty{
		{name: "republishing parked retries", every: every, run: func(ctx context.Context) error {
			_, err := w.republishDue(ctx)
			return err
		}},
		{name: "copying history to the analytics database", every: every, timeout: time.Minute, run: func(ctx context.Context) error {
			_, err := w.store.FlushHistory(ctx)
			return err
		}},
	}
	if w.sched != nil {
		r := &relay{store: w.store, pub: w.pub}
		ds = append(ds,
			duty{name: "publishing change events", every: every, run: r.run},
			duty{name: "scheduling running jobs", every: jobSyncEvery, timeout: time.Minute, run: w.syncJobs},
		)
	}
	for i := range ds {
		ds[i].log = w.log
	}
	return ds
}

// jobSyncEvery is how often publishers look for running jobs that other
// processes stored.
const jobSyncEvery = 30 * time.Second

// relay publishes the change and job events that saves committed to the
// outbox, then marks them sent. A crash in between publishes them again:
// events carry their id (the action ID), so consumers drop the duplicate.
// When marking fails (a read-only or unreachable database), the next run
// only retries the marking: events already published are not published again.
type relay struct {
	store interface {
		PendingEvents(ctx context.Context, limit int) ([]persist.Event, error)
		MarkEventsSent(ctx context.Context, ids ...string) error
	}
	pub      *Publisher
	unmarked []string // published, not yet marked sent
}

const relayBatch = 100

func (r *relay) run(ctx context.Context) error {
	if len(r.unmarked) > 0 {
		if err := r.store.MarkEventsSent(ctx, r.unmarked...); err != nil {
			return fmt.Errorf("mark %d published events sent: %w", len(r.unmarked), err)
		}
		r.unmarked = nil
	}
	for {
		evs, err := r.store.PendingEvents(ctx, relayBatch)
		if err != nil || len(evs) == 0 {
			return err
		}
		actions := make([]Action, 0, len(evs))
		ids := make([]string, 0, len(evs))
		for _, e := range evs {
			actions = append(actions, Action{ID: e.ID, Key: e.ID, Type: e.Type, Account: e.Account, Customer: e.Customer,
				Resource: e.ResourceID, CreatedAt: e.CreatedAt, Payload: e.Payload})
			ids = append(ids, e.ID)
		}
		if err := r.pub.Publish(ctx, actions...); err != nil {
			return err
		}
		r.unmarked = ids
		if err := r.store.MarkEventsSent(ctx, ids...); err != nil {
			return fmt.Errorf("mark %d published events sent: %w", len(ids), err)
		}
		r.unmarked = nil
		if len(evs) < relayBatch {
			return nil
		}
	}
}

// republishDue republishes every parked action that is due and removes it
// from the store. A crash between the two republishes it again later: handlers
// are idempotent.
func (w *Worker) republishDue(ctx context.Context) (int, error) {
	n := 0
	for {
		due, err := w.store.DueDeferred(ctx, w.now().UTC(), 100)
		if err != nil || len(due) == 0 {
			return n, err
		}
		for i, d := range due {
			if err := w.pub.publishRaw(d.Topic, d.MessageUUID, d.Metadata, d.Payload); err != nil {
				return n, errors.Join(err, w.store.DeleteDeferred(ctx, due[:i]...))
			}
		}
		if err := w.store.DeleteDeferred(ctx, due...); err != nil {
			return n, err
		}
		n += len(due)
		if len(due) < 100 {
			return n, nil
		}
	}
}

// Close releases the transport and the store. Run calls it on return; call it
// yourself only for a worker you never run. It is safe to call more than once.
func (w *Worker) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	if w.creds != nil {
		w.creds.Purge() // wipes the cached secrets
	}
	var err error
	for _, c := range w.closers {
		err = errors.Join(err, c())
	}
	if w.store != nil {
		err = errors.Join(err, w.store.Close())
	}
	return err
}

// logFor returns the logger for records about an action: with its customer
// and account, so that they reach the customer's own log.
func (w *Worker) logFor(a Action) *slog.Logger {
	return w.log.With("customer", a.Customer, "account", a.Account)
}

// logTarget returns the logger for records about a poll target, a job or a
// guest: with its customer and account.
func (w *Worker) logTarget(t state.Target) *slog.Logger {
	return w.log.With("customer", t.Customer, "account", t.Account)
}
