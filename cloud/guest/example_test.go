package guest_test

import (
	"fmt"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/guest"
)

func ExampleFromServer() {
	servers := []cloud.Server{
		{ID: "i-1", Account: "prod", State: cloud.StateRunning, PrivateIPs: []string{"10.0.0.5"}},
		{ID: "i-2", Account: "prod", State: cloud.StateStopped, PrivateIPs: []string{"10.0.0.6"}},
	}
	for _, s := range servers {
		g := guest.FromServer("acme", s)
		fmt.Println(g.ServerID, g.Address, g.State == cloud.StateRunning)
	}
	// Output:
	// i-1 10.0.0.5 true
	// i-2 10.0.0.6 false
}
