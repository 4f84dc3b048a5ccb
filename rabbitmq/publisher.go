package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

// UUIDHeader is where watermill-amqp carries the Watermill message UUID. The
// Subscriber reads the UUID from it when it is there (from the AMQP message
// id otherwise); the Publisher sends it with Config.SendUUIDHeader.
const UUIDHeader = "_watermill_message_uuid"

// Publisher publishes Watermill messages to RabbitMQ queues with pipelined
// publisher confirms. It is safe for concurrent use.
type Publisher struct {
	cfg  Config // with the URL redacted
	conn *conn
	decl *declarer

	// lock is held (it holds a token) while the channel is set up and frames
	// are written: a mutex that a caller out of time can stop waiting for.
	lock     chan struct{}
	ac       *amqp.Connection // cur's connection
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

// queueDecl is a queue a publish needs declared.
type queueDecl struct {
	name  string
	ttl   time.Duration // > 0: a wait queue, whose messages go to topic after ttl
	topic string
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
	return &Publisher{cfg: c.cfg, conn: c, decl: newDeclarer(cfg, c.log, slog.LevelInfo),
		lock: make(chan struct{}, 1), declared: map[string]bool{}}, nil
}

// SubscribeInitialize declares the durable queue topic (with the
// dead-lettering Config.DeadLetter asks for) so that messages published to
// it wait there until a consumer comes. Publish declares the queues it uses
// anyway; call this to declare them up front.
func (p *Publisher) SubscribeInitialize(topic string) error {
	ctx, cancel := p.timeout(context.Background())
	defer cancel()
	if err := p.acquire(ctx); err != nil {
		return fmt.Errorf("rabbitmq: declare queue %s: %w", topic, err)
	}
	defer p.release()
	_, err := p.channelLocked(ctx, []queueDecl{{name: topic}})
	return err
}

func (p *Publisher) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.cfg.PublishTimeout > 0 {
		return context.WithTimeout(ctx, p.cfg.PublishTimeout)
	}
	return context.WithTimeout(ctx, p.cfg.DialTimeout)
}

// acquire takes p.lock, giving up when ctx is done.
func (p *Publisher) acquire(ctx context.Context) error {
	select {
	case p.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: other publishes held the publisher for %v", ErrNotConfirmed, p.cfg.PublishTimeout)
	}
}

func (p *Publisher) release() { <-p.lock }

// Publish sends the messages to the queue named topic and returns nil only
// when the broker confirmed all of them. Messages whose confirm was lost with
// the connection are sent again (at least once) until PublishTimeout. While
// the broker blocks publishers (a memory or disk alarm) nothing is sent:
// Publish waits for the block to end, and when PublishTimeout comes first it
// fails with an error that wraps both [ErrNotConfirmed] and [ErrBlocked].
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.publish(topic, []queueDecl{{name: topic}}, false, msgs)
}

// PublishDelayed publishes the messages as Publish does (persistent,
// confirmed, mandatory, the same headers and message id), but not to the
// queue topic: to a durable wait queue of topic's, from which the broker
// moves them to topic after about delay. The wait is the broker's, so it
// survives the publisher, and a message waiting costs no consumer anything:
// this is for redelivery later when nothing else can hold a message, never
// a tight requeue loop.
//
// There is one wait queue per topic and delay bucket: 1s, 2s, 5s, 10s, 20s,
// 45s, 90s, 3m, 7m, 15m, 30m and 1h. Each is named "<topic>.wait.<bucket>"
// (such as "orders.wait.45s") and declared when first used (and again after
// a reconnect) with x-message-ttl the bucket, x-dead-letter-exchange "" and
// x-dead-letter-routing-key topic, and no expiry; the queue topic is declared
// too, so the messages have somewhere to go. A delay uses the largest bucket
// not longer than itself, so a message never comes back later than asked
// (but for the broker's scheduling), and a long delay never holds up a short
// one: they wait in different queues. Two consequences for the consumer:
//
//   - A message may come back EARLIER than asked: 2.5s waits 2s, 59m waits
//     30m, and delays above 1h wait 1h. A consumer that needs a not-before
//     time carries it in the message (the worker uses a metadata key),
//     checks it on delivery, and delays the message again for the rest.
//   - Delays shorter than the shortest bucket, 0 and negative ones included,
//     wait 1s: the broker never hands a delayed message back at once.
//
// The message comes back with its body, UUID and headers, and with the
// headers RabbitMQ adds when it dead-letters a message: x-death (as a string,
// see [HeaderString]), x-first-death-queue, x-first-death-reason
// ("expired") and x-first-death-exchange. These broker headers are not sent
// when the message is delayed again: the broker writes its own.
func (p *Publisher) PublishDelayed(topic string, delay time.Duration, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	if topic == "" {
		return errors.New("rabbitmq: PublishDelayed: the topic is empty")
	}
	wq, b, err := waitQueueFor(topic, delay)
	if err != nil {
		return err
	}
	return p.publish(wq, []queueDecl{{name: topic}, {name: wq, ttl: b.delay, topic: topic}}, true, msgs)
}

