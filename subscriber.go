package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/persist"
)

// PoisonStore keeps actions that failed for good, with the reason. The
// subscriber acknowledges a poisoned message only after AddPoison returned nil.
// [persist.Store] implements it.
type PoisonStore interface {
	AddPoison(ctx context.Context, p persist.Parked) error
}

// DeferStore parks an action durably until due, so that a long retry wait does
// not hold a handler slot. [persist.Store] implements it; the [Worker]
// republishes parked actions when they are due.
type DeferStore interface {
	Defer(ctx context.Context, p persist.Parked, due time.Time) error
}

// DelayPublisher is a transport that can hold messages and deliver them to a
// topic after a delay, durably where the transport is durable.
// rabbitmq.Publisher implements it with wait queues; the embedded transport
// with timers. A message may come back earlier than asked (RabbitMQ rounds
// the delay down to a wait queue's period): the subscriber then waits again
// until the time in its MetaNotBefore metadata.
type DelayPublisher interface {
	PublishDelayed(topic string, delay time.Duration, msgs ...*message.Message) error
}

// Defaults shared by Config and SubscriberConfig.
const (
	defaultConcurrency    = 64
	defaultHandlerTimeout = time.Minute
	defaultDrainTimeout   = 30 * time.Second
	defaultPublishTimeout = 30 * time.Second
)

