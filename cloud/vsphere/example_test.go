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

// One provider, one account, every datacenter of the vCenter: with
// Config.Datacenter empty, listings cover both datacenters and each server's
// Region is its datacenter. Launches go to LaunchDatacenter.
func Example_datacenters() {
	ctx := context.Background()

	// A simulated vCenter: two datacenters, one cluster of one host each,
	// two VMs each.
	model := simulator.VPX()
	model.Datacenter, model.Host, model.ClusterHost, model.Portgroup, model.Machine = 2, 0, 1, 0, 2
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()
	model.Service.TLS = new(tls.Config)
	srv := model.Service.NewServer()
	defer srv.Close()
	password, _ := srv.URL.User.Password()

	p, err := vsphere.New(ctx, vsphere.Config{
		URL:              "https://" + srv.URL.Host + "/sdk",
		Username:         srv.URL.User.Username(),
		Password:         vsphere.NewSecret(password),
		Insecure:         true,  // vcsim's self-signed certificate
		LaunchDatacenter: "DC1", // needed to launch only: two datacenters are covered
		Account:          "lab",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	fmt.Println("datacenters:", p.Datacenters())

	tok := ""
	for page := 1; ; page++ {
		servers, err := p.ListServers(ctx, "lab", cloud.ListOptions{PageSize: 3, PageToken: tok})
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range servers.Servers {
			fmt.Println("page", page, "server:", s.Name, s.State, s.Region)
		}
		if tok = servers.NextToken; tok == "" {
			break
		}
	}
	// Output:
	// datacenters: [/DC0 /DC1]
	// page 1 server: DC0_C0_RP0_VM0 RUNNING DC0
	// page 1 server: DC0_C0_RP0_VM1 RUNNING DC0
	// page 1 server: DC1_C0_RP0_VM0 RUNNING DC1
	// page 2 server: DC1_C0_RP0_VM1 RUNNING DC1
}

// An account registry keeps an account's settings as JSON without
// credentials, and adds those (from km) when it builds the provider.
func ExampleParseSettings() {
	s, err := vsphere.ParseSettings([]byte(`{
		"url": "https://vcenter.example.com/sdk",
		"timeout": "30s",
		"datacenters": ["DC0", "DC1"],
		"launch_datacenter": "DC1",
		"sizes": {"small": {"cpus": 2, "memory_mb": 2048}}
	}`))
	if err != nil {
		log.Fatal(err)
	}
	cfg := s.Config("acme-vc1", "svc-worker@vsphere.local", vsphere.NewSecret("from-km"))
	fmt.Println(cfg.Account, cfg.Username, cfg.Password, cfg.Timeout, cfg.Datacenters, cfg.LaunchDatacenter, cfg.Sizes["small"].CPUs)

	_, err = vsphere.ParseSettings([]byte(`{"url": "https://vcenter.example.com/sdk", "password": "hunter2"}`))
	fmt.Println(err)
	_, err = vsphere.ParseSettings([]byte(`{"url": "https://vcenter.example.com/sdk", "timeout": "5 minutes"}`))
	fmt.Println(err)
	// Output:
	// acme-vc1 svc-worker@vsphere.local [REDACTED] 30s [DC0 DC1] DC1 2
	// vsphere: invalid settings: field "password" looks like a credential: credentials come from km (the account's credential), never from settings
	// vsphere: invalid settings: field "timeout" value "5 minutes": "5 minutes" is not a duration (want e.g. "30s" or "2m")
}
