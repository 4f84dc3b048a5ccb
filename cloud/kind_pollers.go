package cloud

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"github.com/stratusworks/worker/state"
)

// Pollers of the kinds beyond servers, firewalls and budgets. A full
// listing's last page is Complete, so resources missing from it are
// detected as deleted; a status-only listing saves Partial observations
// ({"state": …}) of its full kind and never detects deletions. Attributes
// are the resource without its id and account, with empty values left out
// and unordered lists sorted, so an unchanged resource saves as unchanged.

// RegionPoller lists regions; kind "region".
type RegionPoller struct {
	DataCenters DataCenters
	PageSize    int // 0 means the provider's default
}

// Kind returns "region".
func (RegionPoller) Kind() string { return KindRegion }

// Poll reads one page of regions.
func (p RegionPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindRegion, t, cursor, p.PageSize, p.DataCenters.ListRegions)
}

// DataCenterPoller lists data centers; kind "datacenter".
type DataCenterPoller struct {
	DataCenters DataCenters
	PageSize    int // 0 means the provider's default
}

// Kind returns "datacenter".
func (DataCenterPoller) Kind() string { return KindDataCenter }

// Poll reads one page of data centers.
func (p DataCenterPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindDataCenter, t, cursor, p.PageSize, p.DataCenters.ListDataCenters)
}

// ImagePoller lists machine images; kind "image".
type ImagePoller struct {
	Images   Images
	PageSize int // 0 means the provider's default
}

// Kind returns "image".
func (ImagePoller) Kind() string { return KindImage }

// Poll reads one page of machine images.
func (p ImagePoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindImage, t, cursor, p.PageSize, p.Images.ListImages)
}

// VolumePoller lists volumes; kind "volume".
type VolumePoller struct {
	Volumes  Volumes
	PageSize int // 0 means the provider's default
}

// Kind returns "volume".
func (VolumePoller) Kind() string { return KindVolume }

// Poll reads one page of volumes.
func (p VolumePoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindVolume, t, cursor, p.PageSize, p.Volumes.ListVolumes)
}

// VolumeStatusPoller lists volume states only, cheaply, for frequent polls; kind "volume-status". Its
// observations are partial updates of kind "volume" (the "state" attribute).
type VolumeStatusPoller struct {
	Volumes  Volumes
	PageSize int // 0 means the provider's default
}

// Kind returns "volume-status".
func (VolumeStatusPoller) Kind() string { return KindVolumeStatus }

// Poll reads one page of volume states.
func (p VolumeStatusPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollStatus(ctx, KindVolume, t, cursor, p.PageSize, p.Volumes.ListVolumeStatus)
}

// SnapshotPoller lists snapshots; kind "snapshot".
type SnapshotPoller struct {
	Snapshots Snapshots
	PageSize  int // 0 means the provider's default
}

// Kind returns "snapshot".
func (SnapshotPoller) Kind() string { return KindSnapshot }

// Poll reads one page of snapshots.
func (p SnapshotPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindSnapshot, t, cursor, p.PageSize, p.Snapshots.ListSnapshots)
}

// SnapshotStatusPoller lists snapshot states only, cheaply, for frequent polls; kind "snapshot-status". Its
// observations are partial updates of kind "snapshot" (the "state" attribute).
type SnapshotStatusPoller struct {
	Snapshots Snapshots
	PageSize  int // 0 means the provider's default
}

// Kind returns "snapshot-status".
func (SnapshotStatusPoller) Kind() string { return KindSnapshotStatus }

// Poll reads one page of snapshot states.
func (p SnapshotStatusPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollStatus(ctx, KindSnapshot, t, cursor, p.PageSize, p.Snapshots.ListSnapshotStatus)
}

// NetworkPoller lists virtual networks; kind "network".
type NetworkPoller struct {
	Networks Networks
	PageSize int // 0 means the provider's default
}

// Kind returns "network".
func (NetworkPoller) Kind() string { return KindNetwork }

// Poll reads one page of virtual networks.
func (p NetworkPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindNetwork, t, cursor, p.PageSize, p.Networks.ListNetworks)
}

// AddressPoller lists IP addresses; kind "address".
type AddressPoller struct {
	Addresses Addresses
	PageSize  int // 0 means the provider's default
}

// Kind returns "address".
func (AddressPoller) Kind() string { return KindAddress }

