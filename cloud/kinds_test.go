package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/state"
)

// bare is a provider with the four services of cloud.Provider only, none of
// which it offers, or all failing with err.
type bare struct{ err error }

func (bare) Name() string { return "bare" }
func (b bare) fail(s string) error {
	if b.err != nil {
		return b.err
	}
	return cloud.NotSupported("bare", s)
}
func (b bare) Compute() (cloud.Compute, error)       { return nil, b.fail(cloud.ServiceCompute) }
func (b bare) Network() (cloud.Network, error)       { return nil, b.fail(cloud.ServiceNetwork) }
func (b bare) Billing() (cloud.Billing, error)       { return nil, b.fail(cloud.ServiceBilling) }
func (b bare) Operations() (cloud.Operations, error) { return nil, b.fail(cloud.ServiceOperations) }

var allKinds = []string{
	cloud.KindServer, cloud.KindServerStatus, cloud.KindFirewall, cloud.KindBudget, cloud.KindRegion,
	cloud.KindDataCenter, cloud.KindImage, cloud.KindVolume, cloud.KindVolumeStatus, cloud.KindSnapshot,
	cloud.KindSnapshotStatus, cloud.KindNetwork, cloud.KindAddress, cloud.KindLoadBalancer,
	cloud.KindLoadBalancerStatus, cloud.KindDNSZone, cloud.KindDNSRecord, cloud.KindVPNGateway,
	cloud.KindDatabase, cloud.KindDatabaseStatus, cloud.KindDistribution, cloud.KindCertificate,
	cloud.KindSubscription, cloud.KindInvoice, cloud.KindServerAnalytics,
}

func kindsOf(ps []cloud.Scheduled) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Poller.Kind())
	}
	return out
}

func TestStandardPollers(t *testing.T) {
	t.Parallel()
	t.Run("EveryKindOfTheSim", func(t *testing.T) {
		t.Parallel()
		c, err := sim.New(sim.Config{})
		require.NoError(t, err)
		ps, err := cloud.StandardPollers(c)
		require.NoError(t, err)
		require.Equal(t, allKinds, kindsOf(ps))
		for _, p := range ps {
			require.Positive(t, p.Interval, p.Poller.Kind())
			require.Equal(t, cloud.DefaultInterval(p.Poller.Kind()), p.Interval)
		}
	})
	t.Run("DisabledServicesAreSkipped", func(t *testing.T) {
		t.Parallel()
		c, err := sim.New(sim.Config{Disable: []string{sim.ServiceDNS, sim.ServiceBilling, sim.ServiceVolumes}})
		require.NoError(t, err)
		ps, err := cloud.StandardPollers(c)
		require.NoError(t, err)
		kinds := kindsOf(ps)
		require.Len(t, kinds, len(allKinds)-5)
		for _, k := range []string{cloud.KindDNSZone, cloud.KindDNSRecord, cloud.KindBudget, cloud.KindVolume, cloud.KindVolumeStatus} {
			require.NotContains(t, kinds, k)
		}
	})
	t.Run("ProviderWithoutOptionalServices", func(t *testing.T) {
		t.Parallel()
		ps, err := cloud.StandardPollers(bare{})
		require.NoError(t, err)
		require.Empty(t, ps)
	})
	t.Run("OtherErrorsAreReturned", func(t *testing.T) {
		t.Parallel()
		_, err := cloud.StandardPollers(bare{err: fmt.Errorf("login: %w", cloud.ErrAuthentication)})
		require.ErrorIs(t, err, cloud.ErrAuthentication)
		require.ErrorContains(t, err, "bare")
		_, err = cloud.StandardPollers(nil)
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
	})
}

func TestDefaultIntervals(t *testing.T) {
	t.Parallel()
	for _, k := range allKinds {
		require.Positive(t, cloud.DefaultInterval(k), k)
	}
	require.Zero(t, cloud.DefaultInterval("no-such-kind"))
	// Addresses and load balancers change in minutes, images and invoices in hours.
	require.LessOrEqual(t, cloud.DefaultInterval(cloud.KindAddress), 15*time.Minute)
	require.LessOrEqual(t, cloud.DefaultInterval(cloud.KindLoadBalancer), 15*time.Minute)
	require.GreaterOrEqual(t, cloud.DefaultInterval(cloud.KindImage), time.Hour)
	require.GreaterOrEqual(t, cloud.DefaultInterval(cloud.KindInvoice), time.Hour)
	for _, full := range []string{cloud.KindVolume, cloud.KindSnapshot, cloud.KindLoadBalancer, cloud.KindDatabase, cloud.KindServer} {
		require.Less(t, cloud.DefaultInterval(full+"-status"), cloud.DefaultInterval(full), "a status-only listing is polled more often")
	}
}

func TestServiceOfProviderWithoutIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		service string
		of      func(cloud.Provider) (any, error)
	}{
		{cloud.ServiceDataCenters, func(p cloud.Provider) (any, error) { return cloud.DataCentersOf(p) }},
		{cloud.ServiceImages, func(p cloud.Provider) (any, error) { return cloud.ImagesOf(p) }},
		{cloud.ServiceVolumes, func(p cloud.Provider) (any, error) { return cloud.VolumesOf(p) }},
		{cloud.ServiceSnapshots, func(p cloud.Provider) (any, error) { return cloud.SnapshotsOf(p) }},
		{cloud.ServiceNetworks, func(p cloud.Provider) (any, error) { return cloud.NetworksOf(p) }},
		{cloud.ServiceAddresses, func(p cloud.Provider) (any, error) { return cloud.AddressesOf(p) }},
		{cloud.ServiceLoadBalancers, func(p cloud.Provider) (any, error) { return cloud.LoadBalancersOf(p) }},
		{cloud.ServiceDNS, func(p cloud.Provider) (any, error) { return cloud.DNSOf(p) }},
		{cloud.ServiceVPNs, func(p cloud.Provider) (any, error) { return cloud.VPNsOf(p) }},
		{cloud.ServiceDatabases, func(p cloud.Provider) (any, error) { return cloud.DatabasesOf(p) }},
		{cloud.ServiceCDN, func(p cloud.Provider) (any, error) { return cloud.CDNOf(p) }},
		{cloud.ServiceCertificates, func(p cloud.Provider) (any, error) { return cloud.CertificatesOf(p) }},
		{cloud.ServiceSubscriptions, func(p cloud.Provider) (any, error) { return cloud.SubscriptionsOf(p) }},
		{cloud.ServiceServerAnalytics, func(p cloud.Provider) (any, error) { return cloud.ServerAnalyticsOf(p) }},
	}
	c, err := sim.New(sim.Config{})
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			t.Parallel()
			_, err := tt.of(bare{})
			require.ErrorIs(t, err, cloud.ErrNotSupported)
			var ns *cloud.NotSupportedError
			require.True(t, errors.As(err, &ns))
			require.Equal(t, cloud.NotSupportedError{Provider: "bare", Service: tt.service}, *ns)
			require.False(t, cloud.IsTransient(err))

			svc, err := tt.of(c)
			require.NoError(t, err, "the sim offers every service")
			require.NotNil(t, svc)
		})
	}
}

