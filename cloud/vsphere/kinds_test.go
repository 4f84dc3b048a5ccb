package vsphere_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// The kinds beyond servers, each polled by its standard poller at its
// default interval in a whole worker (workertest.Env on the provider, a fake
// clock for the schedule) against vcsim: a test changes the inventory with
// govmomi, as an operator would, and sees exactly that change as the
// worker's change events. Not parallel (see vcsimtest).

// kindEnv is a worker polling the kinds of one test on a provider covering
// every datacenter of a fresh simulator.
type kindEnv struct {
	*workertest.Env
	sim   *vcsimtest.Sim
	p     *vsphere.Provider
	kinds []string
}

func newKindEnv(t *testing.T, opts vcsimtest.Options, kinds ...string) *kindEnv {
	t.Helper()
	sim := vcsimtest.New(t, opts)
	cfg := sim.Config(sim.Account())
	cfg.Datacenter = "" // every datacenter, as an account does by default
	p, err := vsphere.New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	var events []string
	for _, k := range kinds {
		events = append(events, k+".changed", k+".deleted")
	}
	env := workertest.NewEnv(t, workertest.WithEvents(events...), workertest.WithConfig(func(c *worker.Config) {
		c.Cloud = p
		c.Schedule.InitialSpread = -1 // every kind polls at once when watched
	}))
	for _, k := range kinds {
		require.NoError(t, env.Worker.Register(standard(t, p, k), cloud.DefaultInterval(k)))
	}
	require.NoError(t, env.Worker.Watch(sim.Account(), "acme"))
	env.Start(t)
	env.Settle(t)
	return &kindEnv{Env: env, sim: sim, p: p, kinds: kinds}
}

// standard returns p's standard poller of kind.
func standard(t testing.TB, p cloud.Provider, kind string) cloud.Poller {
	t.Helper()
	ps, err := cloud.StandardPollers(p)
	require.NoError(t, err)
	for _, s := range ps {
		if s.Poller.Kind() == kind {
			return s.Poller
		}
	}
	t.Fatalf("no standard poller of kind %q", kind)
	return nil
}

// poll moves the clock past the next poll of every kind of the env (and
// past the deletion grace, three intervals, with deletions).
func (k *kindEnv) poll(t *testing.T, deletions bool) {
	t.Helper()
	every := time.Duration(0)
	for _, kind := range k.kinds {
		every = max(every, cloud.DefaultInterval(kind))
	}
	d := every + every/5
	if deletions {
		d = 3*every + every/5
	}
	k.Advance(t, d, every/10)
}

// change is the next change event of kind: its op, resource, changed
// fields and attributes after (before, for a deletion).
type change struct {
	op     state.ChangeOp
	id     string
	fields []string
	attrs  map[string]any
}

func (k *kindEnv) next(t *testing.T, kind string) change {
	t.Helper()
	var ch state.Change
	require.NoError(t, k.Event(t, kind+".changed").Decode(&ch))
	require.Equal(t, kind, ch.Target.Kind)
	c := change{op: ch.Op, id: ch.Target.Resource, fields: ch.Fields}
	if ch.After != nil {
		require.NoError(t, json.Unmarshal(ch.After.Attributes, &c.attrs))
	}
	return c
}

// created takes n creation events of kind, by id.
func (k *kindEnv) created(t *testing.T, kind string, n int) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for range n {
		c := k.next(t, kind)
		require.Equal(t, state.Created, c.op, "%s %s", kind, c.id)
		out[c.id] = c.attrs
	}
	return out
}

// deleted takes the next deletion event of kind and returns its id.
func (k *kindEnv) deleted(t *testing.T, kind string) string {
	t.Helper()
	return k.Event(t, kind+".deleted").Resource
}

// quiet checks that no other event came.
func (k *kindEnv) quiet(t *testing.T) {
	t.Helper()
	require.Empty(t, k.Drain(t), "nothing else changed")
}