// publish sends msgs to the queue route once the queues decls are declared;
// delayed leaves the broker's dead-letter headers out.
func (p *Publisher) publish(route string, decls []queueDecl, delayed bool, msgs []*message.Message) error {
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
	// Messages whose confirm a lost connection left unknown are sent again
	// after a pause growing from 50ms to 1s.
	pauses := backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.2,
		Multiplier: 2, MaxInterval: time.Second}
	for {
		failed, err := p.publishOnce(ctx, route, decls, delayed, todo)
		if err != nil {
			return p.explain(ctx, err) // not retryable (unroutable, closed, bad headers) or out of time
		}
		if len(failed) == 0 {
			return nil
		}
		lastErr = failed[0].err
		if p.cfg.PublishTimeout < 0 {
			return fmt.Errorf("%w: %d of %d message(s) to %s: %v", ErrNotConfirmed, len(failed), len(msgs), route, lastErr)
		}
		todo = todo[:0:0]
		for _, f := range failed {
			todo = append(todo, f.msg)
		}
		select {
		case <-ctx.Done():
			return p.explain(ctx, fmt.Errorf("%w: %d of %d message(s) to %s within %v: %v", ErrNotConfirmed, len(todo), len(msgs), route, p.cfg.PublishTimeout, lastErr))
		case <-time.After(pauses.NextBackOff()):
		}
	}
}

// explain adds to an error of a publish that ran out of time that the broker
// is blocking publishers, if it is.
func (p *Publisher) explain(ctx context.Context, err error) error {
	if ctx.Err() == nil || errors.Is(err, ErrBlocked) {
		return err
	}
	if b := p.conn.blockedNow(); b.over != nil {
		return fmt.Errorf("%w: %w", err, p.blockedErr(b))
	}
	return err
}

// blockedErr is ErrBlocked with since when and why.
func (p *Publisher) blockedErr(b blockState) error {
	reason := b.reason
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Errorf("%w since %s (%v): %s", ErrBlocked, b.since.UTC().Format(time.RFC3339),
		p.conn.now().Sub(b.since).Round(time.Second), reason)
}

// waitUnblocked waits while the broker blocks publishers: it would not read
// what is written meanwhile, and a write could then hold the connection
// until the block ends.
func (p *Publisher) waitUnblocked(ctx context.Context, route string, n int) error {
	b := p.conn.blockedNow()
	if b.over == nil {
		return nil
	}
	if p.cfg.PublishTimeout < 0 {
		return fmt.Errorf("%w: %d message(s) to %s not sent: %w", ErrNotConfirmed, n, route, p.blockedErr(b))
	}
	select {
	case <-b.over:
		return nil
	case <-p.conn.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %d message(s) to %s not sent within %v: %w", ErrNotConfirmed, n, route, p.cfg.PublishTimeout, p.blockedErr(b))
	}
}

type failedMsg struct {
	msg *message.Message
	err error
}

