package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Subscriber consumes Watermill messages from RabbitMQ queues. It is safe for
// concurrent use; each Subscribe is an independent consumer.
type Subscriber struct {
	cfg     Config // with the URL redacted
	conn    *conn
	decl    *declarer
	closing chan struct{}
	closed  atomic.Bool
	subs    sync.WaitGroup
}

// NewSubscriber connects to the broker (failing fast with a clear error if it
// cannot) and returns a Subscriber that keeps reconnecting in the background.
func NewSubscriber(ctx context.Context, cfg Config) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c, err := dialConn(ctx, cfg, "subscriber")
	if err != nil {
		return nil, err
	}
	return &Subscriber{cfg: c.cfg, conn: c, decl: newDeclarer(cfg, c.log, slog.LevelWarn), closing: make(chan struct{})}, nil
}

// SubscribeInitialize declares the durable queue topic, with the
// dead-lettering Config.DeadLetter asks for (and its dead-letter queue).
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	defer cancel()
	ac, err := s.conn.get(ctx)
	if err != nil {
		return err
	}
	return s.decl.queue(ac, topic)
}

// DeadLettering reports whether queue has dead-lettering: whether the
// Subscriber's last declaration of it (by SubscribeInitialize, or by
// Subscribe, which declares its queue whenever it starts consuming, after
// every reconnect too) set up the dead-letter queue Config.DeadLetter names.
// It is false before this Subscriber declared queue, when Config.DeadLetter
// names no dead-letter queue for it, and when the queue already existed
// with other arguments (a WARN said so once). While it is false, a message
// marked with [MetadataReject] is requeued, not rejected.
func (s *Subscriber) DeadLettering(queue string) bool { return s.decl.deadLettering(queue) }

// Subscribe consumes from the queue named topic until ctx is done or the
// subscriber is closed. It hands out up to Config.MaxInFlight messages at a
// time; with the default of 1 the next message comes only after the previous
// one was acked or nacked. Each message is acked to the broker when it is
// acked, or nacked with requeue when it is nacked (rejected, for the broker
// to dead-letter it, when it carries [MetadataReject] and the queue has
// dead-lettering), as soon as that happens and in whatever order. When ctx
// is done the consumer stops taking deliveries, the messages in hand are
// still acked or nacked when their handlers decide, and then the channel
// closes. Close cuts that short: the messages in hand are nacked.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	// Set up the first consumer synchronously so that errors surface here.
	cons, err := s.consume(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.subs.Add(1)
	go s.run(ctx, topic, cons, out)
	return out, nil
}

type consumer struct {
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     <-chan *amqp.Error // why ch closed, when the broker said
	tag        string
	acker      *acker
}

func (s *Subscriber) consume(ctx context.Context, topic string) (*consumer, error) {
	ac, err := s.conn.get(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.decl.queue(ac, topic); err != nil {
		return nil, err
	}
	ch, err := ac.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel: %v", ErrNotConnected, err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("rabbitmq: set prefetch %d: %w", s.cfg.Prefetch, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	tag := "worker-" + watermill.NewShortUUID()
	d, err := ch.Consume(topic, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("rabbitmq: consume %s: %w", topic, err)
	}
	return &consumer{ch: ch, deliveries: d, closed: closed, tag: tag, acker: newAcker(ch)}, nil
}

// run hands out the subscription's deliveries and consumes again after the
// channel or the connection dropped. An outage is logged in few lines: a
// WARN when the channel drops, at most one WARN a minute while consuming
// again fails, an INFO when it consumes again.
func (s *Subscriber) run(ctx context.Context, topic string, cons *consumer, out chan *message.Message) {
	defer s.subs.Done()
	defer close(out)
	// hand has a slot for every message handed out and not yet acked or
	// nacked, over all the channels of this subscription.
	hand := &inHand{slots: make(chan struct{}, s.cfg.MaxInFlight)}
	defer hand.wg.Wait()
	log := s.conn.log.With("queue", topic)
	down := outage{now: s.conn.now}
	for {
		stopped := s.deliver(ctx, topic, cons, out, hand, log)
		if stopped {
			// Acks and nacks of the messages in hand need the channel:
			// close it only after the last verdict (Close nacks them all).
			hand.wg.Wait()
			_ = cons.ch.Close() // unacked prefetched deliveries go back to the queue
			return
		}
		// The channel or connection dropped. The broker requeues whatever
		// it had not been acked on it. The messages in hand stay in hand:
		// their verdicts go to the dead channel (their delivery tags mean
		// nothing on any other) and fail there, so none is acked twice.
		var why error
		select {
		case e := <-cons.closed:
			if e != nil {
				why = e
			}
		default:
		}
		_ = cons.ch.Close()
		down.begin()
		log.Warn("subscription interrupted, consuming again when possible", "err", why)
		// Consume again once reconnected.
		bo := s.cfg.reconnectBackOff()
		for {
			if ctx.Err() != nil || s.closed.Load() {
				return
			}
			var err error
			cctx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-s.closing:
					cancel()
				case <-cctx.Done():
				}
			}()
			cons, err = s.consume(cctx, topic)
			cancel()
			if err == nil {
				lasted, failures, _ := down.end()
				log.Info("consuming again", "outage", lasted.Round(time.Millisecond), "failed_attempts", failures)
				break
			}
			if ctx.Err() != nil || s.closed.Load() {
				return
			}
			if down.failed() {
				log.Warn("still cannot consume", "outage", down.since().Round(time.Second), "failed_attempts", down.failures, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			case <-time.After(bo.NextBackOff()):
			}
		}
	}
}

