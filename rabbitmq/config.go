package rabbitmq

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Errors callers can branch on.
var (
	// ErrInvalidConfig is wrapped by every configuration error; the message names the field.
	ErrInvalidConfig = errors.New("rabbitmq: invalid config")
	// ErrNotConnected means the broker could not be reached within the time allowed.
	ErrNotConnected = errors.New("rabbitmq: not connected")
	// ErrNotConfirmed means the broker did not confirm a message (it nacked it,
	// or the connection dropped before the confirm) within PublishTimeout.
	ErrNotConfirmed = errors.New("rabbitmq: message not confirmed by the broker")
	// ErrUnroutable means no queue took a message (the queue does not exist).
	ErrUnroutable = errors.New("rabbitmq: message unroutable")
	// ErrClosed means the publisher or subscriber was closed.
	ErrClosed = errors.New("rabbitmq: closed")
)

// MaxPrefetch is the largest prefetch count AMQP can express (16 bits).
const MaxPrefetch = 65535

// MetadataMalformed used to be set on a message whose delivery had a header
// that was not a string.
//
// Deprecated: it is no longer set. Every header value is converted to a
// string (see [HeaderString]), so every delivery becomes a message; checking
// the headers a consumer owns is the consumer's job.
const MetadataMalformed = "worker_malformed"

// Config configures a [Publisher] or a [Subscriber]. Zero fields take the stated defaults.
type Config struct {
	// URL is the broker, "amqp://user:pass@host:5672/vhost" or amqps://. Required.
	URL string
	// PublishTimeout bounds one Publish call: waiting for a connection, for
	// the confirms, and retrying messages whose fate the connection loss left
	// unknown. Default 30s. A negative value means: do not wait or retry,
	// fail at once when not connected or not confirmed.
	PublishTimeout time.Duration
	// Prefetch is each subscription's prefetch count: how many unacked
	// deliveries the broker sends it ahead. Default 16, at most 65535.
	Prefetch int
	// MaxInFlight is how many messages a subscription hands out before the
	// earliest is acked or nacked. Default 1: Watermill's contract, the next
	// message only after the previous one's verdict, which keeps the queue's
	// order. A consumer that handles messages concurrently (the worker's
	// Subscriber) sets it higher, up to Prefetch (more is capped by the
	// prefetch): every message is then acked or nacked on its own as soon as
	// its verdict comes, in any order, and order is no longer kept.
	MaxInFlight int
	// Headers selects the message metadata a Publisher sends as AMQP
	// headers: key k is sent when Headers(k) is true. Default nil: all of
	// it. Every header costs the broker work on every message: leave out
	// what the body carries anyway.
	Headers func(key string) bool
	// SendUUIDHeader makes a Publisher send the message UUID in the header
	// UUIDHeader too, where watermill-amqp's subscriber reads it. Default
	// false: the UUID travels as the AMQP message id, where this package's
	// Subscriber reads it (it reads UUIDHeader first when there is one).
	SendUUIDHeader bool
	// ReconnectInitial and ReconnectMax bound the wait between reconnection
	// attempts (exponential with jitter). Defaults 100ms and 5s.
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// DialTimeout bounds one connection attempt. Default 10s.
	DialTimeout time.Duration
	// Logger receives connection events. Default slog.Default(). The URL's
	// password is never logged.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.Prefetch == 0 {
		c.Prefetch = 16
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1
	}
	if c.ReconnectInitial == 0 {
		c.ReconnectInitial = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 5 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate names the first bad field. Zero values stand for the defaults.
func (c Config) Validate() error {
	c.setDefaults()
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: URL is required (amqp://user:pass@host:5672/)", ErrInvalidConfig)
	case err != nil:
		return fmt.Errorf("%w: URL is not a URL", ErrInvalidConfig)
	case (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "":
		return fmt.Errorf("%w: URL %q: want amqp://user:pass@host:5672/ or amqps://", ErrInvalidConfig, u.Redacted())
	case c.Prefetch < 1 || c.Prefetch > MaxPrefetch:
		return fmt.Errorf("%w: Prefetch is %d, must be 1-%d", ErrInvalidConfig, c.Prefetch, MaxPrefetch)
	case c.MaxInFlight < 1:
		return fmt.Errorf("%w: MaxInFlight is %d, must be at least 1", ErrInvalidConfig, c.MaxInFlight)
	case c.ReconnectInitial < 0 || c.ReconnectMax < c.ReconnectInitial:
		return fmt.Errorf("%w: ReconnectInitial (%v) and ReconnectMax (%v) must satisfy 0 <= initial <= max", ErrInvalidConfig, c.ReconnectInitial, c.ReconnectMax)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: DialTimeout is %v, must not be negative", ErrInvalidConfig, c.DialTimeout)
	}
	return nil
}

// redacted returns the URL without its password.
func (c Config) redacted() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
