package workertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// quiet keeps example output to what the examples print.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// launch is a host's handler: a bad request is permanent, a throttled
// cloud is retried no sooner than it asks, and a panic poisons.
func launch(_ context.Context, a worker.Action) error {
	var req struct {
		Image string `json:"image"`
	}
	if err := a.Decode(&req); err != nil {
		return worker.Permanent(err)
	}
	switch {
	case req.Image == "":
		return worker.Permanent(errors.New("no image"))
	case req.Image == "null":
		panic("nil image catalog")
	case a.Attempt == 1:
		return &cloud.ThrottledError{API: "Launch", RetryAfter: time.Minute}
	}
	return nil
}

// Run calls a handler once and says what the worker would do next.
func ExampleRun() {
	t := &testing.T{} // in a test: its *testing.T
	h := worker.HandlerFunc(launch)

	a, _ := worker.NewAction("server.launch", map[string]string{"image": "debian-13"})
	r := workertest.Run(t, h, a)
	fmt.Println(r.Outcome, r.Wait)
	r = workertest.Run(t, h, a, workertest.WithAttempt(2))
	fmt.Println(r.Outcome)

	bad, _ := worker.NewAction("server.launch", map[string]string{})
	r = workertest.Run(t, h, bad)
	fmt.Printf("%s: %s\n", r.Outcome, r.Reason)

	crash, _ := worker.NewAction("server.launch", map[string]string{"image": "null"})
	r = workertest.Run(t, h, crash)
	fmt.Println(r.Outcome, errors.Is(r.Err, worker.ErrHandlerPanic))
	// Output:
	// retried 1m0s
	// handled
	// poisoned: no image
	// poisoned true
}

// An Env is a whole worker on a simulated cloud and a fake clock: poll an
// account, change the cloud, move the clock, read the events.
func ExampleEnv() {
	t := &testing.T{} // in a test: its *testing.T
	env := workertest.NewEnv(t, workertest.WithConfig(func(c *worker.Config) { c.Logger = quiet }))
	defer env.Stop() // a test's Env stops when the test ends

	web, _ := env.Cloud.AddServer("acct-1", cloud.Server{Name: "web-1", Image: "debian-12", State: cloud.StateRunning})
	compute, _ := env.Cloud.Compute()
	_ = env.Worker.Register(cloud.ServerPoller{Compute: compute}, time.Minute)
	_ = env.Worker.Watch("acct-1", "acme")
	env.Start(t)

	env.Advance(t, time.Minute, 5*time.Second) // the first poll comes within an interval
	show(env.Event(t, "server.changed"))

	_ = env.Cloud.SetServerState("acct-1", web.ID, cloud.StateStopped)
	env.Advance(t, 2*time.Minute, 5*time.Second)
	show(env.Event(t, "server.changed"))
	fmt.Println("more events:", len(env.Drain(t)))
	// Output:
	// created web-1 RUNNING []
	// updated web-1 STOPPED [state]
	// more events: 0
}

func show(ev worker.Action) {
	var ch state.Change
	_ = ev.Decode(&ch)
	var s cloud.Server
	_ = json.Unmarshal(ch.After.Attributes, &s)
	fmt.Println(ch.Op, s.Name, s.State, ch.Fields)
}

// Poll drives a poller through its pages into a store and returns what
// changed.
func ExamplePoll() {
	t := &testing.T{} // in a test: its *testing.T
	c, _ := sim.New(sim.Config{})
	for _, name := range []string{"web-1", "web-2", "db-1"} {
		_, _ = c.AddServer("acct-1", cloud.Server{Name: name, Image: "debian-12", State: cloud.StateRunning})
	}
	compute, _ := c.Compute()
	p := cloud.ServerPoller{Compute: compute, PageSize: 2}
	target := state.Target{Account: "acct-1", Customer: "acme", Kind: "server"}
	store := workertest.NewStore(t)

	fmt.Println("pages:", len(workertest.Pages(t, p, target)))
	fmt.Println("first poll:", len(workertest.Poll(t, p, target, store)), "changes")
	fmt.Println("second poll:", len(workertest.Poll(t, p, target, store)), "changes")
	_ = store.Close() // a test's store closes when the test ends
	// Output:
	// pages: 2
	// first poll: 3 changes
	// second poll: 0 changes
}
