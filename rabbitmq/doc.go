// Package rabbitmq is a Watermill [message.Publisher] and [message.Subscriber]
// for RabbitMQ, written on github.com/rabbitmq/amqp091-go for the worker's
// needs: nothing acknowledged or reported published that the broker did not
// take.
//
// # Publisher
//
// Publish returns nil only after the broker confirmed every message of the
// call. Confirms are pipelined: concurrent callers share one confirm-mode
// channel, each message is written at once and the caller waits only for its
// own confirms, so throughput is bound by the broker, not by a round trip per
// message (watermill-amqp's ConfirmDelivery waits for each confirm before
// sending the next message). Messages are persistent and published with the
// mandatory flag: a message no queue takes comes back and Publish returns
// [ErrUnroutable] instead of succeeding into the void. Queues are declared
// (durable) when first used and again after every reconnect.
//
// While the connection is down Publish waits up to Config.PublishTimeout for
// it to come back, retrying messages whose fate is unknown (the connection
// dropped before their confirm), and fails with [ErrNotConnected] or
// [ErrNotConfirmed] when the time is up; it never reports success for a
// message the broker did not confirm. A retried message may reach the queue
// twice; consumers are idempotent.
//
// # Subscriber
//
// Each Subscribe is one consumer on its own channel with its own prefetch. As
// Watermill requires, a subscription hands out the next message only after
// the previous one was acked or nacked; the broker acknowledgement is sent
// only then (nack requeues). Concurrency comes from several subscriptions to
// the same queue — they compete, as consumers of a RabbitMQ queue do — which
// is what the worker's Subscriber does with Consumers > 1. A delivery that
// cannot be turned into a message (a header that is not a string) is not
// requeued forever: it is handed out with metadata [MetadataMalformed]
// carrying the reason, so the consumer can poison it. After a connection loss
// subscriptions re-establish themselves; deliveries in flight at that moment
// are redelivered by the broker.
//
// Queue names are the Watermill topics; the default exchange routes to them.
package rabbitmq
