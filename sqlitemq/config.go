package sqlitemq

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by every configuration error; the message
// names the field.
var ErrInvalidConfig = errors.New("sqlitemq: invalid config")

// ErrClosed is returned by Publish, PublishDelayed and Subscribe after Close.
var ErrClosed = errors.New("sqlitemq: closed")

// Synchronous is how hard a commit waits for the disk (SQLite's
// PRAGMA synchronous in WAL mode).
type Synchronous string

// The synchronous modes.
const (
	// SyncFull fsyncs the write-ahead log on every commit: a message whose
	// Publish returned survives a power loss or an OS crash, not only a
	// crash of the process. The default. Commits are batched, so this
	// costs one fsync per batch, not per message; and only batches that
	// publish wait for it: acks, nacks, claims and lease renewals, whose loss
	// can only make a message due again, are committed without an fsync of
	// their own and made durable by the next publish's.
	SyncFull Synchronous = "full"
	// SyncNormal fsyncs only at checkpoints: everything committed survives
	// a crash of the process (kill -9), but the last commits may be lost
	// on a power loss or an OS crash. Faster on slow disks.
	SyncNormal Synchronous = "normal"
)

// Defaults.
const (
	DefaultPath              = "queue.db" // relative to the working directory
	DefaultVisibilityTimeout = 15 * time.Second
	DefaultPollInterval      = 100 * time.Millisecond
	DefaultMaxBatch          = 1024
	DefaultBusyTimeout       = 10 * time.Second
)

// Config configures a [PubSub]. Zero fields take the stated defaults; the
// zero Config is a queue in "queue.db" in the working directory.
type Config struct {
	// Path is the SQLite file that holds the queue; it is created (with
	// its table) when missing. Several processes may open the same file:
	// their subscriptions to one topic then compete for its messages.
	// Default DefaultPath.
	Path string
	// MaxInFlight is how many messages one subscription holds at once,
	// handed out and not yet acked or nacked. Default 1: Watermill's
	// contract, the next message only after the previous one is settled,
	// which keeps order. The worker sets it to MQ.Prefetch, so its
	// concurrent handlers are fed from one subscription.
	MaxInFlight int
	// VisibilityTimeout is how long a message handed to a subscriber stays
	// invisible to other subscribers. While this process holds a message it
	// renews the lease every third of the timeout, so a slow handler keeps
	// its message; the lease runs out only when the process died or froze,
	// and then the message is handed out again. Default 15s.
	VisibilityTimeout time.Duration
	// PollInterval is how often an idle subscription looks for messages
	// published by another process, whose delay ended or whose lease ran
	// out. Messages published or nacked through this PubSub wake its
	// subscriptions at once. Default 100ms.
	PollInterval time.Duration
	// MaxBatch is the most operations (publish calls, acks, nacks, claims)
	// committed together in one transaction by the writer. Default 1024.
	MaxBatch int
	// Synchronous is SyncFull (default) or SyncNormal.
	Synchronous Synchronous
	// BusyTimeout is how long a commit waits for another process holding
	// the file's write lock. Default 10s.
	BusyTimeout time.Duration
	// Logger receives the few things worth logging (a failed ack, which
	// only means a redelivery). Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for delays and leases. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Synchronous == "" {
		c.Synchronous = SyncFull
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names the first bad field. Zero fields stand for their
// defaults: the zero Config is valid.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:") || strings.Contains(c.Path, "?"):
		return invalid("Path", "%q: want a plain file path (an in-memory queue would not be durable; URIs and parameters are not supported)", c.Path)
	case c.MaxInFlight < 1 || c.MaxInFlight > maxInFlight:
		return invalid("MaxInFlight", "is %d, must be 1-%d", c.MaxInFlight, maxInFlight)
	case c.VisibilityTimeout < 3*time.Millisecond:
		return invalid("VisibilityTimeout", "is %v, must be at least 3ms", c.VisibilityTimeout)
	case c.PollInterval < 0:
		return invalid("PollInterval", "is %v, must not be negative", c.PollInterval)
	case c.MaxBatch < 1:
		return invalid("MaxBatch", "is %d, must be at least 1", c.MaxBatch)
	case c.BusyTimeout < 0:
		return invalid("BusyTimeout", "is %v, must not be negative", c.BusyTimeout)
	}
	switch c.Synchronous {
	case SyncFull, SyncNormal:
	default:
		return invalid("Synchronous", "is %q, want %q or %q", c.Synchronous, SyncFull, SyncNormal)
	}
	return nil
}

// maxInFlight bounds MaxInFlight: each held message has a goroutine.
const maxInFlight = 65535

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}
