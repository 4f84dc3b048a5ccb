package vsphere

import (
	"context"
	"net"
	"slices"

	"github.com/vmware/govmomi/vim25/mo"

	"github.com/stratusworks/worker/cloud"
)

// addressProps are what an address listing reads of each VM.
var addressProps = []string{"summary.config.template", "guest.ipAddress", "guest.net"}

// ListAddresses returns one page of the IP addresses VMware Tools reports
// of the covered datacenters' servers (every address of every guest NIC,
// and the guest's primary address; loopback and link-local ones left out):
// id the VM's reference value and the address ("vm-42/10.0.0.5": guests on
// isolated networks may share an address), address, version ("ipv4",
// "ipv6"), region the datacenter's name, server the VM. A VM without
// VMware Tools running reports none. vCenter allocates no addresses
// itself, so an address is never free. One property collector call per
// datacenter the page reaches.
func (p *Provider) ListAddresses(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.Address], error) {
	return listAcross(ctx, p, "list addresses", account, opts, func(ctx context.Context, dc datacenter) ([]cloud.Address, error) {
		var vms []mo.VirtualMachine
		if err := p.retrieveView(ctx, dc.vmFolder, "VirtualMachine", addressProps, &vms); err != nil {
			return nil, err
		}
		var out []cloud.Address
		for _, vm := range vms {
			if isTemplate(vm) || vm.Guest == nil {
				continue
			}
			for _, ip := range guestIPs(vm) {
				a := cloud.Address{ID: vm.Self.Value + "/" + ip, Account: p.account, Address: ip, Version: "ipv4",
					Region: dc.name, Server: vm.Self.Value}
				if net.ParseIP(ip).To4() == nil {
					a.Version = "ipv6"
				}
				out = append(out, a)
			}
		}
		return out, nil
	}, func(a cloud.Address) string { return a.ID })
}

// guestIPs returns a VM's guest addresses, each once, sorted: those of every
// NIC and the primary one, without loopback, link-local and unparsable ones.
func guestIPs(vm mo.VirtualMachine) []string {
	var ips []string
	add := func(s string) {
		ip := net.ParseIP(s)
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			return
		}
		ips = append(ips, ip.String())
	}
	add(vm.Guest.IpAddress)
	for _, nic := range vm.Guest.Net {
		for _, s := range nic.IpAddress {
			add(s)
		}
	}
	slices.Sort(ips)
	return slices.Compact(ips)
}
