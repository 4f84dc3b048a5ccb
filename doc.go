// Package worker is an embeddable SDK for cloud-management workers: processes
// that keep an accurate picture of cloud state and act on requests about it.
//
// A host program creates a [Worker], registers a [Handler] per action type,
// and runs it. A [Publisher] puts actions on a message queue; a [Subscriber]
// takes them off and calls the handler for their type. State that handlers
// observe goes to a [StateSink] ([Worker.Sink]; the persist package: SQLite
// by default, MySQL/MariaDB in production), which stores only what changed,
// and is read back through [Worker.Store].
//
// # Quick start
//
//	w, err := worker.New(ctx, worker.Config{}) // in-memory queue, SQLite file worker.db
//	if err != nil { … }
//	err = w.HandleFunc("server.launch", func(ctx context.Context, a worker.Action) error {
//		var req LaunchRequest
//		if err := a.Decode(&req); err != nil {
//			return worker.Permanent(err) // bad input: no retry, straight to the poison store
//		}
//		return launch(ctx, a.Key, req) // idempotent by a.Key
//	})
//	go w.Run(ctx)
//	a, _ := worker.NewAction("server.launch", LaunchRequest{Image: "debian-13"})
//	err = w.Publish(ctx, a)
//
// Set Config.MQ.URL to an amqp:// URL for RabbitMQ and Config.Store to MySQL
// DSNs for production; nothing else changes.
//
// # Queues
//
// A small fixed set of queues separates classes of work ([Topology]):
// "<prefix>.actions" for requests (the default for any type), "<prefix>.polls"
// for polls and job checks, "<prefix>.events" for state changes and job
// outcomes. Inside a queue the subscriber dispatches by action type. The
// publisher declares every queue when it starts, so actions published before
// any subscriber exists wait in their queue. A subscriber consumes only the
// queues that its handlers' types route to; an action of a type it has no
// handler for on such a queue is poisoned, never dropped and never requeued
// in a loop.
//
// # Delivery, retries and the poison store
//
// Delivery is at least once. A message is acknowledged only after its handler
// returned nil, or after the action was durably written to the deferred or
// poison store (or handed to the transport to hold); a crash before that
// redelivers it. Handlers must therefore be idempotent, keyed by
// [Action.Key]; for effects in the database, [Worker.HandleTx] does it for
// them (see Exactly-once effects).
//
// A failed attempt is retried with capped exponential backoff and jitter
// ([RetryPolicy]) for a time budget: by default a day from the action's
// first failure (about 35 attempts, the longest wait an hour), so a database
// restart, a broker failover or an hour of cloud throttling poisons nothing.
// Waits up to RetryPolicy.InlineMax happen in place; longer waits park the
// action in the deferred store and free the handler slot, and the worker
// republishes it when due. When the deferred store is unreachable (the
// database is down), the transport holds the action for the wait instead
// (RabbitMQ: a wait queue per delay that dead-letters back to the work
// queue), so an outage never becomes a tight redelivery loop.
//
// Handlers steer this with control errors: [Permanent] skips the retries,
// [Snooze] asks to be tried again after a wait that is not counted as a
// failure (the built-in server.launch snoozes while another attempt's launch
// may still appear), and a returned *cloud.ThrottledError is retried no
// sooner than its RetryAfter.
//
// An action goes to the poison store, with the reason, when the budget is
// spent (or RetryPolicy.MaxAttempts, if set), at once for a [Permanent]
// error, a panic, a message that does not decode, or an unknown type. The
// poison store keeps a bounded, valid UTF-8 form of whatever it is given (a
// body too large for the database is kept truncated, with its size and
// hash), so poisoning only fails when the database is unreachable: then the
// action waits on the transport and is poisoned when it comes back. As a
// last resort it is rejected for the transport to dead-letter (RabbitMQ: the
// poison queue); it is never requeued forever. List poisoned actions with
// [Worker.Poisoned] and send them again with [Worker.Replay] or
// [Worker.ReplayAll].
//
// A message is refused (poisoned with the reason) when its body is not valid
// UTF-8 or escapes a lone UTF-16 surrogate (encoding/json would silently
// replace them with U+FFFD), and when a header the worker owns (the Meta…
// keys) has a value that does not parse or disagrees with the body. Any other
// header — a foreign client's, RabbitMQ's own x-death — is left alone.
//
// Background duties (the outbox relay, the parked-retry pump, the history
// copy to the analytics database, the job sync, the inbox purge) run
// independently, each bounded by its own timeout: a hung analytics database
// stalls only the history copy, and the stalled duty is named in a warning.
// A failure is logged once when it starts, then once a minute with a count,
// then when it recovers. Config.ShutdownTimeout bounds the whole shutdown.
//
// # Exactly-once effects
//
// A handler registered with [Worker.HandleTx] gets a database transaction
// (a *gorm.DB on the provisioning database) along with the action. Its
// writes through it and a record of the action's type and Key in the inbox
// (table worker_inbox) commit together, and the action is acknowledged
// after the commit. A redelivered action whose key is recorded — its ack was
// lost when the process died right after the commit, or it was published
// twice — is acknowledged without calling the handler; concurrent
// deliveries of one action, on any number of machines, call it once. When
// the handler fails, its writes roll back, nothing is recorded, and the
// action is retried or poisoned as usual ([Permanent] and [Snooze] work);
// the transaction is also run again after a deadlock. The idea is River's
// JobCompleteTx: the effect and the mark that it happened share one
// transaction, so neither commits without the other.
//
//	err := w.HandleTx("order.charge", func(ctx context.Context, tx *gorm.DB, a worker.Action) error {
//		return tx.Create(&Charge{Order: a.Key, Amount: amount}).Error
//	})
//
// It covers the database only: a cloud call or an email the handler makes
// is not rolled back and needs its own idempotency key. Keys are scoped by
// action type and compared byte for byte. Every worker purges keys older
// than [InboxRetention] (7 days) or twice Config.Retry.Budget, whichever is
// longer — longer than an action is retried — so only a copy arriving later
// than that would be handled again. On SQLite the transaction holds the
// store's one writer connection while the handler runs: keep it short. With
// Config.Storage, HandleTx needs a store that implements [InboxStore]
// ([persist.Store] does).
//
// # Wire format
//
// One action is one message (or one element of a packed message, below). The body is a JSON object: the [Action] fields
// plus "v", the wire version ([WireVersion], currently 1):
//
//	{"v":1,"id":"0b6f…","type":"server.launch","customer":"acme","account":"acct-42",
//	 "resource":"","key":"0b6f…","correlation_id":"req-7","created_at":"2026-11-25T10:00:00Z",
//	 "payload":{"image":"debian-13"}}
//
// The Watermill message UUID is the action ID (on RabbitMQ: the AMQP message
// id). On RabbitMQ a fresh action carries no header at all: every header
// costs the broker time on each message (two of them cut its confirmed
// persistent publishes by about 40%). The subscriber fills in the Meta…
// keys (worker_version, action_type, customer, account, idempotency_key,
// correlation_id) from the body before middleware, logs, the poison store
// or a parked retry see the message; worker_attempt (on retries),
// worker_retry_since, worker_not_before and worker_replay_of (on replays)
// do travel as headers, being the worker's state and not the body's. The body is the source of truth; messages from older
// publishers that carried every field as metadata decode the same. A body
// larger than Config.MaxPayloadBytes (default 1 MiB) is refused by the
// publisher and poisoned by the subscriber.
//
// # Packed messages
//
// On RabbitMQ the broker's cost is per message (a persistent, confirmed
// message costs it tens of microseconds whatever its size), so a Publish
// call with several actions bound for one queue — a host's batch, the
// schedule's dispatch of polls — sends them packed: up to
// Config.MQ.PackActions (256) actions and Config.MQ.PackBytes (256 KiB)
// in one message, wire version 2 ([WirePacked]). A lone action, one too
// large to share a pack, and every event (the events queue is for other
// systems) is sent as above (version 1). The embedded
// transports do not pack: their cost is per action. Every subscriber reads
// both versions, on every transport.
//
// A packed message, byte for byte:
//
//   - The AMQP message id is a fresh UUID of the pack's own, not an
//     action's. There is no header of the worker's on RabbitMQ (in process
//     and on other transports, metadata worker_version is "2"): the body
//     says what it is.
//   - The body is UTF-8 JSON: an object with two members, written in this
//     order and without white space by this package: "v", the number 2,
//     and "actions", an array of one or more (at most 10000) elements.
//     Each element is exactly the body a single action would have as its
//     own message: a version-1 object, "v":1 included. So the body is
//     the bytes {"v":2,"actions":[ then the action bodies separated by
//     single commas, then ]}.
//
// For example (shown on two lines; the body is one):
//
//	{"v":2,"actions":[{"v":1,"id":"a1","type":"poll","key":"a1","created_at":"2026-12-02T10:00:00Z"},
//	 {"v":1,"id":"a2","type":"poll","key":"a2","created_at":"2026-12-02T10:00:00Z","payload":{"kind":"server"}}]}
//
// To read one, parse the body as
// JSON and take each element of "actions" as one action, in order. To
// publish one from another client, write that body to the queue the
// actions route to: a body whose first bytes (after white space) are
// {"v":2, is a pack (unless a worker_version header says otherwise; "2"
// is fine). Packs do not nest: an element with "v":2 is poisoned.
//
// The subscriber handles each action of a pack as if it had come alone —
// its own attempts, retries, parking (a parked action comes back as a
// single message) and poisoning; an element that does not decode is
// poisoned alone, a body that is not a pack at all (not JSON, no actions,
// another "v", larger than Config.MaxPayloadBytes) is poisoned whole — and
// acknowledges the pack only when every action in it has a durable
// outcome: handled, parked or poisoned. If one has none (the subscriber
// stopped, or died, first), the whole pack is delivered again, and the
// actions already handled are absorbed by their keys, as for any
// redelivery ([Worker.HandleTx] does it for database effects).
//
// # Polling cloud state
//
// A [Poller] reads one kind of resource (package cloud has pollers for
// servers, server status, firewalls and budgets on any cloud.Provider).
// [Worker.Register] sets its kind's default interval, [Worker.Watch] polls
// every registered kind of an account, [Worker.Schedule] gives one resource
// its own interval. The schedule (package poller) lives in publisher
// processes: it dispatches a "poll" action when a target is due and not in
// flight, spends the account's API budget, and receives the outcome back, so
// backoff on errors, RetryAfter on throttling and the per-account budget hold
// for the whole fleet. A failing or throttled account never delays another. A
// poll whose target was polled or unwatched since it was dispatched is dropped.
//
// A subscriber runs the poll page by page into the store ([StateSink]):
// unchanged resources write nothing; changed ones are upserted with their
// history and a change event in one transaction (the outbox). After the last
// page of a complete listing, resources it did not return are marked missing
// and deleted once missing for Config.DeletionGrace. Status-only pollers send
// partial observations that patch the stored state, so full and status-only
// listings never make a resource flap.
//
// Usage is not state: a poller of the servers' usage (the server-analytics
// kind, cloud.ServerAnalyticsPoller) returns snapshots with Samples and no
// observations, which the poll runner appends to the analytics database
// (samples already stored are dropped; hourly rollups are kept beside them)
// before the poll is done, with no change detection and no event. Publisher
// processes prune raw samples after Config.Analytics.Retention (7 days) and
// rollups after RollupRetention (400 days).
//
// # Accounts
//
// The accounts a deployment polls are kept in the account registry
// ([Worker.Accounts], package accounts) in the provisioning database: each
// with its customer, a provider type ("sim", "vsphere", or one the host adds
// with Config.Providers), the type's settings (no secrets), the name of its
// credential in the key manager, pause state, per-kind intervals and labels.
// Publisher processes follow the registry: they schedule every account when
// they start, apply this process's changes at once and other processes'
// within Config.AccountSyncInterval. The poll handler checks the registry
// before each poll, so a paused or deleted account is not polled anywhere
// after the change. [Worker.Watch] puts an account with no provider type
// (served by Config.Cloud); "account.put" and "account.delete" actions let
// a dispatcher manage accounts through the queue.
//
// [Worker.Cloud] is the cloud of every account: each call goes to the
// provider of the account it names, built lazily from the registry entry
// and the credential by the type's [ProviderType].New, reused while both
// keep their revision, rebuilt when either changes (a rotated credential is
// used by the next call) and closed (io.Closer) when its account is
// deleted. The built-in handlers (server.launch, job.check) use it; give it
// to the standard pollers so that one poller serves every account.
// [Worker.AccountHealth] tells why an account's polls fail while the
// schedule backs it off.
//
// # Reading the store
//
// [Worker.Store] is a read-only [StoreView] of the worker's store: the
// state of observed resources and their history, tracked jobs, launch
// intents. [Worker.Sink] is the [StateSink] a handler saves what it
// observed to; only changes come back. Poisoned actions are listed with
// [Worker.Poisoned]. The store's other steps (claiming launches, finishing
// jobs, marking events sent, parking retries) are the worker's protocol,
// run by its parts, and not offered to hosts. A host with tables of its own
// in the provisioning database opens the store itself (persist.Open),
// creates them through its DB method, passes it as Config.Storage, and
// writes to them from handlers registered with [Worker.HandleTx]
// (ExampleWorker_HandleTx).
//
// # Events
//
// Publisher processes relay the outbox to the events queue: "<kind>.changed"
// (created or updated; the payload is the state.Change with the changed
// fields), "<kind>.deleted", and "job.completed", "job.failed",
// "job.timed_out". An event's action ID is its outbox id: a crash between
// publishing and marking it sent publishes it again with the same id, for
// consumers to drop.
//
// # Jobs and launches
//
// [Worker.TrackJob] (or a "job.track" action from a dispatcher) follows a
// cloud operation until it is terminal or its deadline passes; jobs are
// stored, so tracking survives restarts, and the terminal transition is a
// conditional update, so its event is published once however many workers
// check it. With Config.Cloud set, the built-in "server.launch" handler
// launches exactly one server per Action.Key: it claims a launch intent, tags
// the server with the key ([LaunchTag]), finds the server by that tag when a
// redelivered action's earlier attempt may have launched it, and tracks the
// launch as a job. With Config.SourceCIDR set it first opens the launch's
// firewall to the worker's source addresses on the management port.
//
// # Guest logs
//
// With Config.GuestLogs.Interval set, [Worker.Watch] also schedules the
// collection of an account's guest VM logs: a "guest.logs" action (polls
// queue) lists the account's stored servers and copies the new complete lines
// of each RUNNING server's log files over SSH (package cloud/guest) into
// <customer dir>/guests/<account>/<server>/. Connections leave from an
// address of this host inside Config.SourceCIDR, host keys are always
// verified, logins come from GuestLogs.Collector.Credentials (km.SSHLogins
// reads them from the key manager), and offsets live in the provisioning
// database, so a restart neither duplicates nor skips lines.
//
// # Roles
//
// Config.Role selects what a process runs: RoleAll (the default), or
// RolePublisher and RoleSubscriber for the classic split into separate
// processes on the same broker. Run blocks until its context is done, then
// stops taking actions, lets in-flight handlers finish, and closes the
// transport and the store, all within Config.ShutdownTimeout (handlers still
// running at the end of it are cancelled and their actions redelivered).
// RolePinger handles nothing and schedules nothing: it writes heartbeats and
// probes each enabled account's cloud (latency, whether the credential is
// accepted) every Config.Pinger.ProbeInterval; run one or more.
//
// # Scaling out
//
// Run as many publisher processes as you like (for availability; one
// dispatches well over 10,000 polls a second) and as many subscribers as
// the polls and actions need, on any machines, against one broker and one
// provisioning database. With MQ.URL on RabbitMQ (or Config.Scale.Mode
// ScaleShared) the publishers share the schedule through leases in the
// provisioning database (table worker_leases):
//
//   - Accounts are spread over Config.Scale.Shards shards (64) by a stable
//     hash of the account id; a target (an account's kind, one of its
//     resources, its tracked jobs, its guest-log collection) belongs to its
//     account's shard. Each shard is leased by one live publisher at a
//     time, which runs its targets on its own in-memory heap, and spends
//     and backs off the account's budget for the whole fleet.
//   - Each publisher renews all its leases every LeasePeriod/3 in one
//     statement, reads the lease table in another, and holds
//     ceil(shards / live publishers): it claims free or expired shards (a
//     conditional update on the lease's generation, so one claimer wins)
//     and releases shards above its share. A publisher that stops cleanly
//     releases everything with each target's next due time (the handoff),
//     so the next owner continues the grid: a rolling restart loses no
//     interval (a target that comes due before a survivor's next round,
//     at most LeasePeriod/3 later, is polled then). A SIGKILLed publisher's shards expire at most LeasePeriod
//     after its death and are claimed at once (a survivor's next round is
//     set for that expiry); their targets are due within LeasePeriod/10,
//     spread.
//   - Fencing: a publisher stops dispatching for a shard as soon as its own
//     deadline (the start of its last successful renewal plus LeasePeriod,
//     less a fifth) passes, before another can claim it; dispatches not sent
//     for that reason are counted ("dispatches fenced" in the log) and the
//     shard is dropped until a renewal says otherwise. Every dispatch
//     carries its publisher and the shard's lease generation; a report of a
//     generation its receiver no longer holds is rejected and counted. Clocks
//     must agree within LeasePeriod/5 (NTP). The deadline is checked right
//     before each batch is published; a process paused between the check
//     and the publish longer than the margin can still send that one batch
//     (at most Schedule.BatchSize polls, each then polled twice at worst, and
//     their reports rejected). Counted in worker_schedule_fenced_total.
//   - Poll reports travel on the schedule queue, which every publisher
//     consumes; a publisher that gets the report of another's dispatch
//     forwards it through the database (table worker_schedule_reports,
//     written in batches) to the shard's owner, which applies it within
//     half a second. Nothing is dropped when ownership moves: a report of an
//     earlier owner's dispatch is superseded by the new owner's own.
//   - The outbox relay runs in the holder of the relay lease only: each
//     event is published once fleet-wide in steady state; after a relay's
//     death at most one batch (100) is published again, with the same ids.
//
// A single publisher process (the embedded transports, or Config.Scale.Mode
// ScaleSingle) owns the whole schedule with no lease and no extra
// statement. The database must give read-your-writes on the primary (the
// leases are read there, never on a replica) and row-level atomic
// conditional updates (MySQL/MariaDB InnoDB, SQLite); the broker needs
// nothing beyond the durable queues.
//
// # Heartbeats and membership
//
// Every process writes a heartbeat every Config.Heartbeat.Interval (10s): its
// instance row in the provisioning database (instance id, host, pid, roles,
// version, start, last beat, and whether the MQ, both databases and the key
// manager answered) and a "worker.heartbeat" event on the events queue.
// [Worker.Members] reads the rows: an instance is alive while its last beat is
// within Heartbeat.DeadAfter (3) of its intervals, stopped after a clean
// shutdown, dead otherwise. [Worker.Probes] reads the pingers' probe results.
//
// # Metrics
//
// Set Config.Metrics to a prometheus.Registerer and the worker registers its
// collectors on it (Close unregisters them). The worker opens no port: the
// host serves the registry (promhttp.HandlerFor on its own /metrics). With a
// nil Metrics nothing is registered and the parts call a no-op observer.
// Labels are bounded: type is an action type this process knows (its
// handlers, the routes, the built-in types, "<kind>.changed" and
// "<kind>.deleted" of registered kinds; every other type is "other"), kind
// is a schedule kind, and no metric has a resource or account label.
//
//	worker_actions_published_total{type}       actions the transport accepted
//	worker_actions_handled_total{type}         attempts whose handler succeeded
//	worker_actions_failed_total{type}          failed attempts
//	worker_actions_retried_total{type}         failed attempts that will be retried
//	worker_actions_snoozed_total{type}         attempts that snoozed
//	worker_actions_poisoned_total{type}        actions poisoned or dead-lettered
//	worker_handler_duration_seconds{type}      one attempt (histogram)
//	worker_queue_lag_seconds{queue}            creation to first attempt (histogram)
//	worker_polls_total{kind,outcome}           ok, failed, throttled
//	worker_poll_lag_seconds{kind}              dispatch time minus due time (histogram)
//	worker_poll_staleness_seconds{kind}        age of the oldest last successful poll
//	worker_accounts_throttled                  accounts whose last poll was throttled
//	worker_accounts_backing_off                accounts whose last poll failed
//	worker_jobs_in_flight                      tracked jobs on this schedule
//	worker_jobs_finished_total{outcome}        succeeded, failed, timed_out
//	worker_launches_total{outcome}             launched, found, failed
//	worker_guest_log_bytes_total               guest-log bytes copied
//	worker_guest_log_guests_total{outcome}     guests collected: ok, failed, skipped
//	worker_heartbeat_age_seconds{member,status} time since each instance's last beat
//	worker_members{status}                     instances alive, dead, stopped
//	worker_db_errors_total{op}                 store failures the parts saw
//	worker_mq_errors_total{op}                 transport failures the parts saw
//	worker_schedule_fenced_total{op}           a shared schedule's refusals: dispatch, report
//
// # Types shared with other packages
//
// [Poller] and [StateSink] use the types of package state (Target,
// Observation, Snapshot, Change), which the persist and cloud packages share
// without importing this one.
package worker
