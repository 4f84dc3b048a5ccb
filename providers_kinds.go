package worker

// The routed cloud's optional services (package cloud's kinds beyond
// servers, firewalls and budgets): each call goes to the provider of the
// account it names, through the service's helper (cloud.VolumesOf, …), so an
// account whose provider lacks a service answers with cloud's typed "not
// supported" error, which the poll runner treats as nothing to poll.

import (
	"context"

	"github.com/stratusworks/worker/cloud"
)

// listed is one paged listing of an account's provider.
func listed[S, T any](ctx context.Context, r routedCloud, account string, of func(cloud.Provider) (S, error),
	list func(S) (cloud.Page[T], error)) (cloud.Page[T], error) {
	s, err := service(ctx, r, account, of)
	if err != nil {
		return cloud.Page[T]{}, err
	}
	return list(s)
}

type routedDataCenters routedCloud

// DataCenters is the routed DataCenters service.
func (r routedCloud) DataCenters() (cloud.DataCenters, error) { return routedDataCenters(r), nil }

func (r routedDataCenters) ListRegions(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Region], error) {
	return listed(ctx, routedCloud(r), account, cloud.DataCentersOf, func(s cloud.DataCenters) (cloud.Page[cloud.Region], error) {
		return s.ListRegions(ctx, account, o)
	})
}

func (r routedDataCenters) ListDataCenters(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.DataCenter], error) {
	return listed(ctx, routedCloud(r), account, cloud.DataCentersOf, func(s cloud.DataCenters) (cloud.Page[cloud.DataCenter], error) {
		return s.ListDataCenters(ctx, account, o)
	})
}

type routedImages routedCloud

// Images is the routed Images service.
func (r routedCloud) Images() (cloud.Images, error) { return routedImages(r), nil }

func (r routedImages) ListImages(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Image], error) {
	return listed(ctx, routedCloud(r), account, cloud.ImagesOf, func(s cloud.Images) (cloud.Page[cloud.Image], error) {
		return s.ListImages(ctx, account, o)
	})
}

type routedVolumes routedCloud

// Volumes is the routed Volumes service.
func (r routedCloud) Volumes() (cloud.Volumes, error) { return routedVolumes(r), nil }

func (r routedVolumes) ListVolumes(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Volume], error) {
	return listed(ctx, routedCloud(r), account, cloud.VolumesOf, func(s cloud.Volumes) (cloud.Page[cloud.Volume], error) {
		return s.ListVolumes(ctx, account, o)
	})
}

func (r routedVolumes) ListVolumeStatus(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listed(ctx, routedCloud(r), account, cloud.VolumesOf, func(s cloud.Volumes) (cloud.Page[cloud.ResourceStatus], error) {
		return s.ListVolumeStatus(ctx, account, o)
	})
}

type routedSnapshots routedCloud

// Snapshots is the routed Snapshots service.
func (r routedCloud) Snapshots() (cloud.Snapshots, error) { return routedSnapshots(r), nil }

func (r routedSnapshots) ListSnapshots(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Snapshot], error) {
	return listed(ctx, routedCloud(r), account, cloud.SnapshotsOf, func(s cloud.Snapshots) (cloud.Page[cloud.Snapshot], error) {
		return s.ListSnapshots(ctx, account, o)
	})
}

func (r routedSnapshots) ListSnapshotStatus(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listed(ctx, routedCloud(r), account, cloud.SnapshotsOf, func(s cloud.Snapshots) (cloud.Page[cloud.ResourceStatus], error) {
		return s.ListSnapshotStatus(ctx, account, o)
	})
}

type routedNetworks routedCloud

// Networks is the routed Networks service.
func (r routedCloud) Networks() (cloud.Networks, error) { return routedNetworks(r), nil }

func (r routedNetworks) ListNetworks(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.VirtualNetwork], error) {
	return listed(ctx, routedCloud(r), account, cloud.NetworksOf, func(s cloud.Networks) (cloud.Page[cloud.VirtualNetwork], error) {
		return s.ListNetworks(ctx, account, o)
	})
}

type routedAddresses routedCloud

// Addresses is the routed Addresses service.
func (r routedCloud) Addresses() (cloud.Addresses, error) { return routedAddresses(r), nil }

func (r routedAddresses) ListAddresses(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Address], error) {
	return listed(ctx, routedCloud(r), account, cloud.AddressesOf, func(s cloud.Addresses) (cloud.Page[cloud.Address], error) {
		return s.ListAddresses(ctx, account, o)
	})
}

type routedLoadBalancers routedCloud

// LoadBalancers is the routed LoadBalancers service.
func (r routedCloud) LoadBalancers() (cloud.LoadBalancers, error) { return routedLoadBalancers(r), nil }

func (r routedLoadBalancers) ListLoadBalancers(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.LoadBalancer], error) {
	return listed(ctx, routedCloud(r), account, cloud.LoadBalancersOf, func(s cloud.LoadBalancers) (cloud.Page[cloud.LoadBalancer], error) {
		return s.ListLoadBalancers(ctx, account, o)
	})
}

func (r routedLoadBalancers) ListLoadBalancerStatus(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listed(ctx, routedCloud(r), account, cloud.LoadBalancersOf, func(s cloud.LoadBalancers) (cloud.Page[cloud.ResourceStatus], error) {
		return s.ListLoadBalancerStatus(ctx, account, o)
	})
}

