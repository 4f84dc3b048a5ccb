package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

// conn keeps one AMQP connection up: it dials, notices the connection close,
// and dials again with exponential backoff and jitter until closed.
type conn struct {
	cfg  Config
	name string // "publisher" or "subscriber", for logs and the connection name
	log  *slog.Logger

	mu      sync.Mutex
	current *amqp.Connection
	ready   chan struct{} // closed while current is usable
	lastErr error

	closing chan struct{}
	done    chan struct{}
}

// dialConn connects once (failing fast with a clear error when the broker
// cannot be reached) and then keeps the connection up in the background.
func dialConn(ctx context.Context, cfg Config, name string) (*conn, error) {
	c := &conn{
		cfg: cfg, name: name, log: cfg.Logger.With("component", "rabbitmq", "role", name),
		ready: make(chan struct{}), closing: make(chan struct{}), done: make(chan struct{}),
	}
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
	ac, err := amqp.DialConfig(c.cfg.URL, amqp.Config{
		Properties: props,
		Heartbeat:  10 * time.Second,
		Dial:       amqp.DefaultDial(c.cfg.DialTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrNotConnected, c.cfg.redacted(), scrub(err, c.cfg.URL))
	}
	return ac, nil
}

// scrub removes the URL (which may hold a password) from an error's text.
func scrub(err error, url string) string {
	if url == "" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), url, "(url)")
}

func (c *conn) set(ac *amqp.Connection) {
	c.mu.Lock()
	c.current = ac
	c.lastErr = nil
	close(c.ready)
	c.mu.Unlock()
}

// keep watches the connection and replaces it when it closes.
func (c *conn) keep(ac *amqp.Connection) {
	defer close(c.done)
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
			c.log.Warn("connection lost, reconnecting", "broker", c.cfg.redacted(), "err", err)
		}
		b := &backoff.ExponentialBackOff{
			InitialInterval: c.cfg.ReconnectInitial, RandomizationFactor: 0.5,
			Multiplier: 2, MaxInterval: c.cfg.ReconnectMax,
		}
		b.Reset()
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
				c.log.Info("reconnected", "broker", c.cfg.redacted())
				break
			}
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
		}
	}
}

// getNow returns the live connection or ErrNotConnected at once.
func (c *conn) getNow() (*amqp.Connection, error) {
	c.mu.Lock()
	cur, last := c.current, c.lastErr
	c.mu.Unlock()
	if cur != nil && !cur.IsClosed() {
		return cur, nil
	}
	if last != nil {
		return nil, fmt.Errorf("%w to %s: %v", ErrNotConnected, c.cfg.redacted(), scrub(last, c.cfg.URL))
	}
	return nil, fmt.Errorf("%w to %s", ErrNotConnected, c.cfg.redacted())
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
			if last != nil {
				return nil, fmt.Errorf("%w to %s: %v", ErrNotConnected, c.cfg.redacted(), scrub(last, c.cfg.URL))
			}
			return nil, fmt.Errorf("%w to %s", ErrNotConnected, c.cfg.redacted())
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
