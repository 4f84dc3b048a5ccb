package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratusworks/worker/state"
)

// Kinds: the resource kinds the standard pollers observe. A status-only
// kind ("volume-status", …) saves partial observations of its full kind.
const (
	KindServer             = "server"
	KindServerStatus       = "server-status"
	KindFirewall           = "firewall"
	KindBudget             = "budget"
	KindRegion             = "region"
	KindDataCenter         = "datacenter"
	KindImage              = "image"
	KindVolume             = "volume"
	KindVolumeStatus       = "volume-status"
	KindSnapshot           = "snapshot"
	KindSnapshotStatus     = "snapshot-status"
	KindNetwork            = "network"
	KindAddress            = "address"
	KindLoadBalancer       = "load-balancer"
	KindLoadBalancerStatus = "load-balancer-status"
	KindDNSZone            = "dns-zone"
	KindDNSRecord          = "dns-record"
	KindVPNGateway         = "vpn-gateway"
	KindDatabase           = "database"
	KindDatabaseStatus     = "database-status"
	KindDistribution       = "cdn-distribution"
	KindCertificate        = "certificate"
	KindSubscription       = "subscription"
	KindInvoice            = "invoice"
)

// Default poll intervals, fitted to how fast each kind changes: states and
// addresses in minutes, catalogues and bills in hours.
const (
	IntervalServer             = 5 * time.Minute
	IntervalServerStatus       = time.Minute
	IntervalFirewall           = 5 * time.Minute
	IntervalBudget             = time.Hour
	IntervalRegion             = 24 * time.Hour
	IntervalDataCenter         = 24 * time.Hour
	IntervalImage              = 6 * time.Hour
	IntervalVolume             = 15 * time.Minute
	IntervalVolumeStatus       = 2 * time.Minute
	IntervalSnapshot           = 30 * time.Minute
	IntervalSnapshotStatus     = 5 * time.Minute
	IntervalNetwork            = 30 * time.Minute
	IntervalAddress            = 5 * time.Minute
	IntervalLoadBalancer       = 5 * time.Minute
	IntervalLoadBalancerStatus = time.Minute
	IntervalDNSZone            = time.Hour
	IntervalDNSRecord          = 15 * time.Minute
	IntervalVPNGateway         = 15 * time.Minute
	IntervalDatabase           = 15 * time.Minute
	IntervalDatabaseStatus     = 2 * time.Minute
	IntervalDistribution       = 30 * time.Minute
	IntervalCertificate        = 6 * time.Hour
	IntervalSubscription       = 6 * time.Hour
	IntervalInvoice            = 6 * time.Hour
)

var defaultIntervals = map[string]time.Duration{
	KindServer: IntervalServer, KindServerStatus: IntervalServerStatus, KindFirewall: IntervalFirewall,
	KindBudget: IntervalBudget, KindRegion: IntervalRegion, KindDataCenter: IntervalDataCenter,
	KindImage: IntervalImage, KindVolume: IntervalVolume, KindVolumeStatus: IntervalVolumeStatus,
	KindSnapshot: IntervalSnapshot, KindSnapshotStatus: IntervalSnapshotStatus, KindNetwork: IntervalNetwork,
	KindAddress: IntervalAddress, KindLoadBalancer: IntervalLoadBalancer,
	KindLoadBalancerStatus: IntervalLoadBalancerStatus, KindDNSZone: IntervalDNSZone,
	KindDNSRecord: IntervalDNSRecord, KindVPNGateway: IntervalVPNGateway, KindDatabase: IntervalDatabase,
	KindDatabaseStatus: IntervalDatabaseStatus, KindDistribution: IntervalDistribution,
	KindCertificate: IntervalCertificate, KindSubscription: IntervalSubscription, KindInvoice: IntervalInvoice,
	KindServerAnalytics: IntervalServerAnalytics,
}

// DefaultInterval returns the default poll interval of a standard kind, or 0
// for a kind that is not one.
func DefaultInterval(kind string) time.Duration { return defaultIntervals[kind] }

// Poller has the method set of the root package's Poller: every poller of
// this package is one, and so is what [StandardPollers] returns.
type Poller interface {
	Kind() string
	Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error)
}

