package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/rabbitmq"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
	"github.com/stretchr/testify/require"
)

type observedPayload struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// scenario is the publish → handle → persist scenario every backend must pass.
// pub publishes before any subscriber exists; sub (which may be the same
// worker) is started afterwards and must handle every action, save state, poison
// the bad one, and handle it after a replay.
func scenario(t *testing.T, pub *Worker, sub func() *Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 50

	// 1. Publish before any subscriber exists.
	var actions []Action
	for i := 0; i < n; i++ {
		a, err := NewAction("server.observed", observedPayload{ID: fmt.Sprintf("i-%03d", i), State: "RUNNING"})
		require.NoError(t, err)
		a.Account, a.Customer = "acct-1", "acme"
		actions = append(actions, a)
	}
	require.NoError(t, pub.Publish(ctx, actions[:n/2]...)) // a batch
	for _, a := range actions[n/2:] {
		require.NoError(t, pub.Publish(ctx, a)) // one at a time
	}
	bad, err := NewAction("report.generate", map[string]string{"month": "2026-11"})
	require.NoError(t, err)
	require.NoError(t, pub.Publish(ctx, bad))

	// 2. Start the subscriber.
	w := sub()
	var mu sync.Mutex
	seen := map[string]int{}
	handled := make(chan string, 2*n)
	var fixed sync.Once
	fixedCh := make(chan struct{})
	require.NoError(t, w.HandleFunc("server.observed", func(ctx context.Context, a Action) error {
		var p observedPayload
		if err := a.Decode(&p); err != nil {
			return Permanent(err)
		}
		attrs, _ := json.Marshal(map[string]string{"state": p.State})
		_, err := w.Sink().Save(ctx, state.Target{Account: a.Account, Customer: a.Customer, Kind: "server"},
			state.Snapshot{Observations: []state.Observation{{ID: p.ID, Attributes: attrs, ObservedAt: a.CreatedAt}}})
		if err != nil {
			return err
		}
		mu.Lock()
		seen[a.ID]++
		mu.Unlock()
		handled <- a.ID
		return nil
	}))
	require.NoError(t, w.HandleFunc("report.generate", func(ctx context.Context, a Action) error {
		select {
		case <-fixedCh:
			handled <- a.ID
			return nil
		default:
			return Permanent(errors.New("reports are disabled for acme"))
		}
	}))
	runErr := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { runErr <- w.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-runErr)
	}()

	for i := 0; i < n; i++ {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatalf("only %d of %d actions handled", i, n)
		}
	}
	mu.Lock()
	require.Len(t, seen, n, "every action published before the subscriber started was handled")
	mu.Unlock()

	// 3. State was persisted once per server.
	for i := 0; i < n; i++ {
		r, err := w.Store().Resource(ctx, "acct-1", "server", fmt.Sprintf("i-%03d", i))
		require.NoError(t, err)
		require.Equal(t, int64(1), r.Version)
		require.JSONEq(t, `{"state":"RUNNING"}`, string(r.Attributes))
	}

	// 4. The bad action is in the poison store with its reason; replay it once fixed.
	var poisoned []PoisonedAction
	require.Eventually(t, func() bool {
		poisoned, err = w.Poisoned(ctx, PoisonQuery{})
		return err == nil && len(poisoned) == 1
	}, 20*time.Second, 20*time.Millisecond)
	p := poisoned[0]
	require.Equal(t, bad.ID, p.Action.ID)
	require.Equal(t, "report.generate", p.Action.Type)
	require.Equal(t, 1, p.Attempts)
	require.Contains(t, p.Reason, "reports are disabled")
	fixed.Do(func() { close(fixedCh) })
	require.NoError(t, w.Replay(ctx, p.ID))
	select {
	case id := <-handled:
		require.Equal(t, bad.ID, id)
	case <-ctx.Done():
		t.Fatal("replayed action was not handled")
	}
	left, err := w.Poisoned(ctx, PoisonQuery{})
	require.NoError(t, err)
	require.Empty(t, left)
	all, err := w.Poisoned(ctx, PoisonQuery{IncludeReplayed: true})
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.NotNil(t, all[0].ReplayedAt)
}

func newTestWorker(t *testing.T, cfg Config) *Worker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	w, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func sqliteConfig(t *testing.T) persist.Config {
	return persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}, Logger: discardLogger()}
}

