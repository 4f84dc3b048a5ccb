package vsphere_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/vmware/govmomi/simulator"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
)

// Launch a server from a template, follow the operation, find the server by
// its tag and list the datacenter, against an in-process vcsim.
func Example() {
	ctx := context.Background()

	// A simulated vCenter: one datacenter, one cluster of one host, two VMs.
	model := simulator.VPX()
	model.Host, model.ClusterHost, model.Portgroup, model.Machine = 0, 1, 0, 2
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()
	model.Service.TLS = new(tls.Config)
	srv := model.Service.NewServer()
	defer srv.Close()
	password, _ := srv.URL.User.Password()

	p, err := vsphere.New(ctx, vsphere.Config{
		URL:       "https://" + srv.URL.Host + "/sdk",
		Username:  srv.URL.User.Username(),
		Password:  vsphere.NewSecret(password),
		Insecure:  true, // vcsim's self-signed certificate
		Account:   "lab",
		Templates: map[string]string{"base-image": "DC0_C0_RP0_VM1"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	op, err := p.Launch(ctx, "lab", cloud.LaunchRequest{
		Name: "web-1", Image: "base-image", Tags: map[string]string{"owner": "alice"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for !op.State.Terminal() {
		time.Sleep(10 * time.Millisecond)
		if op, err = p.Operation(ctx, "lab", op.ID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("launch:", op.State)

	found, err := p.FindServersByTag(ctx, "lab", "owner", "alice")
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range found {
		fmt.Println("tagged:", s.Name, s.State, s.Image)
	}

	page, err := p.ListServers(ctx, "lab", cloud.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range page.Servers {
		fmt.Println("server:", s.Name, s.State, s.Region)
	}
	// Output:
	// launch: SUCCEEDED
	// tagged: web-1 RUNNING base-image
	// server: DC0_C0_RP0_VM0 RUNNING DC0
	// server: DC0_C0_RP0_VM1 RUNNING DC0
	// server: web-1 RUNNING DC0
}
