package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
)

// Accounts().Put adds an account to the registry: every publisher polls
// it from then on, through the provider its type builds ("sim" here, a
// simulated cloud of the account's own with three servers). The standard
// pollers on Worker.Cloud serve every account of every provider type.
func ExampleWorker_Accounts() {
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	w := exampleWorker(clk, nil)
	compute, _ := w.Cloud().Compute()
	if err := w.Register(cloud.ServerPoller{Compute: compute}, time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	var mu sync.Mutex
	var changed []string
	_ = w.HandleFunc("server.changed", func(_ context.Context, a worker.Action) error {
		mu.Lock()
		changed = append(changed, a.Account+"/"+a.Resource)
		mu.Unlock()
		return nil
	})

	a, err := w.Accounts().Put(context.Background(), accounts.Account{
		ID: "acme-prod", Customer: "acme", Provider: "sim",
		Settings: json.RawMessage(`{"servers":3}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("put", a.ID, "revision", a.Revision)
	runFor(w, clk, 3*time.Minute, 10*time.Second) // three polls; only the first finds anything new
	mu.Lock()
	slices.Sort(changed)
	fmt.Println("changed:", changed)
	mu.Unlock()
	// Output:
	// put acme-prod revision 1
	// changed: [acme-prod/server-1 acme-prod/server-2 acme-prod/server-3]
}
