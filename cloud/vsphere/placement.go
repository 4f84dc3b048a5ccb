package vsphere

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// placement is where launches put new servers: the datacenter, VM folder,
// resource pool and (optionally) datastore. It is resolved from the Config
// at the first launch and kept (see [Provider.placement]).
type placement struct {
	dc        datacenter
	folder    *object.Folder
	pool      *object.ResourcePool
	datastore *types.ManagedObjectReference
}

// placement returns the launch placement, resolving it on first use. One
// goroutine resolves while concurrent launches wait for its answer; a
// failure is not kept, so the next launch tries again (the Config cannot
// change, but the inventory can: a second cluster removed, a folder created).
func (p *Provider) placement(ctx context.Context) (*placement, error) {
	p.placeMu.Lock()
	defer p.placeMu.Unlock()
	if p.place != nil {
		return p.place, nil
	}
	pl, err := p.resolvePlacement(ctx)
	if err != nil {
		if errors.Is(err, ErrInvalidConfig) {
			// The launch cannot succeed until the Config or the inventory
			// changes: not a transient failure.
			err = fmt.Errorf("%w: %w", cloud.ErrInvalidRequest, err)
		}
		return nil, err
	}
	p.place = pl
	return pl, nil
}

// forgetPlacement drops pl if it is still the kept placement: an object of
// it has been deleted, and the next launch resolves the names again.
func (p *Provider) forgetPlacement(pl *placement) {
	p.placeMu.Lock()
	defer p.placeMu.Unlock()
	if p.place == pl {
		p.place = nil
	}
}

func (p *Provider) finder(dc datacenter) *find.Finder {
	d := object.NewDatacenter(p.client, dc.ref)
	d.InventoryPath = dc.path
	return find.NewFinder(p.client, false).SetDatacenter(d)
}

func (p *Provider) resolvePlacement(ctx context.Context) (*placement, error) {
	dcs, err := p.coverage(ctx, true)
	if err != nil {
		return nil, err
	}
	dc, err := p.launchDatacenter(dcs)
	if err != nil {
		return nil, err
	}
	pl := &placement{dc: dc}
	finder := p.finder(dc)

	if p.cfg.Folder == "" {
		pl.folder = object.NewFolder(p.client, dc.vmFolder)
	} else if pl.folder, err = finder.Folder(ctx, p.cfg.Folder); err != nil {
		return nil, notFoundField("Folder", p.cfg.Folder, nil, err)
	}

	if p.cfg.ResourcePool != "" {
		if pl.pool, err = finder.ResourcePool(ctx, p.cfg.ResourcePool); err != nil {
			return nil, notFoundField("ResourcePool", p.cfg.ResourcePool, nil, err)
		}
	} else {
		pools, err := finder.ResourcePoolList(ctx, "*/Resources")
		if err != nil && !errors.As(err, new(*find.NotFoundError)) {
			return nil, err
		}
		switch len(pools) {
		case 1:
			pl.pool = pools[0]
		case 0:
			return nil, fmt.Errorf("%w: %w: datacenter %s has no cluster or host at the top of its host folder: set ResourcePool",
				cloud.ErrNotFound, ErrInvalidConfig, dc.name)
		default:
			paths := make([]string, len(pools))
			for i, rp := range pools {
				paths[i] = rp.InventoryPath
			}
			slices.Sort(paths)
			return nil, configError("ResourcePool", "is required to launch: datacenter %s has %d clusters or hosts: %s",
				dc.name, len(pools), strings.Join(paths, ", "))
		}
	}

	if p.cfg.Datastore != "" {
		ds, err := finder.Datastore(ctx, p.cfg.Datastore)
		if err != nil {
			return nil, notFoundField("Datastore", p.cfg.Datastore, nil, err)
		}
		ref := ds.Reference()
		pl.datastore = &ref
	}
	return pl, nil
}

// launchDatacenter decides which covered datacenter launches go to:
// LaunchDatacenter if set; else the datacenter that ResourcePool, Folder or
// Datastore names when one is an inventory path ("/DC1/host/…"); else the
// only covered datacenter. Otherwise it fails, listing the datacenters.
func (p *Provider) launchDatacenter(dcs []datacenter) (datacenter, error) {
	if len(dcs) == 0 {
		return datacenter{}, fmt.Errorf("%w: the provider covers no datacenter any more", cloud.ErrNotFound)
	}
	if v := p.cfg.LaunchDatacenter; v != "" {
		return matchDatacenter("LaunchDatacenter", v, dcs)
	}
	var (
		chosen      *datacenter
		chosenField string
	)
	for _, f := range []struct{ field, value string }{
		{"ResourcePool", p.cfg.ResourcePool},
		{"Folder", p.cfg.Folder},
		{"Datastore", p.cfg.Datastore},
	} {
		if !strings.HasPrefix(f.value, "/") {
			continue // empty, or relative to the datacenter
		}
		dc, ok := datacenterOfPath(f.value, dcs)
		if !ok {
			if len(dcs) == 1 {
				continue // the finder reports it as not found, in this datacenter
			}
			return datacenter{}, fmt.Errorf("%w: %w: %s %q is in none of the covered datacenters (%s)",
				cloud.ErrNotFound, ErrInvalidConfig, f.field, f.value, datacenterNames(dcs))
		}
		if chosen != nil && chosen.ref != dc.ref {
			return datacenter{}, configError(f.field, "%q is in datacenter %s, but %s %q is in %s",
				f.value, dc.name, chosenField, p.cfgValue(chosenField), chosen.name)
		}
		chosen, chosenField = &dc, f.field
	}
	switch {
	case chosen != nil:
		return *chosen, nil
	case len(dcs) == 1:
		return dcs[0], nil
	}
	return datacenter{}, configError("LaunchDatacenter",
		"is required: the provider covers %d datacenters (%s) and neither ResourcePool, Folder nor Datastore is an inventory path in one of them: set LaunchDatacenter, or e.g. ResourcePool %q",
		len(dcs), datacenterNames(dcs), dcs[0].path+"/host/<cluster>/Resources")
}

// cfgValue returns the value of a placement field, for error messages.
func (p *Provider) cfgValue(field string) string {
	switch field {
	case "ResourcePool":
		return p.cfg.ResourcePool
	case "Folder":
		return p.cfg.Folder
	case "Datastore":
		return p.cfg.Datastore
	}
	return ""
}

// datacenterOfPath returns the datacenter whose inventory path prefixes
// path.
func datacenterOfPath(path string, dcs []datacenter) (datacenter, bool) {
	for _, dc := range dcs {
		if strings.HasPrefix(path, dc.path+"/") {
			return dc, true
		}
	}
	return datacenter{}, false
}