type routedDNS routedCloud

// DNS is the routed DNS service.
func (r routedCloud) DNS() (cloud.DNS, error) { return routedDNS(r), nil }

func (r routedDNS) ListDNSZones(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.DNSZone], error) {
	return listed(ctx, routedCloud(r), account, cloud.DNSOf, func(s cloud.DNS) (cloud.Page[cloud.DNSZone], error) {
		return s.ListDNSZones(ctx, account, o)
	})
}

func (r routedDNS) ListDNSRecords(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.DNSRecord], error) {
	return listed(ctx, routedCloud(r), account, cloud.DNSOf, func(s cloud.DNS) (cloud.Page[cloud.DNSRecord], error) {
		return s.ListDNSRecords(ctx, account, o)
	})
}

type routedVPNs routedCloud

// VPNs is the routed VPNs service.
func (r routedCloud) VPNs() (cloud.VPNs, error) { return routedVPNs(r), nil }

func (r routedVPNs) ListVPNGateways(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.VPNGateway], error) {
	return listed(ctx, routedCloud(r), account, cloud.VPNsOf, func(s cloud.VPNs) (cloud.Page[cloud.VPNGateway], error) {
		return s.ListVPNGateways(ctx, account, o)
	})
}

type routedDatabases routedCloud

// Databases is the routed Databases service.
func (r routedCloud) Databases() (cloud.Databases, error) { return routedDatabases(r), nil }

func (r routedDatabases) ListDatabases(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Database], error) {
	return listed(ctx, routedCloud(r), account, cloud.DatabasesOf, func(s cloud.Databases) (cloud.Page[cloud.Database], error) {
		return s.ListDatabases(ctx, account, o)
	})
}

func (r routedDatabases) ListDatabaseStatus(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listed(ctx, routedCloud(r), account, cloud.DatabasesOf, func(s cloud.Databases) (cloud.Page[cloud.ResourceStatus], error) {
		return s.ListDatabaseStatus(ctx, account, o)
	})
}

type routedCDN routedCloud

// CDN is the routed CDN service.
func (r routedCloud) CDN() (cloud.CDN, error) { return routedCDN(r), nil }

func (r routedCDN) ListDistributions(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Distribution], error) {
	return listed(ctx, routedCloud(r), account, cloud.CDNOf, func(s cloud.CDN) (cloud.Page[cloud.Distribution], error) {
		return s.ListDistributions(ctx, account, o)
	})
}

type routedCertificates routedCloud

// Certificates is the routed Certificates service.
func (r routedCloud) Certificates() (cloud.Certificates, error) { return routedCertificates(r), nil }

func (r routedCertificates) ListCertificates(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Certificate], error) {
	return listed(ctx, routedCloud(r), account, cloud.CertificatesOf, func(s cloud.Certificates) (cloud.Page[cloud.Certificate], error) {
		return s.ListCertificates(ctx, account, o)
	})
}

type routedSubscriptions routedCloud

// Subscriptions is the routed Subscriptions service.
func (r routedCloud) Subscriptions() (cloud.Subscriptions, error) { return routedSubscriptions(r), nil }

func (r routedSubscriptions) ListSubscriptions(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Subscription], error) {
	return listed(ctx, routedCloud(r), account, cloud.SubscriptionsOf, func(s cloud.Subscriptions) (cloud.Page[cloud.Subscription], error) {
		return s.ListSubscriptions(ctx, account, o)
	})
}

func (r routedSubscriptions) ListInvoices(ctx context.Context, account string, o cloud.ListOptions) (cloud.Page[cloud.Invoice], error) {
	return listed(ctx, routedCloud(r), account, cloud.SubscriptionsOf, func(s cloud.Subscriptions) (cloud.Page[cloud.Invoice], error) {
		return s.ListInvoices(ctx, account, o)
	})
}

type routedServerAnalytics routedCloud

// ServerAnalytics is the routed ServerAnalytics service.
func (r routedCloud) ServerAnalytics() (cloud.ServerAnalytics, error) {
	return routedServerAnalytics(r), nil
}

func (r routedServerAnalytics) ListUsage(ctx context.Context, account string, o cloud.UsageOptions) (cloud.Page[cloud.UsageSample], error) {
	return listed(ctx, routedCloud(r), account, cloud.ServerAnalyticsOf, func(s cloud.ServerAnalytics) (cloud.Page[cloud.UsageSample], error) {
		return s.ListUsage(ctx, account, o)
	})
}

var (
	_ cloud.ServerAnalyticsProvider = routedCloud{}
	_ cloud.DataCentersProvider     = routedCloud{}
	_ cloud.ImagesProvider          = routedCloud{}
	_ cloud.VolumesProvider         = routedCloud{}
	_ cloud.SnapshotsProvider       = routedCloud{}
	_ cloud.NetworksProvider        = routedCloud{}
	_ cloud.AddressesProvider       = routedCloud{}
	_ cloud.LoadBalancersProvider   = routedCloud{}
	_ cloud.DNSProvider             = routedCloud{}
	_ cloud.VPNsProvider            = routedCloud{}
	_ cloud.DatabasesProvider       = routedCloud{}
	_ cloud.CDNProvider             = routedCloud{}
	_ cloud.CertificatesProvider    = routedCloud{}
	_ cloud.SubscriptionsProvider   = routedCloud{}
)