// done returns a function that waits for a task to succeed and returns its
// info: done(t)(vm.PowerOff(ctx)).
func done(t *testing.T) func(*object.Task, error) types.TaskInfo {
	return func(task *object.Task, err error) types.TaskInfo {
		t.Helper()
		require.NoError(t, err)
		info, err := task.WaitForResult(context.Background(), nil)
		require.NoError(t, err)
		return *info
	}
}

// TestKindsOffered: the provider offers exactly the services vSphere has;
// the others are typed "not supported".
func TestKindsOffered(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{})
	p := sim.Provider(t)
	ps, err := cloud.StandardPollers(p)
	require.NoError(t, err)
	var kinds []string
	for _, s := range ps {
		kinds = append(kinds, s.Poller.Kind())
	}
	require.Equal(t, []string{
		cloud.KindServer, cloud.KindServerStatus, cloud.KindRegion, cloud.KindDataCenter, cloud.KindImage,
		cloud.KindVolume, cloud.KindVolumeStatus, cloud.KindSnapshot, cloud.KindSnapshotStatus,
		cloud.KindNetwork, cloud.KindAddress, cloud.KindServerAnalytics,
	}, kinds)
	for name, of := range map[string]func(cloud.Provider) error{
		cloud.ServiceLoadBalancers: func(p cloud.Provider) error { _, err := cloud.LoadBalancersOf(p); return err },
		cloud.ServiceDNS:           func(p cloud.Provider) error { _, err := cloud.DNSOf(p); return err },
		cloud.ServiceVPNs:          func(p cloud.Provider) error { _, err := cloud.VPNsOf(p); return err },
		cloud.ServiceDatabases:     func(p cloud.Provider) error { _, err := cloud.DatabasesOf(p); return err },
		cloud.ServiceCDN:           func(p cloud.Provider) error { _, err := cloud.CDNOf(p); return err },
		cloud.ServiceCertificates:  func(p cloud.Provider) error { _, err := cloud.CertificatesOf(p); return err },
		cloud.ServiceSubscriptions: func(p cloud.Provider) error { _, err := cloud.SubscriptionsOf(p); return err },
	} {
		err := of(p)
		var ns *cloud.NotSupportedError
		require.ErrorAs(t, err, &ns, name)
		require.Equal(t, cloud.NotSupportedError{Provider: vsphere.Name, Service: name}, *ns)
		require.True(t, errors.Is(err, cloud.ErrNotSupported))
	}
	_, err = p.ListImages(context.Background(), "other-account", cloud.ListOptions{})
	require.ErrorIs(t, err, cloud.ErrNotFound, "an account the provider does not serve")
}

// TestKindSnapshots: taking a snapshot, then another after it, shows as
// two created snapshots (the second's parent the first); removing the first
// deletes it and re-parents the second (an update of "parent" only).
func TestKindSnapshots(t *testing.T) {
	k := newKindEnv(t, vcsimtest.Options{Servers: 1}, cloud.KindSnapshot)
	k.quiet(t)
	ctx := context.Background()
	vm := k.sim.VM(t, "DC0_C0_RP0_VM0")

	s1 := done(t)(vm.CreateSnapshot(ctx, "before-upgrade", "", false, false)).Result.(types.ManagedObjectReference)
	k.poll(t, false)
	got := k.created(t, cloud.KindSnapshot, 1)
	require.Contains(t, got, s1.Value)
	require.Equal(t, "before-upgrade", got[s1.Value]["name"])
	require.Equal(t, vm.Reference().Value, got[s1.Value]["server"])
	require.Equal(t, string(cloud.ResourceAvailable), got[s1.Value]["state"])
	require.NotEmpty(t, got[s1.Value]["created_at"])
	require.NotContains(t, got[s1.Value], "parent", "a root")
	require.Contains(t, got[s1.Value], "size_gb")

	s2 := done(t)(vm.CreateSnapshot(ctx, "after-upgrade", "", false, false)).Result.(types.ManagedObjectReference)
	k.poll(t, false)
	got = k.created(t, cloud.KindSnapshot, 1)
	require.Equal(t, s1.Value, got[s2.Value]["parent"], "taken after the first")
	k.quiet(t)

	consolidate := false
	done(t)(object.NewVirtualMachine(k.sim.Client, vm.Reference()).RemoveSnapshot(ctx, "before-upgrade", false, &consolidate))
	k.poll(t, true)
	c := k.next(t, cloud.KindSnapshot)
	require.Equal(t, state.Updated, c.op)
	require.Equal(t, s2.Value, c.id)
	require.Equal(t, []string{"parent"}, c.fields)
	require.Equal(t, s1.Value, k.deleted(t, cloud.KindSnapshot))
	k.quiet(t)
}

