package vcsimtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/stratusworks/worker/cloud/vsphere"
)

// Defaults for the zero [Options].
const (
	DefaultUsername = "svc-worker@vsphere.local"
	DefaultPassword = "vcsim-Pa55-never-print-me"
	DefaultAccount  = "vcsim"
	DefaultImage    = "debian-13"
	// DefaultSize is the size name of [DefaultSizes].
	DefaultSize = "small"
)

// DefaultSizes returns the sizes [Sim.Config] offers by default:
// "small", 2 CPUs and 2048 MB.
func DefaultSizes() map[string]vsphere.Size {
	return map[string]vsphere.Size{DefaultSize: {CPUs: 2, MemoryMB: 2048}}
}

// Options configures [New]. Zero fields take the defaults stated on them.
type Options struct {
	// Datacenters is the number of datacenters, named DC0, DC1, … Default 1.
	Datacenters int
	// Servers is the number of powered-on VMs, other than the template, in
	// each datacenter: DCd_C0_RP0_VM0 … DCd_C0_RP0_VM(Servers-1). Default 0.
	Servers int
	// Clusters is the number of clusters (of one host each) per datacenter,
	// DCd_C0 … Default 1. Each cluster other than C0 holds Servers+1
	// powered-on VMs (vcsim fills every cluster alike; only C0's last VM is
	// made the template), named DCd_Cc_RP0_VMn.
	Clusters int
	// Images are the image names Config maps to the template. Default:
	// DefaultImage.
	Images []string
	// Sizes Config offers. Default: DefaultSizes().
	Sizes map[string]vsphere.Size
	// Username and Password of the simulator's user. Defaults:
	// DefaultUsername, DefaultPassword.
	Username, Password string
	// Account is the account Provider serves. Default: DefaultAccount.
	Account string
	// VerifyTLS makes Config trust the simulator's certificate through
	// vsphere.Config.CAFile instead of setting Insecure.
	VerifyTLS bool
	// PlainClone leaves vcsim's clone task as it is: clones ignore
	// CloneSpec.Config (extraConfig, CPUs, memory) and CloneSpec.PowerOn.
	PlainClone bool
}

// Sim is a running simulator. Its fields are for arranging and inspecting
// the simulated vCenter beyond what its methods offer, e.g. injecting faults
// with Model.Service.AddFaultRule.
type Sim struct {
	Model  *simulator.Model
	Server *simulator.Server
	// Client is a session of its own (not a Provider's), logged in as the
	// simulator's user.
	Client *vim25.Client

	opts      Options
	templates []string // template VM name per datacenter
	caFile    string   // with Options.VerifyTLS; removed by Server.Close
}

// New starts a simulator for the test and stops it in t.Cleanup. See the
// package documentation about parallel tests.
// createMu serialises building simulator models: govmomi's simulator keeps
// package-level state (its license manager's) that Model.Create writes and
// another model's inventory reads, so two tests building models at once
// race (the race detector reports it).
var createMu sync.Mutex

