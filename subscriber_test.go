package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// memStores is an in-memory PoisonStore and DeferStore for unit tests.
type memStores struct {
	mu       sync.Mutex
	poison   []persist.Parked
	deferred []persist.Parked
	dues     []time.Time // due time of each deferred
	failN    int         // fail this many poison writes first
	failErr  error       // the error of a failing write; default "store down"
	deferErr error       // when set, every Defer fails with it
	added    chan persist.Parked
}

func newMemStores() *memStores { return &memStores{added: make(chan persist.Parked, 100)} }

func (m *memStores) AddPoison(_ context.Context, p persist.Parked) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failN > 0 {
		m.failN--
		if m.failErr != nil {
			return m.failErr
		}
		return errors.New("store down")
	}
	m.poison = append(m.poison, p)
	m.added <- p
	return nil
}

func (m *memStores) Defer(_ context.Context, p persist.Parked, due time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deferErr != nil {
		return m.deferErr
	}
	m.deferred = append(m.deferred, p)
	m.dues = append(m.dues, due)
	m.added <- p
	return nil
}

// subHarness runs a Subscriber on the in-memory transport.
type subHarness struct {
	t      *testing.T
	sub    *Subscriber
	pub    *Publisher
	mem    *memoryPubSub
	stores *memStores
	cancel context.CancelFunc
	done   chan error
}

func newSubHarness(t *testing.T, mutate func(*SubscriberConfig)) *subHarness {
	t.Helper()
	mem := newMemoryPubSub(watermill.NopLogger{})
	stores := newMemStores()
	cfg := SubscriberConfig{
		Subscriber: mem, Poison: stores, Defer: stores,
		Retry:          RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxAttempts: 3},
		HandlerTimeout: 5 * time.Second,
		DrainTimeout:   5 * time.Second,
		Logger:         discardLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	sub, err := NewSubscriber(cfg)
	require.NoError(t, err)
	pub, err := NewPublisher(PublisherConfig{Publisher: mem, Declarer: mem, Topology: cfg.Topology})
	require.NoError(t, err)
	h := &subHarness{t: t, sub: sub, pub: pub, mem: mem, stores: stores, done: make(chan error, 1)}
	t.Cleanup(func() { h.stop(); _ = mem.Close() })
	return h
}

func (h *subHarness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.sub.Run(ctx) }()
	select {
	case <-h.sub.Running():
	case err := <-h.done:
		h.t.Fatalf("subscriber did not start: %v", err)
	case <-time.After(5 * time.Second):
		h.t.Fatal("subscriber did not start in 5s")
	}
}

func (h *subHarness) stop() {
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
		<-h.done
	}
}

func (h *subHarness) publish(actions ...Action) {
	h.t.Helper()
	require.NoError(h.t, h.pub.Publish(context.Background(), actions...))
}

func (h *subHarness) publishRaw(topic string, m *message.Message) {
	h.t.Helper()
	require.NoError(h.t, h.mem.Publish(topic, m))
}

func (h *subHarness) nextParked() persist.Parked {
	h.t.Helper()
	select {
	case p := <-h.stores.added:
		return p
	case <-time.After(30 * time.Second): // generous: a loaded CI machine
		h.t.Fatal("nothing was poisoned or parked within 30s")
		return persist.Parked{}
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second): // generous: a loaded CI machine
		t.Fatal("timed out after 30s")
		var zero T
		return zero
	}
}

func TestSubscriberHandles(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	got := make(chan Action, 1)
	require.NoError(t, h.sub.Handle("server.launch", HandlerFunc(func(_ context.Context, a Action) error {
		got <- a
		return nil
	})))
	h.start()
	a, err := NewAction("server.launch", map[string]string{"image": "debian"})
	require.NoError(t, err)
	a.Customer = "acme"
	h.publish(a)
	g := recv(t, got)
	require.Equal(t, a.ID, g.ID)
	require.Equal(t, "acme", g.Customer)
	require.Equal(t, 1, g.Attempt)
	require.JSONEq(t, `{"image":"debian"}`, string(g.Payload))
}

