package rabbitmq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
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
	// ErrBlocked means the broker is blocking publishers (a memory or disk
	// alarm: connection.blocked). A Publish that runs out of time while it
	// is fails with an error that wraps it and ErrNotConfirmed and says
	// since when and why.
	ErrBlocked = errors.New("rabbitmq: broker is blocking publishers")
)

// MaxPrefetch is the largest prefetch count AMQP can express (16 bits).
const MaxPrefetch = 65535

// MetadataReject, set (to any non-empty value, such as the reason) on a
// message before it is nacked, asks the Subscriber to reject the delivery
// (basic.nack without requeue) so that the broker dead-letters it, instead of
// requeueing it. The Subscriber rejects it only when the message's queue has
// dead-lettering ([Subscriber.DeadLettering]; see Config.DeadLetter), since a
// queue without would drop it; otherwise it requeues it, as any nack, and
// logs an ERROR saying why. It must be set on the message the subscription
// handed out, before Nack. It is a local verdict, not data: the Publisher
// never sends it, and the Subscriber drops a header of that name.
const MetadataReject = "worker_reject"

// MetadataMalformed used to be set on a message whose delivery had a header
// that was not a string.
//
// Deprecated: it is no longer set. Every header value is converted to a
// string (see [HeaderString]), so every delivery becomes a message; checking
// the headers a consumer owns is the consumer's job.
const MetadataMalformed = "worker_malformed"

// Config configures a [Publisher] or a [Subscriber]. Zero fields take the
// stated defaults.
//
// A Config never shows the URL's password: fmt (%v, %+v, %#v, %s, %q),
// encoding/json and log/slog print it redacted, as does a struct that holds
// a Config in an exported field. Function fields show only whether they are
// set. (fmt prints unexported struct fields by reflection, bypassing every
// method: do not print a struct that holds a Config in an unexported field.)
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
	// DeadLetter names the dead-letter queue of a queue: when DeadLetter(q)
	// is a queue name other than q, the Publisher and the Subscriber declare
	// q with the arguments x-dead-letter-exchange "" and
	// x-dead-letter-routing-key DeadLetter(q), and declare that queue too,
	// so that a message the consumer rejects (see [MetadataReject]) moves
	// there. Default nil: no queue has dead-lettering. A queue that already
	// exists with other arguments is used as it is, without dead-lettering
	// (see [Subscriber.DeadLettering]).
	DeadLetter func(queue string) string
	// ReconnectInitialInterval and ReconnectMaxInterval bound the wait
	// between reconnection attempts (exponential with jitter; the names are
	// those of the SDK's other backoffs). Defaults 100ms (or
	// ReconnectMaxInterval, if that is set and shorter) and 5s (or
	// ReconnectInitialInterval, if that is longer).
	ReconnectInitialInterval time.Duration
	ReconnectMaxInterval     time.Duration
	// DialTimeout bounds one connection attempt. Default 10s.
	DialTimeout time.Duration
	// Logger receives connection events. Default slog.Default(). The URL's
	// password is never logged.
	Logger *slog.Logger
}

