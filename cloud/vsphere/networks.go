package vsphere

import (
	"context"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// ListNetworks returns one page of the covered datacenters' networks:
// standard port groups ("network-7"), distributed port groups
// ("dvportgroup-9") and opaque (NSX) networks, without distributed
// switches' uplink port groups (config.uplink): id the network's reference
// value, name its name, region its datacenter's name (as a server's
// region), AVAILABLE (ERROR while vCenter rates it red). vSphere port groups
// carry no address range, so cidr is left out. One property collector call
// per datacenter the page reaches.
func (p *Provider) ListNetworks(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.VirtualNetwork], error) {
	return listAcross(ctx, p, "list networks", account, opts, func(ctx context.Context, dc datacenter) ([]cloud.VirtualNetwork, error) {
		content, err := p.retrieveContent(ctx, dc.ref, []string{"Network"}, []string{"name", "overallStatus"},
			types.PropertySpec{Type: "DistributedVirtualPortgroup", PathSet: []string{"name", "overallStatus", "config.uplink"}})
		if err != nil {
			return nil, err
		}
		out := make([]cloud.VirtualNetwork, 0, len(content))
		for _, c := range content {
			if isTrue(propValue(c, "config.uplink")) {
				continue
			}
			n := cloud.VirtualNetwork{ID: c.Obj.Value, Account: p.account, Region: dc.name, State: cloud.ResourceAvailable}
			n.Name, _ = propValue(c, "name").(string)
			if s, _ := propValue(c, "overallStatus").(types.ManagedEntityStatus); s == types.ManagedEntityStatusRed {
				n.State = cloud.ResourceError
			}
			out = append(out, n)
		}
		return out, nil
	}, func(n cloud.VirtualNetwork) string { return n.ID })
}

// isTrue reports whether a property value is true (bool or *bool).
func isTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case *bool:
		return b != nil && *b
	}
	return false
}
