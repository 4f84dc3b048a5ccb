package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// conn keeps one AMQP connection up: it dials, notices the connection close,
// and dials again with exponential backoff and jitter until closed. It also
// follows the broker's connection.blocked and connection.unblocked
// notifications on every connection it opens.
type conn struct {
	cfg  Config  // with the URL redacted
	url  *string // the URL with its password; a pointer, so that fmt never prints it
	name string  // "publisher" or "subscriber", for logs and the connection name
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	current *amqp.Connection
	gen     uint64        // counts the connections; names current's
	ready   chan struct{} // closed while current is usable
	lastErr error
	block   blockState // current's

	closing chan struct{}
	done    chan struct{}
}

// blockState is whether the broker blocks a connection's publishers.
type blockState struct {
	since  time.Time     // zero: not blocked
	reason string        // the broker's, e.g. "low on memory"
	over   chan struct{} // closed when the block ends; nil when not blocked
}

// newConn returns a conn that is not connected yet.
func newConn(cfg Config, name string) *conn {
	secret := cfg.URL
	cfg.URL = cfg.redacted()
	return &conn{
		cfg: cfg, url: &secret, name: name, now: time.Now,
		log:   cfg.Logger.With("component", "rabbitmq", "role", name),
		ready: make(chan struct{}), closing: make(chan struct{}), done: make(chan struct{}),
	}
}

// dialConn connects once (failing fast with a clear error when the broker
// cannot be reached) and then keeps the connection up in the background.
func dialConn(ctx context.Context, cfg Config, name string) (*conn, error) {
	c := newConn(cfg, name)
	ac, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.set(ac)
	go c.keep(ac)
	return c, nil
}

func (c *conn) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("stratusworks-worker-" + c.name)
	ac, err := amqp.DialConfig(*c.url, amqp.Config{
		Properties: props,
		Heartbeat:  10 * time.Second,
		Dial:       amqp.DefaultDial(c.cfg.DialTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrNotConnected, c.cfg.URL, c.scrub(err))
	}
	return ac, nil
}

// scrub returns an error's text without the URL or its password.
func (c *conn) scrub(err error) string { return scrub(err, *c.url) }

// scrub removes the URL, and the password in it as written and decoded,
// from an error's text.
func scrub(err error, rawURL string) string {
	s := err.Error()
	if rawURL == "" {
		return s
	}
	s = strings.ReplaceAll(s, rawURL, "(url)")
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
			if raw := rawPassword(rawURL); raw != "" && raw != pw {
				s = strings.ReplaceAll(s, raw, "xxxxx")
			}
		}
	}
	return s
}

// rawPassword is the password as it is written in the URL (percent-encoded).
func rawPassword(rawURL string) string {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return ""
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	return pw
}

// set makes ac the current connection and follows its blocked notifications.
func (c *conn) set(ac *amqp.Connection) {
	blocks := ac.NotifyBlocked(make(chan amqp.Blocking, 1))
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.current = ac
	c.lastErr = nil
	c.block = blockState{}
	close(c.ready)
	c.mu.Unlock()
	go c.watchBlocked(gen, blocks)
}

// watchBlocked follows the connection.blocked and connection.unblocked
// notifications of connection gen until blocks is closed (the connection
// closed). It is the seam tests use to block a connection without blocking
// the broker.
func (c *conn) watchBlocked(gen uint64, blocks <-chan amqp.Blocking) {
	for b := range blocks {
		if b.Active {
			c.blocked(gen, b.Reason)
		} else {
			c.unblocked(gen, "")
		}
	}
	c.unblocked(gen, "connection closed")
}

func (c *conn) blocked(gen uint64, reason string) {
	c.mu.Lock()
	if c.gen != gen || !c.block.since.IsZero() {
		c.mu.Unlock()
		return
	}
	c.block = blockState{since: c.now(), reason: reason, over: make(chan struct{})}
	c.mu.Unlock()
	c.log.Warn("broker is blocking publishers: publishing waits until it unblocks or PublishTimeout",
		"broker", c.cfg.URL, "reason", reason)
}

func (c *conn) unblocked(gen uint64, why string) {
	c.mu.Lock()
	b := c.block
	if c.gen != gen || b.since.IsZero() {
		c.mu.Unlock()
		return
	}
	c.block = blockState{}
	close(b.over)
	c.mu.Unlock()
	args := []any{"broker", c.cfg.URL, "blocked_for", c.now().Sub(b.since).Round(time.Millisecond), "reason", b.reason}
	if why != "" {
		args = append(args, "ended_by", why)
	}
	c.log.Info("broker no longer blocking publishers", args...)
}

// blockedNow returns the current connection's block; over is nil when the
// broker is not blocking it.
func (c *conn) blockedNow() blockState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.block
}

// keep watches the connection and replaces it when it closes. An outage is
// logged in few lines: a WARN when the connection is lost, at most one WARN
// a minute while reconnecting fails, an INFO when it is back.
func (c *conn) keep(ac *amqp.Connection) {
	defer close(c.done)
	out := outage{now: c.now}
	for {
		closed := ac.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-c.closing:
			_ = ac.Close()
			return
		case err := <-closed:
			c.mu.Lock()
			c.current = nil
			c.ready = make(chan struct{})
			if err != nil {
				c.lastErr = err
			}
			c.mu.Unlock()
			out.begin()
			c.log.Warn("connection lost, reconnecting", "broker", c.cfg.URL, "err", err)
		}
		b := c.cfg.reconnectBackOff()
		for {
			t := time.NewTimer(b.NextBackOff())
			select {
			case <-c.closing:
				t.Stop()
				return
			case <-t.C:
			}
			next, err := c.dial()
			if err == nil {
				ac = next
				c.set(ac)
				lasted, failures, _ := out.end()
				c.log.Info("reconnected", "broker", c.cfg.URL, "outage", lasted.Round(time.Millisecond), "failed_attempts", failures)
				break
			}
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			if out.failed() { // a summary is due: the outage's begin was logged above
				c.log.Warn("still reconnecting", "broker", c.cfg.URL, "outage", out.since().Round(time.Second),
					"failed_attempts", out.failures, "err", err)
			}
		}
	}
}

// notConnected is the error for a connection that is not there: ErrNotConnected
// with the last dial or close error.
func (c *conn) notConnected(last error) error {
	if last != nil {
		return fmt.Errorf("%w to %s: %v", ErrNotConnected, c.cfg.URL, c.scrub(last))
	}
	return fmt.Errorf("%w to %s", ErrNotConnected, c.cfg.URL)
}

// getNow returns the live connection or ErrNotConnected at once.
func (c *conn) getNow() (*amqp.Connection, error) {
	c.mu.Lock()
	cur, last := c.current, c.lastErr
	c.mu.Unlock()
	if cur != nil && !cur.IsClosed() {
		return cur, nil
	}
	return nil, c.notConnected(last)
}

// get returns the live connection, waiting for one until ctx is done.
func (c *conn) get(ctx context.Context) (*amqp.Connection, error) {
	for {
		c.mu.Lock()
		cur, ready, last := c.current, c.ready, c.lastErr
		c.mu.Unlock()
		if cur != nil && !cur.IsClosed() {
			return cur, nil
		}
		select {
		case <-ready:
		case <-c.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, c.notConnected(last)
		}
	}
}

func (c *conn) close() error {
	select {
	case <-c.closing:
		return nil
	default:
	}
	close(c.closing)
	<-c.done
	return nil
}