// TestKindAttributes: the stored shape of each kind is small and stable: no
// id or account, empty values left out, unordered lists sorted.
func TestKindAttributes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		put  func(c *sim.Cloud) error
		poll func(c *sim.Cloud) cloud.Poller
		want string
	}{
		{"LoadBalancer", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.LoadBalancer{ID: "lb-1", Name: "web", State: cloud.ResourceActive,
				Servers: []string{"s-2", "s-1"}, Listeners: []cloud.Listener{{Protocol: "https", Port: 443, TargetPort: 8443}, {Protocol: "http", Port: 80, TargetPort: 8080}}})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.LoadBalancerPoller{LoadBalancers: c} },
			`{"name":"web","state":"ACTIVE","servers":["s-1","s-2"],"listeners":[{"protocol":"http","port":80,"target_port":8080},{"protocol":"https","port":443,"target_port":8443}]}`},
		{"DNSRecord", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.DNSRecord{ID: "rec-1", Zone: "z-1", Name: "www.example.com.", Type: "A", TTL: 300, Values: []string{"203.0.113.9", "203.0.113.1"}})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.DNSRecordPoller{DNS: c} },
			`{"zone":"z-1","name":"www.example.com.","type":"A","ttl":300,"values":["203.0.113.1","203.0.113.9"]}`},
		{"VolumeDetached", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Volume{ID: "vol-1", Name: "data", SizeGB: 0, State: cloud.ResourceAvailable})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.VolumePoller{Volumes: c} },
			`{"name":"data","size_gb":0,"state":"AVAILABLE"}`},
		{"VolumeOnDatastore", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Volume{ID: "vm-7/2000", Name: "Hard disk 1", Datastore: "ds-1", SizeGB: 40, Type: "thin",
				State: cloud.ResourceInUse, Server: "vm-7"})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.VolumePoller{Volumes: c} },
			`{"name":"Hard disk 1","datastore":"ds-1","size_gb":40,"type":"thin","state":"IN_USE","server":"vm-7"}`},
		{"SnapshotOfServer", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Snapshot{ID: "snapshot-2", Name: "nightly", Server: "vm-7", Parent: "snapshot-1",
				SizeGB: 2, State: cloud.ResourceAvailable, CreatedAt: at})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.SnapshotPoller{Snapshots: c} },
			`{"name":"nightly","server":"vm-7","parent":"snapshot-1","size_gb":2,"state":"AVAILABLE","created_at":"2026-02-01T00:00:00Z"}`},
		{"Certificate", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Certificate{ID: "cert-1", Name: "www", Domain: "example.com", SANs: []string{"b.example.com", "a.example.com"},
				NotAfter: at, State: cloud.ResourceActive})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.CertificatePoller{Certificates: c} },
			`{"name":"www","domain":"example.com","sans":["a.example.com","b.example.com"],"not_after":"2026-02-01T00:00:00Z","state":"ACTIVE"}`},
		{"Invoice", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Invoice{ID: "inv-1", Subscription: "sub-1", Period: "2026-01", Amount: 12.5, Currency: "EUR", State: cloud.ResourceOpen})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.InvoicePoller{Subscriptions: c} },
			`{"subscription":"sub-1","period":"2026-01","amount":12.5,"currency":"EUR","state":"OPEN"}`},
		{"Region", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Region{ID: "eu-1", Name: "Europe 1", Active: false})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.RegionPoller{DataCenters: c} },
			`{"name":"Europe 1","active":false}`},
		{"VolumeStatus", func(c *sim.Cloud) error {
			_, err := sim.Put(c, "acct", cloud.Volume{ID: "vol-1", Name: "data", State: cloud.ResourceInUse, Server: "s-1"})
			return err
		}, func(c *sim.Cloud) cloud.Poller { return cloud.VolumeStatusPoller{Volumes: c} },
			`{"state":"IN_USE"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := sim.New(sim.Config{})
			require.NoError(t, err)
			require.NoError(t, tt.put(c))
			p := tt.poll(c)
			snap, next, err := p.Poll(context.Background(), state.Target{Account: "acct", Kind: p.Kind()}, "")
			require.NoError(t, err)
			require.Empty(t, next)
			require.Len(t, snap.Observations, 1)
			o := snap.Observations[0]
			require.JSONEq(t, tt.want, string(o.Attributes))
			status := p.Kind() != o.Kind
			require.Equal(t, status, o.Partial, "status-only observations are partial")
			require.Equal(t, !status, snap.Complete, "a full listing's last page is complete")
		})
	}
}

func TestKindPollerWrapsErrors(t *testing.T) {
	t.Parallel()
	c, err := sim.New(sim.Config{RateLimits: map[string]sim.Limit{sim.APIListImages: {PerSecond: 1, Burst: 1}}})
	require.NoError(t, err)
	require.NoError(t, c.AddAccount("acct"))
	p := cloud.ImagePoller{Images: c}
	tgt := state.Target{Account: "acct", Kind: p.Kind()}
	_, _, err = p.Poll(context.Background(), tgt, "")
	require.NoError(t, err)
	_, _, err = p.Poll(context.Background(), tgt, "")
	d, ok := cloud.RetryAfter(err)
	require.True(t, ok, "a throttled listing stays a *cloud.ThrottledError: %v", err)
	require.Positive(t, d)
	require.ErrorContains(t, err, "poll image")
	_, _, err = p.Poll(context.Background(), state.Target{Account: "nobody", Kind: p.Kind()}, "")
	require.ErrorIs(t, err, cloud.ErrNotFound)
}