// openSQLiteStore opens a store on a SQLite file of the test's own, closed
// when the test ends.
func openSQLiteStore(t *testing.T) *persist.Store {
	t.Helper()
	store, err := persist.Open(context.Background(), sqliteConfig(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func TestScenarioEmbedded(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{Store: sqliteConfig(t), Retry: RetryPolicy{InitialInterval: time.Millisecond}})
	scenario(t, w, func() *Worker { return w })
}

// TestScenarioRabbitMQMariaDB runs the same scenario as the embedded test on
// real services, with the classic split: a publisher-only process publishes
// before any subscriber exists; a subscriber-only process handles.
func TestScenarioRabbitMQMariaDB(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	dsn := testenv.MySQLDSN(t)
	top := uniqueTopology(t, url)
	base := Config{
		MQ:       MQConfig{URL: url},
		Store:    persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, Logger: discardLogger()},
		Topology: top,
		Retry:    RetryPolicy{InitialInterval: time.Millisecond},
	}
	pubCfg := base
	pubCfg.Role = RolePublisher
	pub := newTestWorker(t, pubCfg)
	scenario(t, pub, func() *Worker {
		require.NoError(t, pub.Close()) // the publisher process is gone before the subscriber starts
		subCfg := base
		subCfg.Role = RoleSubscriber
		return newTestWorker(t, subCfg)
	})
}

func TestWorkerDeferredRetryRoundTrip(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{
		Store:            sqliteConfig(t),
		Retry:            RetryPolicy{InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond, InlineMax: time.Millisecond},
		DeferredInterval: 10 * time.Millisecond,
	})
	attempts := make(chan int, 5)
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		attempts <- a.Attempt
		if a.Attempt < 3 {
			return errors.New("throttled")
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	require.NoError(t, w.Publish(ctx, Action{Type: "t"}))
	for want := 1; want <= 3; want++ {
		require.Equal(t, want, recv(t, attempts))
	}
	cancel()
	require.NoError(t, <-done)
}

func TestWorkerReplayAll(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{Store: sqliteConfig(t)})
	var mu sync.Mutex
	ok := false
	handled := make(chan string, 10)
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		mu.Lock()
		defer mu.Unlock()
		if !ok {
			return Permanent(errors.New("not yet"))
		}
		handled <- a.ID
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	require.NoError(t, w.Publish(ctx, Action{Type: "t", ID: "a"}, Action{Type: "t", ID: "b"}, Action{Type: "t", ID: "c"}))
	require.Eventually(t, func() bool {
		p, err := w.Poisoned(ctx, PoisonQuery{})
		return err == nil && len(p) == 3
	}, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	ok = true
	mu.Unlock()
	n, err := w.ReplayAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		got[recv(t, handled)] = true
	}
	require.Equal(t, map[string]bool{"a": true, "b": true, "c": true}, got)
	require.ErrorIs(t, w.Replay(ctx, 9999), persist.ErrNotFound)
	cancel()
	require.NoError(t, <-done)
}

