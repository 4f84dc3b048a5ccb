package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// PublisherConfig configures a [Publisher]. Zero fields take the stated defaults.
type PublisherConfig struct {
	// Publisher is the transport to publish to. Required.
	Publisher message.Publisher
	// Declarer, when set, declares every queue of the Topology when the
	// Publisher is created, so that actions published before any subscriber
	// exists wait in their queue instead of being dropped. Watermill's AMQP
	// subscriber is one (it declares durable queues); so is the embedded transport.
	Declarer message.SubscribeInitializer
	// Topology maps action types to queues. Default: Prefix "worker", DefaultRoutes().
	Topology Topology
	// MaxPayloadBytes is the largest encoded action accepted. Default 1 MiB.
	MaxPayloadBytes int
	// PackActions, when above 1, packs the actions of one Publish call
	// bound for the same queue into packed messages (wire version
	// [WirePacked]) of at most PackActions actions each: on a broker whose
	// cost is per message (RabbitMQ with confirms), a batch then costs a
	// few messages instead of one per action. A lone action, and one too
	// large to share a pack, travels as its own message (version 1), and
	// so does every event (the events queue is read by other systems).
	// Every Subscriber reads both. Default 1: no packing. At most 10000.
	PackActions int
	// PackBytes bounds the body of a packed message. Default 256 KiB, or
	// MaxPayloadBytes when that is smaller; at most MaxPayloadBytes (the
	// subscriber refuses a larger message).
	PackBytes int
}

func (c *PublisherConfig) setDefaults() {
	c.Topology.setDefaults()
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = defaultMaxPayload
	}
	if c.PackActions == 0 {
		c.PackActions = 1
	}
	if c.PackBytes == 0 {
		c.PackBytes = min(defaultPackBytes, c.MaxPayloadBytes)
	}
}

// Validate names the first bad field.
func (c PublisherConfig) Validate() error {
	if c.Publisher == nil {
		return configError("Publisher", "is required")
	}
	if c.MaxPayloadBytes < 0 {
		return configError("MaxPayloadBytes", "is %d, must not be negative", c.MaxPayloadBytes)
	}
	if c.PackActions < 0 || c.PackActions > maxPackActions {
		return configError("PackActions", "is %d, must be 0-%d", c.PackActions, maxPackActions)
	}
	if c.PackBytes < 0 || c.MaxPayloadBytes > 0 && c.PackBytes > c.MaxPayloadBytes {
		return configError("PackBytes", "is %d, must be 0-%d (MaxPayloadBytes)", c.PackBytes, max(c.MaxPayloadBytes, defaultMaxPayload))
	}
	return c.Topology.Validate()
}

// Publisher puts actions on the queues of a [Topology]. It is safe for
// concurrent use.
type Publisher struct {
	cfg    PublisherConfig
	obs    observer // the Worker's metrics
	events string   // the events queue's topic, never packed
}

// NewPublisher validates cfg, declares the topology's queues when cfg.Declarer
// is set, and returns a Publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Topology.compile()
	if cfg.Declarer != nil {
		for _, topic := range cfg.Topology.Topics() {
			if err := cfg.Declarer.SubscribeInitialize(topic); err != nil {
				return nil, fmt.Errorf("worker: declare queue %s: %w", topic, err)
			}
		}
	}
	return &Publisher{cfg: cfg, obs: noObserver{}, events: cfg.Topology.Topic(QueueEvents)}, nil
}

// Publish validates and publishes the actions. Empty ID gets a UUID, empty Key
// the ID, zero CreatedAt the current time. Actions for the same queue go to the
// transport in one call, in order (packed into few messages when
// PublisherConfig.PackActions is above 1). If any action is invalid or too large,
// nothing is published. Publish returns nil only when the transport accepted
// every action (on RabbitMQ with confirms: the broker confirmed them).
func (p *Publisher) Publish(ctx context.Context, actions ...Action) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("worker: publish: %w", err)
	}
	if len(actions) == 0 {
		return nil
	}
	byTopic := make(map[string][]*message.Message, 1)
	var order []string
	now := time.Now().UTC()
	for i, a := range actions {
		m, err := encode(a.defaulted(now), p.cfg.MaxPayloadBytes)
		if err != nil {
			if len(actions) > 1 {
				return fmt.Errorf("action %d of %d: %w", i+1, len(actions), err)
			}
			return err
		}
		m.SetContext(ctx)
		topic := p.cfg.Topology.Topic(p.cfg.Topology.QueueFor(a.Type))
		if _, seen := byTopic[topic]; !seen {
			order = append(order, topic)
		}
		byTopic[topic] = append(byTopic[topic], m)
	}
	for _, topic := range order {
		msgs := byTopic[topic]
		if topic != p.events { // other systems read the events queue one message at a time
			msgs = packMessages(msgs, p.cfg.PackActions, p.cfg.PackBytes)
		}
		if err := p.cfg.Publisher.Publish(topic, msgs...); err != nil {
			p.obs.mqError(opPublish)
			return fmt.Errorf("worker: publish %d action(s) to %s: %w", len(byTopic[topic]), topic, err)
		}
		for _, m := range byTopic[topic] {
			p.obs.published(m.Metadata[MetaType])
		}
	}
	return nil
}

// defaulted is a as Publish sends it: without an ID a fresh one, without a
// Key its ID, without CreatedAt now.
func (a Action) defaulted(now time.Time) Action {
	if a.ID == "" {
		a.ID = uuid.NewString()
	}
	if a.Key == "" {
		a.Key = a.ID
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	return a
}

// publishRaw republishes a stored message unchanged but for its metadata.
func (p *Publisher) publishRaw(topic, id string, md map[string]string, body []byte) error {
	m := message.NewMessage(id, body)
	for k, v := range md {
		m.Metadata.Set(k, v)
	}
	if err := p.cfg.Publisher.Publish(topic, m); err != nil {
		p.obs.mqError(opRepublish)
		return err
	}
	return nil
}

// Topology returns the publisher's topology.
func (p *Publisher) Topology() Topology { return p.cfg.Topology }