// SubscriberConfig configures a [Subscriber]. Zero fields take the stated defaults.
type SubscriberConfig struct {
	// Subscriber is the transport to consume from. Required.
	Subscriber message.Subscriber
	// Topology maps action types to queues. Default: Prefix "worker", DefaultRoutes().
	Topology Topology
	// Consumers is how many times each queue is subscribed. Use more than 1 only
	// on a transport whose subscriptions compete for messages (RabbitMQ); on
	// gochannel every subscription receives a copy of every message. Default 1.
	Consumers int
	// Concurrency is the most handlers that run at once, over all queues. Default 64.
	Concurrency int
	// HandlerTimeout bounds one attempt of a handler. Default 1m.
	HandlerTimeout time.Duration
	// Retry is the retry policy for failed actions.
	Retry RetryPolicy
	// Poison receives actions that failed for good. Required: nothing is ever dropped.
	Poison PoisonStore
	// Defer parks actions whose next retry is further away than Retry.InlineMax.
	// Optional: without it such waits are held by Delay, or else in place.
	Defer DeferStore
	// Delay holds an action on the transport for a wait when Defer is not
	// set or cannot park it (the database is unreachable), and postpones
	// the poisoning of an action while the PoisonStore is unreachable.
	// Optional: without it such waits happen in place. The Worker sets it
	// to its transport (RabbitMQ wait queues; timers in memory).
	Delay DelayPublisher
	// Now is the clock for due times, retry budgets and failure times.
	// Default time.Now.
	Now func() time.Time
	// DeadLetters reports whether the transport dead-letters a message of
	// the queue (topic) that is nacked with MetaReject set —
	// the last resort for an action that cannot be poisoned at all. Optional:
	// without it, such an action is held on Delay and tried again every few
	// minutes, or, without Delay either, nacked. The Worker sets it on
	// RabbitMQ (rabbitmq.Subscriber.DeadLettering).
	DeadLetters func(topic string) bool
	// MaxPayloadBytes is the largest message body accepted. Default 1 MiB.
	MaxPayloadBytes int
	// DrainTimeout is how long Run waits, after its context is done, for
	// running handlers to finish; then their contexts are cancelled. Default 30s.
	DrainTimeout time.Duration
	// Middleware is extra Watermill middleware run around each attempt of a
	// handler, inside the retry and poison handling (first runs outermost).
	// The message's metadata has the copies of the action's fields (MetaType,
	// MetaCustomer, MetaAccount, MetaKey, MetaCorrelationID) filled in from
	// the body before the first attempt.
	Middleware []message.HandlerMiddleware
	// Logger receives the subscriber's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c *SubscriberConfig) setDefaults() {
	c.Topology.setDefaults()
	c.Retry.setDefaults()
	if c.Consumers == 0 {
		c.Consumers = 1
	}
	if c.Concurrency == 0 {
		c.Concurrency = defaultConcurrency
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = defaultHandlerTimeout
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = defaultMaxPayload
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = defaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// maxConcurrency bounds Concurrency: each unit is a goroutine per
// subscription, and more handlers than this in one process is a typo.
const maxConcurrency = 10_000

// Validate names the first bad field. Zero fields stand for their defaults.
func (c SubscriberConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.Subscriber == nil:
		return configError("Subscriber", "is required")
	case c.Poison == nil:
		return configError("Poison", "is required: failed actions must go somewhere")
	case c.Consumers < 1:
		return configError("Consumers", "is %d, must be at least 1", c.Consumers)
	case c.DrainTimeout < 0:
		return configError("DrainTimeout", "is %v, must not be negative", c.DrainTimeout)
	}
	return validateHandling(c.Concurrency, c.HandlerTimeout, c.MaxPayloadBytes, c.Topology, c.Retry)
}

// validateHandling checks the settings of how actions are handled that a
// [Config] and a [SubscriberConfig] share, under the same field names in
// both: Concurrency, HandlerTimeout, MaxPayloadBytes, Topology and Retry.
func validateHandling(concurrency int, handlerTimeout time.Duration, maxPayload int, t Topology, r RetryPolicy) error {
	switch {
	case concurrency < 1 || concurrency > maxConcurrency:
		return configError("Concurrency", "is %d, must be 1-%d", concurrency, maxConcurrency)
	case handlerTimeout < 0:
		return configError("HandlerTimeout", "is %v, must not be negative", handlerTimeout)
	case maxPayload < 0:
		return configError("MaxPayloadBytes", "is %d, must not be negative", maxPayload)
	}
	if err := t.Validate(); err != nil {
		return err
	}
	return r.Validate()
}

// Subscriber takes actions off the queues and calls the [Handler] registered
// for each action's type.
//
// For every message it: limits concurrency; decodes the action (a message
// that does not decode, or whose type has no handler, is poisoned at once);
// runs the handler with a timeout and panic recovery; on error retries with
// exponential backoff and jitter (short waits in place, long ones parked in the
// DeferStore); after Retry.MaxAttempts, or at once for a [Permanent] error or a
// panic, writes the action to the PoisonStore with the reason. The message is
// acknowledged only after the handler succeeded or the action was durably
// parked or poisoned; otherwise it is nacked for redelivery.
//
// It does not use a Watermill [message.Router], which starts a goroutine per
// message (whose stack grows again for every message) and logs each one.
// Long-lived goroutines, Concurrency per subscription, take messages straight
// off the transport's channels; with several subscriptions a semaphore holds
// them to Concurrency handlers in all. Watermill middleware (Middleware) still
// runs around every attempt.
type Subscriber struct {
	cfg      SubscriberConfig
	handlers map[string]Handler

	mu      sync.Mutex
	started bool

	running chan struct{}
	// base is the parent of every handler context; cancelled when the drain
	// time is over.
	base       context.Context
	cancelBase context.CancelFunc
	chain      message.HandlerFunc
	retries    *quietLog // runs of failing actions, by type and customer
	obs        observer  // the Worker's metrics
	// kids holds the actions of packed messages waiting for a handler
	// slot: every worker takes them before it takes another message.
	// kidReady wakes idle workers for them. Set by Run.
	kids kidQueue
}

// NewSubscriber validates cfg and returns a Subscriber with no handlers.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Topology.compile()
	base, cancel := context.WithCancel(context.Background())
	s := &Subscriber{
		cfg:        cfg,
		handlers:   map[string]Handler{},
		running:    make(chan struct{}),
		base:       base,
		cancelBase: cancel,
		retries:    newQuietLog(time.Minute, retryRecoverAfter, cfg.Now),
		obs:        noObserver{},
	}
	chain := message.HandlerFunc(s.dispatch)
	for i := len(cfg.Middleware) - 1; i >= 0; i-- {
		chain = cfg.Middleware[i](chain)
	}
	s.chain = chain
	return s, nil
}