// TestKindImages: marking a VM a template creates an image under the VM's
// id and deletes the server; renaming it updates the image's "name";
// marking it a VM again deletes the image and creates the server.
func TestKindImages(t *testing.T) {
	k := newKindEnv(t, vcsimtest.Options{Servers: 1}, cloud.KindImage, cloud.KindServer)
	got := k.created(t, cloud.KindImage, 1)
	tmpl := k.sim.VMs(t)[k.sim.Template()].Self.Value
	require.Equal(t, k.sim.Template(), got[tmpl]["name"], "vcsimtest's template")
	ctx := context.Background()
	vm := k.sim.VM(t, "DC0_C0_RP0_VM0")
	require.Contains(t, k.created(t, cloud.KindServer, 1), vm.Reference().Value)
	k.quiet(t)

	done(t)(vm.PowerOff(ctx))
	require.NoError(t, vm.MarkAsTemplate(ctx))
	k.poll(t, true)
	got = k.created(t, cloud.KindImage, 1)
	attrs := got[vm.Reference().Value]
	require.NotNil(t, attrs, "the new template, under its VM id")
	require.Equal(t, "DC0_C0_RP0_VM0", attrs["name"])
	require.Equal(t, string(cloud.ResourceAvailable), attrs["state"])
	require.Equal(t, false, attrs["public"])
	require.NotEmpty(t, attrs["created_at"])
	require.Equal(t, vm.Reference().Value, k.deleted(t, cloud.KindServer), "a template is not a server")
	k.quiet(t)

	done(t)(vm.Rename(ctx, "golden-2026"))
	k.poll(t, false)
	c := k.next(t, cloud.KindImage)
	require.Equal(t, state.Updated, c.op)
	require.Equal(t, vm.Reference().Value, c.id)
	require.Equal(t, []string{"name"}, c.fields)
	require.Equal(t, "golden-2026", c.attrs["name"])
	k.quiet(t)

	finder := find.NewFinder(k.sim.Client)
	pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C0/Resources")
	require.NoError(t, err)
	host, err := finder.HostSystem(ctx, "/DC0/host/DC0_C0/*")
	require.NoError(t, err)
	require.NoError(t, vm.MarkAsVirtualMachine(ctx, *pool, host))
	k.poll(t, true)
	require.Equal(t, vm.Reference().Value, k.deleted(t, cloud.KindImage))
	server := k.created(t, cloud.KindServer, 1)[vm.Reference().Value]
	require.Equal(t, "golden-2026", server["name"], "the same VM, a server again")
	k.quiet(t)
}

// datacenterRef returns the reference of the datacenter named name.
func datacenterRef(t *testing.T, sim *vcsimtest.Sim, name string) types.ManagedObjectReference {
	t.Helper()
	dc, err := find.NewFinder(sim.Client).Datacenter(context.Background(), name)
	require.NoError(t, err)
	return dc.Reference()
}

