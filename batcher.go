package worker

import (
	"context"
	"sync"
)

// batcher writes items in batches for many concurrent callers (group
// commit): forward waits until its item is written with the others that
// arrived meanwhile, in one call of write, so that N handlers at once cost
// one statement, not N. A caller's item is written at most once; if the
// write fails, every caller of that batch gets the error (and the action is
// retried, writing its item again: forwarded reports are idempotent to the
// owner, which applies an outcome once per lease).
type batcher[T any] struct {
	write func(ctx context.Context, items ...T) error
	max   int

	mu      sync.Mutex
	pending []T
	waiters []chan error
	writing bool
}

func newBatcher[T any](max int, write func(ctx context.Context, items ...T) error) *batcher[T] {
	return &batcher[T]{write: write, max: max}
}

// forward adds item to the next batch and waits until that batch is
// written, or ctx is done.
func (b *batcher[T]) forward(ctx context.Context, item T) error {
	done := make(chan error, 1)
	b.mu.Lock()
	b.pending = append(b.pending, item)
	b.waiters = append(b.waiters, done)
	lead := !b.writing
	if lead {
		b.writing = true
	}
	b.mu.Unlock()
	if lead {
		b.flush(ctx)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes one batch, then hands the next one (what arrived
// meanwhile) to a goroutine of its own, so that the caller that led this
// batch returns with it; one batch is written at a time.
func (b *batcher[T]) flush(ctx context.Context) {
	b.mu.Lock()
	n := min(len(b.pending), b.max)
	items, waiters := b.pending[:n:n], b.waiters[:n:n]
	b.pending, b.waiters = b.pending[n:], b.waiters[n:]
	b.mu.Unlock()
	// The leader's context must not fail the others' items: a batch is
	// written under a context of its own.
	err := b.write(context.WithoutCancel(ctx), items...)
	for _, w := range waiters {
		w <- err
	}
	b.mu.Lock()
	more := len(b.pending) > 0
	if !more {
		b.writing = false
	}
	b.mu.Unlock()
	if more {
		go b.flush(context.WithoutCancel(ctx))
	}
}