// Handle registers h for actions of the given type. It fails for an invalid
// type, a nil handler, a type registered twice, or after Run started.
func (s *Subscriber) Handle(actionType string, h Handler) error {
	if !validType(actionType) {
		return fmt.Errorf("%w: action type %q must be 1-128 bytes of a-z 0-9 . _ -", ErrInvalidAction, actionType)
	}
	if h == nil {
		return fmt.Errorf("worker: Handle(%q): handler is nil", actionType)
	}
	if f, ok := h.(HandlerFunc); ok && f == nil {
		return fmt.Errorf("worker: Handle(%q): handler func is nil", actionType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("%w: Handle(%q) must be called before Run", ErrAlreadyRunning, actionType)
	}
	if _, dup := s.handlers[actionType]; dup {
		return fmt.Errorf("worker: a handler for action type %q is already registered", actionType)
	}
	s.handlers[actionType] = h
	return nil
}

// handles reports whether a handler is registered for the type.
func (s *Subscriber) handles(actionType string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.handlers[actionType]
	return ok
}

// HandleFunc registers f for actions of the given type, as Handle does.
func (s *Subscriber) HandleFunc(actionType string, f func(ctx context.Context, a Action) error) error {
	return s.Handle(actionType, HandlerFunc(f))
}

// Running is closed once the subscriber consumes from all its queues.
func (s *Subscriber) Running() <-chan struct{} { return s.running }

// Queues returns the queues Run consumes from: those that at least one
// registered action type routes to.
func (s *Subscriber) Queues() []Queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Queue
	for _, q := range queues {
		for t := range s.handlers {
			if s.cfg.Topology.QueueFor(t) == q {
				out = append(out, q)
				break
			}
		}
	}
	return out
}

// Run consumes until ctx is done, then stops taking messages, waits up to
// DrainTimeout for running handlers, cancels the contexts of any still running
// and returns. It does not close the transport: that belongs to the caller.
func (s *Subscriber) Run(ctx context.Context) error {
	qs := s.Queues()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	s.started = true
	s.mu.Unlock()
	defer s.cancelBase()
	if len(qs) == 0 {
		return fmt.Errorf("worker: subscriber has no handlers: register one with Handle before Run")
	}

	// Subscriptions end when subCtx is done: the transport stops delivering,
	// and messages already handed out are still acked or nacked.
	subCtx, stopSubs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSubs()
	type subscription struct {
		topic string
		msgs  <-chan *message.Message
	}
	var subs []subscription
	for _, q := range qs {
		topic := s.cfg.Topology.Topic(q)
		for i := 0; i < s.cfg.Consumers; i++ {
			msgs, err := s.cfg.Subscriber.Subscribe(subCtx, topic)
			if err != nil {
				return fmt.Errorf("worker: subscriber did not start: subscribe to %s: %w", topic, err)
			}
			subs = append(subs, subscription{topic, msgs})
		}
	}

	// Each subscription gets Concurrency goroutines that take its messages
	// straight off the transport's channel; with several subscriptions a
	// semaphore holds them to Concurrency handlers in all. A message waiting
	// for a slot is nacked if the subscriber stops first.
	var sem chan struct{}
	if len(subs) > 1 {
		sem = make(chan struct{}, s.cfg.Concurrency)
	}
	s.kids.ready = make(chan struct{}, s.cfg.Concurrency)
	var workers sync.WaitGroup
	ended := make(chan struct{}, len(subs)) // one token per subscription the transport ended
	for _, sub := range subs {
		for i := 0; i < s.cfg.Concurrency; i++ {
			workers.Add(1)
			go s.work(subCtx, sub.topic, sub.msgs, sem, &workers, ended, i == 0)
		}
	}
	allEnded := make(chan struct{})
	go func() {
		for range subs {
			select {
			case <-ended:
			case <-subCtx.Done():
				return
			}
		}
		close(allEnded)
	}()
	close(s.running)
	s.cfg.Logger.Info("subscriber running", "queues", qs, "consumers", s.cfg.Consumers, "concurrency", s.cfg.Concurrency)

	var runErr error
	select {
	case <-ctx.Done():
	case <-allEnded: // every subscription ended by itself (transport closed)
		runErr = errors.New("worker: subscriber stopped: the transport closed every subscription")
	}
	stopSubs() // idle workers return at once, busy ones after their message

	drained := make(chan struct{})
	go func() { workers.Wait(); close(drained) }()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		s.cfg.Logger.Warn("drain time over, cancelling running handlers", "drain_timeout", s.cfg.DrainTimeout)
		s.cancelBase()
		// Their actions are nacked (redelivered) as they return. A handler
		// that ignores its context is not waited for long: shutdown is bounded.
		abandon := min(abandonAfter, s.cfg.DrainTimeout/10)
		g := time.NewTimer(abandon)
		defer g.Stop()
		select {
		case <-drained:
		case <-g.C:
			s.cfg.Logger.Error("handlers did not return after their context was cancelled; abandoning them (their actions will be redelivered)",
				"waited", s.cfg.DrainTimeout+abandon)
		}
	}
	return runErr
}