func New(t testing.TB, opts Options) *Sim {
	t.Helper()
	if opts.Datacenters <= 0 {
		opts.Datacenters = 1
	}
	opts.Servers = max(opts.Servers, 0)
	if opts.Clusters <= 0 {
		opts.Clusters = 1
	}
	if len(opts.Images) == 0 {
		opts.Images = []string{DefaultImage}
	}
	if opts.Sizes == nil {
		opts.Sizes = DefaultSizes()
	}
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.Account == "" {
		opts.Account = DefaultAccount
	}
	opts.Images = slices.Clone(opts.Images)
	opts.Sizes = maps.Clone(opts.Sizes)

	// Clusters of one host per datacenter; each cluster's root pool holds
	// the VMs; the last of C0's becomes the template.
	m := simulator.VPX()
	m.Datacenter, m.Host, m.Cluster, m.ClusterHost, m.Pool, m.Portgroup = opts.Datacenters, 0, opts.Clusters, 1, 0, 0
	m.Machine = opts.Servers + 1
	createMu.Lock()
	err := m.Create()
	createMu.Unlock()
	if err != nil {
		t.Fatalf("vcsimtest: create model: %v", err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword(opts.Username, opts.Password)}
	srv := m.Service.NewServer()
	t.Cleanup(srv.Close)

	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, srv.URL, true)
	if err != nil {
		t.Fatalf("vcsimtest: log in: %v", err)
	}
	s := &Sim{Model: m, Server: srv, Client: c.Client, opts: opts}
	if opts.VerifyTLS {
		if s.caFile, err = srv.CertificateFile(); err != nil {
			t.Fatalf("vcsimtest: write certificate: %v", err)
		}
	}
	for dc := range opts.Datacenters {
		name := fmt.Sprintf("DC%d_C0_RP0_VM%d", dc, opts.Servers)
		tmpl := s.VM(t, name)
		task, err := tmpl.PowerOff(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err == nil {
			err = tmpl.MarkAsTemplate(ctx)
		}
		if err != nil {
			t.Fatalf("vcsimtest: make %s a template: %v", name, err)
		}
		if !opts.PlainClone {
			HonourCloneSpec(m, tmpl.Reference())
		}
		s.templates = append(s.templates, name)
	}
	return s
}

// Account returns the account Provider serves (Options.Account).
func (s *Sim) Account() string { return s.opts.Account }

// Template returns the name of the template VM in datacenter DC0.
func (s *Sim) Template() string { return s.templates[0] }

// Config returns a configuration for the simulator serving account: its
// URL and user, Insecure (or, with Options.VerifyTLS, CAFile), Datacenter
// "DC0", Templates mapping each of Options.Images to DC0's template, and
// Options.Sizes. Each call returns fresh maps. Set Datacenter to "" for an
// account covering every datacenter (the vsphere default).
func (s *Sim) Config(account string) vsphere.Config {
	cfg := vsphere.Config{
		URL:        "https://" + s.Server.URL.Host + "/sdk",
		Username:   s.opts.Username,
		Password:   vsphere.NewSecret(s.opts.Password),
		Insecure:   true,
		Datacenter: "DC0",
		Templates:  map[string]string{},
		Sizes:      maps.Clone(s.opts.Sizes),
		Account:    account,
	}
	for _, image := range s.opts.Images {
		cfg.Templates[image] = s.templates[0]
	}
	if s.opts.VerifyTLS {
		cfg.Insecure, cfg.CAFile = false, s.caFile
	}
	return cfg
}

// Provider returns a provider for Config(Account()), closed (and checked
// to close cleanly) in t.Cleanup.
func (s *Sim) Provider(t testing.TB) *vsphere.Provider {
	t.Helper()
	p, err := vsphere.New(context.Background(), s.Config(s.Account()))
	if err != nil {
		t.Fatalf("vcsimtest: new provider: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("vcsimtest: close provider: %v", err)
		}
	})
	return p
}

// VMs returns every VM of every datacenter, templates included, by name,
// with the properties name, customValue, summary and config.extraConfig.
func (s *Sim) VMs(t testing.TB) map[string]mo.VirtualMachine {
	t.Helper()
	ctx := context.Background()
	v, err := view.NewManager(s.Client).CreateContainerView(ctx, s.Client.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatalf("vcsimtest: list VMs: %v", err)
	}
	defer func() { _ = v.Destroy(ctx) }()
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "customValue", "summary", "config.extraConfig"}, &vms); err != nil {
		t.Fatalf("vcsimtest: list VMs: %v", err)
	}
	out := make(map[string]mo.VirtualMachine, len(vms))
	for _, vm := range vms {
		out[vm.Name] = vm
	}
	return out
}

// VMCount returns the number of VMs, in every datacenter, that are not
// templates: the servers.
func (s *Sim) VMCount(t testing.TB) int {
	t.Helper()
	n := 0
	for _, vm := range s.VMs(t) {
		if vm.Summary.Config.Template {
			continue
		}
		n++
	}
	return n
}

// VM returns the VM (or template) of that name, failing the test if there
// is none.
func (s *Sim) VM(t testing.TB, name string) *object.VirtualMachine {
	t.Helper()
	vm, ok := s.VMs(t)[name]
	if !ok {
		t.Fatalf("vcsimtest: no VM %q", name)
	}
	return object.NewVirtualMachine(s.Client, vm.Self)
}