func TestWorkerRoles(t *testing.T) {
	t.Parallel()
	pub := newTestWorker(t, Config{Role: RolePublisher, Store: sqliteConfig(t)})
	require.ErrorIs(t, pub.HandleFunc("t", func(context.Context, Action) error { return nil }), ErrRoleNotSupported)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	<-pub.Running()
	require.NoError(t, pub.Publish(ctx, Action{Type: "t"}))
	cancel()
	require.NoError(t, <-done)
	require.ErrorIs(t, pub.Run(context.Background()), ErrAlreadyRunning)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		text string
	}{
		{"BadRole", Config{Role: "boss"}, `Role "boss"`},
		{"BadURLScheme", Config{MQ: MQConfig{URL: "nats://localhost:4222"}}, "MQ.URL"},
		{"URLPasswordNotShown", Config{MQ: MQConfig{URL: "http://user:hunter2@host/"}}, "MQ.URL"},
		{"NegativeConsumers", Config{MQ: MQConfig{Consumers: -1}}, "MQ.Consumers"},
		{"NegativePrefetch", Config{MQ: MQConfig{Prefetch: -1}}, "MQ.Prefetch"},
		{"PrefetchOver16Bits", Config{MQ: MQConfig{Prefetch: 70000}}, "MQ.Prefetch is 70000, must be 1-65535"},
		{"NegativePackActions", Config{MQ: MQConfig{PackActions: -1}}, "MQ.PackActions is -1, must be 1-10000"},
		{"PackBytesOverPayload", Config{MQ: MQConfig{PackBytes: 2 << 20}}, "MQ.PackBytes is 2097152, must be 1-1048576 (MaxPayloadBytes)"},
		{"NegativeConcurrency", Config{Concurrency: -3}, "Concurrency"},
		{"NegativeShutdown", Config{ShutdownTimeout: -time.Second}, "ShutdownTimeout"},
		{"BadRetry", Config{Retry: RetryPolicy{Multiplier: 0.5}}, "Retry.Multiplier"},
		{"BadStoreDriver", Config{Store: persist.Config{Provisioning: persist.DBConfig{Driver: "postgres"}}}, "Provisioning.Driver"},
		{"BadTopology", Config{Topology: Topology{Prefix: "A B"}}, "Topology.Prefix"},
		{"HugeConcurrency", Config{Concurrency: 1 << 40}, "Concurrency is 1099511627776, must be 1-10000"},
		{"NegativePublishTimeout", Config{MQ: MQConfig{PublishTimeout: -time.Second}}, "MQ.PublishTimeout"},
		{"SourceCIDRHostBits", Config{SourceCIDR: netip.MustParsePrefix("10.0.0.5/24")},
			"SourceCIDR 10.0.0.5/24 has host bits set: write the network 10.0.0.0/24, or 10.0.0.5/32 for this one address"},
		{"SourceCIDRWorld", Config{SourceCIDR: netip.MustParsePrefix("0.0.0.0/0")}, "SourceCIDR 0.0.0.0/0 would open every launched server's management port (22) to the whole internet"},
		{"SourceCIDRWorld6", Config{SourceCIDR: netip.MustParsePrefix("::/0")}, "SourceCIDR ::/0 would open"},
		{"SampleRetentionUnderAnHour", Config{Analytics: AnalyticsConfig{Retention: time.Minute}}, "Analytics.Retention is 1m0s, must be at least 1h"},
		{"NegativeSampleRetention", Config{Analytics: AnalyticsConfig{Retention: -time.Hour}}, "Analytics.Retention is -1h0m0s"},
		{"RollupsKeptShorterThanSamples", Config{Analytics: AnalyticsConfig{Retention: 30 * 24 * time.Hour, RollupRetention: 24 * time.Hour}},
			"Analytics.RollupRetention is 24h0m0s, must be at least Analytics.Retention (720h0m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.text)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
	require.NoError(t, Config{}.Validate())
	require.NoError(t, Config{SourceCIDR: netip.MustParsePrefix("0.0.0.0/0"), AllowAnySource: true}.Validate())
	require.NoError(t, Config{SourceCIDR: netip.MustParsePrefix("10.0.0.5/32")}.Validate())
	for name, v := range map[string]interface{ Validate() error }{
		"RetryPolicy": RetryPolicy{}, "Topology": Topology{}, "GuestLogsConfig": Config{GuestLogs: GuestLogsConfig{}},
		"SubscriberConfig": SubscriberConfig{Subscriber: newMemoryPubSub(nil), Poison: newMemStores()},
		"PublisherConfig":  PublisherConfig{Publisher: newMemoryPubSub(nil)},
	} {
		require.NoError(t, v.Validate(), "%s: zero values are the defaults", name)
	}
	require.NoError(t, Config{Concurrency: maxConcurrency}.Validate())
	require.ErrorContains(t, Config{Concurrency: 1 << 40}.Validate(), "Concurrency is 1099511627776, must be 1-10000")
}

// TestMQDefaults: one consumer per queue whose prefetch keeps every handler
// slot busy and as many deliveries waiting.
func TestMQDefaults(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg                 Config
		consumers, prefetch int
	}{
		{Config{}, 1, 128},
		{Config{Concurrency: 10}, 1, 20},
		{Config{Concurrency: 100000}, 1, 65535},
		{Config{Concurrency: 10, MQ: MQConfig{Consumers: 2, Prefetch: 3}}, 2, 3},
	} {
		tt.cfg.setDefaults()
		require.Equal(t, tt.consumers, tt.cfg.MQ.Consumers)
		require.Equal(t, tt.prefetch, tt.cfg.MQ.Prefetch)
	}
}