// work handles the messages of one subscription, one at a time, until the
// subscription ends or stop is done. Workers live as long as Run, so their
// stacks grow once, not once per message. Each has its own child of base, so
// that the per-attempt timeout contexts of different workers do not contend
// for one parent. One worker per subscription (first) reports the end of the
// subscription on ended.
func (s *Subscriber) work(stop context.Context, topic string, msgs <-chan *message.Message, sem chan struct{},
	wg *sync.WaitGroup, ended chan<- struct{}, first bool) {
	defer wg.Done()
	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	// The actions of packs still waiting when the subscriber stops are not
	// started: their packs are redelivered. Every worker empties the queue
	// on its way out, so the last one leaves none behind.
	defer s.dropKids()
	for {
		if k, ok := s.kids.pop(); ok {
			if stop.Err() != nil {
				k.pack.done(false)
				return
			}
			if sem == nil {
				s.handleChild(ctx, k)
				continue
			}
			select {
			case sem <- struct{}{}:
				s.handleChild(ctx, k)
				<-sem
			case <-stop.Done():
				k.pack.done(false)
				return
			}
			continue
		}
		select {
		case msg, ok := <-msgs:
			if !ok {
				if first && stop.Err() == nil {
					s.cfg.Logger.Warn("subscription ended by the transport", "topic", topic)
					ended <- struct{}{}
				}
				return
			}
			if stop.Err() != nil { // taken after the stop: not started, so redelivered
				msg.Nack()
				return
			}
			if sem == nil {
				s.handle(ctx, msg)
				continue
			}
			select {
			case sem <- struct{}{}:
				s.handle(ctx, msg)
				<-sem
			case <-stop.Done():
				msg.Nack()
				return
			}
		case <-s.kids.ready: // an action of a pack to take
		case <-stop.Done():
			return
		}
	}
}

// dropKids settles every queued action of a pack as not done.
func (s *Subscriber) dropKids() {
	for {
		k, ok := s.kids.pop()
		if !ok {
			return
		}
		k.pack.done(false)
	}
}

// unpack queues the actions of a packed message for the workers (this
// one included); the last one to finish settles the carrier. A carrier
// that does not unpack is poisoned whole.
func (s *Subscriber) unpack(ctx context.Context, carrier *message.Message) {
	bodies, err := unpackBody(carrier.Payload, s.cfg.MaxPayloadBytes)
	if err != nil {
		if s.poison(carrier, 1, err) == nil {
			carrier.Ack()
		} else {
			carrier.Nack()
		}
		return
	}
	p := &pack{carrier: carrier}
	p.left.Store(int32(len(bodies)))
	kids := make([]child, len(bodies))
	for i, b := range bodies {
		kids[i] = child{pack: p, msg: childMessage(carrier, i, b)}
	}
	if s.kids.ready == nil { // not running (workertest): one after the other
		for _, k := range kids {
			s.handleChild(ctx, k)
		}
		return
	}
	s.kids.push(kids)
}

// handleChild runs one action of a pack as handle runs a message, and
// reports its outcome to the pack.
func (s *Subscriber) handleChild(ctx context.Context, k child) {
	ok := false
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("panic while processing an action of a packed message, the pack will be redelivered", "id", k.msg.UUID,
				"panic", fmt.Sprint(r), "stack", trimStack(debug.Stack()))
		}
		k.pack.done(ok)
	}()
	ok = s.process(ctx, k.msg) == nil
}

