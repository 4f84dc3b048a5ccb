package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	gate := make(chan struct{})
	var first atomic.Int64
	b := newBatcher(50, func(_ context.Context, items ...int) error {
		if writes.Add(1) == 1 {
			first.Store(int64(len(items)))
			<-gate // the first write is slow: the others queue behind it
		}
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
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return first.Load() > 0 && int64(len(b.pending))+first.Load() == n
	}, 10*time.Second, time.Millisecond)
	close(gate)
	wg.Wait()
	require.Len(t, seen, n)
	for i, c := range seen {
		require.Equal(t, 1, c, "item %d written once", i)
	}
	rest := n - int(first.Load())
	require.Equal(t, int64(1+(rest+49)/50), writes.Load(), "the first batch, then the rest in batches of 50")
	t.Logf("%d items in %d writes", n, writes.Load())

	fail.Store(true)
	require.Error(t, b.forward(context.Background(), -1))
	fail.Store(false)
	require.NoError(t, b.forward(context.Background(), -2))
	require.Equal(t, 1, seen[-2])
	require.Zero(t, seen[-1])
}
