package vsphere

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// The optional services of package cloud that vSphere has: data centers,
// images (templates), volumes (virtual disks), snapshots (VM snapshot
// trees), networks (port groups) and addresses (guest IPs). The others
// (load balancers, DNS, VPNs, databases, CDN, certificates, subscriptions)
// have no accessor, so cloud's helpers answer *cloud.NotSupportedError.

var (
	_ cloud.DataCentersProvider = (*Provider)(nil)
	_ cloud.ImagesProvider      = (*Provider)(nil)
	_ cloud.VolumesProvider     = (*Provider)(nil)
	_ cloud.SnapshotsProvider   = (*Provider)(nil)
	_ cloud.NetworksProvider    = (*Provider)(nil)
	_ cloud.AddressesProvider   = (*Provider)(nil)
)

// DataCenters returns the provider itself: vSphere datacenters are regions,
// their clusters and standalone hosts data centers.
func (p *Provider) DataCenters() (cloud.DataCenters, error) { return p, nil }

// Images returns the provider itself: images are template VMs.
func (p *Provider) Images() (cloud.Images, error) { return p, nil }

// Volumes returns the provider itself: volumes are the virtual disks of VMs.
func (p *Provider) Volumes() (cloud.Volumes, error) { return p, nil }

// Snapshots returns the provider itself: snapshots are VM snapshots.
func (p *Provider) Snapshots() (cloud.Snapshots, error) { return p, nil }

// Networks returns the provider itself: networks are port groups.
func (p *Provider) Networks() (cloud.Networks, error) { return p, nil }

// Addresses returns the provider itself: addresses are the IPs VMware Tools
// reports of each VM's guest.
func (p *Provider) Addresses() (cloud.Addresses, error) { return p, nil }

// listAcross returns one page of items of the covered datacenters, in order
// of datacenter (by reference) then of item id (compareIDs), the way
// ListServers pages VMs: fetch returns every item of one datacenter (one
// property collector call over a container view, or two), and the page
// token names the datacenter and the page's last id, so tokens stay valid
// while items and datacenters come and go. The first page lists the
// datacenters afresh.
func listAcross[T any](ctx context.Context, p *Provider, op, account string, opts cloud.ListOptions,
	fetch func(ctx context.Context, dc datacenter) ([]T, error), id func(T) string) (cloud.Page[T], error) {
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Page[T]{}, err
	}
	var page cloud.Page[T]
	err := p.do(ctx, op, func(ctx context.Context) error {
		dcs, err := p.coverage(ctx, opts.PageToken == "")
		if err != nil {
			return err
		}
		size := pageSize(opts)
		tok := parseToken(opts.PageToken)
		first := 0
		if tok.dc != "" {
			var found bool
			first, found = slices.BinarySearchFunc(dcs, tok.dc, func(dc datacenter, ref string) int {
				return compareIDs(dc.ref.Value, ref)
			})
			if !found {
				tok.vm = "" // that datacenter is gone: start at the next one
			}
		}
		page = cloud.Page[T]{}
		for i := first; i < len(dcs); i++ {
			dc := dcs[i]
			items, err := fetch(ctx, dc)
			if isFaultType(err, &types.ManagedObjectNotFound{}) {
				continue // the datacenter was deleted since the coverage was read
			}
			if err != nil {
				return fmt.Errorf("datacenter %s: %w", dc.name, err)
			}
			slices.SortFunc(items, func(a, b T) int { return compareIDs(id(a), id(b)) })
			from := 0
			if i == first && tok.vm != "" {
				from, _ = slices.BinarySearchFunc(items, tok.vm, func(x T, last string) int { return compareIDs(id(x), last) })
				if from < len(items) && id(items[from]) == tok.vm {
					from++
				}
			}
			take := min(size-len(page.Items), len(items)-from)
			page.Items = append(page.Items, items[from:from+take]...)
			if len(page.Items) == size {
				switch {
				case from+take < len(items):
					page.NextToken = pageToken{dc: dc.ref.Value, vm: id(page.Items[len(page.Items)-1])}.String()
				case i+1 < len(dcs):
					page.NextToken = pageToken{dc: dcs[i+1].ref.Value}.String()
				}
				return nil
			}
		}
		return nil
	})
	return page, err
}

// pageSize is opts.PageSize within (0, MaxPageSize], DefaultPageSize for 0.
func pageSize(opts cloud.ListOptions) int {
	size := opts.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	return min(size, MaxPageSize)
}

// statusOf maps a page of items to their ids and states.
func statusOf[T any](page cloud.Page[T], err error, status func(T) cloud.ResourceStatus) (cloud.Page[cloud.ResourceStatus], error) {
	if err != nil {
		return cloud.Page[cloud.ResourceStatus]{}, err
	}
	out := cloud.Page[cloud.ResourceStatus]{NextToken: page.NextToken, Items: make([]cloud.ResourceStatus, len(page.Items))}
	for i, x := range page.Items {
		out.Items[i] = status(x)
	}
	return out, nil
}

// retrieveContent retrieves props of every object of the kinds under root
// (and of their subtypes: a "Network" view holds port groups too) through a
// container view it destroys afterwards, as raw object contents. extra adds
// property specs for subtypes (properties their base type lacks), in the same
// call.
func (p *Provider) retrieveContent(ctx context.Context, root types.ManagedObjectReference, kinds, props []string,
	extra ...types.PropertySpec) ([]types.ObjectContent, error) {
	v, err := view.NewManager(p.client).CreateContainerView(ctx, root, kinds, true)
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = v.Destroy(dctx)
	}()
	var out []types.ObjectContent
	if err := v.Retrieve(ctx, kinds, props, &out, extra...); err != nil {
		return nil, err
	}
	return out, nil
}

// propValue returns the value of the property named name in c, or nil.
func propValue(c types.ObjectContent, name string) any {
	for _, dp := range c.PropSet {
		if dp.Name == name {
			return dp.Val
		}
	}
	return nil
}
