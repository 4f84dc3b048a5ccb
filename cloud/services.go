package cloud

// The services beyond the four of [Provider] are optional: a provider offers
// one by having its accessor method (Images() (Images, error), …), which
// the helper of the service ([ImagesOf], …) finds. A provider without the
// accessor, or whose accessor answers ErrNotSupported, does not offer the
// service. Provider itself is unchanged, so every existing provider still
// implements it.

// Page is one page of a listing. NextToken is "" on the last page.
type Page[T any] struct {
	Items     []T
	NextToken string
}

// ResourceState is the lifecycle state of a resource of the kinds beyond
// servers. Each kind's doc lists the states it takes; a provider maps its own
// states onto these, and a state it cannot map onto StateUnknownResource.
type ResourceState string

// Resource states.
const (
	ResourcePending   ResourceState = "PENDING"   // being created
	ResourceAvailable ResourceState = "AVAILABLE" // ready, not in use
	ResourceInUse     ResourceState = "IN_USE"    // attached or serving
	ResourceDeleting  ResourceState = "DELETING"
	ResourceError     ResourceState = "ERROR"
	ResourceDisabled  ResourceState = "DISABLED"
	ResourceActive    ResourceState = "ACTIVE"    // subscriptions, certificates (issued)
	ResourceExpired   ResourceState = "EXPIRED"   // certificates
	ResourceRevoked   ResourceState = "REVOKED"   // certificates
	ResourceSuspended ResourceState = "SUSPENDED" // subscriptions
	ResourceCancelled ResourceState = "CANCELLED" // subscriptions
	ResourceOpen      ResourceState = "OPEN"      // invoices
	ResourcePaid      ResourceState = "PAID"      // invoices
	ResourceOverdue   ResourceState = "OVERDUE"   // invoices

	StateUnknownResource ResourceState = "UNKNOWN"
)

// ResourceStatus is the cheap, status-only view of a resource.
type ResourceStatus struct {
	ID    string        `json:"id"`
	State ResourceState `json:"state"`
}

// Service names, as a [*NotSupportedError] names them.
const (
	ServiceCompute       = "compute"
	ServiceNetwork       = "network"
	ServiceBilling       = "billing"
	ServiceOperations    = "operations"
	ServiceDataCenters   = "datacenters"
	ServiceImages        = "images"
	ServiceVolumes       = "volumes"
	ServiceSnapshots     = "snapshots"
	ServiceNetworks      = "networks"
	ServiceAddresses     = "addresses"
	ServiceLoadBalancers = "load-balancers"
	ServiceDNS           = "dns"
	ServiceVPNs          = "vpns"
	ServiceDatabases     = "databases"
	ServiceCDN           = "cdn"
	ServiceCertificates  = "certificates"
	ServiceSubscriptions = "subscriptions"
)

// The optional accessors, one per service. A provider implements those of the
// services it offers.
type (
	DataCentersProvider   interface{ DataCenters() (DataCenters, error) }
	ImagesProvider        interface{ Images() (Images, error) }
	VolumesProvider       interface{ Volumes() (Volumes, error) }
	SnapshotsProvider     interface{ Snapshots() (Snapshots, error) }
	NetworksProvider      interface{ Networks() (Networks, error) }
	AddressesProvider     interface{ Addresses() (Addresses, error) }
	LoadBalancersProvider interface{ LoadBalancers() (LoadBalancers, error) }
	DNSProvider           interface{ DNS() (DNS, error) }
	VPNsProvider          interface{ VPNs() (VPNs, error) }
	DatabasesProvider     interface{ Databases() (Databases, error) }
	CDNProvider           interface{ CDN() (CDN, error) }
	CertificatesProvider  interface{ Certificates() (Certificates, error) }
	SubscriptionsProvider interface{ Subscriptions() (Subscriptions, error) }
)

