package vsphere_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
)

// Accounts spanning datacenters (issue 11). Not parallel (see vcsimtest).

// manyServers is the number of servers per datacenter of TestAllDatacenters.
const manyServers = 100

// newTwoDatacenterSim starts a simulator with two datacenters of n servers
// each; in both, VM1 is powered off and VM2 suspended. It returns the
// expected state and datacenter of every server, by name.
func newTwoDatacenterSim(t *testing.T, n int) (*vcsimtest.Sim, map[string]cloud.ServerState, map[string]string) {
	t.Helper()
	sim := vcsimtest.New(t, vcsimtest.Options{Datacenters: 2, Servers: n})
	ctx := context.Background()
	wait := func(task *object.Task, err error) {
		require.NoError(t, err)
		require.NoError(t, task.Wait(ctx))
	}
	states, regions := map[string]cloud.ServerState{}, map[string]string{}
	for dc := range 2 {
		for i := range n {
			name := fmt.Sprintf("DC%d_C0_RP0_VM%d", dc, i)
			states[name], regions[name] = cloud.StateRunning, fmt.Sprintf("DC%d", dc)
		}
		wait(sim.VM(t, fmt.Sprintf("DC%d_C0_RP0_VM1", dc)).PowerOff(ctx))
		wait(sim.VM(t, fmt.Sprintf("DC%d_C0_RP0_VM2", dc)).Suspend(ctx))
		states[fmt.Sprintf("DC%d_C0_RP0_VM1", dc)] = cloud.StateStopped
		states[fmt.Sprintf("DC%d_C0_RP0_VM2", dc)] = cloud.StateStopped
	}
	return sim, states, regions
}

// allDatacentersConfig is the simulator's Config covering every datacenter.
func allDatacentersConfig(sim *vcsimtest.Sim) vsphere.Config {
	cfg := sim.Config(testAccount)
	cfg.Datacenter = "" // vcsimtest's Config picks DC0; the default is every datacenter
	return cfg
}

// TestAllDatacenters: one provider (one account) with Datacenter empty
// covers both datacenters of the vCenter: every server is listed exactly
// once, at every page size (pages crossing the datacenter boundary
// included), with its state and its datacenter as Region.
func TestAllDatacenters(t *testing.T) {
	sim, states, regions := newTwoDatacenterSim(t, manyServers)
	ctx := context.Background()
	p, err := vsphere.New(ctx, allDatacentersConfig(sim))
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, []string{"/DC0", "/DC1"}, p.Datacenters())
	vms := sim.VMs(t)
	require.Len(t, states, 2*manyServers)

	for _, tc := range []struct{ size, pages int }{{0, 2}, {7, 29}, {100, 2}, {199, 2}, {200, 1}, {1000, 1}} {
		size := tc.size
		t.Run(fmt.Sprintf("ListServersPageSize%d", size), func(t *testing.T) {
			got := map[string]cloud.Server{}
			var order []string
			tok, pages := "", 0
			start := time.Now()
			for {
				page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{PageSize: size, PageToken: tok})
				require.NoError(t, err)
				pages++
				for _, s := range page.Servers {
					_, dup := got[s.Name]
					require.False(t, dup, "server %s listed twice", s.Name)
					got[s.Name] = s
					order = append(order, s.ID)
				}
				if tok = page.NextToken; tok == "" {
					break
				}
				require.Less(t, pages, 1000, "pagination does not end")
			}
			t.Logf("%d servers in %d pages of %d in %v", len(got), pages, size, time.Since(start))
			require.Equal(t, tc.pages, pages, "no empty page at the end of a datacenter")
			require.Len(t, got, len(states))
			for name, s := range got {
				require.Equal(t, states[name], s.State, name)
				require.Equal(t, regions[name], s.Region, name)
				require.Equal(t, vms[name].Self.Value, s.ID, name)
				require.Equal(t, testAccount, s.Account)
			}
			status := listStatus(t, p, size)
			require.Len(t, status, len(order))
			for i, st := range status {
				require.Equal(t, order[i], st.ID, "ListServerStatus lists in the order of ListServers")
			}
		})
	}

	t.Run("IDsAreUniqueAcrossDatacenters", func(t *testing.T) {
		ids := map[string]string{}
		for name, vm := range vms {
			other, dup := ids[vm.Self.Value]
			require.False(t, dup, "%s and %s share id %s", name, other, vm.Self.Value)
			ids[vm.Self.Value] = name
		}
	})
	t.Run("GetServerInEitherDatacenter", func(t *testing.T) {
		for _, name := range []string{"DC0_C0_RP0_VM1", "DC1_C0_RP0_VM0", "DC1_C0_RP0_VM2"} {
			s, err := p.GetServer(ctx, testAccount, vms[name].Self.Value)
			require.NoError(t, err)
			require.Equal(t, name, s.Name)
			require.Equal(t, regions[name], s.Region)
			require.Equal(t, states[name], s.State)
		}
	})
	t.Run("TokenOfDeletedDatacenterPosition", func(t *testing.T) {
		// A token past every VM of the first datacenter continues with the next.
		page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{PageToken: "datacenter-0/vm-0", PageSize: 1000})
		require.NoError(t, err)
		require.Len(t, page.Servers, 2*manyServers, "datacenter-0 sorts first and does not exist")
		page, err = p.ListServers(ctx, testAccount, cloud.ListOptions{PageToken: "zzz/vm-0"})
		require.NoError(t, err)
		require.Empty(t, page.Servers)
		require.Empty(t, page.NextToken)
	})
}

