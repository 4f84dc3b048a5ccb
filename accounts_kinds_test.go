package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/workertest"
)

// TestStandardPollersOnEveryAccount: the standard pollers of every kind,
// registered once on Worker.Cloud, poll each account on its own provider. An
// account whose provider has none of the extra services (here Config.Cloud
// with them disabled) is not failing for it: nothing is stored for those
// kinds and its health stays clean, while a sim account of the registry has
// every kind stored.
func TestStandardPollersOnEveryAccount(t *testing.T) {
	t.Parallel()
	env := workertest.NewEnv(t, workertest.WithSim(func(c *sim.Config) {
		// Config.Cloud offers the four classic services only.
		c.Disable = []string{cloud.ServiceDataCenters, cloud.ServiceImages, cloud.ServiceVolumes, cloud.ServiceSnapshots,
			cloud.ServiceNetworks, cloud.ServiceAddresses, cloud.ServiceLoadBalancers, cloud.ServiceDNS, cloud.ServiceVPNs,
			cloud.ServiceDatabases, cloud.ServiceCDN, cloud.ServiceCertificates, cloud.ServiceSubscriptions}
	}))
	ctx := context.Background()
	ps, err := cloud.StandardPollers(env.Worker.Cloud())
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, s := range ps {
		require.NoError(t, env.Worker.Register(s.Poller, s.Interval))
		kinds[s.Poller.Kind()] = true
	}
	require.True(t, kinds[cloud.KindVolume] && kinds[cloud.KindDNSZone], "the routed cloud offers every kind")

	require.NoError(t, env.Cloud.AddAccount("classic"))
	_, err = env.Cloud.AddServer("classic", cloud.Server{Name: "web", State: cloud.StateRunning})
	require.NoError(t, err)
	require.NoError(t, env.Worker.Watch("classic", "acme")) // no provider type: Config.Cloud
	_, err = env.Worker.Accounts().Put(ctx, accounts.Account{ID: "simmed", Customer: "acme", Provider: "sim",
		Settings: json.RawMessage(`{"servers":1,"resources":2}`)})
	require.NoError(t, err)
	env.Start(t)
	env.Advance(t, 25*time.Hour, time.Hour) // the slowest kinds poll daily

	for _, kind := range []string{"server", cloud.KindVolume, cloud.KindDNSZone, cloud.KindInvoice} {
		rs, err := env.Worker.Store().Resources(ctx, "simmed", kind, "", 0)
		require.NoError(t, err)
		require.NotEmpty(t, rs, "the sim account's %s", kind)
	}
	rs, err := env.Worker.Store().Resources(ctx, "classic", "server", "", 0)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	rs, err = env.Worker.Store().Resources(ctx, "classic", cloud.KindVolume, "", 0)
	require.NoError(t, err)
	require.Empty(t, rs)
	_, failing := env.Worker.AccountHealth("classic")
	require.False(t, failing, "a service the provider does not have is not a failure")
	_, failing = env.Worker.AccountHealth("simmed")
	require.False(t, failing)
}