// TestSubscriberPoisons covers every way an action goes straight (or after its
// attempts) to the poison store, with the reason.
func TestSubscriberPoisons(t *testing.T) {
	t.Parallel()
	valid := func(typ string) *message.Message {
		m, err := encode(Action{ID: watermill.NewUUID(), Type: typ}, defaultMaxPayload)
		require.NoError(t, err)
		return m
	}
	tests := []struct {
		name     string
		msg      func() *message.Message
		handler  HandlerFunc
		cfg      func(*SubscriberConfig)
		reason   string
		attempts int
	}{
		{
			name: "MalformedJSONBody",
			msg: func() *message.Message {
				m := message.NewMessage("bad-json", []byte(`{"v":1,"type":`))
				m.Metadata.Set(MetaType, "t")
				return m
			},
			reason:   "not a JSON action",
			attempts: 1,
		},
		{
			name:     "MissingType",
			msg:      func() *message.Message { return message.NewMessage("no-type", []byte(`{"v":1,"id":"no-type"}`)) },
			reason:   "Type is required",
			attempts: 1,
		},
		{
			name:     "UnknownType",
			msg:      func() *message.Message { return valid("nobody.handles") },
			reason:   `no handler for action type "nobody.handles"`,
			attempts: 1,
		},
		{
			name: "HandlerPanic",
			msg:  func() *message.Message { return valid("t") },
			handler: func(context.Context, Action) error {
				var m map[string]int
				m["boom"] = 1 // nil map write
				return nil
			},
			reason:   "handler panicked: assignment to entry in nil map",
			attempts: 1,
		},
		{
			name: "HandlerTimeout",
			msg:  func() *message.Message { return valid("t") },
			handler: func(ctx context.Context, _ Action) error {
				<-ctx.Done()
				return ctx.Err()
			},
			cfg:      func(c *SubscriberConfig) { c.HandlerTimeout = 20 * time.Millisecond; c.Retry.MaxAttempts = 2 },
			reason:   "handler timed out after 20ms",
			attempts: 2,
		},
		{
			name:     "Permanent",
			msg:      func() *message.Message { return valid("t") },
			handler:  func(context.Context, Action) error { return Permanent(errors.New("image does not exist")) },
			reason:   "image does not exist",
			attempts: 1,
		},
		{
			name:     "RetriesExhausted",
			msg:      func() *message.Message { return valid("t") },
			handler:  func(context.Context, Action) error { return errors.New("cloud 503") },
			reason:   "cloud 503",
			attempts: 3,
		},
		{
			name: "OversizedPayload",
			msg: func() *message.Message {
				return message.NewMessage("big", []byte(`{"v":1,"type":"t","payload":"`+strings.Repeat("x", 2000)+`"}`))
			},
			cfg:      func(c *SubscriberConfig) { c.MaxPayloadBytes = 1000 },
			reason:   "limit is 1000",
			attempts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newSubHarness(t, tt.cfg)
			handler := tt.handler
			if handler == nil {
				handler = func(context.Context, Action) error { return nil }
			}
			require.NoError(t, h.sub.Handle("t", handler))
			h.start()
			m := tt.msg()
			h.publishRaw(h.sub.cfg.Topology.Topic(QueueActions), m)
			p := h.nextParked()
			require.Equal(t, m.UUID, p.MessageUUID)
			require.Contains(t, p.Reason, tt.reason)
			require.Equal(t, tt.attempts, p.Attempts)
			require.Equal(t, "worker.actions", p.Topic)
			require.Equal(t, m.Payload, message.Payload(p.Payload))
			require.Empty(t, h.stores.deferred)
		})
	}
}

func TestSubscriberRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	var calls atomic.Int32
	attempts := make(chan int, 3)
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(_ context.Context, a Action) error {
		attempts <- a.Attempt
		if calls.Add(1) < 3 {
			return errors.New("transient")
		}
		return nil
	})))
	h.start()
	h.publish(Action{Type: "t"})
	require.Equal(t, 1, recv(t, attempts))
	require.Equal(t, 2, recv(t, attempts))
	require.Equal(t, 3, recv(t, attempts))
	h.stop()
	require.Empty(t, h.stores.poison)
}

// TestSubscriberParksLongRetries shows that a retry with a long wait does not
// hold the consumer: the action is parked and the next one is handled at once.
func TestSubscriberParksLongRetries(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, func(c *SubscriberConfig) {
		c.Concurrency = 1
		c.Retry = RetryPolicy{InitialInterval: time.Hour, MaxInterval: time.Hour, InlineMax: time.Second}
	})
	ok := make(chan string, 1)
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(_ context.Context, a Action) error {
		if a.Resource == "fail" {
			return errors.New("throttled")
		}
		ok <- a.Resource
		return nil
	})))
	h.start()
	h.publish(Action{Type: "t", Resource: "fail"})
	p := h.nextParked()
	require.Equal(t, "2", p.Metadata[MetaAttempt])
	require.Equal(t, 2, p.Attempts)
	h.publish(Action{Type: "t", Resource: "next"})
	require.Equal(t, "next", recv(t, ok))
	require.Empty(t, h.stores.poison)
}

// TestSubscriberPoisonStoreDown: when the poison store cannot be written the
// message is not acked; it comes back and is poisoned once the store works.
func TestSubscriberPoisonStoreDown(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	h.stores.failN = 4 // more than one round of durably()'s 3 tries
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(context.Context, Action) error {
		return Permanent(errors.New("no"))
	})))
	h.start()
	h.publish(Action{Type: "t", ID: "keep-me"})
	p := h.nextParked()
	require.Equal(t, "keep-me", p.MessageUUID)
}

func TestSubscriberConcurrencyLimit(t *testing.T) {
	t.Parallel()
	const limit, n = 3, 20
	h := newSubHarness(t, func(c *SubscriberConfig) { c.Concurrency = limit })
	probe := newConcurrencyProbe(n)
	require.NoError(t, h.sub.Handle("t", probe))
	h.start()
	for i := 0; i < n; i++ {
		h.publish(Action{Type: "t"})
	}
	probe.requirePeak(t, limit)
}

// concurrencyProbe is a handler that records how many of its calls ran at
// once; it expects n calls.
type concurrencyProbe struct {
	cur, peak atomic.Int32
	wg        sync.WaitGroup
}

func newConcurrencyProbe(n int) *concurrencyProbe {
	p := &concurrencyProbe{}
	p.wg.Add(n)
	return p
}

func (p *concurrencyProbe) Handle(context.Context, Action) error {
	c := p.cur.Add(1)
	for {
		pk := p.peak.Load()
		if c <= pk || p.peak.CompareAndSwap(pk, c) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	p.cur.Add(-1)
	p.wg.Done()
	return nil
}

// requirePeak waits for the n calls, then requires that more than one but
// at most limit ran at once.
func (p *concurrencyProbe) requirePeak(t *testing.T, limit int) {
	t.Helper()
	p.wg.Wait()
	require.LessOrEqual(t, p.peak.Load(), int32(limit))
	require.Greater(t, p.peak.Load(), int32(1), "handlers should run concurrently")
}

// TestSubscriberDrainsOnShutdown: Run returns only after the in-flight handler
// finished, and the handler's context is not cancelled during the drain.
func TestSubscriberDrainsOnShutdown(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	started := make(chan struct{})
	var finished atomic.Bool
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(ctx context.Context, _ Action) error {
		close(started)
		select {
		case <-time.After(100 * time.Millisecond):
			finished.Store(true)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})))
	h.start()
	h.publish(Action{Type: "t"})
	<-started
	h.stop()
	require.True(t, finished.Load(), "Run returned before the in-flight handler finished")
}

