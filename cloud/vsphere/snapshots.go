package vsphere

import (
	"context"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// snapshotProps are what a snapshot listing reads of each VM.
var snapshotProps = []string{"snapshot", "layoutEx"}

// ListSnapshots returns one page of the snapshots of the covered
// datacenters' VMs (templates included), every node of each VM's snapshot
// tree: id the snapshot's reference value ("snapshot-17", stable for its
// life), name its name, server the VM (the template, for a template's
// snapshots), parent the snapshot it was taken after ("" for a root;
// removing a snapshot re-parents its children, an update of "parent"),
// size_gb the size of its own files (its state file and the disk changes
// it holds since its parent, from the VM's file layout; GiB, rounded up),
// AVAILABLE, created_at its creation time. The size leaves out what the VM
// writes after the snapshot is taken, so it does not grow from poll to poll
// while the VM runs. A VM snapshot copies every disk of the VM, so volume is
// left out. One property collector call per datacenter the page reaches.
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
	for _, vm := range vms {
		out = append(out, p.vmSnapshots(vm)...)
	}
	return out, nil
}

// vmSnapshots returns every node of a VM's snapshot tree (retrieved with
// snapshotProps), parents before children.
func (p *Provider) vmSnapshots(vm mo.VirtualMachine) []cloud.Snapshot {
	if vm.Snapshot == nil {
		return nil
	}
	var out []cloud.Snapshot
	var walk func(parent *types.ManagedObjectReference, trees []types.VirtualMachineSnapshotTree)
	walk = func(parent *types.ManagedObjectReference, trees []types.VirtualMachineSnapshotTree) {
		for _, n := range trees {
			s := cloud.Snapshot{
				ID: n.Snapshot.Value, Account: p.account, Name: n.Name, Server: vm.Self.Value,
				State: cloud.ResourceAvailable, CreatedAt: n.CreateTime.UTC(),
			}
			if parent != nil {
				s.Parent = parent.Value
			}
			if vm.LayoutEx != nil {
				s.SizeGB = ceilGiB(int64(object.SnapshotSize(n.Snapshot, parent, vm.LayoutEx, false)), 0)
			}
			out = append(out, s)
			walk(&n.Snapshot, n.ChildSnapshotList)
		}
	}
	walk(nil, vm.Snapshot.RootSnapshotList)
	return out
}
