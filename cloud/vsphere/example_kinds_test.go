package vsphere_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/state"
)

// The kinds a vSphere provider offers, and one poll of its images (template
// VMs) with the image poller, against an in-process vcsim.
func Example_kinds() {
	ctx := context.Background()
	model := simulator.VPX() // one datacenter, one cluster, two VMs
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
		URL: "https://" + srv.URL.Host + "/sdk", Username: srv.URL.User.Username(), Password: vsphere.NewSecret(password),
		Insecure: true, Account: "lab",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	pollers, err := cloud.StandardPollers(p)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range pollers {
		fmt.Printf("%s every %v\n", s.Poller.Kind(), s.Interval)
	}
	_, err = cloud.DNSOf(p)
	fmt.Println(err)

	// An operator converts a VM to a template (in a session of their own):
	// an image.
	admin, err := govmomi.NewClient(ctx, srv.URL, true)
	if err != nil {
		log.Fatal(err)
	}
	vm, err := find.NewFinder(admin.Client).VirtualMachine(ctx, "/DC0/vm/DC0_C0_RP0_VM1")
	if err != nil {
		log.Fatal(err)
	}
	if task, err := vm.PowerOff(ctx); err != nil || task.Wait(ctx) != nil {
		log.Fatal("power off: ", err)
	}
	if err := vm.MarkAsTemplate(ctx); err != nil {
		log.Fatal(err)
	}
	snap, _, err := cloud.ImagePoller{Images: p}.Poll(ctx, state.Target{Account: "lab", Kind: cloud.KindImage}, "")
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range snap.Observations {
		var img struct {
			Name, State string
			Public      bool
			CreatedAt   time.Time `json:"created_at"`
		}
		if err := json.Unmarshal(o.Attributes, &img); err != nil {
			log.Fatal(err)
		}
		fmt.Println(o.Kind, img.Name, img.State, "public:", img.Public, "created:", !img.CreatedAt.IsZero())
	}
	fmt.Println("complete:", snap.Complete)
	// Output:
	// server every 5m0s
	// server-status every 1m0s
	// region every 24h0m0s
	// datacenter every 24h0m0s
	// image every 6h0m0s
	// volume every 15m0s
	// volume-status every 2m0s
	// snapshot every 30m0s
	// snapshot-status every 5m0s
	// network every 30m0s
	// address every 5m0s
	// server-analytics every 5m0s
	// cloud: not supported by this provider: vsphere has no dns service
	// image DC0_C0_RP0_VM1 AVAILABLE public: false created: true
	// complete: true
}