// Poll reads one page of IP addresses.
func (p AddressPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindAddress, t, cursor, p.PageSize, p.Addresses.ListAddresses)
}

// LoadBalancerPoller lists load balancers; kind "load-balancer".
type LoadBalancerPoller struct {
	LoadBalancers LoadBalancers
	PageSize      int // 0 means the provider's default
}

// Kind returns "load-balancer".
func (LoadBalancerPoller) Kind() string { return KindLoadBalancer }

// Poll reads one page of load balancers.
func (p LoadBalancerPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindLoadBalancer, t, cursor, p.PageSize, p.LoadBalancers.ListLoadBalancers)
}

// LoadBalancerStatusPoller lists load balancer states only, cheaply, for frequent polls; kind "load-balancer-status". Its
// observations are partial updates of kind "load-balancer" (the "state" attribute).
type LoadBalancerStatusPoller struct {
	LoadBalancers LoadBalancers
	PageSize      int // 0 means the provider's default
}

// Kind returns "load-balancer-status".
func (LoadBalancerStatusPoller) Kind() string { return KindLoadBalancerStatus }

// Poll reads one page of load balancer states.
func (p LoadBalancerStatusPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollStatus(ctx, KindLoadBalancer, t, cursor, p.PageSize, p.LoadBalancers.ListLoadBalancerStatus)
}

// DNSZonePoller lists DNS zones; kind "dns-zone".
type DNSZonePoller struct {
	DNS      DNS
	PageSize int // 0 means the provider's default
}

// Kind returns "dns-zone".
func (DNSZonePoller) Kind() string { return KindDNSZone }

// Poll reads one page of DNS zones.
func (p DNSZonePoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindDNSZone, t, cursor, p.PageSize, p.DNS.ListDNSZones)
}

// DNSRecordPoller lists DNS records; kind "dns-record".
type DNSRecordPoller struct {
	DNS      DNS
	PageSize int // 0 means the provider's default
}

// Kind returns "dns-record".
func (DNSRecordPoller) Kind() string { return KindDNSRecord }

// Poll reads one page of DNS records.
func (p DNSRecordPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindDNSRecord, t, cursor, p.PageSize, p.DNS.ListDNSRecords)
}

// VPNGatewayPoller lists VPN gateways; kind "vpn-gateway".
type VPNGatewayPoller struct {
	VPNs     VPNs
	PageSize int // 0 means the provider's default
}

// Kind returns "vpn-gateway".
func (VPNGatewayPoller) Kind() string { return KindVPNGateway }

// Poll reads one page of VPN gateways.
func (p VPNGatewayPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindVPNGateway, t, cursor, p.PageSize, p.VPNs.ListVPNGateways)
}

// DatabasePoller lists relational database instances; kind "database".
type DatabasePoller struct {
	Databases Databases
	PageSize  int // 0 means the provider's default
}

// Kind returns "database".
func (DatabasePoller) Kind() string { return KindDatabase }

// Poll reads one page of relational database instances.
func (p DatabasePoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindDatabase, t, cursor, p.PageSize, p.Databases.ListDatabases)
}

// DatabaseStatusPoller lists database states only, cheaply, for frequent polls; kind "database-status". Its
// observations are partial updates of kind "database" (the "state" attribute).
type DatabaseStatusPoller struct {
	Databases Databases
	PageSize  int // 0 means the provider's default
}

// Kind returns "database-status".
func (DatabaseStatusPoller) Kind() string { return KindDatabaseStatus }

// Poll reads one page of database states.
func (p DatabaseStatusPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollStatus(ctx, KindDatabase, t, cursor, p.PageSize, p.Databases.ListDatabaseStatus)
}

// DistributionPoller lists CDN distributions; kind "cdn-distribution".
type DistributionPoller struct {
	CDN      CDN
	PageSize int // 0 means the provider's default
}

// Kind returns "cdn-distribution".
func (DistributionPoller) Kind() string { return KindDistribution }

// Poll reads one page of CDN distributions.
func (p DistributionPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindDistribution, t, cursor, p.PageSize, p.CDN.ListDistributions)
}

// CertificatePoller lists SSL certificates; kind "certificate".
type CertificatePoller struct {
	Certificates Certificates
	PageSize     int // 0 means the provider's default
}

