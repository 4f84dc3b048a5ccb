package persist

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"
)

// Errors callers can branch on with errors.Is. Every error a [Store] method
// returns either matches one of them or is a bug (in the caller or here): a
// caller that waits out [ErrUnavailable] and treats [ErrInvalid] as permanent
// handles everything else as unexpected.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("persist: not found")
	// ErrSchemaTooNew means the database was migrated by a newer version of this
	// package than the running binary; upgrade the binary (never downgrade the
	// schema by hand).
	ErrSchemaTooNew = errors.New("persist: database schema is newer than this binary supports")
	// ErrSchemaTooOld means the database lacks migrations this binary needs
	// and [Open] was told not to apply them ([MigrateVerify]): run the
	// migration step ([Migrate]) first.
	ErrSchemaTooOld = errors.New("persist: database schema is older than this binary needs")
	// ErrInvalid marks input or configuration the store rejects, including
	// values the database refuses (a string too long for its column, text
	// that is not UTF-8, a row larger than the server accepts). Retrying the
	// same call cannot succeed, so message handlers should treat it as
	// permanent.
	ErrInvalid = errors.New("persist: invalid input")
	// ErrUnavailable marks a failure caused by the database, not by the call:
	// the server is unreachable or refuses connections, does not answer
	// within the connect or read timeout (down, frozen, overloaded, or not a
	// MySQL server at all), is read-only (MySQL errors 1290 and 1836, a
	// read-only SQLite file or disk), has run out of connections, is
	// shutting down, or the connection was lost mid-statement; for SQLite
	// also a database locked by another process beyond the busy timeout,
	// and I/O errors. The same call can succeed once the database is back,
	// so callers should wait and retry (or let the message be redelivered)
	// instead of treating the input as bad. A context that ends is reported
	// as the context's error, not as ErrUnavailable.
	ErrUnavailable = errors.New("persist: database unavailable")
)

// invalidError is a validation message that matches [ErrInvalid] without
// repeating its text.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// errConflict means another writer changed a row between our read and our
// write; the whole transaction is retried.
var errConflict = errors.New("rows changed concurrently")

// redactedError carries an error whose text contained a secret. It keeps the
// original for errors.Is/As but prints the scrubbed text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every occurrence of secret replaced by "xxxxx".
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "xxxxx"), err: err}
}

// classifiedError marks an error from the database as [ErrUnavailable] or
// [ErrInvalid] without changing its text.
type classifiedError struct {
	err  error
	kind error
}

func (e *classifiedError) Error() string        { return e.err.Error() }
func (e *classifiedError) Unwrap() error        { return e.err }
func (e *classifiedError) Is(target error) bool { return target == e.kind }

// classify returns err marked [ErrUnavailable] when the database caused it,
// or [ErrInvalid] when the database refused the values; otherwise err as is.
func classify(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrUnavailable), errors.Is(err, ErrInvalid):
		return err
	case unavailable(err):
		return &classifiedError{err: err, kind: ErrUnavailable}
	case refusedValue(err):
		return &classifiedError{err: err, kind: ErrInvalid}
	}
	return err
}

// unavailable reports whether err means the database could not be used, as
// opposed to a problem with the statement or its values, or the caller's
// context ending.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // context.DeadlineExceeded is a net.Error that timed out, too
	}
	if lostConnection(err) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var op *net.OpError // dial refused, connection reset, no route...
	if errors.As(err, &op) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // too many connections
			1053, // server shutdown in progress
			1203, // user has exceeded max_user_connections
			1226, // user has exceeded a resource limit
			1290, // the server runs with an option that prevents this (--read-only)
			1792, // cannot execute statement in a READ ONLY transaction
			1836, // running in read-only mode
			1927, // connection was killed (MariaDB)
			3032, // the server is in offline mode
			4031: // disconnected by the server because of inactivity
			return true
		}
	}
	var coded interface{ Code() int } // the sqlite driver's *Error
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff {
		case 5, // SQLITE_BUSY: locked by another process beyond the busy timeout
			6,  // SQLITE_LOCKED
			8,  // SQLITE_READONLY
			10, // SQLITE_IOERR
			13, // SQLITE_FULL
			14: // SQLITE_CANTOPEN
			return true
		}
	}
	return false
}

// lostConnection reports whether err says the connection broke.
func lostConnection(err error) bool {
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn)
}

// refusedValue reports whether the database refused a value of the
// statement: it cannot succeed again with the same input.
func refusedValue(err error) bool {
	if errors.Is(err, mysql.ErrPktTooLarge) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1153, // packet bigger than max_allowed_packet
			1264, // out of range value
			1366, // incorrect string value (not valid in the column's character set)
			1406: // data too long for column
			return true
		}
	}
	return false
}

const (
	maxAttempts  = 5
	retryBackoff = 10 * time.Millisecond
	// quickFailure is how fast an attempt must have lost its connection to
	// be retried: a connection the server closed while it was idle fails at
	// once. One lost after a longer wait timed out (a frozen or overloaded
	// server), and another attempt would only wait as long again.
	quickFailure = time.Second
)

// retry runs fn until it succeeds, fails with a non-retryable error, or has
// failed maxAttempts times. Conflicts and transient connection or locking
// errors are retried after a short, jittered, growing pause; errors that mean
// the database is unavailable (read-only, unreachable, timed out) are not,
// they are returned at once, classified (see [classify]).
func retry(ctx context.Context, fn func() error) error {
	var err error
	pauses := backoff.ExponentialBackOff{InitialInterval: retryBackoff, RandomizationFactor: 0.5, Multiplier: 2,
		MaxInterval: retryBackoff << maxAttempts}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(pauses.NextBackOff())
			select {
			case <-ctx.Done():
				t.Stop()
				return classify(errors.Join(err, ctx.Err()))
			case <-t.C:
			}
		}
		start := time.Now()
		if err = fn(); err == nil || !retryable(err) {
			return classify(err)
		}
		if ctx.Err() != nil {
			return classify(err)
		}
		if took := time.Since(start); lostConnection(err) && took > quickFailure {
			return classify(fmt.Errorf("%w: lost after %s (no answer within the read timeout, or the server went away)", err, took.Round(time.Millisecond)))
		}
	}
	return classify(fmt.Errorf("gave up after %d attempts: %w", maxAttempts, err))
}

// retryable reports whether err is worth a fresh attempt of the whole
// transaction: a conflict, a deadlock or lock wait, a busy SQLite, or a
// connection lost (see quickFailure). A read-only database is not retried.
func retryable(err error) bool {
	if errors.Is(err, errConflict) || lostConnection(err) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1205, // lock wait timeout
			1213: // deadlock
			return true
		}
	}
	var coded interface{ Code() int } // the sqlite driver's *Error
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	return false
}
