package vsphere

import (
	"context"
	"strings"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// imageProps fill a cloud.Image.
var imageProps = []string{"name", "summary.config.template", "summary.config.guestId", "runtime.connectionState", "config.createDate"}

// ListImages returns one page of the covered datacenters' template VMs, the
// images servers are launched from: id the template's reference value
// ("vm-42", kept when a VM is marked a template and back), name its name,
// platform and architecture from its guest OS id ("ubuntu64Guest": linux,
// x86_64), AVAILABLE (UNKNOWN while its host is disconnected or it is
// inaccessible), never public (vCenter has no public images), created_at
// its creation time. Order and tokens are those of ListServers: one
// property collector call per datacenter the page reaches.
func (p *Provider) ListImages(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.Image], error) {
	return listAcross(ctx, p, "list images", account, opts, func(ctx context.Context, dc datacenter) ([]cloud.Image, error) {
		var vms []mo.VirtualMachine
		if err := p.retrieveView(ctx, dc.vmFolder, "VirtualMachine", imageProps, &vms); err != nil {
			return nil, err
		}
		var out []cloud.Image
		for _, vm := range vms {
			if !isTemplate(vm) {
				continue
			}
			img := cloud.Image{ID: vm.Self.Value, Account: p.account, Name: vm.Name, State: cloud.ResourceAvailable}
			img.Platform, img.Architecture = guestPlatform(vm.Summary.Config.GuestId)
			if cs := vm.Runtime.ConnectionState; cs != "" && cs != types.VirtualMachineConnectionStateConnected {
				img.State = cloud.StateUnknownResource
			}
			if vm.Config != nil && vm.Config.CreateDate != nil {
				img.CreatedAt = vm.Config.CreateDate.UTC()
			}
			out = append(out, img)
		}
		return out, nil
	}, func(i cloud.Image) string { return i.ID })
}

// guestPlatforms maps guest OS id prefixes (vim.vm.GuestOsDescriptor ids,
// lower-cased) to platforms other than Linux.
var guestPlatforms = []struct{ prefix, platform string }{
	{"win", "windows"}, {"darwin", "macos"}, {"freebsd", "freebsd"}, {"solaris", "solaris"},
	{"netware", "netware"}, {"os2", "os2"}, {"dos", "dos"}, {"vmkernel", "esxi"},
}

// guestPlatform derives an image's platform and architecture from a guest
// OS id: "windows2019srv_64Guest" -> windows, x86_64; "ubuntu64Guest" ->
// linux, x86_64; ids naming arm64 -> arm64; "otherGuest" (no OS named) and
// "otherNonLinux…" -> no platform. Every other family (ubuntu, debian,
// rhel, centos, sles, photon, otherLinux, …) is Linux.
func guestPlatform(id string) (platform, arch string) {
	l := strings.ToLower(id)
	switch {
	case l == "":
		return "", ""
	case strings.HasPrefix(l, "other") && (!strings.Contains(l, "linux") || strings.HasPrefix(l, "othernonlinux")):
		platform = ""
	default:
		platform = "linux"
		for _, g := range guestPlatforms {
			if strings.HasPrefix(l, g.prefix) {
				platform = g.platform
				break
			}
		}
	}
	switch {
	case strings.Contains(l, "arm64"):
		arch = "arm64"
	case strings.Contains(l, "64"):
		arch = "x86_64"
	}
	return platform, arch
}
