package sim_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

// kindAPIs are the kinds beyond servers, firewalls and budgets: the API of
// each one's listing and its service.
var kindAPIs = []struct {
	kind, api, service string
	full               string // a status-only kind: the kind it updates
}{
	{kind: cloud.KindRegion, api: sim.APIListRegions, service: sim.ServiceDataCenters},
	{kind: cloud.KindDataCenter, api: sim.APIListDataCenters, service: sim.ServiceDataCenters},
	{kind: cloud.KindImage, api: sim.APIListImages, service: sim.ServiceImages},
	{kind: cloud.KindVolume, api: sim.APIListVolumes, service: sim.ServiceVolumes},
	{kind: cloud.KindVolumeStatus, api: sim.APIListVolumeStatus, service: sim.ServiceVolumes, full: cloud.KindVolume},
	{kind: cloud.KindSnapshot, api: sim.APIListSnapshots, service: sim.ServiceSnapshots},
	{kind: cloud.KindSnapshotStatus, api: sim.APIListSnapshotStatus, service: sim.ServiceSnapshots, full: cloud.KindSnapshot},
	{kind: cloud.KindNetwork, api: sim.APIListNetworks, service: sim.ServiceNetworks},
	{kind: cloud.KindAddress, api: sim.APIListAddresses, service: sim.ServiceAddresses},
	{kind: cloud.KindLoadBalancer, api: sim.APIListLoadBalancers, service: sim.ServiceLoadBalancers},
	{kind: cloud.KindLoadBalancerStatus, api: sim.APIListLoadBalancerStatus, service: sim.ServiceLoadBalancers, full: cloud.KindLoadBalancer},
	{kind: cloud.KindDNSZone, api: sim.APIListDNSZones, service: sim.ServiceDNS},
	{kind: cloud.KindDNSRecord, api: sim.APIListDNSRecords, service: sim.ServiceDNS},
	{kind: cloud.KindVPNGateway, api: sim.APIListVPNGateways, service: sim.ServiceVPNs},
	{kind: cloud.KindDatabase, api: sim.APIListDatabases, service: sim.ServiceDatabases},
	{kind: cloud.KindDatabaseStatus, api: sim.APIListDatabaseStatus, service: sim.ServiceDatabases, full: cloud.KindDatabase},
	{kind: cloud.KindDistribution, api: sim.APIListDistributions, service: sim.ServiceCDN},
	{kind: cloud.KindCertificate, api: sim.APIListCertificates, service: sim.ServiceCertificates},
	{kind: cloud.KindSubscription, api: sim.APIListSubscriptions, service: sim.ServiceSubscriptions},
	{kind: cloud.KindInvoice, api: sim.APIListInvoices, service: sim.ServiceSubscriptions},
}

// standard returns the standard poller of the kind for c.
func standard(t testing.TB, c cloud.Provider, kind string) cloud.Poller {
	t.Helper()
	ps, err := cloud.StandardPollers(c)
	require.NoError(t, err)
	for _, p := range ps {
		if p.Poller.Kind() == kind {
			return p.Poller
		}
	}
	t.Fatalf("no standard poller of kind %q", kind)
	return nil
}

func ids(snaps ...state.Snapshot) []string {
	var out []string
	for _, s := range snaps {
		for _, o := range s.Observations {
			out = append(out, o.ID)
		}
	}
	return out
}

// TestKindsPaging: every kind's listing comes in pages of the page size, in
// id order, the last one (only) complete for a full listing; a bad token is
// an invalid request.
func TestKindsPaging(t *testing.T) {
	t.Parallel()
	for _, k := range kindAPIs {
		t.Run(k.kind, func(t *testing.T) {
			t.Parallel()
			c, _ := setup(t, sim.Config{DefaultPageSize: 2})
			require.NoError(t, c.Populate("acct", 5))
			p := standard(t, c, k.kind)
			tgt := state.Target{Account: "acct", Kind: k.kind}
			pages := workertest.Pages(t, p, tgt)
			require.Len(t, pages, 3)
			for i, pg := range pages {
				require.Equal(t, k.full == "" && i == 2, pg.Complete, "page %d", i)
			}
			got := ids(pages...)
			require.Len(t, got, 5)
			require.True(t, slices.IsSorted(got), "id order: %v", got)
			require.Len(t, slices.Compact(slices.Clone(got)), 5, "no resource twice: %v", got)

			_, _, err := p.Poll(context.Background(), tgt, "not-a-token")
			require.ErrorIs(t, err, sim.ErrInvalidRequest)
			require.Equal(t, 4, c.Calls(k.api), "one call per page, and the bad one")
		})
	}
}