// publishOnce writes the messages on the current confirm channel and waits for
// their confirms. It returns the messages whose fate is unknown or nacked.
func (p *Publisher) publishOnce(ctx context.Context, route string, decls []queueDecl, delayed bool, msgs []*message.Message) ([]failedMsg, error) {
	if err := p.waitUnblocked(ctx, route, len(msgs)); err != nil {
		return nil, err
	}
	waiters := make([]*waiter, len(msgs))
	var failed []failedMsg

	if err := p.acquire(ctx); err != nil {
		return nil, fmt.Errorf("%d message(s) to %s not sent: %w", len(msgs), route, err)
	}
	cc, err := p.channelLocked(ctx, decls)
	if err != nil {
		p.release()
		return nil, err
	}
	for i, m := range msgs {
		pub := toPublishing(m, &p.cfg, delayed)
		w := &waiter{done: make(chan struct{})}
		waiters[i] = w // every message gets a verdict, failures included
		if !cc.add(cc.ch.GetNextPublishSeqNo(), w, &pub) {
			w.err = errConnLost
			close(w.done)
			continue
		}
		if err := cc.ch.PublishWithContext(ctx, "", route, true, false, pub); err != nil {
			cc.fail(w, err)
			if errors.Is(err, amqp.ErrClosed) {
				p.cur = nil
			}
		}
	}
	p.release()

	for i, w := range waiters {
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no confirm for message %s to %s within %v", ErrNotConfirmed, msgs[i].UUID, route, p.cfg.PublishTimeout)
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

// channelLocked returns a live confirm channel, opening one when needed,
// and declares the queues decls not declared yet on its connection. p.lock
// must be held.
func (p *Publisher) channelLocked(ctx context.Context, decls []queueDecl) (*confirmChannel, error) {
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
		p.cur, p.ac = cc, ac
		p.declared = map[string]bool{}
	}
	for _, d := range decls {
		if d.name == "" || p.declared[d.name] {
			continue
		}
		var err error
		if d.ttl > 0 {
			err = p.decl.waitQueue(p.ac, d.name, d.ttl, d.topic)
		} else {
			err = p.decl.queue(p.ac, d.name)
		}
		if err != nil {
			return nil, err
		}
		p.declared[d.name] = true
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

// deathHeaders are the headers RabbitMQ writes when it dead-letters a
// message. PublishDelayed does not send them: the broker writes its own, and
// it would take a string x-death (as the Subscriber hands it out) for a
// malformed one.
var deathHeaders = map[string]bool{
	"x-death": true, "x-first-death-exchange": true, "x-first-death-queue": true, "x-first-death-reason": true,
	"x-last-death-exchange": true, "x-last-death-queue": true, "x-last-death-reason": true,
}

// toPublishing encodes a message: body as is, the UUID as the message id,
// the metadata keys that Config.Headers selects as string headers (never
// MetadataReject, a verdict for the broker and not data; for a delayed
// message not the broker's dead-letter headers), the UUID also in UUIDHeader
// if Config.SendUUIDHeader, persistent delivery.
func toPublishing(m *message.Message, cfg *Config, delayed bool) amqp.Publishing {
	h := make(amqp.Table, len(m.Metadata)+1)
	for k, v := range m.Metadata {
		if k == MetadataReject || k == MetadataExpiration || (delayed && deathHeaders[k]) {
			continue
		}
		if cfg.Headers == nil || cfg.Headers(k) {
			h[k] = v
		}
	}
	if cfg.SendUUIDHeader {
		h[UUIDHeader] = m.UUID
	}
	pub := amqp.Publishing{
		Headers:      h,
		MessageId:    m.UUID,
		DeliveryMode: amqp.Persistent,
		Timestamp:    time.Now(),
		Body:         m.Payload,
	}
	if ttl := m.Metadata.Get(MetadataExpiration); ttl != "" && !delayed {
		pub.Expiration = ttl
	}
	return pub
}

// Close stops the publisher; Publish calls in progress fail.
func (p *Publisher) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Closing the connection first ends the waits of Publish calls in
	// progress (for a connection, for confirms) at once.
	err := p.conn.close()
	p.lock <- struct{}{}
	p.cur, p.ac = nil, nil
	<-p.lock
	return err
}
