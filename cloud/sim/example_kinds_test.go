package sim_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/state"
)

// The standard pollers of a cloud without DNS, and one poll of its load
// balancers. A host registers each with worker.Register(s.Poller, s.Interval).
func ExampleStandardPollers() {
	c, err := sim.New(sim.Config{Disable: []string{sim.ServiceDNS}})
	if err != nil {
		panic(err)
	}
	if _, err := cloud.DNSOf(c); errors.Is(err, cloud.ErrNotSupported) {
		fmt.Println(err)
	}
	pollers, err := cloud.StandardPollers(c)
	if err != nil {
		panic(err)
	}
	for _, s := range pollers[len(pollers)-4:] {
		fmt.Println(s.Poller.Kind(), s.Interval)
	}

	_, err = sim.Put(c, "acct-1", cloud.LoadBalancer{ID: "lb-1", Name: "web", State: cloud.ResourceActive,
		Servers: []string{"server-2", "server-1"}})
	if err != nil {
		panic(err)
	}
	lbs := cloud.LoadBalancerPoller{LoadBalancers: c}
	snap, _, err := lbs.Poll(context.Background(), state.Target{Account: "acct-1", Kind: lbs.Kind()}, "")
	if err != nil {
		panic(err)
	}
	for _, o := range snap.Observations {
		fmt.Println(o.Kind, o.ID, string(o.Attributes), snap.Complete)
	}
	// Output:
	// cloud: not supported by this provider: sim has no dns service
	// certificate 6h0m0s
	// subscription 6h0m0s
	// invoice 6h0m0s
	// server-analytics 5m0s
	// load-balancer lb-1 {"name":"web","servers":["server-1","server-2"],"state":"ACTIVE"} true
}
