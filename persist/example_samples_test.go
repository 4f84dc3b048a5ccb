package persist_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// Usage samples are appended, not compared: a redelivered batch adds
// nothing, and the hourly rollup is recomputed from the raw samples.
func ExampleStore_AppendSamples() {
	ctx := context.Background()
	store, err := persist.Open(ctx, persist.Config{
		Provisioning: persist.DBConfig{DSN: persist.MemoryDSN},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	hour := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var batch []state.Sample
	for i, cpu := range []float64{10, 30, 80} {
		batch = append(batch, state.Sample{Server: "vm-42", At: hour.Add(time.Duration(i) * 20 * time.Second),
			CPU: cpu, Memory: 40, DiskRead: 4096, NetTx: 1000 * int64(i)})
	}
	for range 2 { // the second time: a redelivery
		n, err := store.AppendSamples(ctx, "acct-1", batch)
		if err != nil {
			panic(err)
		}
		fmt.Println("new samples:", n)
	}
	hours, err := store.UsageRollups(ctx, "acct-1", "vm-42", hour, hour.Add(time.Hour), 10)
	if err != nil {
		panic(err)
	}
	for _, h := range hours {
		fmt.Printf("%s: %d samples, cpu min %.0f avg %.0f max %.0f, net tx avg %.0f B/s\n",
			h.Hour.Format("15:04"), h.Samples, h.CPU.Min, h.CPU.Avg, h.CPU.Max, h.NetTx.Avg)
	}
	// Output:
	// new samples: 3
	// new samples: 0
	// 10:00: 3 samples, cpu min 10 avg 40 max 80, net tx avg 1000 B/s
}