// TestNewUnreachable: a worker whose database or broker is down fails at New
// with an error that names where it tried to connect, never the password.
func TestNewUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"MySQL", Config{Store: persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: "app:s3cretpw@tcp(127.0.0.1:1)/prov"}}}, "127.0.0.1:1"},
		{"RabbitMQ", Config{MQ: MQConfig{URL: "amqp://app:s3cretpw@127.0.0.1:1/"}, Store: persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}}}, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Logger = discardLogger()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := New(ctx, tt.cfg)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), "s3cretpw")
		})
	}
}

// The store this module ships implements the root interfaces.
var (
	_ StateSink   = (*persist.Store)(nil)
	_ PoisonStore = (*persist.Store)(nil)
	_ DeferStore  = (*persist.Store)(nil)
)

// TestRegistrationRefusesBadInput: what New accepts, the registration calls
// refuse as clearly.
func TestRegistrationRefusesBadInput(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{Store: sqliteConfig(t)})
	require.ErrorContains(t, w.HandleFunc("t", nil), `Handle("t"): handler func is nil`)
	require.ErrorContains(t, w.Handle("t", nil), `Handle("t"): handler is nil`)
	var nilFunc HandlerFunc
	require.ErrorContains(t, w.Handle("t", nilFunc), "handler func is nil")
	require.ErrorIs(t, w.Watch("acct-1", ""), ErrInvalidConfig)
	require.ErrorContains(t, w.Watch("acct-1", ""), `Watch("acct-1"): customer is required`)
	require.ErrorContains(t, w.Watch("", "acme"), "account is required")
	// The registry's limit (the store's account column is 128 bytes).
	require.ErrorContains(t, w.Watch(strings.Repeat("a", 300), "acme"), "is 300 bytes, at most 128")
	require.ErrorIs(t, w.Watch("acct-1 ", "acme"), ErrInvalidConfig, "look-alike ids are refused")
	require.NoError(t, w.Watch("acct-1", "acme"))
}

// TestShutdownIsBounded: a handler that ignores its cancelled context does
// not hold Run past ShutdownTimeout. (The value is short so the test is;
// the bound, not the value, is what is tested.)
func TestShutdownIsBounded(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{Store: sqliteConfig(t), ShutdownTimeout: 2 * time.Second})
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	require.NoError(t, w.HandleFunc("t", func(context.Context, Action) error {
		close(started)
		<-release // ignores ctx
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	run := make(chan error, 1)
	go func() { run <- w.Run(ctx) }()
	<-w.Running()
	require.NoError(t, w.Publish(ctx, Action{Type: "t"}))
	<-started
	stop := time.Now()
	cancel()
	select {
	case <-run:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	require.Less(t, time.Since(stop), 2*time.Second+500*time.Millisecond)
}

// TestHostTransportAndStorage: a host passes its own Watermill pub/sub (here
// Watermill's gochannel) and its own store; the worker uses them, handles,
// retries and poisons through them, and leaves them open on Close.
func TestHostTransportAndStorage(t *testing.T) {
	t.Parallel()
	gc := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = gc.Close() })
	store := openSQLiteStore(t)

	w := newTestWorker(t, Config{Transport: Transport{Publisher: gc, Subscriber: gc}, Storage: store, Logger: discardLogger()})
	require.NotNil(t, w.Store(), "a host's *persist.Store is readable through the view")
	handled := make(chan string, 2)
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		if a.Payload != nil {
			return Permanent(errors.New("bad request"))
		}
		handled <- a.ID
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	require.NoError(t, w.Publish(ctx, Action{ID: "ok", Type: "t"}))
	require.Equal(t, "ok", recv(t, handled))
	require.NoError(t, w.Publish(ctx, Action{ID: "bad", Type: "t", Payload: []byte(`{}`)}))
	require.Eventually(t, func() bool {
		ps, err := store.ListPoison(ctx, persist.PoisonFilter{})
		return err == nil && len(ps) == 1 && ps[0].MessageUUID == "bad"
	}, 10*time.Second, 10*time.Millisecond, "poisoned into the host's store")
	cancel()
	require.NoError(t, <-done)
	_, err := store.ListPoison(context.Background(), persist.PoisonFilter{})
	require.NoError(t, err, "the host's store is still open")
	require.NoError(t, gc.Publish("still-open", message.NewMessage("x", nil)), "the host's transport is still open")

	for _, bad := range []Config{
		{Transport: Transport{Publisher: gc}},
		{Transport: Transport{Publisher: gc, Subscriber: gc}, MQ: MQConfig{URL: "amqp://u:hunter2@h/"}},
		{Storage: store, Keyring: &km.Keyring{}},
	} {
		err := bad.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.NotContains(t, err.Error(), "hunter2")
	}
}

// TestInvalidConfigSentinels: every package with a Config names a bad field
// through one sentinel spelling, <pkg>.ErrInvalidConfig, and its zero value
// is valid where the docs say "default".
func TestInvalidConfigSentinels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		bad   error
		is    error
		field string
	}{
		{"worker", Config{Concurrency: -1}.Validate(), ErrInvalidConfig, "Concurrency"},
		{"persist", persist.Config{Provisioning: persist.DBConfig{Driver: "oracle"}}.Validate(), persist.ErrInvalidConfig, "Provisioning.Driver"},
		{"poller", poller.Config{Jitter: 2}.Validate(), poller.ErrInvalidConfig, "Jitter"},
		{"rabbitmq", rabbitmq.Config{}.Validate(), rabbitmq.ErrInvalidConfig, "URL"},
		{"sim", sim.Config{DefaultPageSize: -1}.Validate(), sim.ErrInvalidConfig, "DefaultPageSize"},
		{"logging", logging.Config{}.Validate(), logging.ErrInvalidConfig, "Dir"},
		{"guest", guest.CollectorConfig{}.Validate(), guest.ErrInvalidConfig, "SourceCIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.bad, tt.is)
			require.Contains(t, tt.bad.Error(), tt.field)
		})
	}
	require.NoError(t, persist.Config{}.Validate())
	require.NoError(t, poller.Config{}.Validate())
	require.NoError(t, sim.Config{}.Validate())
	require.ErrorIs(t, persist.Config{Provisioning: persist.DBConfig{Driver: "oracle"}}.Validate(), persist.ErrInvalid, "still ErrInvalid too")
}

