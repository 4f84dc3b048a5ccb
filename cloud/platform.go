package cloud

import "context"

// The Platform services after Dasein Cloud: relational databases and CDN
// distributions.

// Database is a relational database instance (RDBMS). States: PENDING,
// AVAILABLE, DELETING, ERROR.
type Database struct {
	ID              string        `json:"id"`
	Account         string        `json:"account"`
	Name            string        `json:"name"`
	Engine          string        `json:"engine"`         // e.g. "mysql", "postgres"
	EngineVersion   string        `json:"engine_version"` // e.g. "8.0"
	Size            string        `json:"size,omitempty"` // the instance class
	StorageGB       int           `json:"storage_gb"`
	HighlyAvailable bool          `json:"highly_available"`   // a standby in another data center
	Endpoint        string        `json:"endpoint,omitempty"` // host:port
	State           ResourceState `json:"state"`
}

// Databases lists relational database instances.
type Databases interface {
	ListDatabases(ctx context.Context, account string, opts ListOptions) (Page[Database], error)
	// ListDatabaseStatus returns ids and states only: cheaper, for frequent polls.
	ListDatabaseStatus(ctx context.Context, account string, opts ListOptions) (Page[ResourceStatus], error)
}

// Distribution is a CDN distribution: an origin served from edge locations.
// States: PENDING (deploying), ACTIVE, DISABLED, DELETING, ERROR.
type Distribution struct {
	ID         string        `json:"id"`
	Account    string        `json:"account"`
	Name       string        `json:"name"`
	Origin     string        `json:"origin"`      // e.g. "assets.example.com"
	DomainName string        `json:"domain_name"` // the CDN's own name for it
	Aliases    []string      `json:"aliases,omitempty"`
	State      ResourceState `json:"state"`
}

// CDN lists CDN distributions.
type CDN interface {
	ListDistributions(ctx context.Context, account string, opts ListOptions) (Page[Distribution], error)
}

func (d Database) resourceID() string { return d.ID }
func (d Database) attributes() attrs {
	return attrs{"name": d.Name, "engine": d.Engine, "engine_version": d.EngineVersion, "size": d.Size,
		"storage_gb": d.StorageGB, "highly_available": d.HighlyAvailable, "endpoint": d.Endpoint, "state": d.State}
}

func (d Distribution) resourceID() string { return d.ID }
func (d Distribution) attributes() attrs {
	return attrs{"name": d.Name, "origin": d.Origin, "domain_name": d.DomainName, "aliases": sorted(d.Aliases), "state": d.State}
}
