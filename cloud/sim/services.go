package sim

import (
	"context"

	"github.com/stratusworks/worker/cloud"
)

// The services beyond compute, network, billing and operations. Each
// accessor returns c, or an error matching cloud.ErrNotSupported if the
// service is disabled (Config.Disable).

var (
	_ cloud.DataCentersProvider   = (*Cloud)(nil)
	_ cloud.DataCenters           = (*Cloud)(nil)
	_ cloud.ImagesProvider        = (*Cloud)(nil)
	_ cloud.Images                = (*Cloud)(nil)
	_ cloud.VolumesProvider       = (*Cloud)(nil)
	_ cloud.Volumes               = (*Cloud)(nil)
	_ cloud.SnapshotsProvider     = (*Cloud)(nil)
	_ cloud.Snapshots             = (*Cloud)(nil)
	_ cloud.NetworksProvider      = (*Cloud)(nil)
	_ cloud.Networks              = (*Cloud)(nil)
	_ cloud.AddressesProvider     = (*Cloud)(nil)
	_ cloud.Addresses             = (*Cloud)(nil)
	_ cloud.LoadBalancersProvider = (*Cloud)(nil)
	_ cloud.LoadBalancers         = (*Cloud)(nil)
	_ cloud.DNSProvider           = (*Cloud)(nil)
	_ cloud.DNS                   = (*Cloud)(nil)
	_ cloud.VPNsProvider          = (*Cloud)(nil)
	_ cloud.VPNs                  = (*Cloud)(nil)
	_ cloud.DatabasesProvider     = (*Cloud)(nil)
	_ cloud.Databases             = (*Cloud)(nil)
	_ cloud.CDNProvider           = (*Cloud)(nil)
	_ cloud.CDN                   = (*Cloud)(nil)
	_ cloud.CertificatesProvider  = (*Cloud)(nil)
	_ cloud.Certificates          = (*Cloud)(nil)
	_ cloud.SubscriptionsProvider = (*Cloud)(nil)
	_ cloud.Subscriptions         = (*Cloud)(nil)
)

// DataCenters returns c as the cloud.DataCenters service.
func (c *Cloud) DataCenters() (cloud.DataCenters, error) {
	if err := c.offers(ServiceDataCenters); err != nil {
		return nil, err
	}
	return c, nil
}

// ListRegions returns one page of the account's resources, in id order.
func (c *Cloud) ListRegions(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Region], error) {
	return list(ctx, c, &regions, accountID, opts)
}

// ListDataCenters returns one page of the account's resources, in id order.
func (c *Cloud) ListDataCenters(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.DataCenter], error) {
	return list(ctx, c, &dataCenters, accountID, opts)
}

// Images returns c as the cloud.Images service.
func (c *Cloud) Images() (cloud.Images, error) {
	if err := c.offers(ServiceImages); err != nil {
		return nil, err
	}
	return c, nil
}

// ListImages returns one page of the account's resources, in id order.
func (c *Cloud) ListImages(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Image], error) {
	return list(ctx, c, &images, accountID, opts)
}

// Volumes returns c as the cloud.Volumes service.
func (c *Cloud) Volumes() (cloud.Volumes, error) {
	if err := c.offers(ServiceVolumes); err != nil {
		return nil, err
	}
	return c, nil
}

// ListVolumes returns one page of the account's resources, in id order.
func (c *Cloud) ListVolumes(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Volume], error) {
	return list(ctx, c, &volumes, accountID, opts)
}

// ListVolumeStatus returns one page of ids and states, in id order.
func (c *Cloud) ListVolumeStatus(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listStatus(ctx, c, &volumes, accountID, opts)
}

// Snapshots returns c as the cloud.Snapshots service.
func (c *Cloud) Snapshots() (cloud.Snapshots, error) {
	if err := c.offers(ServiceSnapshots); err != nil {
		return nil, err
	}
	return c, nil
}

// ListSnapshots returns one page of the account's resources, in id order.
func (c *Cloud) ListSnapshots(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Snapshot], error) {
	return list(ctx, c, &snapshots, accountID, opts)
}

// ListSnapshotStatus returns one page of ids and states, in id order.
func (c *Cloud) ListSnapshotStatus(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listStatus(ctx, c, &snapshots, accountID, opts)
}

// Networks returns c as the cloud.Networks service.
func (c *Cloud) Networks() (cloud.Networks, error) {
	if err := c.offers(ServiceNetworks); err != nil {
		return nil, err
	}
	return c, nil
}