func listStatus(t *testing.T, p *vsphere.Provider, size int) []cloud.ServerStatus {
	t.Helper()
	var out []cloud.ServerStatus
	tok := ""
	for range 1000 {
		page, err := p.ListServerStatus(context.Background(), testAccount, cloud.ListOptions{PageSize: size, PageToken: tok})
		require.NoError(t, err)
		out = append(out, page.Statuses...)
		if tok = page.NextToken; tok == "" {
			return out
		}
	}
	t.Fatal("pagination does not end")
	return nil
}

// TestDatacentersRestrict: Config.Datacenters limits the coverage; names
// that match nothing fail New, listing the datacenters.
func TestDatacentersRestrict(t *testing.T) {
	sim, _, _ := newTwoDatacenterSim(t, 3)
	ctx := context.Background()
	vms := sim.VMs(t)

	cfg := allDatacentersConfig(sim)
	cfg.Datacenters = []string{"/DC1"}
	p, err := vsphere.New(ctx, cfg)
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, []string{"/DC1"}, p.Datacenters())
	page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Servers, 3)
	for _, s := range page.Servers {
		require.Equal(t, "DC1", s.Region)
	}
	_, err = p.GetServer(ctx, testAccount, vms["DC0_C0_RP0_VM0"].Self.Value)
	require.ErrorIs(t, err, cloud.ErrNotFound, "a VM of a datacenter not covered")

	cfg.Datacenters = []string{"DC0", "DC7"}
	_, err = vsphere.New(ctx, cfg)
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.ErrorIs(t, err, vsphere.ErrInvalidConfig)
	require.ErrorContains(t, err, `Datacenters[1] "DC7" not found (datacenters: DC0, DC1)`)
}

// TestLaunchAcrossDatacenters: with several datacenters, a launch goes to
// LaunchDatacenter or to the datacenter its ResourcePool path names, and a
// tag search finds servers in any datacenter.
func TestLaunchAcrossDatacenters(t *testing.T) {
	sim, _, _ := newTwoDatacenterSim(t, 3)
	ctx := context.Background()
	dc1Template := "DC1_C0_RP0_VM3"

	for _, tc := range []struct {
		name string
		edit func(*vsphere.Config)
	}{
		{"LaunchDatacenter", func(c *vsphere.Config) { c.LaunchDatacenter = "DC1" }},
		{"ResourcePoolPath", func(c *vsphere.Config) { c.ResourcePool = "/DC1/host/DC1_C0/Resources" }},
		{"FolderPath", func(c *vsphere.Config) { c.Folder = "/DC1/vm" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := allDatacentersConfig(sim)
			cfg.Templates = map[string]string{testImage: dc1Template}
			tc.edit(&cfg)
			p, err := vsphere.New(ctx, cfg)
			require.NoError(t, err)
			defer p.Close()
			key := "k-" + tc.name
			op, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "web-" + tc.name, Image: testImage,
				Tags: map[string]string{"idempotency-key": key}})
			require.NoError(t, err)
			done := waitOp(t, p, op.ID)
			require.Equal(t, cloud.OpSucceeded, done.State, done.Error)
			s, err := p.GetServer(ctx, testAccount, done.ResourceID)
			require.NoError(t, err)
			require.Equal(t, "DC1", s.Region)
			found, err := p.FindServersByTag(ctx, testAccount, "idempotency-key", key)
			require.NoError(t, err)
			require.Len(t, found, 1)
			require.Equal(t, s, found[0])
		})
	}

	t.Run("FailedResolutionIsTriedAgain", func(t *testing.T) {
		cfg := allDatacentersConfig(sim)
		cfg.Templates, cfg.LaunchDatacenter = map[string]string{testImage: dc1Template}, "DC1"
		p, err := vsphere.New(ctx, cfg)
		require.NoError(t, err)
		defer p.Close()
		sim.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{ // the placement's datacenter listing
			MethodName: "CreateContainerView", ObjectType: "*", ObjectName: "*", Probability: 1, MaxCount: 1,
			FaultType: simulator.FaultTypeCustom, Fault: &types.HostCommunication{}, Enabled: true,
		})
		_, err = p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
		require.ErrorIs(t, err, cloud.ErrCommunication)
		require.True(t, cloud.IsTransient(err))
		op, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
		require.NoError(t, err)
		require.Equal(t, cloud.OpSucceeded, waitOp(t, p, op.ID).State)
	})
	t.Run("Undecided", func(t *testing.T) {
		p, err := vsphere.New(ctx, allDatacentersConfig(sim))
		require.NoError(t, err)
		defer p.Close()
		_, err = p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
		require.False(t, cloud.IsTransient(err))
		require.ErrorContains(t, err, "LaunchDatacenter is required: the provider covers 2 datacenters (DC0, DC1)")
	})
	t.Run("PlacementFieldsDisagree", func(t *testing.T) {
		cfg := allDatacentersConfig(sim)
		cfg.ResourcePool, cfg.Folder = "/DC1/host/DC1_C0/Resources", "/DC0/vm"
		p, err := vsphere.New(ctx, cfg)
		require.NoError(t, err)
		defer p.Close()
		_, err = p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
		require.ErrorContains(t, err, `Folder "/DC0/vm" is in datacenter DC0, but ResourcePool "/DC1/host/DC1_C0/Resources" is in DC1`)
	})
	t.Run("UnknownLaunchDatacenter", func(t *testing.T) {
		cfg := allDatacentersConfig(sim)
		cfg.LaunchDatacenter = "DC5"
		p, err := vsphere.New(ctx, cfg)
		require.NoError(t, err, "polling needs no launch placement")
		defer p.Close()
		_, err = p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
		require.ErrorIs(t, err, cloud.ErrNotFound)
		require.ErrorContains(t, err, `LaunchDatacenter "DC5" not found (datacenters: DC0, DC1)`)
	})
}