func TestSubscriberDrainTimeoutCancelsHandlers(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, func(c *SubscriberConfig) { c.DrainTimeout = 50 * time.Millisecond })
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(ctx context.Context, _ Action) error {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	})))
	h.start()
	h.publish(Action{Type: "t"})
	<-started
	h.stop()
	require.ErrorIs(t, recv(t, cancelled), context.Canceled)
	require.Empty(t, h.stores.poison, "a handler cut off by shutdown is redelivered, not poisoned")
}

func TestSubscriberHandleErrors(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	nop := HandlerFunc(func(context.Context, Action) error { return nil })
	require.ErrorIs(t, h.sub.Handle("Bad Type", nop), ErrInvalidAction)
	require.ErrorContains(t, h.sub.Handle("t", nil), "nil")
	require.NoError(t, h.sub.Handle("t", nop))
	require.ErrorContains(t, h.sub.Handle("t", nop), "already registered")
	h.start()
	require.ErrorIs(t, h.sub.Handle("u", nop), ErrAlreadyRunning)
	require.ErrorIs(t, h.sub.Run(context.Background()), ErrAlreadyRunning)
}

func TestSubscriberNoHandlers(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	require.ErrorContains(t, h.sub.Run(context.Background()), "no handlers")
}

func TestSubscriberUserMiddleware(t *testing.T) {
	t.Parallel()
	var seen atomic.Int32
	h := newSubHarness(t, func(c *SubscriberConfig) {
		c.Middleware = []message.HandlerMiddleware{func(next message.HandlerFunc) message.HandlerFunc {
			return func(m *message.Message) ([]*message.Message, error) {
				seen.Add(1)
				return next(m)
			}
		}}
	})
	done := make(chan struct{})
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(context.Context, Action) error { close(done); return nil })))
	h.start()
	h.publish(Action{Type: "t"})
	recv(t, done)
	require.Equal(t, int32(1), seen.Load())
}

func TestSubscriberConfigValidate(t *testing.T) {
	t.Parallel()
	mem := newMemoryPubSub(watermill.NopLogger{})
	stores := newMemStores()
	tests := []struct {
		name  string
		cfg   SubscriberConfig
		field string
	}{
		{"NoSubscriber", SubscriberConfig{Poison: stores}, "Subscriber"},
		{"NoPoison", SubscriberConfig{Subscriber: mem}, "Poison"},
		{"NegativeConcurrency", SubscriberConfig{Subscriber: mem, Poison: stores, Concurrency: -1}, "Concurrency"},
		{"NegativeTimeout", SubscriberConfig{Subscriber: mem, Poison: stores, HandlerTimeout: -1}, "HandlerTimeout"},
		{"BadJitter", SubscriberConfig{Subscriber: mem, Poison: stores, Retry: RetryPolicy{Jitter: 1.5}}, "Retry.Jitter"},
		{"BadMaxAttempts", SubscriberConfig{Subscriber: mem, Poison: stores, Retry: RetryPolicy{MaxAttempts: -2}}, "Retry.MaxAttempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSubscriber(tt.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2, Jitter: 0.2}
	for attempt, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 60: time.Second} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 50; i++ {
			d := p.Delay(attempt)
			require.GreaterOrEqual(t, d, time.Duration(float64(base)*0.8), fmt.Sprint(attempt))
			require.LessOrEqual(t, d, time.Duration(float64(base)*1.2), fmt.Sprint(attempt))
			seen[d] = true
		}
		require.Greater(t, len(seen), 10, "jitter spreads the waits")
	}
	p.Jitter = 0
	require.Equal(t, 100*time.Millisecond, p.Delay(0))
}

