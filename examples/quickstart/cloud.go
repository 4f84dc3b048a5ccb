package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

// watchCloud registers the pollers and the event handlers of the cloud part
// of the scenario (before Run, as registrations must be).
func watchCloud(w *worker.Worker, c *sim.Cloud) (<-chan worker.Action, error) {
	compute, _ := c.Compute()
	network, _ := c.Network()
	if err := w.Register(cloud.ServerPoller{Compute: compute, PageSize: 2}, time.Second); err != nil {
		return nil, err
	}
	if err := w.Register(cloud.FirewallPoller{Network: network}, time.Second); err != nil {
		return nil, err
	}
	if err := w.Watch("acct-42", "acme"); err != nil {
		return nil, err
	}
	events := make(chan worker.Action, 64)
	for _, typ := range []string{"server.changed", "server.deleted", "firewall.changed", "job.completed", "job.failed"} {
		if err := w.HandleFunc(typ, func(_ context.Context, a worker.Action) error {
			events <- a
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// cloudScenario: the first polls store the account's servers and firewall;
// a launch delivered twice starts one server (and opens the firewall to
// SOURCE_CIDR); a terminated server is detected as deleted.
func cloudScenario(ctx context.Context, out io.Writer, w *worker.Worker, c *sim.Cloud, firewall string, events <-chan worker.Action) (string, error) {
	count := map[string]int{}
	await := func(typ string, n int) error {
		deadline := time.After(15 * time.Second)
		for count[typ] < n {
			select {
			case a := <-events:
				if a.Account == "acct-42" { // the first part's state (acct-7) has events too
					count[a.Type]++
				}
			case <-deadline:
				return fmt.Errorf("timed out waiting for %d %s event(s) (have %v)", n, typ, count)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}

	fmt.Fprintln(out, "4. cloud: polling acct-42 on the simulated cloud (servers and firewalls every second)")
	if err := await("server.changed", 3); err != nil {
		return "", err
	}
	if err := await("firewall.changed", 1); err != nil {
		return "", err
	}
	fmt.Fprintln(out, "   first polls stored 3 servers and 1 firewall (one change event each)")

	fmt.Fprintln(out, "   server.launch delivered twice with the same key")
	launch, err := worker.NewAction(worker.TypeServerLaunch, worker.LaunchRequest{
		LaunchRequest: cloud.LaunchRequest{Name: "web-1", Image: "debian-12"}, Firewall: firewall,
	})
	if err != nil {
		return "", err
	}
	launch.Account, launch.Customer, launch.Key = "acct-42", "acme", "order-1001"
	if err := w.Publish(ctx, launch, launch); err != nil {
		return "", err
	}
	if err := await("job.completed", 1); err != nil {
		return "", err
	}
	if err := await("server.changed", 4); err != nil { // the new server, seen by a poll
		return "", err
	}
	fmt.Fprintf(out, "   job completed; servers in the cloud: %d; firewall rules: %d (ingress from SOURCE_CIDR)\n",
		len(c.Servers("acct-42")), len(c.Firewalls("acct-42")[0].Rules))

	compute, _ := c.Compute()
	victim := c.Servers("acct-42")[0].ID
	if _, err := compute.Terminate(ctx, "acct-42", victim); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "   terminated %s in the cloud\n", victim)
	if err := await("server.deleted", 1); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "   server.deleted for %s after the deletion grace period\n", victim)
	return fmt.Sprintf("%d server launched from 2 deliveries, %d deletion detected", count["job.completed"], count["server.deleted"]), nil
}
