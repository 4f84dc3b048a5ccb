package worker

import (
	"fmt"
	"github.com/stratusworks/worker/accounts"
	"log/slog"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/rabbitmq"
)

// Role selects which parts of the worker a process runs. The classic service
// runs publishers and subscribers as separate processes; RoleAll runs both.
type Role string

// The roles.
const (
	RoleAll        Role = "all"        // publisher and subscriber in one process (default)
	RolePublisher  Role = "publisher"  // publishes actions; handles nothing
	RoleSubscriber Role = "subscriber" // handles actions; may also publish follow-ups
	RolePinger     Role = "pinger"     // handles nothing, schedules nothing: heartbeats and probes of the accounts' clouds
)

// handles reports whether the role handles actions; schedules whether it
// holds the poll schedule.
func (r Role) handles() bool   { return r == RoleAll || r == RoleSubscriber }
func (r Role) schedules() bool { return r == RoleAll || r == RolePublisher }

// Config configures a [Worker]. The zero value is a complete embedded worker:
// in-memory transport, SQLite file "worker.db" in the working directory.
type Config struct {
	// Role is which parts this process runs. Default RoleAll.
	Role Role
	// MQ selects and tunes the message transport.
	MQ MQConfig
	// Transport, when its Publisher and Subscriber are set, is the host's
	// own Watermill transport (any Watermill pub/sub); MQ.URL must then be
	// empty. The worker declares the topology's queues through whichever of
	// the two implements message.SubscribeInitializer, holds long waits on
	// the Publisher if it implements [DelayPublisher], and dead-letters
	// through the Subscriber if it has a DeadLettering(queue string) bool
	// method. The worker does not close it. Default: none (MQ decides).
	Transport Transport
	// Storage, when set, is the host's own implementation of the worker's
	// storage; Store is then ignored, and Keyring (the embedded key manager
	// lives in the built-in store) must not be set. The worker does not
	// close it. Default nil: the built-in store that Store configures.
	Storage Store
	// Store configures the provisioning and analytics databases (state,
	// history, poison and deferred actions). Default: SQLite file "worker.db".
	Store persist.Config
	// Topology maps action types to queues; every process of a deployment must
	// agree on it. Default: Prefix "worker", DefaultRoutes().
	Topology Topology
	// Concurrency is the most handlers running at once in this process. Default 64.
	Concurrency int
	// HandlerTimeout bounds one attempt of a handler. Default 1m.
	HandlerTimeout time.Duration
	// Retry is the retry policy for failed actions (see RetryPolicy for defaults).
	Retry RetryPolicy
	// MaxPayloadBytes is the largest encoded action published or accepted. Default 1 MiB.
	MaxPayloadBytes int
	// ShutdownTimeout bounds the whole shutdown of Run after its context is
	// done: in-flight handlers get it less a reserve (a fifth, at most 3s)
	// to finish, then their contexts are cancelled (their actions are
	// redelivered), and the transport and the store close in the reserve.
	// Run returns within it even when the database or broker is hung.
	// Default 30s.
	ShutdownTimeout time.Duration
	// DeferredInterval is how often parked retries are checked and republished
	// when due, and history is copied to a separate analytics database. Default 1s.
	DeferredInterval time.Duration
	// Logger receives the worker's logs. Default slog.Default().
	Logger *slog.Logger
	// Middleware is extra Watermill middleware run around each attempt of a
	// handler, built-in handlers included (see SubscriberConfig.Middleware).
	Middleware []message.HandlerMiddleware
	// Metrics, when set, is where the worker registers its Prometheus
	// collectors (worker_… metrics; see the package documentation). The
	// worker opens no port: the host serves the registry. Close
	// unregisters them. Default nil: no metrics, at no cost.
	Metrics prometheus.Registerer

	// Cloud is the provider of accounts that have no provider type of their
	// own in the account registry (Worker.Watch puts accounts there that
	// way) and of accounts not in the registry: the single-provider
	// shortcut. Default nil: every account needs a provider type.
	Cloud cloud.Provider
	// Providers adds provider types for the account registry, by name, to
	// the built-in "sim" (package cloud/sim) and "vsphere" (cloud/vsphere);
	// a host's type of the same name replaces the built-in one. Names are
	// a-z 0-9 . _ -. Default none.
	Providers map[string]ProviderType
	// Credentials is where the credentials that accounts name are read
	// (a km.Client for a remote key service). Default: the embedded
	// credential store when Keyring is set, else none.
	Credentials km.Store
	// AccountSyncInterval is how often publisher processes read the account
	// registry's changes made by other processes. Changes made through this
	// worker apply at once, and polls of a paused or deleted account stop at
	// once in every process (the poll's handler checks the registry).
	// Default 5s (DefaultAccountSyncInterval).
	AccountSyncInterval time.Duration
	// Scale is how several publisher processes share the schedule and the
	// outbox relay: leases in the provisioning database, by default when
	// MQ.URL is RabbitMQ. See ScaleConfig and "Scaling out" in the package
	// documentation.
	Scale ScaleConfig
	// Schedule tunes the poll schedule of publisher processes: jitter, backoff,
	// per-account API budget, in-flight lease, clock. See poller.Config.
	Schedule poller.Config
	// DeletionGrace is how long a resource must be missing from complete
	// listings before it is deleted from the state (eventual consistency).
	// Default 5m.
	DeletionGrace time.Duration
	// JobCheckInterval is how often a tracked job's operation is checked. Default 10s.
	JobCheckInterval time.Duration
	// JobTimeout is a tracked job's default deadline. Default 1h.
	JobTimeout time.Duration
	// LaunchConsistencyWindow is how long after an interrupted launch the
	// worker keeps looking for the server by its key before launching again;
	// set it above the cloud's listing delay. Default 2m.
	LaunchConsistencyWindow time.Duration
	// SourceCIDR is where this worker's connections to guests come from
	// (SOURCE_CIDR). When set, server.launch authorizes ingress from it to
	// ManagementPort on the launch's firewall. It must be a network address
	// (no host bits: 10.0.0.0/24, not 10.0.0.5/24) and, since every launch
	// opens the management port to it, not the whole internet (0.0.0.0/0,
	// ::/0) unless AllowAnySource says so.
	SourceCIDR netip.Prefix
	// AllowAnySource accepts a SourceCIDR of /0, which opens every launched
	// server's management port to the world. Default false.
	AllowAnySource bool
	// ManagementPort is the guests' management (SSH) port. Default 22.
	ManagementPort int
	// Keyring holds the master keys of the embedded key manager. With it,
	// Worker.Credentials is an encrypted credential store in the
	// provisioning database (km.LocalStore, table worker_km_credentials)
	// behind a cache of CredentialCacheTTL, and guest-log collection logs in
	// with the SSH credentials kept there (km.SSHLogins) unless
	// GuestLogs.Collector.Credentials is set. Load it with km.LoadKeyFile or
	// km.KeyFromEnv, never from the main configuration; the worker does not
	// close it. Default nil: no embedded credential store.
	Keyring *km.Keyring
	// CredentialCacheTTL is how long credentials read from the embedded store
	// are kept in memory. Default 5m.
	CredentialCacheTTL time.Duration
	// GuestLogs enables scheduled collection of guest VM logs over SSH
	// (see GuestLogsConfig). Default: off.
	GuestLogs GuestLogsConfig
	// Heartbeat tunes the heartbeats every process writes and the
	// membership view (see HeartbeatConfig). Default: every 10s, dead
	// after 3 missed beats.
	Heartbeat HeartbeatConfig
	// Pinger tunes the probes of a RolePinger process (see PingerConfig).
	// Default: every account every 1m.
	Pinger PingerConfig
	// Analytics sets how long the servers' usage samples and their hourly
	// rollups are kept (see AnalyticsConfig). Default: 7 days raw, 400
	// days hourly.
	Analytics AnalyticsConfig
}