// TestKindVolumes: adding a disk to a VM creates a volume with its
// datastore, size and provisioning; growing it updates "size_gb"; removing
// it deletes the volume.
func TestKindVolumes(t *testing.T) {
	k := newKindEnv(t, vcsimtest.Options{Servers: 1}, cloud.KindVolume)
	ctx := context.Background()
	vm := k.sim.VM(t, "DC0_C0_RP0_VM0")
	before := k.created(t, cloud.KindVolume, 1) // the VM's own disk; the template's is the image's
	for id, attrs := range before {
		require.Equal(t, vm.Reference().Value, attrs["server"], id)
		require.Equal(t, string(cloud.ResourceInUse), attrs["state"])
		require.NotEmpty(t, attrs["datastore"])
	}
	k.quiet(t)

	devices, err := vm.Device(ctx)
	require.NoError(t, err)
	controller, err := devices.FindDiskController("")
	require.NoError(t, err)
	ds, err := find.NewFinder(k.sim.Client).Datastore(ctx, "/DC0/datastore/LocalDS_0")
	require.NoError(t, err)
	disk := devices.CreateDisk(controller, ds.Reference(), "")
	disk.CapacityInKB = 4 << 20 // 4 GiB
	disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).ThinProvisioned = types.NewBool(true)
	require.NoError(t, vm.AddDevice(ctx, disk))
	k.poll(t, false)
	got := k.created(t, cloud.KindVolume, 1)
	require.Len(t, got, 1)
	var id string
	for id = range got { // the one volume created
	}
	attrs := got[id]
	require.Equal(t, map[string]any{
		"name": attrs["name"], "datastore": "LocalDS_0", "size_gb": 4.0, "type": "thin",
		"state": string(cloud.ResourceInUse), "server": vm.Reference().Value,
	}, attrs)
	require.NotEmpty(t, attrs["name"])
	k.quiet(t)

	devices, err = vm.Device(ctx)
	require.NoError(t, err)
	added := diskOf(t, devices, id)
	added.CapacityInKB, added.CapacityInBytes = 6<<20, 6<<30
	require.NoError(t, vm.EditDevice(ctx, added))
	k.poll(t, false)
	c := k.next(t, cloud.KindVolume)
	require.Equal(t, state.Updated, c.op)
	require.Equal(t, id, c.id)
	require.Equal(t, []string{"size_gb"}, c.fields)
	require.Equal(t, 6.0, c.attrs["size_gb"])
	k.quiet(t)

	require.NoError(t, vm.RemoveDevice(ctx, true, added))
	k.poll(t, true)
	require.Equal(t, id, k.deleted(t, cloud.KindVolume))
	k.quiet(t)
}

// diskOf returns the disk of devices whose volume id is id ("vm-N/key").
func diskOf(t *testing.T, devices object.VirtualDeviceList, id string) *types.VirtualDisk {
	t.Helper()
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		if strings.HasSuffix(id, "/"+strconv.Itoa(int(d.GetVirtualDevice().Key))) {
			return d.(*types.VirtualDisk)
		}
	}
	t.Fatalf("no disk of volume %s", id)
	return nil
}

// TestKindNetworks: a standard port group added on a host and a distributed
// one added on a new switch show as created networks; renaming the
// distributed one updates "name"; destroying it deletes it.
func TestKindNetworks(t *testing.T) {
	k := newKindEnv(t, vcsimtest.Options{}, cloud.KindNetwork)
	got := k.created(t, cloud.KindNetwork, 1)
	for _, attrs := range got {
		require.Equal(t, map[string]any{"name": "VM Network", "region": "DC0", "state": string(cloud.ResourceAvailable)}, attrs)
	}
	k.quiet(t)

	ctx := context.Background()
	finder := find.NewFinder(k.sim.Client)
	host, err := finder.HostSystem(ctx, "/DC0/host/DC0_C0/*")
	require.NoError(t, err)
	ns, err := host.ConfigManager().NetworkSystem(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.AddPortGroup(ctx, types.HostPortGroupSpec{Name: "app", VswitchName: "vSwitch0"}))
	dc, err := finder.Datacenter(ctx, "DC0")
	require.NoError(t, err)
	folders, err := dc.Folders(ctx)
	require.NoError(t, err)
	info := done(t)(folders.NetworkFolder.CreateDVS(ctx, types.DVSCreateSpec{
		ConfigSpec: &types.VMwareDVSConfigSpec{DVSConfigSpec: types.DVSConfigSpec{Name: "DSwitch"}},
	}))
	dvs := object.NewDistributedVirtualSwitch(k.sim.Client, info.Result.(types.ManagedObjectReference))
	done(t)(dvs.AddPortgroup(ctx, []types.DVPortgroupConfigSpec{{Name: "db", Type: string(types.DistributedVirtualPortgroupPortgroupTypeEarlyBinding), NumPorts: 8}}))
	k.poll(t, false)
	// vCenter flags a switch's uplink port group (config.uplink), which the
	// listing leaves out; vcsim does not, so it shows here too.
	got = k.created(t, cloud.KindNetwork, 3)
	byName := map[string]string{}
	for id, attrs := range got {
		byName[attrs["name"].(string)] = id
		require.Equal(t, "DC0", attrs["region"])
	}
	require.Contains(t, byName, "app")
	require.Contains(t, byName, "db")
	require.Regexp(t, `^network-`, byName["app"], "a standard port group")
	require.Regexp(t, `^dvportgroup-`, byName["db"], "a distributed port group")
	k.quiet(t)

	db := object.NewDistributedVirtualPortgroup(k.sim.Client, types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: byName["db"]})
	done(t)(db.Rename(ctx, "db-2"))
	k.poll(t, false)
	c := k.next(t, cloud.KindNetwork)
	require.Equal(t, state.Updated, c.op)
	require.Equal(t, byName["db"], c.id)
	require.Equal(t, []string{"name"}, c.fields)
	k.quiet(t)

	done(t)(db.Destroy(ctx))
	k.poll(t, true)
	require.Equal(t, byName["db"], k.deleted(t, cloud.KindNetwork))
	k.quiet(t)
}