// inHand counts a subscription's messages handed out and awaiting a verdict.
type inHand struct {
	slots chan struct{} // bounds them to MaxInFlight
	wg    sync.WaitGroup
}

// deliver hands deliveries out, up to MaxInFlight at a time. It returns true
// when the subscription should end (ctx done or subscriber closed), false
// when the channel dropped.
func (s *Subscriber) deliver(ctx context.Context, topic string, cons *consumer, out chan *message.Message, hand *inHand, log *slog.Logger) bool {
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-cons.deliveries:
			if !ok {
				return ctx.Err() != nil || s.closed.Load()
			}
		case <-ctx.Done():
			return true
		case <-s.closing:
			return true
		}
		// Wait for a free slot. The delivery waits with it: the broker has
		// sent it to this channel, and only a nack or the channel's end
		// returns it to the queue.
		select {
		case hand.slots <- struct{}{}:
		case <-ctx.Done():
			_ = d.Nack(false, true)
			return true
		case <-s.closing:
			_ = d.Nack(false, true)
			return true
		}
		msg := toMessage(d)
		mctx, cancel := context.WithCancel(ctx)
		msg.SetContext(mctx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			<-hand.slots
			_ = d.Nack(false, true)
			return true
		case <-s.closing:
			cancel()
			<-hand.slots
			_ = d.Nack(false, true)
			return true
		}
		cons.acker.handOut(d.DeliveryTag)
		hand.wg.Add(1)
		go s.settle(cons.acker, topic, d.DeliveryTag, msg, cancel, hand, log)
	}
}

// settle waits for msg's verdict, even if the subscription's ctx ends
// meanwhile (a draining handler still gets its ack through; only Close cuts
// it short), and passes it on to the broker through the acker of the channel
// the delivery came on, whatever happened to that channel since.
func (s *Subscriber) settle(a *acker, topic string, tag uint64, msg *message.Message, cancel context.CancelFunc, hand *inHand, log *slog.Logger) {
	var ack, nack bool
	select {
	case <-msg.Acked():
		ack = true
	case <-msg.Nacked():
		nack = true
	case <-s.closing:
		select {
		case <-msg.Acked(): // acked before Close: keep it
			ack = true
		default:
		}
	}
	var reason string
	if nack {
		// The consumer set MetadataReject, if at all, before Nack: the
		// nack channel's close orders that write before this read.
		reason = msg.Metadata.Get(MetadataReject)
	}
	switch {
	case ack:
		a.settle(tag, true)
	case reason != "":
		if s.decl.deadLettering(topic) {
			a.reject(tag)
			break
		}
		why := "Config.DeadLetter names no dead-letter queue for it"
		if s.decl.deadLetterOf(topic) != "" {
			why = "it exists without the dead-letter arguments (a warning said so when it was declared)"
		}
		log.Error("message marked for rejection requeued instead: its queue has no dead-lettering, and rejecting it would drop it",
			"message_uuid", msg.UUID, "reject_reason", reason, "why", why)
		a.settle(tag, false)
	default:
		a.settle(tag, false)
	}
	cancel()
	<-hand.slots
	hand.wg.Done()
}

// toMessage turns a delivery into a message: the UUID from UUIDHeader or
// else the AMQP message id (a new UUID when there is neither), every other
// header as metadata, converted to a string by [HeaderString]. Headers from
// other clients and from the broker (x-death, a shovel's) are metadata like
// any other; no header makes a delivery unreadable. A MetadataReject header
// is dropped: that verdict is the consumer's.
func toMessage(d amqp.Delivery) *message.Message {
	var id string
	if v, ok := d.Headers[UUIDHeader]; ok {
		id = HeaderString(v)
	}
	if id == "" {
		id = d.MessageId
	}
	if id == "" {
		id = watermill.NewUUID()
	}
	msg := message.NewMessage(id, d.Body)
	for k, v := range d.Headers {
		if k != UUIDHeader && k != MetadataReject {
			msg.Metadata[k] = HeaderString(v)
		}
	}
	return msg
}

// Close stops every subscription (messages in hand are nacked and requeued)
// and closes the connection.
func (s *Subscriber) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.closing)
	s.subs.Wait()
	return s.conn.close()
}
