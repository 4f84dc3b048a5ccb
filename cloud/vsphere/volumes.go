package vsphere

import (
	"context"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// volumeProps are what a volume listing reads of each VM.
var volumeProps = []string{"summary.config.template", "config.hardware.device"}

// ListVolumes returns one page of the virtual disks of the covered
// datacenters' servers (templates' disks are the images'): id the VM's
// reference value and the disk's device key ("vm-42/2000", stable while the
// disk stays on that VM), name its label ("Hard disk 1"), datastore the
// name of the datastore its file is on, size_gb its capacity (GiB, rounded
// up), type its provisioning ("thin", "thick", "eager-zeroed-thick", "rdm"
// for raw device mappings, "sparse" for the others), state IN_USE, server
// the VM. vSphere disks belong to their VM, so none is AVAILABLE, and
// datacenter is left out: a datastore may serve several clusters. One
// property collector call per datacenter the page reaches (the devices of
// every VM of it).
func (p *Provider) ListVolumes(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.Volume], error) {
	return listAcross(ctx, p, "list volumes", account, opts, p.datacenterVolumes, func(v cloud.Volume) string { return v.ID })
}

// ListVolumeStatus returns one page of the volumes' ids and states, in the
// order of [Provider.ListVolumes], at the same cost: vSphere has no cheaper
// view of a VM's disks.
func (p *Provider) ListVolumeStatus(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	page, err := p.ListVolumes(ctx, account, opts)
	return statusOf(page, err, func(v cloud.Volume) cloud.ResourceStatus { return cloud.ResourceStatus{ID: v.ID, State: v.State} })
}

func (p *Provider) datacenterVolumes(ctx context.Context, dc datacenter) ([]cloud.Volume, error) {
	var vms []mo.VirtualMachine
	if err := p.retrieveView(ctx, dc.vmFolder, "VirtualMachine", volumeProps, &vms); err != nil {
		return nil, err
	}
	var out []cloud.Volume
	for _, vm := range vms {
		if isTemplate(vm) || vm.Config == nil {
			continue
		}
		for _, dev := range vm.Config.Hardware.Device {
			disk, ok := dev.(*types.VirtualDisk)
			if !ok {
				continue
			}
			out = append(out, p.toVolume(vm.Self.Value, disk))
		}
	}
	return out, nil
}

func (p *Provider) toVolume(vm string, disk *types.VirtualDisk) cloud.Volume {
	v := cloud.Volume{
		ID: vm + "/" + strconv.Itoa(int(disk.Key)), Account: p.account, State: cloud.ResourceInUse, Server: vm,
		SizeGB: ceilGiB(disk.CapacityInBytes, disk.CapacityInKB),
	}
	if d := disk.DeviceInfo; d != nil {
		v.Name = d.GetDescription().Label
	}
	if fb, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		v.Datastore = datastoreOf(fb.GetVirtualDeviceFileBackingInfo().FileName)
	}
	switch b := disk.Backing.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		switch {
		case b.ThinProvisioned != nil && *b.ThinProvisioned:
			v.Type = "thin"
		case b.EagerlyScrub != nil && *b.EagerlyScrub:
			v.Type = "eager-zeroed-thick"
		default:
			v.Type = "thick"
		}
	case *types.VirtualDiskRawDiskMappingVer1BackingInfo, *types.VirtualDiskRawDiskVer2BackingInfo:
		v.Type = "rdm"
	case nil:
	default:
		v.Type = "sparse"
	}
	return v
}

// datastoreOf returns the datastore name of a datastore path
// ("[datastore1] web/web.vmdk" -> "datastore1").
func datastoreOf(path string) string {
	if rest, ok := strings.CutPrefix(path, "["); ok {
		if name, _, ok := strings.Cut(rest, "]"); ok {
			return name
		}
	}
	return ""
}

// ceilGiB returns a capacity in GiB, rounded up; bytes if known, else KiB.
func ceilGiB(bytes, kib int64) int {
	const gib = 1 << 30
	if bytes <= 0 {
		bytes = kib * 1024
	}
	if bytes <= 0 {
		return 0
	}
	return int((bytes + gib - 1) / gib)
}
