package worker

import "context"

// Handler acts on one [Action]. The subscriber calls it for every action of the
// type it was registered for.
//
// Delivery is at least once: a handler may see the same action again after a
// crash, a timeout or a broker redelivery, so its effect must be idempotent (use
// [Action.Key]). Return nil only when the effect is durable: the action is
// acknowledged right after. Return an error to have it retried with backoff, or
// [Permanent](err) to send it straight to the poison store. The handler must
// honour ctx: it is cancelled at HandlerTimeout and when shutdown's drain time
// runs out.
type Handler interface {
	Handle(ctx context.Context, a Action) error
}

// HandlerFunc adapts a function to the [Handler] interface.
type HandlerFunc func(ctx context.Context, a Action) error

// Handle calls f(ctx, a).
func (f HandlerFunc) Handle(ctx context.Context, a Action) error { return f(ctx, a) }