// reconnectBackOff is the wait between reconnection attempts, of the
// connection and of a subscription: exponential from
// ReconnectInitialInterval up to ReconnectMaxInterval, ±50% jitter, reset.
func (c Config) reconnectBackOff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval: c.ReconnectInitialInterval, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: c.ReconnectMaxInterval,
	}
	b.Reset()
	return b
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
	if c.ReconnectInitialInterval == 0 {
		c.ReconnectInitialInterval = 100 * time.Millisecond
		if c.ReconnectMaxInterval > 0 && c.ReconnectMaxInterval < c.ReconnectInitialInterval {
			c.ReconnectInitialInterval = c.ReconnectMaxInterval
		}
	}
	if c.ReconnectMaxInterval == 0 {
		c.ReconnectMaxInterval = max(5*time.Second, c.ReconnectInitialInterval)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first bad field, naming it and its value (the URL
// without its password). Zero values stand for the defaults and are valid.
func (c Config) Validate() error {
	c.setDefaults()
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: URL is required (amqp://user:pass@host:5672/)", ErrInvalidConfig)
	case err != nil:
		// The parse error quotes the URL: it is not shown, it may hold a password.
		return fmt.Errorf("%w: URL is not a parsable URL (want amqp://user:pass@host:5672/ or amqps://)", ErrInvalidConfig)
	case (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "":
		return fmt.Errorf("%w: URL %q: want amqp://user:pass@host:5672/ or amqps://", ErrInvalidConfig, u.Redacted())
	case c.Prefetch < 1 || c.Prefetch > MaxPrefetch:
		return fmt.Errorf("%w: Prefetch is %d, must be 1-%d (0 for the default 16)", ErrInvalidConfig, c.Prefetch, MaxPrefetch)
	case c.MaxInFlight < 1:
		return fmt.Errorf("%w: MaxInFlight is %d, must be at least 1 (0 for the default 1)", ErrInvalidConfig, c.MaxInFlight)
	case c.ReconnectInitialInterval < 0:
		return fmt.Errorf("%w: ReconnectInitialInterval is %v, must not be negative", ErrInvalidConfig, c.ReconnectInitialInterval)
	case c.ReconnectMaxInterval < 0:
		return fmt.Errorf("%w: ReconnectMaxInterval is %v, must not be negative", ErrInvalidConfig, c.ReconnectMaxInterval)
	case c.ReconnectMaxInterval < c.ReconnectInitialInterval:
		return fmt.Errorf("%w: ReconnectMaxInterval is %v, must be at least ReconnectInitialInterval (%v)", ErrInvalidConfig, c.ReconnectMaxInterval, c.ReconnectInitialInterval)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: DialTimeout is %v, must not be negative", ErrInvalidConfig, c.DialTimeout)
	}
	return nil
}

// redacted returns the URL without its password.
func (c Config) redacted() string { return redactURL(c.URL) }

func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// configField is one field of a Config as the formatters show it.
type configField struct {
	name string
	val  any // never a function; never the URL's password
}

// fields lists every field of c, in declaration order, for the formatters:
// the URL redacted, function and pointer fields as "set" or nil.
func (c Config) fields() []configField {
	set := func(isSet bool) any {
		if isSet {
			return "set"
		}
		return nil
	}
	return []configField{
		{"URL", c.redacted()},
		{"PublishTimeout", c.PublishTimeout},
		{"Prefetch", c.Prefetch},
		{"MaxInFlight", c.MaxInFlight},
		{"Headers", set(c.Headers != nil)},
		{"SendUUIDHeader", c.SendUUIDHeader},
		{"DeadLetter", set(c.DeadLetter != nil)},
		{"ReconnectInitialInterval", c.ReconnectInitialInterval},
		{"ReconnectMaxInterval", c.ReconnectMaxInterval},
		{"DialTimeout", c.DialTimeout},
		{"Logger", set(c.Logger != nil)},
	}
}

// String shows every field, the URL without its password, as
// {URL:amqp://user:xxxxx@host/ PublishTimeout:0s … Headers:set …}.
func (c Config) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range c.fields() {
		if i > 0 {
			b.WriteByte(' ')
		}
		if f.val == nil {
			fmt.Fprintf(&b, "%s:<nil>", f.name)
		} else {
			fmt.Fprintf(&b, "%s:%v", f.name, f.val)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// GoString is %#v: Go syntax, the URL without its password, function and
// pointer fields as nil or "set".
func (c Config) GoString() string {
	var b strings.Builder
	b.WriteString("rabbitmq.Config{")
	for i, f := range c.fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		switch v := f.val.(type) {
		case nil:
			fmt.Fprintf(&b, "%s:nil", f.name)
		case time.Duration:
			fmt.Fprintf(&b, "%s:%d", f.name, int64(v))
		default:
			fmt.Fprintf(&b, "%s:%#v", f.name, v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// Format makes every fmt verb show c redacted: %v, %+v and %s as String,
// %#v as GoString, %q as String quoted.
func (c Config) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, c.GoString())
	case verb == 'v' || verb == 's':
		_, _ = io.WriteString(f, c.String())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(c.String()))
	default:
		_, _ = fmt.Fprintf(f, "%%!%c(rabbitmq.Config=%s)", verb, c.String())
	}
}

// LogValue makes log/slog log c as a group of its fields, the URL without
// its password; unset function and pointer fields are left out.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, f := range c.fields() {
		if f.val != nil {
			attrs = append(attrs, slog.Any(f.name, f.val))
		}
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON writes c as a JSON object of its fields, the URL without its
// password, durations in nanoseconds as encoding/json writes them; function
// and pointer fields are "set", or left out when nil.
func (c Config) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, f := range c.fields() {
		if f.val == nil {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.val)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: marshal Config.%s: %w", f.name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
