package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

// UUIDHeader is where watermill-amqp carries the Watermill message UUID. The
// Subscriber reads the UUID from it when it is there (from the AMQP message
// id otherwise); the Publisher sends it with Config.SendUUIDHeader.
const UUIDHeader = "_watermill_message_uuid"

// Publisher publishes Watermill messages to RabbitMQ queues with pipelined
// publisher confirms. It is safe for concurrent use.
type Publisher struct {
	cfg  Config
	conn *conn

	mu       sync.Mutex // serializes channel set-up and frame writes
	cur      *confirmChannel
	declared map[string]bool // queues declared on cur's connection

	closed atomic.Bool
}

// confirmChannel is one confirm-mode channel and the messages awaiting its confirms.
type confirmChannel struct {
	ch *amqp.Channel

	mu      sync.Mutex
	pending map[uint64]*waiter // by delivery tag
	ids     map[string]int     // message ids of pending, to keep them unique
	dead    bool
}

type waiter struct {
	id   string // the AMQP message id: the message UUID
	done chan struct{}
	err  error
}

// maxShortString is the longest AMQP short string (message id): amqp091
// would cut a longer one.
const maxShortString = 255

// errConnLost is the fate of a message whose channel closed before its confirm.
var errConnLost = errors.New("connection lost before the broker confirmed")

// NewPublisher connects to the broker (failing fast with a clear error if it
// cannot) and returns a Publisher that keeps reconnecting in the background.
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c, err := dialConn(ctx, cfg, "publisher")
	if err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, conn: c, declared: map[string]bool{}}, nil
}

// SubscribeInitialize declares the durable queue topic so that messages
// published to it wait there until a consumer comes. Publish declares the
// queues it uses anyway; call this to declare them up front.
func (p *Publisher) SubscribeInitialize(topic string) error {
	ctx, cancel := p.timeout(context.Background())
	defer cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.channelLocked(ctx, topic)
	return err
}

func (p *Publisher) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.cfg.PublishTimeout > 0 {
		return context.WithTimeout(ctx, p.cfg.PublishTimeout)
	}
	return context.WithTimeout(ctx, p.cfg.DialTimeout)
}

// Publish sends the messages to the queue named topic and returns nil only
// when the broker confirmed all of them. Messages whose confirm was lost with
// the connection are sent again (at least once) until PublishTimeout.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := p.timeout(context.Background())
	defer cancel()
	todo := msgs
	var lastErr error
	for attempt := 1; ; attempt++ {
		failed, err := p.publishOnce(ctx, topic, todo)
		if err != nil {
			return err // not retryable (unroutable, closed, bad headers) or out of time
		}
		if len(failed) == 0 {
			return nil
		}
		lastErr = failed[0].err
		if p.cfg.PublishTimeout < 0 {
			return fmt.Errorf("%w: %d of %d message(s) to %s: %v", ErrNotConfirmed, len(failed), len(msgs), topic, lastErr)
		}
		todo = todo[:0:0]
		for _, f := range failed {
			todo = append(todo, f.msg)
		}
		wait := time.Duration(attempt) * 50 * time.Millisecond
		if wait > time.Second {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d message(s) to %s within %v: %v", ErrNotConfirmed, len(todo), len(msgs), topic, p.cfg.PublishTimeout, lastErr)
		case <-time.After(wait):
		}
	}
}

type failedMsg struct {
	msg *message.Message
	err error
}

// publishOnce writes the messages on the current confirm channel and waits for
// their confirms. It returns the messages whose fate is unknown or nacked.
func (p *Publisher) publishOnce(ctx context.Context, topic string, msgs []*message.Message) ([]failedMsg, error) {
	waiters := make([]*waiter, len(msgs))
	var failed []failedMsg

	p.mu.Lock()
	cc, err := p.channelLocked(ctx, topic)
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	for i, m := range msgs {
		pub := toPublishing(m, &p.cfg)
		w := &waiter{done: make(chan struct{})}
		waiters[i] = w // every message gets a verdict, failures included
		if !cc.add(cc.ch.GetNextPublishSeqNo(), w, &pub) {
			w.err = errConnLost
			close(w.done)
			continue
		}
		if err := cc.ch.PublishWithContext(ctx, "", topic, true, false, pub); err != nil {
			cc.fail(w, err)
			if errors.Is(err, amqp.ErrClosed) {
				p.cur = nil
			}
		}
	}
	p.mu.Unlock()

	for i, w := range waiters {
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no confirm for message %s to %s within %v", ErrNotConfirmed, msgs[i].UUID, topic, p.cfg.PublishTimeout)
		}
		switch {
		case w.err == nil:
		case errors.Is(w.err, ErrUnroutable):
			return nil, fmt.Errorf("publish message %s: %w", msgs[i].UUID, w.err)
		default:
			failed = append(failed, failedMsg{msgs[i], w.err})
		}
	}
	return failed, nil
}

