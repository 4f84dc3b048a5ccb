package vsphere

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// datacenter is one datacenter the provider covers.
type datacenter struct {
	ref      types.ManagedObjectReference
	name     string // Server.Region of its VMs
	path     string // inventory path, e.g. "/DC0" or "/Europe/FRA"
	vmFolder types.ManagedObjectReference
}

// listDatacenters returns every datacenter of the vCenter that the session
// can see, ordered by reference (compareIDs): an order that stays put when
// datacenters are renamed, added or removed, so page tokens stay valid.
func (p *Provider) listDatacenters(ctx context.Context) ([]datacenter, error) {
	var dcs []mo.Datacenter
	root := p.client.ServiceContent.RootFolder
	if err := p.retrieveView(ctx, root, "Datacenter", []string{"name", "parent", "vmFolder"}, &dcs); err != nil {
		return nil, err
	}
	out := make([]datacenter, 0, len(dcs))
	for _, dc := range dcs {
		d := datacenter{ref: dc.Self, name: dc.Name, path: "/" + dc.Name, vmFolder: dc.VmFolder}
		if dc.Parent != nil && *dc.Parent != root {
			// In a folder of datacenters: rare, and one more call.
			path, err := find.InventoryPath(ctx, p.client, dc.Self)
			if err != nil {
				return nil, err
			}
			d.path = path
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b datacenter) int { return compareIDs(a.ref.Value, b.ref.Value) })
	return out, nil
}

// resolveDatacenters resolves Config.Datacenter or Config.Datacenters into
// the set of covered datacenters (nil: all), and loads the coverage. Names
// that match nothing fail with cloud.ErrNotFound and ErrInvalidConfig,
// listing the datacenters there are.
func (p *Provider) resolveDatacenters(ctx context.Context) error {
	return p.do(ctx, "resolve datacenters", func(ctx context.Context) error {
		all, err := p.listDatacenters(ctx)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			return fmt.Errorf("%w: vCenter shows user %q no datacenter (check the user's permissions)",
				cloud.ErrNotFound, p.cfg.Username)
		}
		entries, field := p.cfg.Datacenters, "Datacenters"
		if p.cfg.Datacenter != "" {
			entries, field = []string{p.cfg.Datacenter}, "Datacenter"
		}
		if len(entries) > 0 {
			p.only = map[types.ManagedObjectReference]bool{}
			for i, e := range entries {
				f := field
				if field == "Datacenters" {
					f = fmt.Sprintf("Datacenters[%d]", i)
				}
				dc, err := matchDatacenter(f, e, all)
				if err != nil {
					return err
				}
				p.only[dc.ref] = true
			}
		}
		p.setCoverage(all)
		return nil
	})
}

// matchDatacenter finds the datacenter that value (a name or an inventory
// path) names, for the Config field.
func matchDatacenter(field, value string, dcs []datacenter) (datacenter, error) {
	var found []datacenter
	for _, dc := range dcs {
		if value == dc.path || value == dc.name || "/"+strings.TrimPrefix(value, "/") == dc.path {
			found = append(found, dc)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return datacenter{}, fmt.Errorf("%w: %w: %s %q not found (datacenters: %s)",
			cloud.ErrNotFound, ErrInvalidConfig, field, value, datacenterNames(dcs))
	}
	paths := make([]string, len(found))
	for i, dc := range found {
		paths[i] = dc.path
	}
	slices.Sort(paths)
	return datacenter{}, configError(field, "%q names %d datacenters: use the inventory path (%s)",
		value, len(found), strings.Join(paths, ", "))
}

// setCoverage keeps the covered datacenters of all.
func (p *Provider) setCoverage(all []datacenter) {
	covered := all
	if p.only != nil {
		covered = slices.DeleteFunc(slices.Clone(all), func(dc datacenter) bool { return !p.only[dc.ref] })
	}
	p.dcMu.Lock()
	p.dcs = covered
	p.dcMu.Unlock()
}

// coverage returns the covered datacenters, ordered by reference. With
// refresh it lists the vCenter's datacenters again first (three small
// calls), so that datacenters added or removed since are seen: listings do
// at their first page, tag searches always.
func (p *Provider) coverage(ctx context.Context, refresh bool) ([]datacenter, error) {
	if refresh {
		all, err := p.listDatacenters(ctx)
		if err != nil {
			return nil, err
		}
		p.setCoverage(all)
	}
	p.dcMu.RLock()
	defer p.dcMu.RUnlock()
	return p.dcs, nil
}

// covers returns the covered datacenter among a VM's ancestors. A VM's
// datacenter is its only Datacenter ancestor; in the default coverage (all)
// any datacenter counts, including one created since the last refresh.
func (p *Provider) covers(ancestors []mo.ManagedEntity) (datacenter, bool) {
	for _, e := range ancestors {
		if e.Self.Type != "Datacenter" {
			continue
		}
		if p.only != nil && !p.only[e.Self] {
			return datacenter{}, false
		}
		return datacenter{ref: e.Self, name: e.Name}, true
	}
	return datacenter{}, false
}

// datacenterNames lists the datacenters' names (paths for the nested ones),
// sorted, for error messages.
func datacenterNames(dcs []datacenter) string {
	names := make([]string, len(dcs))
	for i, dc := range dcs {
		names[i] = dc.name
		if dc.path != "/"+dc.name {
			names[i] = dc.path
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// pageToken is a position in a listing across datacenters: after VM vm of
// datacenter dc (at its start if vm is empty). Encoded "datacenter-3/vm-42"
// or "datacenter-3/"; a bare VM id (a token from before listings spanned
// datacenters) is a position in the first datacenter.
type pageToken struct {
	dc, vm string
}

func parseToken(s string) pageToken {
	if dc, vm, ok := strings.Cut(s, "/"); ok {
		return pageToken{dc: dc, vm: vm}
	}
	return pageToken{vm: s}
}

func (t pageToken) String() string { return t.dc + "/" + t.vm }