// Transport is a host's own Watermill transport (Config.Transport).
type Transport struct {
	Publisher  message.Publisher
	Subscriber message.Subscriber
	// Competing says that several subscriptions to one topic share its
	// messages, as a work queue does (RabbitMQ, SQL queues), rather than
	// each receiving a copy (gochannel): then each queue is subscribed
	// MQ.Consumers times. Default false: once.
	Competing bool
}

// MQConfig selects the transport.
type MQConfig struct {
	// URL is "" (or "memory") for the embedded in-memory transport (Watermill
	// gochannel: one process, nothing survives a restart; the fastest),
	// "sqlite" for the embedded durable queue (package sqlitemq: every
	// action committed to a SQLite file before Publish returns, nothing
	// lost on a crash) in a file next to the store's SQLite database
	// ("worker.db" -> "worker-queue.db"), "sqlite:<path>" for that queue
	// in a file of your choice, or an AMQP URL
	// "amqp://user:pass@host:5672/vhost" (or amqps://) for RabbitMQ with
	// durable queues, persistent messages and publisher confirms.
	URL string
	// Consumers is how many consumers (AMQP channels; subscriptions of the
	// SQLite queue) each queue gets in this process. Default 1, which is
	// enough: a consumer keeps up to Prefetch deliveries in hand, handles
	// them concurrently and acks each as soon as its handler is done.
	// Ignored in memory.
	Consumers int
	// PublishTimeout bounds one publish to RabbitMQ: waiting for a
	// connection, for the broker's confirms (while the broker blocks
	// publishers for a memory or disk alarm, the error says so), and
	// resending what a lost connection left unconfirmed. Default 30s.
	// Ignored in memory.
	PublishTimeout time.Duration
	// Prefetch is how many unacked deliveries each RabbitMQ consumer may
	// have: those in its handlers and those sent ahead, waiting for a free
	// handler. Default 2 × Concurrency (at most 65535): every handler slot
	// can be busy, and the next deliveries are already here when one frees
	// up, instead of a broker round trip away. A slow handler holds up only
	// its own delivery. Handlers run on the Concurrency slots whatever
	// Consumers and Prefetch are. The SQLite queue holds as many messages
	// per consumer (sqlitemq.Config.MaxInFlight). Ignored in memory.
	Prefetch int
	// PackActions is how many actions of one Publish call bound for one
	// queue (a host's batch, the schedule's dispatch of polls) travel in
	// one RabbitMQ message: a packed message (wire version 2, see the
	// package documentation). RabbitMQ's cost is per persistent confirmed
	// message, so a batch of 256 actions costs about what one does. The
	// subscriber handles each action of a pack on its own (retries,
	// parking, poisoning) and acks the pack once all of them are done.
	// Default 256; 1 turns packing off. Ignored in memory and by the
	// SQLite queue: their cost is per action (an insert, a channel send),
	// so a pack would save nothing and would make a crash redeliver the
	// whole pack.
	PackActions int
	// PackBytes bounds the body of one packed message. Default 256 KiB
	// (at most MaxPayloadBytes). Ignored where PackActions is.
	PackBytes int
}