// TestKindsThrottled: a listing over its rate limit fails with a
// *cloud.ThrottledError naming the API and saying when a token is back;
// other APIs are not limited by it.
func TestKindsThrottled(t *testing.T) {
	t.Parallel()
	for _, k := range kindAPIs {
		t.Run(k.kind, func(t *testing.T) {
			t.Parallel()
			c, clk := setup(t, sim.Config{RateLimits: map[string]sim.Limit{k.api: {PerSecond: 0.5, Burst: 1}}})
			require.NoError(t, c.Populate("acct", 1))
			p := standard(t, c, k.kind)
			tgt := state.Target{Account: "acct", Kind: k.kind}
			_, _, err := p.Poll(context.Background(), tgt, "")
			require.NoError(t, err)
			_, _, err = p.Poll(context.Background(), tgt, "")
			var thr *cloud.ThrottledError
			require.True(t, errors.As(err, &thr), "throttled: %v", err)
			require.Equal(t, k.api, thr.API)
			require.Equal(t, 2*time.Second, thr.RetryAfter)
			_, err = c.ListServers(context.Background(), "acct", cloud.ListOptions{})
			require.NoError(t, err, "other APIs have their own buckets")
			require.NoError(t, c.AddAccount("other"))
			_, _, err = p.Poll(context.Background(), state.Target{Account: "other", Kind: k.kind}, "")
			require.NoError(t, err, "other accounts have their own buckets")
			clk.Advance(thr.RetryAfter)
			_, _, err = p.Poll(context.Background(), tgt, "")
			require.NoError(t, err, "a token is back after RetryAfter")
		})
	}
}

// TestKindsFaults: FailNext and SetAccountDown fail every kind's listing as
// they fail servers'; a disabled service is not supported.
func TestKindsFaults(t *testing.T) {
	t.Parallel()
	for _, k := range kindAPIs {
		t.Run(k.kind, func(t *testing.T) {
			t.Parallel()
			c, _ := setup(t, sim.Config{})
			require.NoError(t, c.Populate("acct", 1))
			p := standard(t, c, k.kind)
			tgt := state.Target{Account: "acct", Kind: k.kind}
			c.FailNext(k.api, cloud.ErrCommunication)
			_, _, err := p.Poll(context.Background(), tgt, "")
			require.ErrorIs(t, err, cloud.ErrCommunication)
			require.True(t, cloud.IsTransient(err))
			_, _, err = p.Poll(context.Background(), tgt, "")
			require.NoError(t, err, "FailNext fails one call")

			c.SetAccountDown("acct", cloud.ErrAuthentication)
			_, _, err = p.Poll(context.Background(), tgt, "")
			require.ErrorIs(t, err, cloud.ErrAuthentication)
			c.SetAccountDown("acct", nil)

			_, _, err = p.Poll(context.Background(), state.Target{Account: "nobody", Kind: k.kind}, "")
			require.ErrorIs(t, err, cloud.ErrNotFound)

			off, _ := setup(t, sim.Config{Disable: []string{k.service}})
			ps, err := cloud.StandardPollers(off)
			require.NoError(t, err)
			for _, s := range ps {
				require.NotEqual(t, k.kind, s.Poller.Kind(), "no poller for a disabled service")
			}
			_, _, err = p.Poll(context.Background(), tgt, "") // the enabled cloud still answers
			require.NoError(t, err)
		})
	}
}

func TestKindsNotSupportedWhenDisabled(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{Disable: []string{sim.ServiceDNS, sim.ServiceSubscriptions}})
	_, err := cloud.DNSOf(c)
	require.ErrorIs(t, err, cloud.ErrNotSupported)
	var ns *cloud.NotSupportedError
	require.True(t, errors.As(err, &ns))
	require.Equal(t, cloud.NotSupportedError{Provider: sim.Name, Service: sim.ServiceDNS}, *ns)
	_, err = c.ListInvoices(context.Background(), "acct", cloud.ListOptions{})
	require.ErrorIs(t, err, cloud.ErrNotSupported, "the methods of a disabled service fail too")
	_, err = cloud.VolumesOf(c)
	require.NoError(t, err)
}

// TestKindsDrift: Drift creates, changes and deletes resources of every kind
// an account has, the same way for the same seed, and leaves the kinds of
// an account that has none alone.
func TestKindsDrift(t *testing.T) {
	t.Parallel()
	build := func(seed int64) *sim.Cloud {
		c, _ := setup(t, sim.Config{Seed: seed})
		for _, a := range []string{"acct", "b"} {
			require.NoError(t, c.Populate(a, 4))
		}
		seedServers(t, c, "plain", 3)
		return c
	}
	a, b := build(3), build(3)
	log := a.Drift(3000)
	require.Equal(t, log, b.Drift(3000), "same seed, same drift")
	require.Equal(t, sim.Resources[cloud.Volume](a, "acct"), sim.Resources[cloud.Volume](b, "acct"))
	full := map[string]bool{}
	for _, k := range kindAPIs {
		if k.full == "" {
			full[k.kind] = true
		}
	}
	seen := map[string]bool{}
	for _, line := range log {
		require.NotContains(t, line, "account plain: "+cloud.KindVolume)
		for kind := range full {
			for _, op := range []string{"created", "deleted", ": "} {
				if strings.Contains(line, ": "+kind+" ") && strings.Contains(strings.SplitN(line, ": "+kind+" ", 2)[1], op) {
					seen[kind+" "+op] = true
				}
			}
		}
	}
	for kind := range full {
		for _, op := range []string{"created", "deleted", ": "} {
			require.True(t, seen[kind+" "+op], "drift %s %q: %v", kind, op, log[:20])
		}
	}
	require.Empty(t, sim.Resources[cloud.Volume](a, "plain"), "an account without volumes gets none")
}

