package persist_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

func ExampleStore_Save() {
	ctx := context.Background()
	store, err := persist.Open(ctx, persist.Config{
		Provisioning: persist.DBConfig{DSN: persist.MemoryDSN},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	target := state.Target{Account: "acct-1", Customer: "acme", Kind: "server"}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	poll := func(attrs string, at time.Time) {
		changes, err := store.Save(ctx, target, state.Snapshot{Observations: []state.Observation{
			{ID: "i-1", Attributes: json.RawMessage(attrs), ObservedAt: at},
		}})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d change(s)\n", len(changes))
		for _, c := range changes {
			fmt.Printf("  %s %s v%d fields=%v %s\n", c.Op, c.Target, c.Version, c.Fields, c.After.Attributes)
		}
	}

	poll(`{"state": "pending", "size": "m1.small"}`, at)
	poll(`{"size": "m1.small", "state": "running"}`, at.Add(time.Minute))
	poll(`{"state": "running", "size": "m1.small"}`, at.Add(2*time.Minute)) // same state: nothing written
	poll(`{"state": "pending", "size": "m1.small"}`, at)                    // older than stored: ignored

	// Output:
	// 1 change(s)
	//   created acct-1/server/i-1 v1 fields=[] {"size":"m1.small","state":"pending"}
	// 1 change(s)
	//   updated acct-1/server/i-1 v2 fields=[state] {"size":"m1.small","state":"running"}
	// 0 change(s)
	// 0 change(s)
}
