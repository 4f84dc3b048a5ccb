package worker

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// metaMalformed marks a delivery that could not be turned into a message; the
// subscriber poisons it with this reason.
const metaMalformed = "worker_malformed"

// amqpMarshaler is Watermill's default AMQP marshaler, except that a delivery
// it cannot unmarshal (say, a header that is not a string) becomes a message
// marked malformed instead of an error. Watermill nacks such deliveries with
// requeue, so a single bad message would loop forever; marked, it is poisoned
// with the reason and the stream keeps flowing.
type amqpMarshaler struct{ amqp.DefaultMarshaler }

func (m amqpMarshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	msg, err := m.DefaultMarshaler.Unmarshal(d)
	if err == nil {
		if msg.UUID == "" { // published by something other than Watermill
			msg.UUID = deliveryID(d)
		}
		return msg, nil
	}
	msg = message.NewMessage(deliveryID(d), d.Body)
	for k, v := range d.Headers {
		if s, ok := v.(string); ok {
			msg.Metadata[k] = s
		}
	}
	msg.Metadata[metaMalformed] = fmt.Sprintf("delivery from RabbitMQ could not be read: %v", err)
	return msg, nil
}

// deliveryID is the Watermill UUID header, else the AMQP message-id, else a new UUID.
func deliveryID(d amqp091.Delivery) string {
	if s, ok := d.Headers[amqp.DefaultMessageUUIDHeaderKey].(string); ok && s != "" {
		return s
	}
	if d.MessageId != "" {
		return d.MessageId
	}
	return watermill.NewUUID()
}

// amqpConfig is the RabbitMQ configuration the worker uses: durable queues
// named after the topics on the default exchange, persistent messages,
// publisher confirms.
func amqpConfig(mq MQConfig) amqp.Config {
	ac := amqp.NewDurableQueueConfig(mq.URL)
	ac.Marshaler = amqpMarshaler{}
	ac.Publish.ConfirmDelivery = true
	ac.Publish.ChannelPoolSize = mq.PublishChannels
	ac.Consume.Qos.PrefetchCount = mq.Prefetch
	return ac
}
