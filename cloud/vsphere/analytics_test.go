package vsphere_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/simulator"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
)

// TestListUsage: the realtime samples of the powered-on VMs only (VM0 and
// VM3 of newSim), 20s apart and oldest first, in the window; pages keep the
// window's start; bad arguments are invalid requests.
func TestListUsage(t *testing.T) {
	sim := newSim(t)
	p := sim.Provider(t)
	vms := sim.VMs(t)
	ctx := context.Background()
	on := map[string]bool{vms["DC0_C0_RP0_VM0"].Self.Value: true, vms["DC0_C0_RP0_VM3"].Self.Value: true}

	an, err := cloud.ServerAnalyticsOf(p)
	require.NoError(t, err)
	begin := time.Now().Add(-10 * time.Minute)
	got := map[string][]cloud.UsageSample{}
	o := cloud.UsageOptions{Window: 10 * time.Minute, PageSize: 1}
	pages := 0
	for {
		page, err := an.ListUsage(ctx, testAccount, o)
		require.NoError(t, err)
		pages++
		for _, x := range page.Items {
			got[x.Server] = append(got[x.Server], x)
		}
		if page.NextToken == "" {
			break
		}
		o.PageToken = page.NextToken
	}
	require.Equal(t, 4, pages, "one page per VM (templates are not servers)")
	require.Len(t, got, 2, "powered-on VMs only")
	for id, xs := range got {
		require.True(t, on[id], id)
		require.InDelta(t, 30, len(xs), 1, "10 minutes of 20s samples")
		for i, x := range xs {
			require.True(t, x.At.After(begin.Add(-time.Second)), "in the window: %v", x.At)
			require.True(t, x.CPU >= 0 && x.CPU <= 100 && x.Memory >= 0 && x.Memory <= 100, "%+v", x)
			require.True(t, x.DiskRead >= 0 && x.DiskWrite >= 0 && x.NetRx >= 0 && x.NetTx >= 0, "%+v", x)
			if i > 0 {
				require.Equal(t, vsphere.RealtimeInterval, x.At.Sub(xs[i-1].At), "oldest first, 20s apart")
			}
		}
	}

	// A VM deleted between the listing and the query fails the batched
	// QueryPerf: each VM is then asked for on its own.
	sim.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "QueryPerf", ObjectType: "*", ObjectName: "*", Probability: 1, MaxCount: 1,
		FaultType: simulator.FaultTypeManagedObjectNotFound, Enabled: true,
	})
	page, err := an.ListUsage(ctx, testAccount, cloud.UsageOptions{Window: 10 * time.Minute})
	require.NoError(t, err)
	servers := map[string]bool{}
	for _, x := range page.Items {
		servers[x.Server] = true
	}
	require.Equal(t, on, servers, "both VMs' samples, one query each")

	_, err = an.ListUsage(ctx, testAccount, cloud.UsageOptions{PageToken: "junk"})
	require.ErrorIs(t, err, cloud.ErrInvalidRequest)
	_, err = an.ListUsage(ctx, testAccount, cloud.UsageOptions{Window: -time.Minute})
	require.ErrorIs(t, err, cloud.ErrInvalidRequest)
	_, err = an.ListUsage(ctx, "someone-else", cloud.UsageOptions{})
	require.ErrorIs(t, err, cloud.ErrNotFound)
}