// handle acks or nacks msg according to process. A panic outside the handler
// (in a store or in middleware) nacks the message instead of taking the process down.
func (s *Subscriber) handle(ctx context.Context, msg *message.Message) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("panic while processing an action, it will be redelivered", "id", msg.UUID,
				"panic", fmt.Sprint(r), "stack", trimStack(debug.Stack()))
			msg.Nack()
		}
	}()
	if isPacked(msg) {
		s.unpack(ctx, msg)
		return
	}
	if s.process(ctx, msg) == nil {
		msg.Ack()
	} else {
		msg.Nack()
	}
}

// errStopping makes an action be nacked (and so redelivered) because the
// subscriber is shutting down.
var errStopping = errors.New("worker: subscriber stopping")

// Metadata the subscriber keeps on an action between its attempts. They are
// the worker's own: a message from elsewhere that carries them with values
// that do not parse is poisoned.
const (
	// MetaRetrySince is when the action first failed (RFC 3339, UTC): the
	// retry budget runs from there.
	MetaRetrySince = "worker_retry_since"
	// metaPoisonPending marks an action whose poisoning was postponed because
	// the poison store was unreachable; the value is the reason. It never
	// reaches the poison store.
	metaPoisonPending = "worker_poison_pending"
)

// retryRecoverAfter is how long after the last failure of actions of a type
// and customer a success counts as their recovery (for the log).
const retryRecoverAfter = 5 * time.Second

// abandonAfter is how long Run waits at most, after cancelling the handlers
// still running at the end of the drain time, before it returns without them
// (a tenth of DrainTimeout when that is shorter).
const abandonAfter = time.Second

// MetaReject is set on a message, to the reason, when the subscriber nacks
// it as a last resort (it could not even be poisoned): a transport that
// dead-letters rejects it rather than requeueing it. It is the key
// rabbitmq.MetadataReject names; it is never sent or stored.
const MetaReject = "worker_reject"

// storeWriteTimeout bounds one write of a retry or poison record.
const storeWriteTimeout = 10 * time.Second

// process runs the attempts, retries, parks or poisons. nil means ack.
func (s *Subscriber) process(ctx context.Context, msg *message.Message) error {
	if len(s.cfg.Middleware) > 0 || msg.Metadata.Get(MetaType) == "" {
		// Before any middleware sees it; and a message off RabbitMQ carries
		// no type header, which metrics, logs and parking need.
		fillMetadata(msg, s.cfg.MaxPayloadBytes)
	}
	if reason := msg.Metadata.Get(metaPoisonPending); reason != "" {
		return s.poison(msg, attemptOf(msg), errors.New(reason))
	}
	if nb, ok := notBefore(msg); ok {
		if wait := nb.Sub(s.cfg.Now()); wait > 0 {
			// Back from a wait on the transport earlier than asked.
			return s.later(msg, wait)
		}
	}
	attempt := attemptOf(msg)
	typ := msg.Metadata.Get(MetaType)
	for {
		start := time.Now()
		err := s.attempt(ctx, msg)
		s.obs.attempted(typ, time.Since(start), err)
		if err == nil {
			s.succeeded(msg)
			return nil
		}
		if s.base.Err() != nil && !IsPermanent(err) {
			return errStopping // shutdown interrupted it: redeliver
		}
		now := s.cfg.Now().UTC()
		since := retrySince(msg)
		v := s.cfg.Retry.Decide(err, attempt, since, now)
		switch v.Outcome {
		case Snoozed:
			s.obs.snoozed(typ)
			s.logFor(msg).Debug("action snoozed", "id", msg.UUID, "type", msg.Metadata.Get(MetaType), "for", v.Wait)
			if v.Wait > s.cfg.Retry.InlineMax {
				return s.later(msg, v.Wait)
			}
			if !sleepCtx(s.base, v.Wait) {
				return errStopping
			}
			continue
		case Poisoned:
			return s.poison(msg, attempt, errors.New(v.Reason))
		}
		s.obs.retried(typ)
		wait := v.Wait
		attempt++
		msg.Metadata.Set(MetaAttempt, strconv.Itoa(attempt))
		if since.IsZero() {
			msg.Metadata.Set(MetaRetrySince, now.Format(time.RFC3339Nano))
		}
		s.quietly(msg, "action failed, will retry", "actions still failing, will retry",
			"id", msg.UUID, "type", msg.Metadata.Get(MetaType), "attempt", attempt-1, "retry_in", wait.Round(time.Millisecond), "err", err)
		if wait > s.cfg.Retry.InlineMax {
			return s.later(msg, wait)
		}
		if !sleepCtx(s.base, wait) {
			return errStopping
		}
	}
}