// ListNetworks returns one page of the account's resources, in id order.
func (c *Cloud) ListNetworks(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.VirtualNetwork], error) {
	return list(ctx, c, &networks, accountID, opts)
}

// Addresses returns c as the cloud.Addresses service.
func (c *Cloud) Addresses() (cloud.Addresses, error) {
	if err := c.offers(ServiceAddresses); err != nil {
		return nil, err
	}
	return c, nil
}

// ListAddresses returns one page of the account's resources, in id order.
func (c *Cloud) ListAddresses(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Address], error) {
	return list(ctx, c, &ipAddresses, accountID, opts)
}

// LoadBalancers returns c as the cloud.LoadBalancers service.
func (c *Cloud) LoadBalancers() (cloud.LoadBalancers, error) {
	if err := c.offers(ServiceLoadBalancers); err != nil {
		return nil, err
	}
	return c, nil
}

// ListLoadBalancers returns one page of the account's resources, in id order.
func (c *Cloud) ListLoadBalancers(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.LoadBalancer], error) {
	return list(ctx, c, &loadBalancers, accountID, opts)
}

// ListLoadBalancerStatus returns one page of ids and states, in id order.
func (c *Cloud) ListLoadBalancerStatus(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listStatus(ctx, c, &loadBalancers, accountID, opts)
}

// DNS returns c as the cloud.DNS service.
func (c *Cloud) DNS() (cloud.DNS, error) {
	if err := c.offers(ServiceDNS); err != nil {
		return nil, err
	}
	return c, nil
}

// ListDNSZones returns one page of the account's resources, in id order.
func (c *Cloud) ListDNSZones(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.DNSZone], error) {
	return list(ctx, c, &dnsZones, accountID, opts)
}

// ListDNSRecords returns one page of the account's resources, in id order.
func (c *Cloud) ListDNSRecords(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.DNSRecord], error) {
	return list(ctx, c, &dnsRecords, accountID, opts)
}

// VPNs returns c as the cloud.VPNs service.
func (c *Cloud) VPNs() (cloud.VPNs, error) {
	if err := c.offers(ServiceVPNs); err != nil {
		return nil, err
	}
	return c, nil
}

// ListVPNGateways returns one page of the account's resources, in id order.
func (c *Cloud) ListVPNGateways(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.VPNGateway], error) {
	return list(ctx, c, &vpnGateways, accountID, opts)
}

// Databases returns c as the cloud.Databases service.
func (c *Cloud) Databases() (cloud.Databases, error) {
	if err := c.offers(ServiceDatabases); err != nil {
		return nil, err
	}
	return c, nil
}

// ListDatabases returns one page of the account's resources, in id order.
func (c *Cloud) ListDatabases(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Database], error) {
	return list(ctx, c, &databases, accountID, opts)
}

// ListDatabaseStatus returns one page of ids and states, in id order.
func (c *Cloud) ListDatabaseStatus(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.ResourceStatus], error) {
	return listStatus(ctx, c, &databases, accountID, opts)
}

// CDN returns c as the cloud.CDN service.
func (c *Cloud) CDN() (cloud.CDN, error) {
	if err := c.offers(ServiceCDN); err != nil {
		return nil, err
	}
	return c, nil
}

// ListDistributions returns one page of the account's resources, in id order.
func (c *Cloud) ListDistributions(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Distribution], error) {
	return list(ctx, c, &distributions, accountID, opts)
}

// Certificates returns c as the cloud.Certificates service.
func (c *Cloud) Certificates() (cloud.Certificates, error) {
	if err := c.offers(ServiceCertificates); err != nil {
		return nil, err
	}
	return c, nil
}

// ListCertificates returns one page of the account's resources, in id order.
func (c *Cloud) ListCertificates(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Certificate], error) {
	return list(ctx, c, &certificates, accountID, opts)
}

// Subscriptions returns c as the cloud.Subscriptions service.
func (c *Cloud) Subscriptions() (cloud.Subscriptions, error) {
	if err := c.offers(ServiceSubscriptions); err != nil {
		return nil, err
	}
	return c, nil
}

// ListSubscriptions returns one page of the account's resources, in id order.
func (c *Cloud) ListSubscriptions(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Subscription], error) {
	return list(ctx, c, &subscriptions, accountID, opts)
}

// ListInvoices returns one page of the account's resources, in id order.
func (c *Cloud) ListInvoices(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.Page[cloud.Invoice], error) {
	return list(ctx, c, &invoices, accountID, opts)
}