func (c *Config) setDefaults() {
	if c.Role == "" {
		c.Role = RoleAll
	}
	c.Topology.setDefaults()
	c.Retry.setDefaults()
	if c.Concurrency == 0 {
		c.Concurrency = defaultConcurrency
	}
	if c.MQ.Consumers == 0 {
		c.MQ.Consumers = 1
	}
	if c.MQ.Prefetch == 0 {
		c.MQ.Prefetch = min(2*max(c.Concurrency, 1), rabbitmq.MaxPrefetch)
	}
	if c.MQ.PublishTimeout == 0 {
		c.MQ.PublishTimeout = defaultPublishTimeout
	}
	if c.MQ.PackActions == 0 {
		c.MQ.PackActions = defaultPackActions
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = defaultHandlerTimeout
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = defaultMaxPayload
	}
	if c.MQ.PackBytes == 0 {
		c.MQ.PackBytes = min(defaultPackBytes, c.MaxPayloadBytes)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = defaultDrainTimeout
	}
	if c.DeferredInterval == 0 {
		c.DeferredInterval = time.Second
	}
	c.Analytics.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DeletionGrace == 0 {
		c.DeletionGrace = 5 * time.Minute
	}
	if c.JobCheckInterval == 0 {
		c.JobCheckInterval = 10 * time.Second
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = time.Hour
	}
	if c.LaunchConsistencyWindow == 0 {
		c.LaunchConsistencyWindow = 2 * time.Minute
	}
	if c.ManagementPort == 0 {
		c.ManagementPort = 22
	}
	if c.CredentialCacheTTL == 0 {
		c.CredentialCacheTTL = 5 * time.Minute
	}
	if c.AccountSyncInterval == 0 {
		c.AccountSyncInterval = DefaultAccountSyncInterval
	}
	c.Heartbeat.setDefaults()
	c.Pinger.setDefaults()
	c.Scale.setDefaults()
}