// Scheduled is a poller and the interval to register it at.
type Scheduled struct {
	Poller   Poller
	Interval time.Duration
}

// StandardPollers returns a poller for each standard kind p offers, with its
// default interval (see [DefaultInterval]), in the order of the kind
// constants (server analytics last), for a host to register in a loop:
//
//	pollers, err := cloud.StandardPollers(p)
//	for _, s := range pollers {
//		err = w.Register(s.Poller, s.Interval)
//	}
//
// A service p does not offer (ErrNotSupported) is skipped; any other error of
// a service accessor is returned. The pollers include those of servers,
// firewalls and budgets: a host that registers one of those kinds itself
// skips it here (Register refuses a kind twice). A host may register a kind
// at another interval, or set one per account in the registry.
func StandardPollers(p Provider) ([]Scheduled, error) {
	if p == nil {
		return nil, fmt.Errorf("cloud: StandardPollers: provider is nil: %w", ErrInvalidRequest)
	}
	services := []func() ([]Poller, error){
		func() ([]Poller, error) {
			s, err := p.Compute()
			return []Poller{ServerPoller{Compute: s}, ServerStatusPoller{Compute: s}}, err
		},
		func() ([]Poller, error) { s, err := p.Network(); return []Poller{FirewallPoller{Network: s}}, err },
		func() ([]Poller, error) { s, err := p.Billing(); return []Poller{BudgetPoller{Billing: s}}, err },
		func() ([]Poller, error) {
			s, err := DataCentersOf(p)
			return []Poller{RegionPoller{DataCenters: s}, DataCenterPoller{DataCenters: s}}, err
		},
		func() ([]Poller, error) { s, err := ImagesOf(p); return []Poller{ImagePoller{Images: s}}, err },
		func() ([]Poller, error) {
			s, err := VolumesOf(p)
			return []Poller{VolumePoller{Volumes: s}, VolumeStatusPoller{Volumes: s}}, err
		},
		func() ([]Poller, error) {
			s, err := SnapshotsOf(p)
			return []Poller{SnapshotPoller{Snapshots: s}, SnapshotStatusPoller{Snapshots: s}}, err
		},
		func() ([]Poller, error) { s, err := NetworksOf(p); return []Poller{NetworkPoller{Networks: s}}, err },
		func() ([]Poller, error) { s, err := AddressesOf(p); return []Poller{AddressPoller{Addresses: s}}, err },
		func() ([]Poller, error) {
			s, err := LoadBalancersOf(p)
			return []Poller{LoadBalancerPoller{LoadBalancers: s}, LoadBalancerStatusPoller{LoadBalancers: s}}, err
		},
		func() ([]Poller, error) {
			s, err := DNSOf(p)
			return []Poller{DNSZonePoller{DNS: s}, DNSRecordPoller{DNS: s}}, err
		},
		func() ([]Poller, error) { s, err := VPNsOf(p); return []Poller{VPNGatewayPoller{VPNs: s}}, err },
		func() ([]Poller, error) {
			s, err := DatabasesOf(p)
			return []Poller{DatabasePoller{Databases: s}, DatabaseStatusPoller{Databases: s}}, err
		},
		func() ([]Poller, error) { s, err := CDNOf(p); return []Poller{DistributionPoller{CDN: s}}, err },
		func() ([]Poller, error) {
			s, err := CertificatesOf(p)
			return []Poller{CertificatePoller{Certificates: s}}, err
		},
		func() ([]Poller, error) {
			s, err := SubscriptionsOf(p)
			return []Poller{SubscriptionPoller{Subscriptions: s}, InvoicePoller{Subscriptions: s}}, err
		},
		func() ([]Poller, error) {
			s, err := ServerAnalyticsOf(p)
			return []Poller{ServerAnalyticsPoller{Analytics: s}}, err
		},
	}
	var out []Scheduled
	for _, service := range services {
		ps, err := service()
		switch {
		case errors.Is(err, ErrNotSupported):
			continue
		case err != nil:
			return nil, fmt.Errorf("cloud: standard pollers of %s: %w", p.Name(), err)
		}
		for _, x := range ps {
			out = append(out, Scheduled{Poller: x, Interval: DefaultInterval(x.Kind())})
		}
	}
	return out, nil
}
