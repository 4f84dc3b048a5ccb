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
// Each Subscribe is one consumer on its own channel with its own prefetch.
// By default (Config.MaxInFlight 1), as Watermill's contract has it, a
// subscription hands out the next message only after the previous one was
// acked or nacked, and the broker acknowledgement is sent only then (nack
// requeues); order is kept. A consumer that handles messages concurrently sets
// MaxInFlight higher (the worker's Subscriber sets it to the prefetch): up to
// that many messages are in hand at once, and each is acked or nacked on the
// broker as soon as its own verdict comes, in any order (AMQP acks by
// delivery tag). Several subscriptions to the same queue compete, as
// consumers of a RabbitMQ queue do. Every delivery becomes a message: header
// values that are not strings (from other clients, RabbitMQ's own x-death
// after dead-lettering, a shovel's headers) are converted to strings as
// [HeaderString] documents. After a connection loss subscriptions re-establish
// themselves; deliveries in flight at that moment are redelivered by the
// broker. Their verdicts, when they come, go to the dead channel they came on
// and are dropped there; they are never sent on the new channel, where their
// delivery tags would name other deliveries.
//
// # Wire
//
// The message UUID travels as the AMQP message id, the metadata as string
// headers; headers of other types are read as [HeaderString] writes them. Config.Headers leaves out of the headers what the body carries
// anyway: every header costs the broker work on every message. A UUID that
// cannot be the message id (longer than 255 bytes, or the same as that of
// another message awaiting its confirm on the channel, which would confuse
// their returns) is sent in the header [UUIDHeader] instead, where
// watermill-amqp puts it; Config.SendUUIDHeader sends it there always, for
// watermill-amqp's subscriber. The Subscriber reads either.
//
// Queue names are the Watermill topics; the default exchange routes to them.
package rabbitmq