// later holds the action for wait without a handler slot: parked in the
// DeferStore, or, when that is not set or cannot take it (the database is
// unreachable), on the transport (Delay); it is acked once held. With
// neither it waits in place and tries again.
func (s *Subscriber) later(msg *message.Message, wait time.Duration) error {
	due := s.cfg.Now().Add(wait).UTC()
	msg.Metadata.Set(MetaNotBefore, due.Format(time.RFC3339Nano))
	var parkErr error
	if s.cfg.Defer != nil {
		p := s.parked(msg, attemptOf(msg))
		if parkErr = s.write(func(ctx context.Context) error { return s.cfg.Defer.Defer(ctx, p, due) }); parkErr == nil {
			return nil
		}
		s.obs.dbError(opPark)
	}
	if s.base.Err() != nil {
		return errStopping // past the drain time: the transport redelivers it
	}
	if s.cfg.Delay != nil {
		err := s.cfg.Delay.PublishDelayed(s.topicOf(msg), wait, s.copyOf(msg))
		if err == nil {
			if parkErr != nil {
				s.quietly(msg, "cannot park action for retry, holding it on the transport instead",
					"actions still held on the transport: their retries cannot be parked",
					"id", msg.UUID, "type", msg.Metadata.Get(MetaType), "retry_in", wait.Round(time.Millisecond), "err", parkErr)
			}
			return nil
		}
		s.obs.mqError(opDelay)
		parkErr = errors.Join(parkErr, err)
	}
	if parkErr != nil {
		s.logFor(msg).Warn("cannot park action for retry, waiting in place", "id", msg.UUID,
			"type", msg.Metadata.Get(MetaType), "retry_in", wait.Round(time.Millisecond), "err", parkErr)
	}
	if !sleepCtx(s.base, wait) {
		return errStopping
	}
	delete(msg.Metadata, MetaNotBefore)
	return s.process(s.base, msg)
}

// topicOf is the queue msg's type routes to.
func (s *Subscriber) topicOf(msg *message.Message) string {
	return s.cfg.Topology.Topic(s.cfg.Topology.QueueFor(msg.Metadata.Get(MetaType)))
}

// copyOf is msg as a new message to send again: same id, body and metadata.
func (s *Subscriber) copyOf(msg *message.Message) *message.Message {
	c := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		c.Metadata.Set(k, v)
	}
	return c
}

// attempt runs the middleware chain and handler once, with timeout and
// recovery (runAttempt). parent is a child of s.base.
func (s *Subscriber) attempt(parent context.Context, msg *message.Message) error {
	return runAttempt(parent, s.cfg.HandlerTimeout, func(ctx context.Context) error {
		orig := msg.Context()
		msg.SetContext(ctx)
		_, err := s.chain(msg)
		msg.SetContext(orig)
		return err
	})
}

// runAttempt calls run once with a context bounded by timeout. A panic in
// run becomes a [Permanent] error wrapping [ErrHandlerPanic] with the panic
// value and the (trimmed) stack; an error returned once the timeout has
// passed, while parent is still live (not a shutdown), is wrapped with
// [ErrHandlerTimeout] unless it is permanent. The subscriber and
// workertest.Run both attempt handlers through it.
func runAttempt(parent context.Context, timeout time.Duration, run func(ctx context.Context) error) (err error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, r, trimStack(debug.Stack())))
		}
	}()
	err = run(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil && !IsPermanent(err) {
		err = fmt.Errorf("%w after %v: %w", ErrHandlerTimeout, timeout, err)
	}
	return err
}