// Kind returns "certificate".
func (CertificatePoller) Kind() string { return KindCertificate }

// Poll reads one page of SSL certificates.
func (p CertificatePoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindCertificate, t, cursor, p.PageSize, p.Certificates.ListCertificates)
}

// SubscriptionPoller lists subscriptions; kind "subscription".
type SubscriptionPoller struct {
	Subscriptions Subscriptions
	PageSize      int // 0 means the provider's default
}

// Kind returns "subscription".
func (SubscriptionPoller) Kind() string { return KindSubscription }

// Poll reads one page of subscriptions.
func (p SubscriptionPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindSubscription, t, cursor, p.PageSize, p.Subscriptions.ListSubscriptions)
}

// InvoicePoller lists invoices; kind "invoice".
type InvoicePoller struct {
	Subscriptions Subscriptions
	PageSize      int // 0 means the provider's default
}

// Kind returns "invoice".
func (InvoicePoller) Kind() string { return KindInvoice }

// Poll reads one page of invoices.
func (p InvoicePoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return pollList(ctx, KindInvoice, t, cursor, p.PageSize, p.Subscriptions.ListInvoices)
}

// resource is what pollList needs of a kind's type.
type resource interface {
	resourceID() string
	attributes() attrs
}

// attrs is the stored shape of a resource, before empty values are dropped.
type attrs map[string]any

// encode returns the attributes as JSON without their empty values: "",
// empty lists and maps, zero times (false and 0 are kept: they are values).
func (a attrs) encode() (json.RawMessage, error) {
	for k, v := range a {
		rv := reflect.ValueOf(v)
		switch {
		case v == nil:
			delete(a, k)
		case rv.Kind() == reflect.String && rv.Len() == 0,
			(rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0:
			delete(a, k)
		case rv.Kind() == reflect.Struct && rv.IsZero():
			delete(a, k)
		}
	}
	return json.Marshal(map[string]any(a))
}

// sorted returns a sorted copy of s (nil if empty).
func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// sortedListeners returns the listeners by port, then protocol.
func sortedListeners(ls []Listener) []Listener {
	if len(ls) == 0 {
		return nil
	}
	c := slices.Clone(ls)
	slices.SortFunc(c, func(a, b Listener) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.TargetPort, b.TargetPort))
	})
	return c
}

// pollList reads one page of a full listing.
func pollList[T resource](ctx context.Context, kind string, t state.Target, cursor string, size int,
	list func(context.Context, string, ListOptions) (Page[T], error)) (state.Snapshot, string, error) {
	page, err := list(ctx, t.Account, ListOptions{PageToken: cursor, PageSize: size})
	if err != nil {
		return state.Snapshot{}, "", fmt.Errorf("poll %s: %w", kind, err)
	}
	snap := state.Snapshot{Complete: page.NextToken == "", Observations: make([]state.Observation, 0, len(page.Items))}
	for _, r := range page.Items {
		raw, err := r.attributes().encode()
		if err != nil {
			return state.Snapshot{}, "", fmt.Errorf("encode %s %s: %w", kind, r.resourceID(), err)
		}
		snap.Observations = append(snap.Observations, state.Observation{Kind: kind, ID: r.resourceID(), Attributes: raw})
	}
	return snap, page.NextToken, nil
}

// pollStatus reads one page of a status-only listing as partial
// observations of kind.
func pollStatus(ctx context.Context, kind string, t state.Target, cursor string, size int,
	list func(context.Context, string, ListOptions) (Page[ResourceStatus], error)) (state.Snapshot, string, error) {
	page, err := list(ctx, t.Account, ListOptions{PageToken: cursor, PageSize: size})
	if err != nil {
		return state.Snapshot{}, "", fmt.Errorf("poll %s states: %w", kind, err)
	}
	snap := state.Snapshot{Observations: make([]state.Observation, 0, len(page.Items))}
	for _, s := range page.Items {
		raw, err := json.Marshal(map[string]ResourceState{"state": s.State})
		if err != nil {
			return state.Snapshot{}, "", fmt.Errorf("encode %s %s: %w", kind, s.ID, err)
		}
		snap.Observations = append(snap.Observations, state.Observation{Kind: kind, ID: s.ID, Attributes: raw, Partial: true})
	}
	return snap, page.NextToken, nil
}
