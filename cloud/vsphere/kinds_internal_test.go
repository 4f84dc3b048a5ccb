package vsphere

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

func TestGuestPlatform(t *testing.T) {
	t.Parallel()
	tests := []struct{ id, platform, arch string }{
		{"", "", ""},
		{"otherGuest", "", ""},
		{"otherGuest64", "", "x86_64"},
		{"otherNonLinuxGuest", "", ""},
		{"otherLinux64Guest", "linux", "x86_64"},
		{"other3xLinuxGuest", "linux", ""},
		{"ubuntu64Guest", "linux", "x86_64"},
		{"debian12_64Guest", "linux", "x86_64"},
		{"rhel9_64Guest", "linux", "x86_64"},
		{"windows2019srv_64Guest", "windows", "x86_64"},
		{"winNetStandardGuest", "windows", ""},
		{"darwin21_64Guest", "macos", "x86_64"},
		{"freebsd13_64Guest", "freebsd", "x86_64"},
		{"vmkernel8Guest", "esxi", ""},
		{"otherLinuxArm64Guest", "linux", "arm64"},
	}
	for _, tt := range tests {
		platform, arch := guestPlatform(tt.id)
		require.Equal(t, tt.platform, platform, tt.id)
		require.Equal(t, tt.arch, arch, tt.id)
	}
}

func TestToVolume(t *testing.T) {
	t.Parallel()
	p := &Provider{account: "a"}
	disk := func(backing types.BaseVirtualDeviceBackingInfo, bytes, kib int64) *types.VirtualDisk {
		return &types.VirtualDisk{
			VirtualDevice:   types.VirtualDevice{Key: 2001, Backing: backing, DeviceInfo: &types.Description{Label: "Hard disk 2"}},
			CapacityInBytes: bytes, CapacityInKB: kib,
		}
	}
	flat := func(thin, eager bool) *types.VirtualDiskFlatVer2BackingInfo {
		return &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[fast-ssd 01] web/web_1.vmdk"},
			ThinProvisioned:              types.NewBool(thin), EagerlyScrub: types.NewBool(eager),
		}
	}
	tests := []struct {
		name string
		disk *types.VirtualDisk
		want cloud.Volume
	}{
		{"Thin", disk(flat(true, false), 10<<30, 0), cloud.Volume{Datastore: "fast-ssd 01", SizeGB: 10, Type: "thin"}},
		{"Thick", disk(flat(false, false), 10<<30+1, 0), cloud.Volume{Datastore: "fast-ssd 01", SizeGB: 11, Type: "thick"}},
		{"EagerZeroed", disk(flat(false, true), 0, 512<<10), cloud.Volume{Datastore: "fast-ssd 01", SizeGB: 1, Type: "eager-zeroed-thick"}},
		{"RDM", disk(&types.VirtualDiskRawDiskMappingVer1BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[ds] db/db-rdm.vmdk"}}, 1<<40, 0),
			cloud.Volume{Datastore: "ds", SizeGB: 1024, Type: "rdm"}},
		{"Sparse", disk(&types.VirtualDiskSparseVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "not a datastore path"}}, 0, 0),
			cloud.Volume{Type: "sparse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.want.ID, tt.want.Account, tt.want.Name, tt.want.State, tt.want.Server = "vm-7/2001", "a", "Hard disk 2", cloud.ResourceInUse, "vm-7"
			require.Equal(t, tt.want, p.toVolume("vm-7", tt.disk))
		})
	}
}

func TestGuestIPs(t *testing.T) {
	t.Parallel()
	vm := mo.VirtualMachine{Guest: &types.GuestInfo{IpAddress: "10.0.0.5", Net: []types.GuestNicInfo{
		{IpAddress: []string{"10.0.0.5", "fe80::1", "2001:db8::5"}},
		{IpAddress: []string{"127.0.0.1", "192.168.1.9", "not-an-ip", "0.0.0.0"}},
	}}}
	require.Equal(t, []string{"10.0.0.5", "192.168.1.9", "2001:db8::5"}, guestIPs(vm))
}

func TestPageSorted(t *testing.T) {
	t.Parallel()
	items := []string{"vm-10", "vm-9", "vm-100", "vm-2"}
	id := func(s string) string { return s }
	p1 := pageSorted(items, cloud.ListOptions{PageSize: 3}, id)
	require.Equal(t, cloud.Page[string]{Items: []string{"vm-2", "vm-9", "vm-10"}, NextToken: "vm-10"}, p1)
	p2 := pageSorted(items, cloud.ListOptions{PageSize: 3, PageToken: p1.NextToken}, id)
	require.Equal(t, cloud.Page[string]{Items: []string{"vm-100"}}, p2)
	gone := pageSorted(items, cloud.ListOptions{PageToken: "vm-11"}, id)
	require.Equal(t, []string{"vm-100"}, gone.Items, "a token of an item gone since still works")
	require.Empty(t, pageSorted(nil, cloud.ListOptions{}, id).Items)
}

func TestVMSnapshots(t *testing.T) {
	t.Parallel()
	p := &Provider{account: "a"}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	ref := func(v string) types.ManagedObjectReference {
		return types.ManagedObjectReference{Type: "VirtualMachineSnapshot", Value: v}
	}
	vm := mo.VirtualMachine{
		ManagedEntity: mo.ManagedEntity{ExtensibleManagedObject: mo.ExtensibleManagedObject{
			Self: types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-7"}}},
		Snapshot: &types.VirtualMachineSnapshotInfo{RootSnapshotList: []types.VirtualMachineSnapshotTree{{
			Snapshot: ref("snapshot-1"), Name: "base", CreateTime: at,
			ChildSnapshotList: []types.VirtualMachineSnapshotTree{
				{Snapshot: ref("snapshot-2"), Name: "a", CreateTime: at.Add(time.Hour)},
				{Snapshot: ref("snapshot-3"), Name: "b", CreateTime: at.Add(2 * time.Hour)},
			},
		}}},
		LayoutEx: &types.VirtualMachineFileLayoutEx{
			File: []types.VirtualMachineFileLayoutExFileInfo{
				{Key: 1, Size: 3 << 30, Type: "snapshotData"},
				{Key: 2, Size: 1 << 20, Type: "snapshotData"},
			},
			Snapshot: []types.VirtualMachineFileLayoutExSnapshotLayout{
				{Key: ref("snapshot-1"), DataKey: 1},
				{Key: ref("snapshot-2"), DataKey: 2},
				{Key: ref("snapshot-3"), DataKey: -1},
			},
		},
	}
	want := []cloud.Snapshot{
		{ID: "snapshot-1", Account: "a", Name: "base", Server: "vm-7", SizeGB: 3, State: cloud.ResourceAvailable, CreatedAt: at.UTC()},
		{ID: "snapshot-2", Account: "a", Name: "a", Server: "vm-7", Parent: "snapshot-1", SizeGB: 1, State: cloud.ResourceAvailable, CreatedAt: at.Add(time.Hour).UTC()},
		{ID: "snapshot-3", Account: "a", Name: "b", Server: "vm-7", Parent: "snapshot-1", State: cloud.ResourceAvailable, CreatedAt: at.Add(2 * time.Hour).UTC()},
	}
	require.Equal(t, want, p.vmSnapshots(vm))
	require.Empty(t, p.vmSnapshots(mo.VirtualMachine{}))
}