// TestKindAddresses: the address VMware Tools reports of a VM's guest shows
// as a created address of that server; when the guest's address changes, the
// old one is deleted and the new one created.
func TestKindAddresses(t *testing.T) {
	k := newKindEnv(t, vcsimtest.Options{Servers: 1}, cloud.KindAddress)
	k.quiet(t)
	ctx := context.Background()
	vm := k.sim.VM(t, "DC0_C0_RP0_VM0")
	setIP := func(ip string) {
		// vcsim's stand-in for VMware Tools reporting the guest's address.
		done(t)(vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
			&types.OptionValue{Key: "SET.guest.ipAddress", Value: ip}}}))
	}
	setIP("10.0.0.7")
	k.poll(t, false)
	id := vm.Reference().Value + "/10.0.0.7"
	got := k.created(t, cloud.KindAddress, 1)
	require.Equal(t, map[string]any{"address": "10.0.0.7", "version": "ipv4", "region": "DC0", "server": vm.Reference().Value}, got[id])
	k.quiet(t)

	setIP("2001:db8::8")
	k.poll(t, true)
	got = k.created(t, cloud.KindAddress, 1)
	require.Equal(t, "ipv6", got[vm.Reference().Value+"/2001:db8::8"]["version"])
	require.Equal(t, id, k.deleted(t, cloud.KindAddress))
	k.quiet(t)
}

