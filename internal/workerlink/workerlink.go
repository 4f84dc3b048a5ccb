// Package workerlink gives the module's own packages (workertest) what the
// root package keeps out of its API: the worker's concrete store and the
// subscriber's ways of receiving an action and running one attempt of a
// handler. The root package
// sets the functions when it is initialised, so they are set for any
// program that has a *worker.Worker or a worker.Handler to pass.
//
// Nothing here is for hosts: it is internal, so they cannot import it.
package workerlink

import (
	"context"
	"time"

	"github.com/stratusworks/worker/persist"
)

// BuiltinStore returns the store a *worker.Worker opened itself, or nil
// when its Config.Storage is the host's (or w is not a *worker.Worker).
// workertest reads the outbox and the parked retries through it; the
// worker's public Store method is a read-only view.
var BuiltinStore func(w any) *persist.Store

// Attempt runs one attempt as the worker's subscriber does: run is called
// with a context bounded by timeout; a panic in run becomes a
// worker.Permanent error wrapping worker.ErrHandlerPanic (with the panic
// value and the stack), and an error run returns after the timeout passed
// (while ctx itself is live) is wrapped with worker.ErrHandlerTimeout.
var Attempt func(ctx context.Context, timeout time.Duration, run func(context.Context) error) error

// Deliver returns a (a worker.Action) as a handler receives it when a
// publisher sends it at now with the default Config: a missing ID, Key and
// CreatedAt filled in as Publish fills them, encoded to the wire format and
// decoded by the subscriber's decoder. The error says which side refuses it.
var Deliver func(a any, now time.Time) (any, error)
