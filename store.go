package worker

import (
	"context"
	"encoding/json"
	"github.com/stratusworks/worker/accounts"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// Store is everything a [Worker] keeps in its database: observed state and
// its history, the outbox of change events, tracked jobs, launch intents,
// parked retries and poisoned actions, guest log offsets, and the servers'
// usage samples (in the analytics database). [persist.Store]
// implements it on SQLite and MySQL/MariaDB; a host with a database of its
// own can implement it and pass it as Config.Storage.
//
// Each part of the worker depends only on the few methods it uses (the
// unexported interfaces below), so that what a part may touch is written
// down where the part is built.
type Store interface {
	StateSink
	accounts.Store
	PoisonStore
	DeferStore
	sweeper
	resourceLister
	jobStore
	launchStore
	outboxStore
	deferredQueue
	historyStore
	poisonRecords
	guestOffsetStore
	sampleStore
}

var _ Store = (*persist.Store)(nil)

// StoreView is what a host reads from a worker's store ([Worker.Store]):
// the observed state of resources and its history, tracked jobs, launch
// intents, and a description of the store for logs. It is read-only;
// handlers save what they observe through [Worker.Sink].
//
// The rest of [Store] (claiming and recording launches, finishing jobs,
// relaying and marking the outbox, parking and republishing retries) is
// the worker's protocol: its parts run those steps, each through the small
// interface it was given, and a host does not call them. For the host's own
// tables in the provisioning database, and exactly-once effects in them,
// see [Worker.HandleTx].
type StoreView interface {
	// Resource returns the stored state of one resource, or an error
	// matching persist.ErrNotFound (a deleted resource is not found).
	Resource(ctx context.Context, account, kind, id string) (persist.Resource, error)
	// Resources pages through the stored (not deleted) resources of one
	// kind in an account, in id order: up to limit of them after the id
	// after ("" for the first page; limit at most persist.MaxResourcesPage).
	Resources(ctx context.Context, account, kind, after string, limit int) ([]persist.Resource, error)
	// History returns a resource's recorded changes, oldest first (with a
	// separate analytics database, once the worker has copied them there).
	History(ctx context.Context, account, kind, id string) ([]persist.HistoryEntry, error)
	// Job returns a tracked job by its id, or an error matching
	// persist.ErrNotFound.
	Job(ctx context.Context, id string) (persist.Job, error)
	// LaunchIntent returns the launch intent of a server.launch action's
	// key: whether it is claimed or launched, and the server, operation
	// and job it launched; or an error matching persist.ErrNotFound.
	LaunchIntent(ctx context.Context, key string) (persist.LaunchIntent, error)
	// Describe names the store for logs (driver and database, no password).
	Describe() string
}

var _ StoreView = (*persist.Store)(nil)

// storeView and stateSink hold a store behind the methods of one interface,
// so that a host cannot type-assert its way from [Worker.Store] or
// [Worker.Sink] to the protocol steps.
type (
	storeView struct{ StoreView }
	stateSink struct{ StateSink }
)

// sweeper marks the resources a complete listing did not return as missing
// and deletes them after a grace period (the poll runner).
type sweeper interface {
	Sweep(ctx context.Context, t state.Target, seen func(id string) bool, grace time.Duration) ([]state.Change, error)
}

// resourceLister pages through stored resources (guest-log collection).
type resourceLister interface {
	Resources(ctx context.Context, account, kind, after string, limit int) ([]persist.Resource, error)
}

// jobStore keeps tracked jobs (the job tracker).
type jobStore interface {
	TrackJob(ctx context.Context, j persist.Job) (persist.Job, bool, error)
	Job(ctx context.Context, id string) (persist.Job, error)
	RunningJobs(ctx context.Context, after string, limit int) ([]persist.Job, error)
	FinishJob(ctx context.Context, id string, st persist.JobState, resourceID string, result json.RawMessage, errMsg string) (bool, error)
}

// launchStore keeps launch intents (the launcher).
type launchStore interface {
	ClaimLaunch(ctx context.Context, in persist.LaunchIntent) (persist.LaunchIntent, bool, error)
	RecordLaunch(ctx context.Context, key, serverID, operationID, jobID string) error
	RenewLaunch(ctx context.Context, key string, claimedAt time.Time) (time.Time, bool, error)
}

// outboxStore is the outbox of change and job events (the relay).
type outboxStore interface {
	PendingEvents(ctx context.Context, limit int) ([]persist.Event, error)
	MarkEventsSent(ctx context.Context, ids ...string) error
	PurgeSentEvents(ctx context.Context, olderThan time.Time) (int, error)
}

// deferredQueue hands out parked retries when due (the parked-retry pump).
type deferredQueue interface {
	DueDeferred(ctx context.Context, now time.Time, limit int) ([]persist.Deferred, error)
	DeleteDeferred(ctx context.Context, ds ...persist.Deferred) error
}

// historyStore copies history to a separate analytics database (the
// history flusher).
type historyStore interface {
	FlushHistory(ctx context.Context) (int, error)
}

// poisonRecords lists and marks poisoned actions (the poison views).
type poisonRecords interface {
	ListPoison(ctx context.Context, f persist.PoisonFilter) ([]persist.Parked, error)
	GetPoison(ctx context.Context, id int64) (persist.Parked, error)
	MarkPoisonReplayed(ctx context.Context, ids ...int64) error
}

// guestOffsetStore keeps how far each guest log file has been copied (the
// guest-log collector).
type guestOffsetStore interface {
	GuestOffset(ctx context.Context, k persist.GuestFile) (persist.GuestOffset, error)
	PutGuestOffset(ctx context.Context, k persist.GuestFile, o persist.GuestOffset) error
}