// TestKindDataCenters: a datacenter created in vCenter shows as a created
// region, a cluster created in it as a created data center of that region
// (inactive: no host yet); adding a host to the cluster updates "active",
// renaming it "name"; destroying an (empty) datacenter deletes its region.
// (vcsim cannot destroy a cluster, nor a datacenter holding one.)
func TestKindDataCenters(t *testing.T) {
	k := newKindEnv(t, vcsimtest.Options{}, cloud.KindRegion, cloud.KindDataCenter)
	dc0 := datacenterRef(t, k.sim, "DC0").Value
	require.Equal(t, map[string]map[string]any{dc0: {"name": "DC0", "active": true}}, k.created(t, cloud.KindRegion, 1))
	for _, attrs := range k.created(t, cloud.KindDataCenter, 1) {
		require.Equal(t, map[string]any{"name": "DC0_C0", "region": dc0, "active": true}, attrs)
	}
	k.quiet(t)

	ctx := context.Background()
	root := object.NewRootFolder(k.sim.Client)
	dc, err := root.CreateDatacenter(ctx, "Frankfurt")
	require.NoError(t, err)
	lab, err := root.CreateDatacenter(ctx, "Lab")
	require.NoError(t, err)
	folders, err := dc.Folders(ctx)
	require.NoError(t, err)
	cluster, err := folders.HostFolder.CreateCluster(ctx, "FRA-1", types.ClusterConfigSpecEx{})
	require.NoError(t, err)
	k.poll(t, false)
	require.Equal(t, map[string]map[string]any{
		dc.Reference().Value:  {"name": "Frankfurt", "active": true},
		lab.Reference().Value: {"name": "Lab", "active": true},
	}, k.created(t, cloud.KindRegion, 2))
	require.Equal(t, map[string]map[string]any{cluster.Reference().Value: {"name": "FRA-1", "region": dc.Reference().Value, "active": false}},
		k.created(t, cloud.KindDataCenter, 1))
	k.quiet(t)

	done(t)(cluster.AddHost(ctx, types.HostConnectSpec{HostName: "fra-esx-1"}, true, nil, nil))
	k.poll(t, false)
	c := k.next(t, cloud.KindDataCenter)
	require.Equal(t, state.Updated, c.op)
	require.Equal(t, cluster.Reference().Value, c.id)
	require.Equal(t, []string{"active"}, c.fields)
	k.quiet(t)

	done(t)(cluster.Rename(ctx, "FRA-2"))
	k.poll(t, false)
	c = k.next(t, cloud.KindDataCenter)
	require.Equal(t, state.Updated, c.op)
	require.Equal(t, []string{"name"}, c.fields)
	require.Equal(t, "FRA-2", c.attrs["name"])
	k.quiet(t)

	done(t)(lab.Destroy(ctx))
	k.poll(t, true)
	require.Equal(t, lab.Reference().Value, k.deleted(t, cloud.KindRegion))
	k.quiet(t)
}