// TestSubscriberFillsMetadata: a message carries only the version and type
// as metadata; the copies of the other fields are filled in from the body
// before middleware runs, and so reach the poison store too.
func TestSubscriberFillsMetadata(t *testing.T) {
	t.Parallel()
	seen := make(chan message.Metadata, 1)
	h := newSubHarness(t, func(c *SubscriberConfig) {
		c.Middleware = []message.HandlerMiddleware{func(next message.HandlerFunc) message.HandlerFunc {
			return func(m *message.Message) ([]*message.Message, error) {
				md := message.Metadata{}
				for k, v := range m.Metadata {
					md[k] = v
				}
				seen <- md
				return next(m)
			}
		}}
	})
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(context.Context, Action) error {
		return Permanent(errors.New("no"))
	})))
	h.start()
	h.publish(Action{ID: "a-1", Type: "t", Customer: "acme", Account: "acct", Key: "k-1", CorrelationID: "c-1"})
	want := message.Metadata{MetaVersion: "1", MetaType: "t", MetaCustomer: "acme", MetaAccount: "acct",
		MetaKey: "k-1", MetaCorrelationID: "c-1"}
	require.Equal(t, want, recv(t, seen))
	p := h.nextParked()
	require.Equal(t, map[string]string(want), p.Metadata)
}

// TestSubscriberPoisonRecordMetadata: without middleware the metadata is
// filled in only for the poison (or deferred) record.
func TestSubscriberPoisonRecordMetadata(t *testing.T) {
	t.Parallel()
	h := newSubHarness(t, nil)
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(context.Context, Action) error {
		return Permanent(errors.New("no"))
	})))
	h.start()
	h.publish(Action{ID: "a-1", Type: "t", Customer: "acme"})
	p := h.nextParked()
	require.Equal(t, map[string]string{MetaVersion: "1", MetaType: "t", MetaCustomer: "acme", MetaKey: "a-1"}, p.Metadata)
}

// TestSubscriberConcurrencyLimitAcrossQueues: with several subscriptions the
// limit holds over all of them.
func TestSubscriberConcurrencyLimitAcrossQueues(t *testing.T) {
	t.Parallel()
	const limit, n = 3, 30
	h := newSubHarness(t, func(c *SubscriberConfig) { c.Concurrency = limit })
	handler := newConcurrencyProbe(n)
	types := []string{"t", TypePoll, "x.changed"} // actions, polls and events queues
	for _, typ := range types {
		require.NoError(t, h.sub.Handle(typ, handler))
	}
	require.Len(t, h.sub.Queues(), 3)
	h.start()
	for i := 0; i < n; i++ {
		h.publish(Action{Type: types[i%len(types)]})
	}
	handler.requirePeak(t, limit)
}

// TestSubscriberDrainsSeveralInFlight: Run returns only after every handler
// in flight finished, with none of their contexts cancelled and nothing
// retried or poisoned.
func TestSubscriberDrainsSeveralInFlight(t *testing.T) {
	t.Parallel()
	const inFlight = 5
	h := newSubHarness(t, func(c *SubscriberConfig) { c.Concurrency = inFlight })
	started := make(chan string, inFlight)
	release := make(chan struct{})
	var finished, calls atomic.Int32
	require.NoError(t, h.sub.Handle("t", HandlerFunc(func(ctx context.Context, a Action) error {
		calls.Add(1)
		started <- a.ID
		select {
		case <-release:
			finished.Add(1)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})))
	h.start()
	for i := 0; i < inFlight; i++ {
		h.publish(Action{Type: "t"})
	}
	for i := 0; i < inFlight; i++ {
		recv(t, started)
	}
	time.AfterFunc(50*time.Millisecond, func() { close(release) }) // most likely while stop drains
	h.stop()
	require.Equal(t, int32(inFlight), finished.Load(), "Run returned before the handlers in flight finished")
	require.Equal(t, int32(inFlight), calls.Load(), "each handler ran once")
	require.Empty(t, h.stores.poison)
}
