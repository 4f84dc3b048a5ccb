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
// When the broker blocks publishers (a memory or disk alarm: it sends
// connection.blocked, and stops reading from connections that publish), the
// block is logged at WARN with the broker's reason, and its end at INFO with
// how long it lasted. Meanwhile Publish writes nothing (what it wrote would
// wait unread in the socket) and waits for the block to end; if
// PublishTimeout comes first it fails with an error that wraps both
// [ErrNotConfirmed] and [ErrBlocked] and says since when the broker has been
// blocking and why.
//
// # Delayed redelivery
//
// [Publisher.PublishDelayed] parks messages on the broker: each goes to a
// wait queue of its topic, whose messages expire after the queue's TTL and
// are dead-lettered back to the topic. There is one wait queue per delay
// bucket (1s, 2s, 5s, 10s, 20s, 45s, 90s, 3m, 7m, 15m, 30m, 1h), all messages
// in a queue wait alike, and so a message delayed by an hour never holds up
// one delayed by a second (RabbitMQ expires messages only at the head of a
// queue, which per-message TTLs in one queue would run into). A message
// waits the largest bucket not longer than its delay, so it may come back
// early but never late (delays under 1s excepted: they wait 1s, so that
// nothing comes straight back); delays over 1h wait 1h. The consumer checks
// its own not-before time and delays the message again for the rest.
//
// # Dead-lettering
//
// With Config.DeadLetter a queue is declared with x-dead-letter-exchange ""
// and x-dead-letter-routing-key naming its dead-letter queue, which is
// declared too. A consumer that sets [MetadataReject] on a message before
// nacking it has it rejected (not requeued), and the broker moves it to the
// dead-letter queue, adding x-death with reason "rejected". A queue that
// already exists without these arguments cannot get them (RabbitMQ refuses
// to redeclare a queue with other arguments: PRECONDITION_FAILED): it is used
// as it is, one WARN names it and says what to do, and its rejected messages
// are requeued instead, with an ERROR each; [Subscriber.DeadLettering] tells
// in advance. A message is rejected only into a dead-letter queue that was
// declared, never dropped.
//
// # Queues
//
// Operators see these queues, all durable, none with an expiry:
//
//   - <topic>: a Watermill topic is the queue of that name, which the
//     default exchange routes to; with dead-lettering it has the arguments
//     x-dead-letter-exchange "" and x-dead-letter-routing-key
//     Config.DeadLetter(<topic>).
//   - Config.DeadLetter(<topic>): the dead-letter queue, where rejected
//     messages wait for an operator (or a consumer of its own).
//   - <topic>.wait.1s, <topic>.wait.2s, <topic>.wait.5s, <topic>.wait.10s,
//     <topic>.wait.20s, <topic>.wait.45s, <topic>.wait.90s, <topic>.wait.3m,
//     <topic>.wait.7m, <topic>.wait.15m, <topic>.wait.30m, <topic>.wait.1h:
//     the wait queues of PublishDelayed, each declared when first used, with
//     x-message-ttl the bucket in milliseconds, x-dead-letter-exchange "" and
//     x-dead-letter-routing-key <topic>. Their messages are on their way back
//     to <topic>: do not purge them, and delete a wait queue only when it is
//     empty (it is declared again when needed).
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
//
// # Logging
//
// One failure, one line: when a connection is lost it logs one WARN, then
// at most one WARN a minute (with the number of failed attempts) while it
// cannot reconnect, and one INFO when it is back; each subscription does
// the same for its consumer. Closing a Publisher or a Subscriber logs
// nothing at WARN or above. No line, and no error, shows the URL's password.
package rabbitmq
