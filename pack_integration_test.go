package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// TestRabbitMQPackedBatch: on RabbitMQ, with the default settings, a batch
// of 600 actions travels as 3 messages (256 + 256 + 88); each action is
// handled on its own (a transient failure retried, a permanent one
// poisoned alone) and every pack is acked: the queue ends empty.
func TestRabbitMQPackedBatch(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := uniqueTopology(t, url)
	w := newTestWorker(t, Config{
		MQ:       MQConfig{URL: url},
		Store:    persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()},
		Topology: top,
		Retry:    RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond}, // a quick retry of the transient failure
	})
	var mu sync.Mutex
	handled := map[string]int{}
	failed := map[string]bool{}
	require.NoError(t, w.HandleFunc("t", func(_ context.Context, a Action) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case a.Key == "k100":
			return Permanent(errors.New("refused"))
		case a.Key == "k200" && !failed[a.Key]:
			failed[a.Key] = true
			return errors.New("transient")
		}
		handled[a.Key]++
		return nil
	}))
	as := make([]Action, 600)
	for i := range as {
		as[i] = Action{Type: "t", Key: fmt.Sprintf("k%03d", i)}
	}
	ch := rawChannel(t, url)
	queue := top.Topic(QueueActions)
	require.NoError(t, w.Publish(context.Background(), as...)) // before Run: the packs wait on the queue
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(t, err)
	require.Equal(t, 3, q.Messages, "600 actions in 3 packed messages")

	ctx := runWorkerUntilCleanup(t, w)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 599
	}, 60*time.Second, 10*time.Millisecond)
	mu.Lock()
	for k, n := range handled {
		require.Equal(t, 1, n, k)
	}
	mu.Unlock()
	ps, err := w.Poisoned(ctx, PoisonQuery{})
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, "k100", ps[0].Action.Key)
	require.Eventually(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == 0 && q.Consumers > 0
	}, 20*time.Second, 20*time.Millisecond)
	// Nothing is unacked either: purge would return 0 and the consumer's
	// in-hand count is the broker's business; a redelivered pack would
	// have handled its actions again.
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for k, n := range handled {
		require.Equal(t, 1, n, k)
	}
}