// dispatch decodes the action and calls its handler.
func (s *Subscriber) dispatch(msg *message.Message) ([]*message.Message, error) {
	a, err := decode(msg, s.cfg.MaxPayloadBytes)
	if err != nil {
		return nil, Permanent(err)
	}
	if msg.Metadata.Get(MetaAttempt) == "" && msg.Metadata.Get(MetaNotBefore) == "" && msg.Metadata.Get(MetaReplayOf) == "" {
		s.obs.queued(a.Type, time.Since(a.CreatedAt)) // a first delivery: how long it waited on its queue
	}
	h, ok := s.handlers[a.Type]
	if !ok {
		return nil, Permanent(fmt.Errorf("%w %q on queue %s (this subscriber handles %d types)", ErrNoHandler, a.Type, s.cfg.Topology.QueueFor(a.Type), len(s.handlers)))
	}
	return nil, h.Handle(msg.Context(), a)
}

func (s *Subscriber) parked(msg *message.Message, attempts int) persist.Parked {
	fillMetadata(msg, s.cfg.MaxPayloadBytes)
	md := make(map[string]string, len(msg.Metadata))
	for k, v := range msg.Metadata {
		if k != metaPoisonPending && k != MetaReject {
			md[k] = v
		}
	}
	id := msg.UUID
	if id == "" {
		id = watermill.NewUUID()
	}
	return persist.Parked{
		MessageUUID: id,
		Topic:       s.topicOf(msg),
		ActionType:  msg.Metadata.Get(MetaType),
		Metadata:    md,
		Payload:     msg.Payload,
		Attempts:    attempts,
	}
}

// poisonRecheck is how long an action waits on the transport for the
// poison store to come back, at most.
const poisonRecheck = 5 * time.Minute