// Validate reports the first bad field. Zero values are valid: they stand for
// the documented defaults.
func (c Config) Validate() error {
	c.setDefaults()
	switch c.Role {
	case RoleAll, RolePublisher, RoleSubscriber, RolePinger:
	default:
		return configError("Role", "%q is not a role (want all, publisher, subscriber or pinger)", c.Role)
	}
	if _, err := c.MQ.transport(); err != nil {
		return err
	}
	if _, err := c.sqliteQueuePath(); err != nil {
		return err
	}
	switch t := c.Transport; {
	case (t.Publisher == nil) != (t.Subscriber == nil):
		return configError("Transport", "needs both Publisher and Subscriber, or neither")
	case t.Publisher != nil && c.MQ.URL != "" && c.MQ.URL != "memory":
		return configError("Transport", "is set together with MQ.URL %q: choose one", redactedURL(c.MQ.URL))
	}
	if c.Storage != nil && c.Keyring != nil {
		return configError("Keyring", "needs the built-in store, but Storage is the host's own")
	}
	switch {
	case c.MQ.Consumers < 1:
		return configError("MQ.Consumers", "is %d, must be at least 1", c.MQ.Consumers)
	case c.MQ.Prefetch < 1 || c.MQ.Prefetch > rabbitmq.MaxPrefetch:
		return configError("MQ.Prefetch", "is %d, must be 1-%d", c.MQ.Prefetch, rabbitmq.MaxPrefetch)
	case c.MQ.PublishTimeout < 0:
		return configError("MQ.PublishTimeout", "is %v, must not be negative", c.MQ.PublishTimeout)
	case c.MQ.PackActions < 1 || c.MQ.PackActions > maxPackActions:
		return configError("MQ.PackActions", "is %d, must be 1-%d", c.MQ.PackActions, maxPackActions)
	case c.MQ.PackBytes < 1 || c.MQ.PackBytes > max(c.MaxPayloadBytes, 1):
		return configError("MQ.PackBytes", "is %d, must be 1-%d (MaxPayloadBytes)", c.MQ.PackBytes, c.MaxPayloadBytes)
	case c.ShutdownTimeout < 0:
		return configError("ShutdownTimeout", "is %v, must not be negative", c.ShutdownTimeout)
	case c.DeferredInterval < 0:
		return configError("DeferredInterval", "is %v, must not be negative", c.DeferredInterval)
	}
	switch {
	case c.DeletionGrace < 0:
		return configError("DeletionGrace", "is %v, must not be negative", c.DeletionGrace)
	case c.JobCheckInterval < 0:
		return configError("JobCheckInterval", "is %v, must not be negative", c.JobCheckInterval)
	case c.JobTimeout < 0:
		return configError("JobTimeout", "is %v, must not be negative", c.JobTimeout)
	case c.LaunchConsistencyWindow < 0:
		return configError("LaunchConsistencyWindow", "is %v, must not be negative", c.LaunchConsistencyWindow)
	case c.ManagementPort < 1 || c.ManagementPort > 65535:
		return configError("ManagementPort", "is %d, must be 1-65535", c.ManagementPort)
	case c.CredentialCacheTTL < 0:
		return configError("CredentialCacheTTL", "is %v, must not be negative", c.CredentialCacheTTL)
	case c.AccountSyncInterval < 0:
		return configError("AccountSyncInterval", "is %v, must not be negative", c.AccountSyncInterval)
	}
	if err := c.Scale.validate(); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(c.Providers)) {
		switch {
		case !validType(name) || len(name) > accounts.MaxProviderLen:
			return configError("Providers", "name %q must be a-z 0-9 . _ - (at most %d bytes)", name, accounts.MaxProviderLen)
		case c.Providers[name].New == nil:
			return configError("Providers", "type %q has no New function", name)
		}
	}
	if err := c.Heartbeat.Validate(); err != nil {
		return err
	}
	if err := c.Pinger.Validate(); err != nil {
		return err
	}
	if err := c.Analytics.Validate(); err != nil {
		return err
	}
	if err := c.validateSourceCIDR(); err != nil {
		return err
	}
	if err := c.GuestLogs.validate(&c); err != nil {
		return err
	}
	if err := c.Schedule.Validate(); err != nil {
		return fmt.Errorf("%w: Schedule: %w", ErrInvalidConfig, err)
	}
	if err := validateHandling(c.Concurrency, c.HandlerTimeout, c.MaxPayloadBytes, c.Topology, c.Retry); err != nil {
		return err
	}
	if err := c.Store.Validate(); err != nil {
		return fmt.Errorf("%w: Store: %w", ErrInvalidConfig, err)
	}
	return nil
}

// validateSourceCIDR refuses a SourceCIDR with host bits set (a typo for the
// network or for one address) and, without AllowAnySource, one that opens
// the management port to the whole internet.
func (c Config) validateSourceCIDR() error {
	p := c.SourceCIDR
	if !p.IsValid() {
		return nil
	}
	if p != p.Masked() {
		return configError("SourceCIDR", "%s has host bits set: write the network %s, or %s for this one address",
			p, p.Masked(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	if p.Bits() == 0 && !c.AllowAnySource {
		return configError("SourceCIDR", "%s would open every launched server's management port (%d) to the whole internet; "+
			"name the worker's own network, or set AllowAnySource", p, c.ManagementPort)
	}
	return nil
}

type transportKind int

const (
	transportMemory transportKind = iota
	transportAMQP
	transportSQLite
)

const mqURLWant = `want "", "memory", "sqlite", "sqlite:<path>" or amqp://user:pass@host:5672/`

func (m MQConfig) transport() (transportKind, error) {
	if m.URL == "" || m.URL == "memory" {
		return transportMemory, nil
	}
	if m.URL == "sqlite" || strings.HasPrefix(m.URL, "sqlite:") {
		return transportSQLite, nil
	}
	u, err := url.Parse(m.URL)
	if err != nil {
		return 0, configError("MQ.URL", "is not a URL (%s)", mqURLWant)
	}
	if (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return 0, configError("MQ.URL", "%q: %s", u.Redacted(), mqURLWant)
	}
	return transportAMQP, nil
}

// redactedURL returns the URL with any password replaced, for logs and errors.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
