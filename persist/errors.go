package persist

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Errors callers can branch on with errors.Is.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("persist: not found")
	// ErrSchemaTooNew means the database was migrated by a newer version of this
	// package than the running binary; upgrade the binary (never downgrade the
	// schema by hand).
	ErrSchemaTooNew = errors.New("persist: database schema is newer than this binary supports")
	// ErrInvalid marks input or configuration the store rejects. Retrying the
	// same call cannot succeed, so message handlers should treat it as permanent.
	ErrInvalid = errors.New("persist: invalid input")
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

const (
	maxAttempts  = 5
	retryBackoff = 10 * time.Millisecond
)

// retry runs fn until it succeeds, fails with a non-retryable error, or has
// failed maxAttempts times. Conflicts and transient connection or locking
// errors are retried after a short, jittered, growing pause.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			pause := retryBackoff << (attempt - 1)
			pause += rand.N(pause)
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		if err = fn(); err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", maxAttempts, err)
}

// retryable reports whether err is worth a fresh attempt of the whole
// transaction.
func retryable(err error) bool {
	if errors.Is(err, errConflict) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
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
