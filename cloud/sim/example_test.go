package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

// Launch a server, move the fake clock past the launch delay, and see it RUNNING.
func Example() {
	ctx := context.Background()
	clk := sim.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c, err := sim.New(sim.Config{Now: clk.Now, LaunchDelay: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	if err := c.AddAccount("acct-1"); err != nil {
		panic(err)
	}

	op, err := c.Launch(ctx, "acct-1", cloud.LaunchRequest{Name: "web-1", Image: "ubuntu-24.04"})
	if err != nil {
		panic(err)
	}
	s, _ := c.GetServer(ctx, "acct-1", op.ResourceID)
	fmt.Println(s.Name, s.State, op.State)

	clk.Advance(30 * time.Second)
	s, _ = c.GetServer(ctx, "acct-1", op.ResourceID)
	op, _ = c.Operation(ctx, "acct-1", op.ID)
	fmt.Println(s.Name, s.State, op.State)
	// Output:
	// web-1 PENDING RUNNING
	// web-1 RUNNING SUCCEEDED
}
