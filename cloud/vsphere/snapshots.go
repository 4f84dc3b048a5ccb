package vsphere

import (
	"context"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// snapshotProps are what a snapshot listing reads of each VM.
var snapshotProps = []string{"snapshot"}

// ListSnapshots returns one page of the snapshots of the covered
// datacenters' VMs (templates included), every node of each VM's snapshot
// tree: id the snapshot's reference value ("snapshot-17", stable for its
// life), name its name, server the VM, parent the snapshot it was taken
// after ("" for a root; removing a snapshot re-parents its children, an
// update of "parent"), AVAILABLE, created_at its creation time. A VM
// snapshot copies every disk of the VM, so volume is left out; vSphere
// reports no snapshot size in the snapshot tree, so size_gb is 0. One
// property collector call per datacenter the page reaches.
func (p *Provider) ListSnapshots(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.Snapshot], error) {
	return listAcross(ctx, p, "list snapshots", account, opts, p.datacenterSnapshots, func(s cloud.Snapshot) string { return s.ID })
}

// ListSnapshotStatus returns one page of the snapshots' ids and states, in
// the order of [Provider.ListSnapshots], at the same cost.
func (p *Provider) ListSnapshotStatus(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	page, err := p.ListSnapshots(ctx, account, opts)
	return statusOf(page, err, func(s cloud.Snapshot) cloud.ResourceStatus { return cloud.ResourceStatus{ID: s.ID, State: s.State} })
}

func (p *Provider) datacenterSnapshots(ctx context.Context, dc datacenter) ([]cloud.Snapshot, error) {
	var vms []mo.VirtualMachine
	if err := p.retrieveView(ctx, dc.vmFolder, "VirtualMachine", snapshotProps, &vms); err != nil {
		return nil, err
	}
	var out []cloud.Snapshot
	var walk func(vm, parent string, trees []types.VirtualMachineSnapshotTree)
	walk = func(vm, parent string, trees []types.VirtualMachineSnapshotTree) {
		for _, n := range trees {
			out = append(out, cloud.Snapshot{
				ID: n.Snapshot.Value, Account: p.account, Name: n.Name, Server: vm, Parent: parent,
				State: cloud.ResourceAvailable, CreatedAt: n.CreateTime.UTC(),
			})
			walk(vm, n.Snapshot.Value, n.ChildSnapshotList)
		}
	}
	for _, vm := range vms {
		if vm.Snapshot != nil {
			walk(vm.Self.Value, "", vm.Snapshot.RootSnapshotList)
		}
	}
	return out, nil
}