// TestSeveralClusters: a datacenter with two clusters can be polled with
// the zero placement; a launch needs ResourcePool and says which there are.
// Concurrent launches resolve the placement once (run with -race).
func TestSeveralClusters(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{Servers: 2, Clusters: 2})
	ctx := context.Background()
	cfg := sim.Config(testAccount)
	p, err := vsphere.New(ctx, cfg)
	require.NoError(t, err, "New does not need a resource pool")
	defer p.Close()
	page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Servers, 2+3, "C0's servers and C1's three VMs")

	_, err = p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
	require.ErrorIs(t, err, cloud.ErrInvalidRequest)
	require.ErrorIs(t, err, vsphere.ErrInvalidConfig)
	require.ErrorContains(t, err, "ResourcePool is required to launch: datacenter DC0 has 2 clusters or hosts: /DC0/host/DC0_C0/Resources, /DC0/host/DC0_C1/Resources")

	cfg.ResourcePool = "/DC0/host/DC0_C1/Resources"
	q, err := vsphere.New(ctx, cfg)
	require.NoError(t, err)
	defer q.Close()
	var (
		wg  sync.WaitGroup
		ops = make([]cloud.Operation, 4)
	)
	for i := range ops {
		wg.Go(func() {
			op, err := q.Launch(ctx, testAccount, cloud.LaunchRequest{Name: fmt.Sprintf("c1-%d", i), Image: testImage})
			require.NoError(t, err)
			ops[i] = op
		})
	}
	wg.Wait()
	for _, op := range ops {
		done := waitOp(t, q, op.ID)
		require.Equal(t, cloud.OpSucceeded, done.State, done.Error)
	}
	require.Equal(t, 2+3+len(ops), sim.VMCount(t))
}

// TestDatacentersComeAndGo: an account covering every datacenter sees a
// datacenter created after New at its next listing, and stops seeing a
// deleted one; a restricted account does not grow.
func TestDatacentersComeAndGo(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{Servers: 1})
	ctx := context.Background()
	p, err := vsphere.New(ctx, allDatacentersConfig(sim))
	require.NoError(t, err)
	defer p.Close()
	only := sim.Provider(t) // Datacenter "DC0"
	require.Equal(t, []string{"/DC0"}, p.Datacenters())

	dc, err := object.NewRootFolder(sim.Client).CreateDatacenter(ctx, "DC-new")
	require.NoError(t, err)
	for _, q := range []*vsphere.Provider{p, only} {
		page, err := q.ListServers(ctx, testAccount, cloud.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Servers, 1)
	}
	require.Equal(t, []string{"/DC-new", "/DC0"}, p.Datacenters())
	require.Equal(t, []string{"/DC0"}, only.Datacenters())

	task, err := dc.Destroy(ctx)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))
	_, err = p.FindServersByTag(ctx, testAccount, "k", "v")
	require.NoError(t, err)
	require.Equal(t, []string{"/DC0"}, p.Datacenters())
}