// notOffered is the error of a helper for a provider without the accessor.
func notOffered(p Provider, service string) error {
	name := "<nil provider>"
	if p != nil {
		name = p.Name()
	}
	return &NotSupportedError{Provider: name, Service: service}
}

// DataCentersOf returns p's DataCenters service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no DataCenters accessor).
func DataCentersOf(p Provider) (DataCenters, error) {
	if sp, ok := p.(DataCentersProvider); ok {
		return sp.DataCenters()
	}
	return nil, notOffered(p, ServiceDataCenters)
}

// ImagesOf returns p's Images service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Images accessor).
func ImagesOf(p Provider) (Images, error) {
	if sp, ok := p.(ImagesProvider); ok {
		return sp.Images()
	}
	return nil, notOffered(p, ServiceImages)
}

// VolumesOf returns p's Volumes service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Volumes accessor).
func VolumesOf(p Provider) (Volumes, error) {
	if sp, ok := p.(VolumesProvider); ok {
		return sp.Volumes()
	}
	return nil, notOffered(p, ServiceVolumes)
}

// SnapshotsOf returns p's Snapshots service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Snapshots accessor).
func SnapshotsOf(p Provider) (Snapshots, error) {
	if sp, ok := p.(SnapshotsProvider); ok {
		return sp.Snapshots()
	}
	return nil, notOffered(p, ServiceSnapshots)
}

// NetworksOf returns p's Networks service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Networks accessor).
func NetworksOf(p Provider) (Networks, error) {
	if sp, ok := p.(NetworksProvider); ok {
		return sp.Networks()
	}
	return nil, notOffered(p, ServiceNetworks)
}

// AddressesOf returns p's Addresses service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Addresses accessor).
func AddressesOf(p Provider) (Addresses, error) {
	if sp, ok := p.(AddressesProvider); ok {
		return sp.Addresses()
	}
	return nil, notOffered(p, ServiceAddresses)
}

// LoadBalancersOf returns p's LoadBalancers service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no LoadBalancers accessor).
func LoadBalancersOf(p Provider) (LoadBalancers, error) {
	if sp, ok := p.(LoadBalancersProvider); ok {
		return sp.LoadBalancers()
	}
	return nil, notOffered(p, ServiceLoadBalancers)
}

// DNSOf returns p's DNS service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no DNS accessor).
func DNSOf(p Provider) (DNS, error) {
	if sp, ok := p.(DNSProvider); ok {
		return sp.DNS()
	}
	return nil, notOffered(p, ServiceDNS)
}

// VPNsOf returns p's VPNs service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no VPNs accessor).
func VPNsOf(p Provider) (VPNs, error) {
	if sp, ok := p.(VPNsProvider); ok {
		return sp.VPNs()
	}
	return nil, notOffered(p, ServiceVPNs)
}

// DatabasesOf returns p's Databases service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Databases accessor).
func DatabasesOf(p Provider) (Databases, error) {
	if sp, ok := p.(DatabasesProvider); ok {
		return sp.Databases()
	}
	return nil, notOffered(p, ServiceDatabases)
}

// CDNOf returns p's CDN service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no CDN accessor).
func CDNOf(p Provider) (CDN, error) {
	if sp, ok := p.(CDNProvider); ok {
		return sp.CDN()
	}
	return nil, notOffered(p, ServiceCDN)
}

// CertificatesOf returns p's Certificates service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Certificates accessor).
func CertificatesOf(p Provider) (Certificates, error) {
	if sp, ok := p.(CertificatesProvider); ok {
		return sp.Certificates()
	}
	return nil, notOffered(p, ServiceCertificates)
}

// SubscriptionsOf returns p's Subscriptions service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no Subscriptions accessor).
func SubscriptionsOf(p Provider) (Subscriptions, error) {
	if sp, ok := p.(SubscriptionsProvider); ok {
		return sp.Subscriptions()
	}
	return nil, notOffered(p, ServiceSubscriptions)
}