// channelLocked returns a live confirm channel, opening one (and declaring
// topic's queue on it) when needed. p.mu must be held.
func (p *Publisher) channelLocked(ctx context.Context, topic string) (*confirmChannel, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if p.cur != nil && (p.cur.isDead() || p.cur.ch.IsClosed()) {
		p.cur = nil
	}
	if p.cur == nil {
		get := p.conn.get
		if p.cfg.PublishTimeout < 0 {
			get = func(context.Context) (*amqp.Connection, error) { return p.conn.getNow() }
		}
		ac, err := get(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := ac.Channel()
		if err != nil {
			return nil, fmt.Errorf("%w: open channel: %v", ErrNotConnected, err)
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("%w: enable confirms: %v", ErrNotConnected, err)
		}
		cc := &confirmChannel{ch: ch, pending: map[uint64]*waiter{}, ids: map[string]int{}}
		go cc.listen(ch.NotifyPublish(make(chan amqp.Confirmation, 256)), ch.NotifyReturn(make(chan amqp.Return)))
		p.cur = cc
		p.declared = map[string]bool{}
	}
	if topic != "" && !p.declared[topic] {
		if _, err := p.cur.ch.QueueDeclare(topic, true, false, false, false, nil); err != nil {
			p.cur = nil
			return nil, fmt.Errorf("rabbitmq: declare queue %s: %w", topic, err)
		}
		p.declared[topic] = true
	}
	return p.cur, nil
}

// add registers w under the channel's next delivery tag. It also makes
// pub's message id unique among the channel's messages awaiting a confirm,
// because returns name their message by it. A message whose UUID cannot be
// its message id — another pending message has it (the same message
// published twice), or it is longer than AMQP's 255 bytes — gets a made-up
// id, and its UUID in the header UUIDHeader, where the Subscriber looks
// first. It returns false when the channel is dead.
func (cc *confirmChannel) add(tag uint64, w *waiter, pub *amqp.Publishing) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.dead {
		return false
	}
	if uuid := pub.MessageId; len(uuid) > maxShortString || cc.ids[uuid] > 0 {
		pub.Headers[UUIDHeader] = uuid
		pub.MessageId = "~" + strconv.FormatUint(tag, 10)
		for cc.ids[pub.MessageId] > 0 {
			pub.MessageId += "~"
		}
	}
	w.id = pub.MessageId
	cc.ids[w.id]++
	cc.pending[tag] = w
	return true
}

// resolved forgets w's message id; cc.mu must be held.
func (cc *confirmChannel) resolved(w *waiter) {
	if cc.ids[w.id]--; cc.ids[w.id] <= 0 {
		delete(cc.ids, w.id)
	}
}

// fail resolves a waiter whose message could not be written.
func (cc *confirmChannel) fail(w *waiter, err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for tag, pw := range cc.pending {
		if pw == w {
			delete(cc.pending, tag)
			cc.resolved(w)
		}
	}
	w.err = fmt.Errorf("%w: %v", errConnLost, err)
	close(w.done)
}

func (cc *confirmChannel) isDead() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.dead
}

// listen resolves waiters from the broker's confirms and returns. A return
// (unroutable) always arrives before the confirm of the same message and the
// returns channel is unbuffered, so this one goroutine sees it first. Returns
// name their message by its message id, which add keeps unique among the
// messages awaiting a confirm.
func (cc *confirmChannel) listen(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return) {
	returned := map[string]string{}
	for {
		select {
		case r, ok := <-returns:
			if ok {
				returned[r.MessageId] = fmt.Sprintf("%d %s (exchange %q, routing key %q)", r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
			} else {
				returns = nil
			}
		case c, ok := <-confirms:
			if !ok {
				cc.die()
				return
			}
			cc.mu.Lock()
			w := cc.pending[c.DeliveryTag]
			if w != nil {
				delete(cc.pending, c.DeliveryTag)
				cc.resolved(w)
			}
			cc.mu.Unlock()
			if w == nil {
				continue
			}
			switch reason, ret := returned[w.id]; {
			case ret:
				delete(returned, w.id)
				w.err = fmt.Errorf("%w: %s", ErrUnroutable, reason)
			case !c.Ack:
				w.err = errors.New("broker nacked the message")
			}
			close(w.done)
		}
	}
}

// die fails every message still waiting: the channel is gone and their fate unknown.
func (cc *confirmChannel) die() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.dead {
		return
	}
	cc.dead = true
	for tag, w := range cc.pending {
		w.err = errConnLost
		close(w.done)
		delete(cc.pending, tag)
	}
}

// toPublishing encodes a message: body as is, the UUID as the message id,
// the metadata keys that Config.Headers selects as string headers, the UUID
// also in UUIDHeader if Config.SendUUIDHeader, persistent delivery.
func toPublishing(m *message.Message, cfg *Config) amqp.Publishing {
	h := make(amqp.Table, len(m.Metadata)+1)
	for k, v := range m.Metadata {
		if cfg.Headers == nil || cfg.Headers(k) {
			h[k] = v
		}
	}
	if cfg.SendUUIDHeader {
		h[UUIDHeader] = m.UUID
	}
	return amqp.Publishing{
		Headers:      h,
		MessageId:    m.UUID,
		DeliveryMode: amqp.Persistent,
		Timestamp:    time.Now(),
		Body:         m.Payload,
	}
}

// Close stops the publisher; Publish calls in progress fail.
func (p *Publisher) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.mu.Lock()
	if p.cur != nil {
		_ = p.cur.ch.Close()
		p.cur = nil
	}
	p.mu.Unlock()
	return p.conn.close()
}