// poison records the action as failed for good and acks it (nil). Whatever
// the message holds, the store records a bounded form of it, so the write
// fails only when the store is unreachable: then the action waits on the
// transport and is poisoned when it comes back, for as long as the retry
// budget lasts. Beyond that the message is rejected for the transport to
// dead-letter (RabbitMQ: to the poison queue); where the transport cannot
// dead-letter, it is held and tried again every poisonRecheck. It is never
// requeued in a tight loop.
func (s *Subscriber) poison(msg *message.Message, attempts int, cause error) error {
	p := s.parked(msg, attempts)
	p.Reason = cause.Error()
	p.FailedAt = s.cfg.Now().UTC()
	err := s.write(func(ctx context.Context) error { return s.cfg.Poison.AddPoison(ctx, p) })
	log := s.logFor(msg)
	if err == nil {
		s.obs.poisoned(p.ActionType)
		delete(msg.Metadata, metaPoisonPending)
		log.Error("action poisoned", "id", msg.UUID, "type", p.ActionType, "attempts", attempts, "reason", firstLine(p.Reason))
		return nil
	}
	s.obs.dbError(opPoison)
	if s.base.Err() != nil {
		return errStopping
	}
	since := retrySince(msg)
	if since.IsZero() {
		since = p.FailedAt
		msg.Metadata.Set(MetaRetrySince, since.Format(time.RFC3339Nano))
	}
	// A write that ran out of time (a frozen database) is as unavailable
	// as one refused outright.
	unavailable := errors.Is(err, persist.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
	if s.cfg.Delay != nil && unavailable && p.FailedAt.Sub(since) < s.cfg.Retry.Budget {
		msg.Metadata.Set(metaPoisonPending, boundedReason(p.Reason))
		wait := min(s.cfg.Retry.Delay(attempts), poisonRecheck)
		msg.Metadata.Set(MetaNotBefore, p.FailedAt.Add(wait).Format(time.RFC3339Nano))
		if derr := s.cfg.Delay.PublishDelayed(s.topicOf(msg), wait, s.copyOf(msg)); derr == nil {
			log.Warn("cannot record poison action yet, holding it on the transport", "id", msg.UUID,
				"type", p.ActionType, "retry_in", wait.Round(time.Second), "err", err)
			return nil
		} else {
			err = errors.Join(err, derr)
		}
	}
	topic := s.topicOf(msg)
	if s.cfg.DeadLetters != nil && s.cfg.DeadLetters(topic) {
		log.Error("cannot record poison action; rejecting it to the transport's dead letters", "id", msg.UUID,
			"type", p.ActionType, "reason", firstLine(p.Reason), "err", err)
		msg.Metadata.Set(MetaReject, boundedReason(p.Reason))
		s.obs.poisoned(p.ActionType)
		return err
	}
	if s.cfg.Delay != nil {
		// Nowhere to dead-letter it: hold it and try again in a while,
		// never in a tight loop.
		msg.Metadata.Set(metaPoisonPending, boundedReason(p.Reason))
		msg.Metadata.Set(MetaNotBefore, p.FailedAt.Add(poisonRecheck).Format(time.RFC3339Nano))
		if derr := s.cfg.Delay.PublishDelayed(topic, poisonRecheck, s.copyOf(msg)); derr == nil {
			log.Error("cannot record poison action and the queue has no dead-lettering; holding it on the transport",
				"id", msg.UUID, "type", p.ActionType, "retry_in", poisonRecheck, "reason", firstLine(p.Reason), "err", err)
			return nil
		} else {
			err = errors.Join(err, derr)
		}
	}
	log.Error("cannot record poison action; it will be redelivered", "id", msg.UUID,
		"type", p.ActionType, "reason", firstLine(p.Reason), "err", err)
	return err
}

// boundedReason is a reason short enough for a header and valid UTF-8.
func boundedReason(r string) string {
	const max = 2000
	r = firstLine(r)
	if len(r) > max {
		r = r[:max]
	}
	return strings.ToValidUTF8(r, "\uFFFD")
}

// write runs one store write of a retry or poison record, bounded by
// storeWriteTimeout and by the end of the drain time.
func (s *Subscriber) write(write func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(s.base, storeWriteTimeout)
	defer cancel()
	return write(ctx)
}

// quietly logs a failure of an action: the first of a run of failures of
// actions of its type and customer at WARN in full, later ones at DEBUG,
// and once a minute a WARN summary with how many there were. An outage
// that fails thousands of actions logs a few lines per type and customer.
func (s *Subscriber) quietly(msg *message.Message, first, summary string, args ...any) {
	log := s.logFor(msg)
	switch r := s.retries.failed(quietKey(msg)); {
	case r.first:
		log.Warn(first, args...)
	case r.summary:
		log.Warn(summary, append(args, "failures", r.unlogged, "since", r.since.Round(time.Second))...)
	default:
		log.Debug(first, args...)
	}
}

// succeeded ends the run of failures of the action's type and customer.
func (s *Subscriber) succeeded(msg *message.Message) {
	if s.retries.active.Load() == 0 {
		return
	}
	fillMetadata(msg, s.cfg.MaxPayloadBytes) // the key needs the customer
	if r, had := s.retries.ok(quietKey(msg)); had {
		s.logFor(msg).Info("actions succeeding again", "type", msg.Metadata.Get(MetaType),
			"failures", r.failures, "after", r.since.Round(time.Millisecond))
	}
}

func quietKey(msg *message.Message) string {
	return msg.Metadata.Get(MetaType) + "\x00" + msg.Metadata.Get(MetaCustomer)
}

// logFor returns the logger with the action's customer and account, so the
// record reaches that customer's log.
func (s *Subscriber) logFor(msg *message.Message) *slog.Logger {
	fillMetadata(msg, s.cfg.MaxPayloadBytes)
	return s.cfg.Logger.With("customer", msg.Metadata.Get(MetaCustomer), "account", msg.Metadata.Get(MetaAccount))
}

// retrySince is when the action first failed, or zero.
func retrySince(m *message.Message) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, m.Metadata.Get(MetaRetrySince))
	return t
}

// notBefore is the time before which the action should not run, if set.
func notBefore(m *message.Message) (time.Time, bool) {
	v := m.Metadata.Get(MetaNotBefore)
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func trimStack(b []byte) string {
	const max = 4 << 10
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
