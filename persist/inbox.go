package persist

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/stratusworks/worker/internal/text"
)

// inboxRow is one handled action (table worker_inbox): its type and
// idempotency key, recorded in the transaction of its effect.
type inboxRow struct {
	ID         int64     `gorm:"column:id;primaryKey;autoIncrement"`
	ActionType string    `gorm:"column:action_type"`
	Key        string    `gorm:"column:idempotency_key"`
	HandledAt  time.Time `gorm:"column:handled_at"`
}

func (inboxRow) TableName() string { return tblInbox }

// RunOnce makes an effect on the provisioning database happen once per
// (actionType, key), however often it is asked for: it records the key in
// the inbox (table worker_inbox) and runs fn in the same transaction, so the
// key is recorded if and only if fn's writes commit. It reports whether fn
// ran and committed.
//
//   - The key is recorded already: fn is not called, and RunOnce returns
//     false, nil. Of concurrent calls with one key, from any process, one
//     runs fn; the others wait for its transaction and then return false
//     (or, if it rolled back, one of them runs fn in turn).
//   - fn returns an error (or panics): the transaction is rolled back, the
//     key is not recorded, and RunOnce returns fn's error, wrapped (errors.Is
//     and errors.As see it), so a later call runs fn again.
//   - The database fails: the error is classified as every Store error is
//     ([ErrUnavailable] for an outage). A conflict, deadlock, busy SQLite or
//     quickly lost connection retries the whole transaction, fn included: the
//     failed attempt's writes were rolled back. A commit whose outcome is
//     unknown (the connection was lost during it) is safe to ask for again:
//     if it did commit, the next call finds the key.
//
// fn must make every write of the effect through tx, and nothing else
// through the store while it runs: on SQLite tx holds the only writer
// connection, so another write of this store (or [Store.DB]) inside fn waits
// for fn's own transaction until ctx ends. Keep fn to database work: a call
// to anything else (a cloud API, a mail server) is not undone by a rollback
// and needs its own idempotency. Writes to the analytics database are not
// part of the transaction.
//
// actionType scopes the key: the same key under two action types is two
// effects. Both are compared byte for byte (case and trailing spaces count).
// The key must be 1-255 bytes of valid UTF-8 and actionType 1-128: anything
// else fails with [ErrInvalid], naming the value, before any transaction.
// Recorded keys are kept until [Store.PurgeInbox] removes them.
func (s *Store) RunOnce(ctx context.Context, actionType, key string, fn func(tx *gorm.DB) error) (ran bool, err error) {
	if err := checkInboxKey(actionType, key); err != nil {
		return false, err
	}
	if fn == nil {
		return false, invalidf("persist: run once %s %q: fn is nil", actionType, key)
	}
	err = retry(ctx, func() error {
		ran = false
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			res := tx.Exec(inboxInsert[s.prov.driver], actionType, key, dbTime(s.now()))
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return nil // recorded already: the effect committed before
			}
			if err := fn(tx); err != nil {
				return &effectError{err: err}
			}
			ran = true
			return nil
		})
	})
	if err != nil {
		var fe *effectError
		if errors.As(err, &fe) {
			return false, fmt.Errorf("persist: run once %s %q: effect failed, rolled back: %w", actionType, key, err)
		}
		return false, fmt.Errorf("persist: run once %s %q: %w", actionType, key, err)
	}
	return ran, nil
}

// inboxInsert records a key, or affects no row when it is recorded already.
// It is written out rather than built by GORM: for a model with an
// auto-increment id GORM adds RETURNING on MariaDB, and then counts the
// returned row of a conflicting insert as affected. (clientFoundRows is
// always off, so a no-op ON DUPLICATE KEY UPDATE affects no row.)
var inboxInsert = map[Driver]string{
	SQLite: "INSERT INTO " + tblInbox + " (action_type, idempotency_key, handled_at) VALUES (?, ?, ?)" +
		" ON CONFLICT (action_type, idempotency_key) DO NOTHING",
	MySQL: "INSERT INTO " + tblInbox + " (action_type, idempotency_key, handled_at) VALUES (?, ?, ?)" +
		" ON DUPLICATE KEY UPDATE id = id",
}

// effectError marks an error that fn returned, so that RunOnce tells it
// apart from its own; it unwraps to it, so retry still sees a deadlock fn
// ran into.
type effectError struct{ err error }

func (e *effectError) Error() string { return e.err.Error() }
func (e *effectError) Unwrap() error { return e.err }

// checkInboxKey refuses what the inbox cannot record exactly: the message
// names the bad value, shortened.
func checkInboxKey(actionType, key string) error {
	check := func(field, v string, maxLen int) error {
		switch {
		case v == "":
			return invalidf("persist: run once: %s is required (got %q)", field, v)
		case len(v) > maxLen:
			return invalidf("persist: run once: %s %q is %d bytes, longer than %d", field, text.Shorten(v), len(v), maxLen)
		case !utf8.ValidString(v):
			return invalidf("persist: run once: %s %q is not valid UTF-8", field, text.Shorten(v))
		}
		return nil
	}
	if err := check("action type", actionType, maxActionLen); err != nil {
		return err
	}
	return check("key", key, maxInboxKeyLen)
}

// PurgeInbox deletes the inbox records made before olderThan and returns how
// many it deleted. A redelivered action whose record was purged runs its
// effect again, so keep records for longer than anything can be redelivered
// (the root package keeps them 7 days, or twice the retry budget). It
// deletes in batches, each its own short transaction.
//
// It is a step of the worker's protocol, taken by the inbox purge: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) PurgeInbox(ctx context.Context, olderThan time.Time) (int, error) {
	n, err := s.purge(ctx, &inboxRow{}, "handled_at < ?", "handled_at, id", olderThan)
	if err != nil {
		return n, fmt.Errorf("persist: purge inbox before %s: %w", dbTime(olderThan).Format(time.RFC3339), err)
	}
	return n, nil
}
