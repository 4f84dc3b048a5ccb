package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBatcher: many concurrent callers are written in few batches, each
// item once; a failed write fails exactly the callers of its batch.
func TestBatcher(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[int]int{}
	var writes atomic.Int64
	fail := atomic.Bool{}
	b := newBatcher(50, func(_ context.Context, items ...int) error {
		writes.Add(1)
		if fail.Load() {
			return errors.New("db down")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, i := range items {
			seen[i]++
		}
		return nil
	})
	const n = 1000
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, b.forward(context.Background(), i)) }()
	}
	wg.Wait()
	require.Len(t, seen, n)
	for i, c := range seen {
		require.Equal(t, 1, c, "item %d written once", i)
	}
	require.Less(t, writes.Load(), int64(n), "batched")
	t.Logf("%d items in %d writes", n, writes.Load())

	fail.Store(true)
	require.Error(t, b.forward(context.Background(), -1))
	fail.Store(false)
	require.NoError(t, b.forward(context.Background(), -2))
	require.Equal(t, 1, seen[-2])
	require.Zero(t, seen[-1])
}
