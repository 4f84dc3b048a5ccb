package worker

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Test for them with [errors.Is].
var (
	// ErrInvalidAction reports an action that fails validation or cannot be decoded.
	// The error is a *[ValidationError] or wraps the decoding failure.
	ErrInvalidAction = errors.New("worker: invalid action")
	// ErrPayloadTooLarge reports an encoded action larger than MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("worker: action too large")
	// ErrNoHandler reports an action whose type has no registered handler.
	ErrNoHandler = errors.New("worker: no handler for action type")
	// ErrHandlerTimeout reports a handler that did not finish within HandlerTimeout.
	ErrHandlerTimeout = errors.New("worker: handler timed out")
	// ErrHandlerPanic reports a handler that panicked; the panic value and stack are in the message.
	ErrHandlerPanic = errors.New("worker: handler panicked")
	// ErrAlreadyRunning reports a second Run, or a registration after Run started.
	ErrAlreadyRunning = errors.New("worker: already running")
	// ErrInvalidConfig is wrapped by every configuration error; the message names the field.
	ErrInvalidConfig = errors.New("worker: invalid config")
	// ErrRoleNotSupported reports a call that the worker's Role does not allow,
	// such as registering a handler on a publisher-only worker.
	ErrRoleNotSupported = errors.New("worker: not supported in this role")
)

// ValidationError names the field of an [Action] that is wrong and why.
// It matches [ErrInvalidAction] with errors.Is.
type ValidationError struct {
	Field  string // e.g. "Type"
	Value  string // the offending value, shortened
	Reason string // e.g. "is required"
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("worker: invalid action: %s %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("worker: invalid action: %s %q %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is ErrInvalidAction.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidAction }

// configError builds an error that names the bad field and wraps ErrInvalidConfig.
func configError(field string, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// permanentError marks an error as not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the subscriber does not retry the action and
// sends it straight to the poison store with err's message as the reason.
// Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	var p *permanentError
	if errors.As(err, &p) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// snoozeError asks for the action to be tried again after a while, without
// counting a failure.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("worker: snoozed for %v", e.d) }

// Snooze returns an error that makes the subscriber try the action again
// after d, as a handler does when the action cannot proceed yet but nothing
// failed: a resource is still being created, a window has not passed. The
// wait neither counts as an attempt nor spends the retry budget (the action's
// Attempt stays the same); like a retry, a wait longer than
// RetryPolicy.InlineMax parks the action durably and frees the handler
// slot. A negative d counts as 0. Snoozing for ever is the handler's choice:
// nothing stops an action that always snoozes.
func Snooze(d time.Duration) error { return &snoozeError{d: max(d, 0)} }

// snoozed reports whether err asks for a snooze, and for how long.
func snoozed(err error) (time.Duration, bool) {
	var s *snoozeError
	if errors.As(err, &s) {
		return s.d, true
	}
	return 0, false
}