// hostStore is a host's storage with nothing but [Store]'s methods.
type hostStore struct{ Store }

// TestStoreView: Store() is a read-only view and Sink() the state sink,
// neither of which leads back to the protocol steps of the full store; a
// host's Storage without the view's reads has no view, but a sink.
func TestStoreView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newTestWorker(t, Config{Store: sqliteConfig(t), Logger: discardLogger()})
	target := state.Target{Account: "acct-1", Customer: "acme", Kind: "server"}
	changes, err := w.Sink().Save(ctx, target, state.Snapshot{Observations: []state.Observation{
		{ID: "i-1", Attributes: json.RawMessage(`{"state":"RUNNING"}`)}}})
	require.NoError(t, err)
	require.Len(t, changes, 1)

	v := w.Store()
	require.NotNil(t, v)
	r, err := v.Resource(ctx, "acct-1", "server", "i-1")
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Version)
	rs, err := v.Resources(ctx, "acct-1", "server", "", 10)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	h, err := v.History(ctx, "acct-1", "server", "i-1")
	require.NoError(t, err)
	require.Len(t, h, 1)
	_, err = v.Job(ctx, "job-1")
	require.ErrorIs(t, err, persist.ErrNotFound)
	_, err = v.LaunchIntent(ctx, "k-1")
	require.ErrorIs(t, err, persist.ErrNotFound)
	require.Contains(t, v.Describe(), "sqlite")

	for name, x := range map[string]any{"Store": v, "Sink": w.Sink()} {
		_, full := x.(*persist.Store)
		require.False(t, full, "%s() must not be the *persist.Store", name)
		_, protocol := x.(launchStore)
		require.False(t, protocol, "%s() must not offer ClaimLaunch", name)
		_, protocol = x.(outboxStore)
		require.False(t, protocol, "%s() must not offer MarkEventsSent", name)
	}

	own := newTestWorker(t, Config{Storage: hostStore{w.db}, Logger: discardLogger()})
	require.Nil(t, own.Store(), "a host store without the view's reads has none")
	_, err = own.Sink().Save(ctx, target, state.Snapshot{Observations: []state.Observation{
		{ID: "i-1", Attributes: json.RawMessage(`{"state":"STOPPED"}`)}}})
	require.NoError(t, err, "the sink is the host's store")
}
