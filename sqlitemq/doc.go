// Package sqlitemq is a durable work queue in one SQLite file, as a
// Watermill [message.Publisher] and [message.Subscriber]: the worker's
// embedded durable transport (Config.MQ.URL "sqlite"). Pure Go (no cgo).
//
// # Durability
//
// Publish returns nil only after its messages are committed to the file
// (WAL; fsynced with [SyncFull], the default). A subscription claims due
// messages under a lease of VisibilityTimeout, hands them out, and deletes
// each when it is acked; a nack makes it due again at once. While a process
// holds a message it renews the lease, so a slow handler keeps it; when the
// process dies (kill -9, a power cut) its leases run out and the messages are
// handed out again. Delivery is at least once.
//
// # Throughput
//
// One writer goroutine per PubSub owns the file's connection. It takes every
// request waiting for it — publishes, acks, nacks, claims, lease renewals,
// up to MaxBatch — and commits them in one transaction, so concurrent
// publishers and handlers share a commit (and its fsync) instead of paying
// one each. A subscription that finds its topic empty leaves its claim with
// the writer: messages published to the topic in this process are leased to
// it as they are inserted, so they are neither read back nor written twice;
// every PollInterval the writer looks in the file again for what other
// processes published, delays that ended and leases that ran out.
//
// # Semantics
//
// Subscriptions to one topic compete for its messages (a work queue, not a
// fan-out), in one process and across the processes that open the file.
// Every topic is durable from its first publish, with or without
// subscribers. With MaxInFlight 1 (the default) a subscription gets its next
// message only after the previous one is settled, and messages come out in
// the order they became due; with more in flight, a nacked message comes
// back behind those already handed out. [PubSub.PublishDelayed] holds
// messages until a time (the worker's DelayPublisher). Watermill's
// conformance suite (pubsub/tests) passes in both modes.
package sqlitemq