// seedServers adds n servers to the account.
func seedServers(t testing.TB, c *sim.Cloud, account string, n int) {
	t.Helper()
	for i := range n {
		_, err := c.AddServer(account, cloud.Server{Name: fmt.Sprintf("srv-%d", i)})
		require.NoError(t, err)
	}
}

func TestPutRemoveResources(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	v, err := sim.Put(c, "new", cloud.Volume{Name: "data", SizeGB: 10, State: cloud.ResourceAvailable, Tags: map[string]string{"a": "1"}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(v.ID, "vol-"), v.ID)
	require.Equal(t, "new", v.Account, "the account is created and set")
	v.SizeGB = 20
	v.Tags["a"] = "2"
	require.Equal(t, "1", sim.Resources[cloud.Volume](c, "new")[0].Tags["a"], "stored resources share nothing with the caller's")
	_, err = sim.Put(c, "new", v)
	require.NoError(t, err)
	got := sim.Resources[cloud.Volume](c, "new")
	require.Equal(t, []cloud.Volume{v}, got, "Put replaces a resource of the same id")

	page, err := c.ListVolumes(context.Background(), "new", cloud.ListOptions{})
	require.NoError(t, err)
	page.Items[0].Tags["a"] = "3"
	require.Equal(t, "2", sim.Resources[cloud.Volume](c, "new")[0].Tags["a"], "listed resources share nothing with the stored ones")

	require.NoError(t, sim.Remove[cloud.Volume](c, "new", v.ID))
	require.Empty(t, sim.Resources[cloud.Volume](c, "new"))
	require.ErrorIs(t, sim.Remove[cloud.Volume](c, "new", v.ID), cloud.ErrNotFound)
	require.ErrorIs(t, sim.Remove[cloud.DNSZone](c, "new", "zone-1"), cloud.ErrNotFound)
	require.ErrorIs(t, sim.Remove[cloud.Volume](c, "nobody", v.ID), cloud.ErrNotFound)
	_, err = sim.Put(c, "", cloud.Image{})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
	require.ErrorIs(t, c.Populate("acct", -1), sim.ErrInvalidRequest)
}

// TestConfigResources: every new account starts with Config.Resources of
// each kind, the same for the same seed.
func TestConfigResources(t *testing.T) {
	t.Parallel()
	a, _ := setup(t, sim.Config{Resources: 2, Seed: 9})
	b, _ := setup(t, sim.Config{Resources: 2, Seed: 9})
	for _, c := range []*sim.Cloud{a, b} {
		require.NoError(t, c.AddAccount("x"))
	}
	for _, k := range kindAPIs {
		if k.full != "" {
			continue
		}
		pa := workertest.Pages(t, standard(t, a, k.kind), state.Target{Account: "x", Kind: k.kind})
		pb := workertest.Pages(t, standard(t, b, k.kind), state.Target{Account: "x", Kind: k.kind})
		require.Len(t, ids(pa...), 2, k.kind)
		require.Equal(t, pa, pb, "%s: same seed, same resources", k.kind)
	}
	_, err := sim.New(sim.Config{Resources: -1})
	require.ErrorIs(t, err, sim.ErrInvalidConfig)
	require.ErrorContains(t, err, "Config.Resources")
}

// TestAccountSettingsResources: a registry account of type "sim" with
// settings.resources starts with that many resources of each kind.
func TestAccountSettingsResources(t *testing.T) {
	t.Parallel()
	p, err := sim.NewAccountProvider(context.Background(), accounts.Account{ID: "reg-1", Settings: []byte(`{"resources":2}`)}, nil)
	require.NoError(t, err)
	dns, err := cloud.DNSOf(p)
	require.NoError(t, err)
	page, err := dns.ListDNSRecords(context.Background(), "reg-1", cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Items, 2)
	for _, bad := range []string{`{"resources":-1}`, `{"resources":10001}`} {
		err := sim.CheckAccountSettings([]byte(bad))
		require.ErrorIs(t, err, accounts.ErrInvalid, bad)
		require.ErrorContains(t, err, "settings.resources")
	}
}
