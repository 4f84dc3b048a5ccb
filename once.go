package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/stratusworks/worker/persist"
)

// InboxStore is a store that can make a handler's database effect happen
// once per action: it records an action's type and key in the same
// transaction as the handler's writes (an inbox), so a redelivered action
// whose key is recorded is not handled again. [persist.Store] implements it;
// a host's own Config.Storage needs it for [Worker.HandleTx].
type InboxStore interface {
	// RunOnce records (actionType, key) and runs fn in one transaction on
	// the database fn writes to. It returns false, nil without calling fn
	// when the key is recorded already; when fn fails, nothing is recorded
	// and fn's error is returned (wrapped). Concurrent calls with one key
	// run fn once. See [persist.Store.RunOnce].
	RunOnce(ctx context.Context, actionType, key string, fn func(tx *gorm.DB) error) (ran bool, err error)
	// PurgeInbox deletes the records made before olderThan and returns how
	// many it deleted.
	PurgeInbox(ctx context.Context, olderThan time.Time) (int, error)
}

var _ InboxStore = (*persist.Store)(nil)

// InboxRetention is the shortest time the worker keeps a handled action's
// key in the inbox: a copy of the action delivered later than that (after a
// longer queue backlog, say) is handled again. The worker keeps keys for
// twice Config.Retry.Budget when that is longer, since a redelivered copy
// may be retried for up to the budget.
const InboxRetention = 7 * 24 * time.Hour

// inboxPurgeEvery is how often each worker deletes expired inbox records;
// inboxPurgeTimeout bounds one run (each batch commits on its own, so a run
// cut short keeps what it deleted).
const (
	inboxPurgeEvery   = 10 * time.Minute
	inboxPurgeTimeout = 5 * time.Minute
)

// HandleTx registers h for actions of the given type, with its database
// effect made exactly once: h's writes through tx and the record of the
// action's type and Key commit in one transaction on the provisioning
// database, and the action is acknowledged after that commit. A redelivered
// action whose key is recorded (its ack was lost, the process died after the
// commit, the host published it twice) is acknowledged without calling h.
//
// h's error is the action's, as for [Worker.Handle]: the transaction is
// rolled back, nothing is recorded, and the action is retried with backoff,
// or poisoned for a [Permanent] error; [Snooze] works too. The transaction is
// also run again, h included, after a deadlock or a busy database; its
// earlier writes were rolled back.
//
// Write the effect through tx only, and keep h to database work: a cloud
// call or an email is not undone by a rollback and needs its own idempotency.
// On SQLite tx holds the store's only writer connection while h runs, so
// other writes of the worker wait for h: keep it short, and do not write
// through [Worker.Store] or another handle to the same file inside it.
//
// An action's key is scoped by its type and compared byte for byte. It is
// kept in the inbox for [InboxRetention] or twice Config.Retry.Budget,
// whichever is longer. An action without a Key (and without an ID to
// default it to), or one the inbox refuses, is poisoned.
//
// HandleTx needs the built-in store, or a Config.Storage that implements
// [InboxStore]; otherwise it returns an error wrapping [ErrInvalidConfig].
// Call it before Run.
func (w *Worker) HandleTx(actionType string, h func(ctx context.Context, tx *gorm.DB, a Action) error) error {
	if h == nil {
		return fmt.Errorf("worker: HandleTx(%q): handler func is nil", actionType)
	}
	inbox, ok := w.store.(InboxStore)
	if !ok {
		return fmt.Errorf("%w: HandleTx(%q): Storage (%T) does not implement worker.InboxStore, "+
			"which records each action's key in the transaction of its handler's writes; "+
			"implement it, or use Handle with a handler that is idempotent by Action.Key", ErrInvalidConfig, actionType, w.store)
	}
	return w.Handle(actionType, onceHandler{inbox: inbox, h: h, log: w.log})
}

// onceHandler runs a HandleTx handler inside the inbox's transaction.
type onceHandler struct {
	inbox InboxStore
	h     func(ctx context.Context, tx *gorm.DB, a Action) error
	log   *slog.Logger
}

// handlerError carries h's own error through RunOnce, so that the action
// fails with exactly what h returned (a Permanent, a Snooze, a throttling
// error), not the store's wrapping of it.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

func (o onceHandler) Handle(ctx context.Context, a Action) error {
	ran, err := o.inbox.RunOnce(ctx, a.Type, a.Key, func(tx *gorm.DB) error {
		if err := o.h(ctx, tx, a); err != nil {
			return &handlerError{err: err}
		}
		return nil
	})
	var he *handlerError
	switch {
	case errors.As(err, &he):
		return he.err
	case errors.Is(err, persist.ErrInvalid):
		// A key the inbox cannot record is refused on every delivery.
		return Permanent(fmt.Errorf("worker: %s %s: cannot record its key in the inbox: %w", a.Type, a.ID, err))
	case err != nil:
		return err
	}
	if !ran {
		o.log.Debug("action already handled (its key is in the inbox); acknowledged without calling the handler",
			"id", a.ID, "type", a.Type, "key", a.Key)
	}
	return nil
}

// inboxDuties is the inbox purge, when the store keeps an inbox.
func (w *Worker) inboxDuties() []duty {
	inbox, ok := w.store.(InboxStore)
	if !ok {
		return nil
	}
	p := purger{purge: inbox.PurgeInbox, now: w.now, keep: max(InboxRetention, 2*w.cfg.Retry.Budget)}
	return []duty{{name: "purging expired inbox keys", every: inboxPurgeEvery, timeout: inboxPurgeTimeout, run: p.run}}
}
