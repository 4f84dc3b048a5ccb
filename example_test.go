package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// quiet keeps example output to what the examples print.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A complete worker on embedded defaults: publish an action, handle it, stop.
func Example() {
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
	done := make(chan struct{})
	_ = w.HandleFunc("server.launch", func(ctx context.Context, a worker.Action) error {
		var req struct{ Image string }
		if err := a.Decode(&req); err != nil {
			return worker.Permanent(err)
		}
		fmt.Printf("launching %s for %s (key %s)\n", req.Image, a.Customer, a.Key)
		close(done)
		return nil
	})

	// Publishing before Run is fine: the action waits in its queue.
	a, _ := worker.NewAction("server.launch", map[string]string{"image": "debian-13"})
	a.Customer, a.Key = "acme", "launch-7"
	if err := w.Publish(ctx, a); err != nil {
		fmt.Println(err)
		return
	}
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx) }()
	<-done
	cancel()
	fmt.Println("stopped:", <-stopped)
	// Output:
	// launching debian-13 for acme (key launch-7)
	// stopped: <nil>
}

// Handlers save what they observe to the worker's StateSink; only changes come back.
func ExampleStateSink() {
	ctx := context.Background()
	w, err := worker.New(ctx, worker.Config{
		Store:  persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}},
		Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	sink := w.Sink()
	target := state.Target{Account: "acct-1", Kind: "server"}
	save := func(st string) {
		changes, err := sink.Save(ctx, target, state.Snapshot{Observations: []state.Observation{
			{ID: "i-1", Attributes: json.RawMessage(`{"state":"` + st + `"}`)},
		}})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: %d change(s)", st, len(changes))
		for _, c := range changes {
			fmt.Printf(" %s v%d %v", c.Op, c.Version, c.Fields)
		}
		fmt.Println()
	}
	save("PENDING")
	save("PENDING")
	save("RUNNING")
	// Output:
	// PENDING: 1 change(s) created v1 []
	// PENDING: 0 change(s)
	// RUNNING: 1 change(s) updated v2 [state]
}

// Each action type is published to one of three queues.
func ExampleTopology_QueueFor() {
	top := worker.Topology{Prefix: "prod", Routes: worker.DefaultRoutes()}
	for _, typ := range []string{"server.launch", "poll", "job.check", "server.changed", "job.completed"} {
		fmt.Printf("%-15s -> %s\n", typ, top.Topic(top.QueueFor(typ)))
	}
	// Output:
	// server.launch   -> prod.actions
	// poll            -> prod.polls
	// job.check       -> prod.polls
	// server.changed  -> prod.events
	// job.completed   -> prod.events
}

// A handler returns Permanent for an error that retrying cannot fix.
func ExamplePermanent() {
	err := worker.Permanent(fmt.Errorf("image %q does not exist", "debian-99"))
	fmt.Println(worker.IsPermanent(err), err)
	fmt.Println(worker.IsPermanent(errors.New("503 service unavailable")))
	// Output:
	// true image "debian-99" does not exist
	// false
}

// Validate names the bad field.
func ExampleAction_Validate() {
	err := worker.Action{Type: "Server Launch"}.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, worker.ErrInvalidAction))
	// Output:
	// worker: invalid action: Type "Server Launch" must be 1-128 bytes of a-z 0-9 . _ - starting with a letter or digit
	// true
}

// A handler that cannot proceed yet snoozes: the action comes back after the
// wait with the same Attempt, and no retry budget is spent. A returned
// *cloud.ThrottledError is retried no sooner than its RetryAfter.
func ExampleSnooze() {
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
	ready := false
	done := make(chan struct{})
	_ = w.HandleFunc("volume.attach", func(ctx context.Context, a worker.Action) error {
		if !ready {
			fmt.Println("volume still creating; attempt", a.Attempt)
			ready = true
			return worker.Snooze(10 * time.Millisecond)
		}
		fmt.Println("attached; attempt", a.Attempt)
		close(done)
		return nil
	})
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx) }()
	_ = w.Publish(ctx, worker.Action{Type: "volume.attach"})
	<-done
	cancel()
	<-stopped
	// Output:
	// volume still creating; attempt 1
	// attached; attempt 1
}
