package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue arguments this package declares.
const (
	argDLX        = "x-dead-letter-exchange"
	argDLRouting  = "x-dead-letter-routing-key"
	argMessageTTL = "x-message-ttl"
)

// maxQueueName is the longest queue name AMQP allows (a short string).
const maxQueueName = 255

// declarer declares queues the way Config asks, each on a short-lived
// channel of its own (a refused declaration closes its channel, and must not
// take a publisher's confirm channel or a consumer with it), and remembers
// which queues have dead-lettering.
type declarer struct {
	deadLetter func(queue string) string
	log        *slog.Logger
	// conflictLevel is the level of the line logged when a queue exists
	// with other arguments: WARN on the Subscriber, which acts on it (and
	// explains what to do); INFO on the Publisher, so that a worker with
	// both logs one warning per queue.
	conflictLevel slog.Level

	mu     sync.Mutex
	dlx    map[string]bool // queue: its last declaration set up dead-lettering
	warned map[string]bool // queue: its conflict was logged
}

func newDeclarer(cfg Config, log *slog.Logger, conflictLevel slog.Level) *declarer {
	return &declarer{deadLetter: cfg.DeadLetter, log: log, conflictLevel: conflictLevel,
		dlx: map[string]bool{}, warned: map[string]bool{}}
}

// deadLettering reports whether queue's last declaration set up dead-lettering.
func (d *declarer) deadLettering(queue string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dlx[queue]
}

// deadLetterOf is queue's dead-letter queue, "" for none.
func (d *declarer) deadLetterOf(queue string) string {
	if d.deadLetter == nil {
		return ""
	}
	if dl := d.deadLetter(queue); dl != queue {
		return dl
	}
	return "" // a queue cannot be its own dead-letter queue: rejects would come straight back
}

// queue declares the durable queue name with the dead-letter arguments
// Config.DeadLetter asks for, its dead-letter queue first (and that one's,
// and so on), so that nothing is dead-lettered into a queue that does not
// exist. A queue that exists with other arguments is used as it is, without
// dead-lettering, and logged once.
func (d *declarer) queue(ac *amqp.Connection, name string) error {
	chs := &channels{ac: ac}
	defer chs.close()
	return d.chain(chs, name, map[string]bool{})
}

func (d *declarer) chain(chs *channels, name string, seen map[string]bool) error {
	seen[name] = true
	dl := d.deadLetterOf(name)
	var args amqp.Table
	if dl != "" {
		if !seen[dl] {
			if err := d.chain(chs, dl, seen); err != nil {
				return err
			}
		}
		args = amqp.Table{argDLX: "", argDLRouting: dl}
	}
	ch, err := chs.get()
	if err != nil {
		return err
	}
	_, refused := ch.QueueDeclare(name, true, false, false, false, args)
	if refused == nil {
		d.mu.Lock()
		d.dlx[name] = dl != ""
		d.mu.Unlock()
		return nil
	}
	chs.dead()
	if !isPreconditionFailed(refused) {
		return fmt.Errorf("rabbitmq: declare queue %s: %w", name, refused)
	}
	// The queue exists with other arguments. Use it as it is.
	ch, err = chs.get()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclarePassive(name, true, false, false, false, nil); err != nil {
		chs.dead()
		return fmt.Errorf("rabbitmq: declare queue %s: %v; then declaring it passively: %w", name, refused, err)
	}
	d.mu.Lock()
	d.dlx[name] = false
	first := !d.warned[name]
	d.warned[name] = true
	d.mu.Unlock()
	if first {
		d.logConflict(name, dl, refused)
	}
	return nil
}

func (d *declarer) logConflict(name, dl string, err error) {
	if dl == "" {
		d.log.Log(context.Background(), d.conflictLevel, "queue exists with arguments this worker does not declare; using it as it is",
			"queue", name, "broker_said", err.Error(),
			"to_do", fmt.Sprintf("nothing, unless it should have none: then drain and delete queue %s so that it is declared again", name))
		return
	}
	d.log.Log(context.Background(), d.conflictLevel, "queue exists without the dead-letter arguments; using it as it is, without dead-lettering: messages the consumer rejects are requeued instead",
		"queue", name, "dead_letter_queue", dl, "broker_said", err.Error(),
		"to_do", fmt.Sprintf("drain and delete queue %s (rabbitmqctl delete_queue %s) so that it is declared again with %s \"\" and %s %q", name, name, argDLX, argDLRouting, dl))
}

// waitQueue declares the durable wait queue name: its messages expire after
// ttl and are dead-lettered to the queue topic. A wait queue that exists with
// other arguments is an error: its messages might never come back.
func (d *declarer) waitQueue(ac *amqp.Connection, name string, ttl time.Duration, topic string) error {
	chs := &channels{ac: ac}
	defer chs.close()
	ch, err := chs.get()
	if err != nil {
		return err
	}
	args := amqp.Table{argMessageTTL: ttl.Milliseconds(), argDLX: "", argDLRouting: topic}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		chs.dead()
		if isPreconditionFailed(err) {
			return fmt.Errorf("rabbitmq: declare wait queue %s: it exists with other arguments than %s %d, %s \"\", %s %q; move its messages elsewhere and delete it so that it is declared again: %w",
				name, argMessageTTL, ttl.Milliseconds(), argDLX, argDLRouting, topic, err)
		}
		return fmt.Errorf("rabbitmq: declare wait queue %s: %w", name, err)
	}
	return nil
}

func isPreconditionFailed(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed
}

// channels hands out one channel of ac, opening another after a refusal
// closed it.
type channels struct {
	ac *amqp.Connection
	ch *amqp.Channel
}

func (c *channels) get() (*amqp.Channel, error) {
	if c.ch != nil && !c.ch.IsClosed() {
		return c.ch, nil
	}
	ch, err := c.ac.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel: %v", ErrNotConnected, err)
	}
	c.ch = ch
	return ch, nil
}

// dead forgets the channel (the broker closed it, or is closing it).
func (c *channels) dead() {
	if c.ch != nil {
		_ = c.ch.Close()
		c.ch = nil
	}
}

func (c *channels) close() { c.dead() }
