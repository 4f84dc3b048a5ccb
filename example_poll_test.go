package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// exampleWorker is a worker on embedded defaults with an in-memory database
// and a fake clock the example moves; jitter and the initial spread are off
// so that the output is the same on every run.
func exampleWorker(clk *clock.Fake, p cloud.Provider) *worker.Worker {
	w, err := worker.New(context.Background(), worker.Config{
		Store:    persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}},
		Logger:   quiet,
		Cloud:    p,
		Schedule: poller.Config{Clock: clk, Jitter: -1, InitialSpread: -1},
	})
	if err != nil {
		panic(err)
	}
	return w
}

// runFor runs w while the fake clock moves by d in steps, then stops it.
func runFor(w *worker.Worker, clk *clock.Fake, d, step time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()
	for moved := time.Duration(0); moved < d; moved += step {
		clk.Advance(step)
		for !w.ScheduleIdle() { // let the dispatched polls run
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(1500 * time.Millisecond) // let the outbox relay publish
	cancel()
	<-done
}

// A custom poller: budgets read from a billing system, two pages per
// account. Register sets the kind's interval; Watch polls every registered
// kind of an account. Changes arrive as "<kind>.changed" events.
func ExampleWorker_Register() {
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	w := exampleWorker(clk, nil)
	spent := 100
	budgets := worker.PollerFunc("budget", func(_ context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
		page := map[string]string{"": "b-1", "p2": "b-2"}[cursor]
		next := map[string]string{"": "p2"}[cursor]
		attrs, _ := json.Marshal(map[string]int{"spent": spent})
		return state.Snapshot{
			Observations: []state.Observation{{ID: page, Attributes: attrs}},
			Complete:     next == "",
		}, next, nil
	})
	if err := w.Register(budgets, time.Hour); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Watch("acct-1", "acme"); err != nil {
		fmt.Println(err)
		return
	}
	var mu sync.Mutex
	seen := map[string]int{}
	_ = w.HandleFunc("budget.changed", func(_ context.Context, a worker.Action) error {
		mu.Lock()
		seen[a.Resource]++
		mu.Unlock()
		return nil
	})
	runFor(w, clk, 3*time.Hour, 10*time.Minute) // three polls; only the first changes anything
	mu.Lock()
	fmt.Println("b-1 changed:", seen["b-1"], "b-2 changed:", seen["b-2"])
	mu.Unlock()
	// Output:
	// b-1 changed: 1 b-2 changed: 1
}

// Schedule gives one resource its own interval: this firewall is polled
// every 10 seconds, while its kind is polled every hour for the account.
func ExampleWorker_Schedule() {
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	w := exampleWorker(clk, nil)
	var mu sync.Mutex
	polls := map[string]int{}
	firewalls := worker.PollerFunc("firewall", func(_ context.Context, t state.Target, _ string) (state.Snapshot, string, error) {
		mu.Lock()
		polls[t.Resource]++
		mu.Unlock()
		return state.Snapshot{}, "", nil
	})
	_ = w.Register(firewalls, time.Hour)
	_ = w.Watch("acct-1", "acme")
	if err := w.Schedule(state.Target{Account: "acct-1", Customer: "acme", Kind: "firewall", Resource: "fw-web"}, 10*time.Second); err != nil {
		fmt.Println(err)
		return
	}
	runFor(w, clk, time.Minute, time.Second)
	mu.Lock()
	fmt.Println("whole kind:", polls[""], "fw-web:", polls["fw-web"])
	mu.Unlock()
	// Output:
	// whole kind: 1 fw-web: 7
}

// TrackJob follows a cloud operation started elsewhere until the cloud says
// it is done; its outcome arrives once as a "job.completed" (or
// "job.failed", "job.timed_out") event.
func ExampleWorker_TrackJob() {
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	c, _ := sim.New(sim.Config{Now: clk.Now}) // launches take 30s
	_ = c.AddAccount("acct-1")
	compute, _ := c.Compute()
	op, err := compute.Launch(context.Background(), "acct-1", cloud.LaunchRequest{Name: "db-1", Image: "debian-12"})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := exampleWorker(clk, c)
	done := make(chan worker.Action, 1)
	_ = w.HandleFunc("job.completed", func(_ context.Context, a worker.Action) error {
		done <- a
		return nil
	})
	if err := w.TrackJob(context.Background(), persist.Job{ID: "provision-42", Account: "acct-1", Customer: "acme", OperationID: op.ID}); err != nil {
		fmt.Println(err)
		return
	}
	runFor(w, clk, time.Minute, 5*time.Second)
	a := <-done
	var job persist.Job
	_ = a.Decode(&job)
	fmt.Println(a.Type, job.ID, job.State)
	// Output:
	// job.completed provision-42 succeeded
}

// A poisoned action keeps its reason; once the cause is fixed, Replay sends
// it again (ReplayAll sends every one).
func ExampleWorker_Replay() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, worker.Config{
		Store:  persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}},
		Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var mu sync.Mutex
	fixed := false
	handled := make(chan string, 1)
	_ = w.HandleFunc("invoice.send", func(_ context.Context, a worker.Action) error {
		mu.Lock()
		defer mu.Unlock()
		if !fixed {
			return worker.Permanent(errors.New("template invoice-v2 is missing"))
		}
		handled <- a.Key
		return nil
	})
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx) }()
	_ = w.Publish(ctx, worker.Action{Type: "invoice.send", Key: "inv-7"})

	var ps []worker.PoisonedAction
	for len(ps) == 0 {
		time.Sleep(10 * time.Millisecond)
		ps, _ = w.Poisoned(ctx, worker.PoisonQuery{})
	}
	fmt.Println("poisoned:", ps[0].Action.Key, "-", ps[0].Reason)
	mu.Lock()
	fixed = true // the template is deployed
	mu.Unlock()
	if err := w.Replay(ctx, ps[0].ID); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("handled after replay:", <-handled)
	cancel()
	<-stopped
	// Output:
	// poisoned: inv-7 - template invoice-v2 is missing
	// handled after replay: inv-7
}
