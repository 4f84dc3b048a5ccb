package cloud

import "context"

// Region is a geographic region of a cloud, e.g. "eu-west-1".
type Region struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Name    string `json:"name"`
	// Jurisdiction is the legal area its data lies in, e.g. "EU" or "US".
	Jurisdiction string `json:"jurisdiction,omitempty"`
	// Active is false for a region the account cannot use.
	Active bool `json:"active"`
}

// DataCenter is a zone of a region: one or more buildings that fail
// independently of the others.
type DataCenter struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Region  string `json:"region"` // the Region's ID
	Name    string `json:"name"`
	Active  bool   `json:"active"`
}

// DataCenters lists the regions and data centers an account can use.
type DataCenters interface {
	ListRegions(ctx context.Context, account string, opts ListOptions) (Page[Region], error)
	ListDataCenters(ctx context.Context, account string, opts ListOptions) (Page[DataCenter], error)
}

func (r Region) resourceID() string { return r.ID }
func (r Region) attributes() attrs {
	return attrs{"name": r.Name, "jurisdiction": r.Jurisdiction, "active": r.Active}
}

func (d DataCenter) resourceID() string { return d.ID }
func (d DataCenter) attributes() attrs {
	return attrs{"name": d.Name, "region": d.Region, "active": d.Active}
}