// TestKindsPaginate: every listing pages across datacenters (two here, with
// two clusters each), each item once in any page size, in the order of one
// whole page; status listings agree with their full ones.
func TestKindsPaginate(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{Datacenters: 2, Clusters: 2, Servers: 2})
	cfg := sim.Config(sim.Account())
	cfg.Datacenter = ""
	p, err := vsphere.New(context.Background(), cfg)
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()
	n := 0
	for name, vm := range sim.VMs(t) {
		if !vm.Summary.Config.Template {
			n++
			obj := object.NewVirtualMachine(sim.Client, vm.Self)
			done(t)(obj.CreateSnapshot(ctx, name+"-a", "", false, false))
			done(t)(obj.CreateSnapshot(ctx, name+"-b", "", false, false))
			done(t)(obj.Reconfigure(ctx, types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
				&types.OptionValue{Key: "SET.guest.ipAddress", Value: "10.1.0." + strconv.Itoa(n)}}}))
		}
	}
	account := sim.Account()
	listings := map[string]func(cloud.ListOptions) ([]string, string, error){
		cloud.KindRegion: ids(func(o cloud.ListOptions) (cloud.Page[cloud.Region], error) { return p.ListRegions(ctx, account, o) }, func(r cloud.Region) string { return r.ID }),
		cloud.KindDataCenter: ids(func(o cloud.ListOptions) (cloud.Page[cloud.DataCenter], error) {
			return p.ListDataCenters(ctx, account, o)
		}, func(r cloud.DataCenter) string { return r.ID }),
		cloud.KindImage:  ids(func(o cloud.ListOptions) (cloud.Page[cloud.Image], error) { return p.ListImages(ctx, account, o) }, func(r cloud.Image) string { return r.ID }),
		cloud.KindVolume: ids(func(o cloud.ListOptions) (cloud.Page[cloud.Volume], error) { return p.ListVolumes(ctx, account, o) }, func(r cloud.Volume) string { return r.ID }),
		cloud.KindVolumeStatus: ids(func(o cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
			return p.ListVolumeStatus(ctx, account, o)
		}, func(r cloud.ResourceStatus) string { return r.ID }),
		cloud.KindSnapshot: ids(func(o cloud.ListOptions) (cloud.Page[cloud.Snapshot], error) { return p.ListSnapshots(ctx, account, o) }, func(r cloud.Snapshot) string { return r.ID }),
		cloud.KindSnapshotStatus: ids(func(o cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
			return p.ListSnapshotStatus(ctx, account, o)
		}, func(r cloud.ResourceStatus) string { return r.ID }),
		cloud.KindNetwork: ids(func(o cloud.ListOptions) (cloud.Page[cloud.VirtualNetwork], error) {
			return p.ListNetworks(ctx, account, o)
		}, func(r cloud.VirtualNetwork) string { return r.ID }),
		cloud.KindAddress: ids(func(o cloud.ListOptions) (cloud.Page[cloud.Address], error) { return p.ListAddresses(ctx, account, o) }, func(r cloud.Address) string { return r.ID }),
	}
	want := map[string]int{ // 2 datacenters; 2 clusters, 2+3 servers and 1 template each
		cloud.KindRegion: 2, cloud.KindDataCenter: 4, cloud.KindImage: 2, cloud.KindVolume: 10, cloud.KindVolumeStatus: 10,
		cloud.KindSnapshot: 20, cloud.KindSnapshotStatus: 20, cloud.KindNetwork: 2, cloud.KindAddress: 10,
	}
	for kind, list := range listings {
		t.Run(kind, func(t *testing.T) {
			whole, next, err := list(cloud.ListOptions{})
			require.NoError(t, err)
			require.Empty(t, next)
			require.Len(t, whole, want[kind])
			for _, size := range []int{1, 2, 3} {
				var got []string
				tok := ""
				for range 100 {
					page, next, err := list(cloud.ListOptions{PageSize: size, PageToken: tok})
					require.NoError(t, err)
					require.LessOrEqual(t, len(page), size)
					got = append(got, page...)
					if tok = next; tok == "" {
						break
					}
				}
				require.Empty(t, tok, "the listing ends")
				require.Equal(t, whole, got, "pages of %d", size)
			}
		})
	}
	for full, status := range map[string]string{cloud.KindVolume: cloud.KindVolumeStatus, cloud.KindSnapshot: cloud.KindSnapshotStatus} {
		a, _, err := listings[full](cloud.ListOptions{})
		require.NoError(t, err)
		b, _, err := listings[status](cloud.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, a, b, status)
	}
}

// ids adapts a listing to one of ids.
func ids[T any](list func(cloud.ListOptions) (cloud.Page[T], error), id func(T) string) func(cloud.ListOptions) ([]string, string, error) {
	return func(o cloud.ListOptions) ([]string, string, error) {
		page, err := list(o)
		if err != nil {
			return nil, "", err
		}
		out := []string{}
		for _, x := range page.Items {
			out = append(out, id(x))
		}
		return out, page.NextToken, nil
	}
}

// TestKindsFaults: the listings share the servers' error handling: an
// expired session logs in again; a fault maps onto the cloud taxonomy, the
// poller reports it; a closed provider refuses.
func TestKindsFaults(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{Servers: 1})
	p := sim.Provider(t)
	ctx := context.Background()
	a := sim.Account()

	require.NoError(t, vsphere.ExpireSession(ctx, p))
	page, err := p.ListVolumes(ctx, a, cloud.ListOptions{})
	require.NoError(t, err, "logged in again")
	require.Len(t, page.Items, 1)

	sim.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "CreateContainerView", ObjectType: "*", ObjectName: "*", Probability: 1, MaxCount: 1,
		FaultType: simulator.FaultTypeNoPermission, Enabled: true,
	})
	_, _, err = cloud.SnapshotPoller{Snapshots: p}.Poll(ctx, state.Target{Account: a, Kind: cloud.KindSnapshot}, "")
	require.ErrorIs(t, err, cloud.ErrAuthentication)
	require.NotContains(t, err.Error(), vcsimtest.DefaultPassword)

	require.NoError(t, p.Close())
	_, err = p.ListNetworks(ctx, a, cloud.ListOptions{})
	require.ErrorIs(t, err, vsphere.ErrClosed)
}
