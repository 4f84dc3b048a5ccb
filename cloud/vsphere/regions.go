package vsphere

import (
	"context"
	"slices"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// ListRegions returns one page of the covered datacenters as regions: id
// the datacenter's reference value ("datacenter-3"), name its name (the
// Region of its servers), always active (vCenter lists only datacenters it
// serves). vSphere has no jurisdictions. It lists the datacenters afresh at
// every page: three small calls.
func (p *Provider) ListRegions(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.Region], error) {
	const op = "list regions"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Page[cloud.Region]{}, err
	}
	var page cloud.Page[cloud.Region]
	err := p.do(ctx, op, func(ctx context.Context) error {
		dcs, err := p.coverage(ctx, true)
		if err != nil {
			return err
		}
		regions := make([]cloud.Region, len(dcs))
		for i, dc := range dcs {
			regions[i] = cloud.Region{ID: dc.ref.Value, Account: p.account, Name: dc.name, Active: true}
		}
		page = pageSorted(regions, opts, func(r cloud.Region) string { return r.ID })
		return nil
	})
	return page, err
}

// ListDataCenters returns one page of the covered datacenters' clusters and
// standalone hosts (compute resources: the failure domains servers run in)
// as data centers: id the compute resource's reference value ("domain-c7",
// "domain-s12"), region its datacenter's reference value, active while it
// has an effective (connected, not in maintenance) host. One property
// collector call per datacenter the page reaches.
func (p *Provider) ListDataCenters(ctx context.Context, account string, opts cloud.ListOptions) (cloud.Page[cloud.DataCenter], error) {
	return listAcross(ctx, p, "list data centers", account, opts, func(ctx context.Context, dc datacenter) ([]cloud.DataCenter, error) {
		content, err := p.retrieveContent(ctx, dc.ref, []string{"ComputeResource"}, []string{"name", "summary"})
		if err != nil {
			return nil, err
		}
		out := make([]cloud.DataCenter, 0, len(content))
		for _, c := range content {
			d := cloud.DataCenter{ID: c.Obj.Value, Account: p.account, Region: dc.ref.Value}
			d.Name, _ = propValue(c, "name").(string)
			d.Active = effectiveHosts(propValue(c, "summary")) > 0
			out = append(out, d)
		}
		return out, nil
	}, func(d cloud.DataCenter) string { return d.ID })
}

// pageSorted returns the page of items (in any order) after opts.PageToken,
// which is the last id of the previous page: items are ordered by id.
func pageSorted[T any](items []T, opts cloud.ListOptions, id func(T) string) cloud.Page[T] {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b T) int { return compareIDs(id(a), id(b)) })
	from := 0
	if opts.PageToken != "" {
		var found bool
		from, found = slices.BinarySearchFunc(items, opts.PageToken, func(x T, last string) int { return compareIDs(id(x), last) })
		if found {
			from++
		}
	}
	take := min(pageSize(opts), len(items)-from)
	page := cloud.Page[T]{Items: items[from : from+take]}
	if from+take < len(items) {
		page.NextToken = id(page.Items[len(page.Items)-1])
	}
	return page
}

// effectiveHosts returns the number of effective hosts of a compute
// resource's summary, which the property collector returns by value or by
// pointer, of a cluster or of a standalone host.
func effectiveHosts(summary any) int32 {
	switch s := summary.(type) {
	case types.ClusterComputeResourceSummary:
		return s.NumEffectiveHosts
	case types.ComputeResourceSummary:
		return s.NumEffectiveHosts
	case types.BaseComputeResourceSummary:
		if s != nil {
			return s.GetComputeResourceSummary().NumEffectiveHosts
		}
	}
	return 0
}
