package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/poller"
)

// TestRoutedKindsVSphere: Worker.Cloud() routes the optional services to
// the vSphere provider of a registry account of type "vsphere": the
// standard pollers of every kind, registered once on the routed cloud,
// store the account's regions, data centers, images, volumes, snapshots,
// networks and addresses from vCenter (govmomi's vcsim), store nothing of
// the kinds vSphere does not have, and leave the account healthy.
func TestRoutedKindsVSphere(t *testing.T) {
	vc := vcsimtest.New(t, vcsimtest.Options{Servers: 2})
	ctx := context.Background()
	vm := object.NewVirtualMachine(vc.Client, vc.VMs(t)["DC0_C0_RP0_VM0"].Self)
	task, err := vm.CreateSnapshot(ctx, "nightly", "", false, false)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))
	task, err = vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
		&types.OptionValue{Key: "SET.guest.ipAddress", Value: "10.0.0.7"}}})
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))

	kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{0x42}, 32))})
	require.NoError(t, err)
	w := newTestWorker(t, Config{
		Store:    sqliteConfig(t),
		Keyring:  kr,
		Schedule: poller.Config{InitialSpread: -1}, // poll at once
	})
	require.NoError(t, w.Credentials().Put(ctx, km.Credential{Customer: "acme", Account: "vc-1", Kind: km.KindCloud, Name: "default",
		Meta:   map[string]string{km.MetaUser: vcsimtest.DefaultUsername},
		Fields: map[string]km.Secret{km.FieldPassword: km.NewSecretString(vcsimtest.DefaultPassword)}}))
	_, err = w.Accounts().Put(ctx, accounts.Account{ID: "vc-1", Customer: "acme", Provider: "vsphere", Credential: "default",
		Settings: json.RawMessage(fmt.Sprintf(`{"url":%q,"insecure":true}`, "https://"+vc.Server.URL.Host+"/sdk"))})
	require.NoError(t, err)

	// Called directly, the routed services reach the account's provider.
	images, err := cloud.ImagesOf(w.Cloud())
	require.NoError(t, err)
	page, err := images.ListImages(ctx, "vc-1", cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	require.Equal(t, vc.Template(), page.Items[0].Name)
	dns, err := cloud.DNSOf(w.Cloud())
	require.NoError(t, err, "the routed cloud offers every service")
	_, err = dns.ListDNSZones(ctx, "vc-1", cloud.ListOptions{})
	var ns *cloud.NotSupportedError
	require.ErrorAs(t, err, &ns, "vSphere has no DNS")
	require.Equal(t, "vsphere", ns.Provider)
	require.True(t, errors.Is(err, cloud.ErrNotSupported))

	pollers, err := cloud.StandardPollers(w.Cloud())
	require.NoError(t, err)
	for _, s := range pollers {
		require.NoError(t, w.Register(s.Poller, s.Interval))
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-stopped })

	want := map[string]int{ // kind -> resources of vcsim's DC0
		"server": 2, cloud.KindRegion: 1, cloud.KindDataCenter: 1, cloud.KindImage: 1, cloud.KindVolume: 2,
		cloud.KindSnapshot: 1, cloud.KindNetwork: 1, cloud.KindAddress: 1,
	}
	require.Eventually(t, func() bool {
		for kind, n := range want {
			rs, err := w.Store().Resources(ctx, "vc-1", kind, "", 0)
			if err != nil || len(rs) != n {
				return false
			}
		}
		return w.ScheduleIdle()
	}, time.Minute, 10*time.Millisecond, "every kind vSphere has is stored")
	rs, err := w.Store().Resources(ctx, "vc-1", cloud.KindAddress, "", 0)
	require.NoError(t, err)
	require.Equal(t, vm.Reference().Value+"/10.0.0.7", rs[0].ID)
	for _, kind := range []string{cloud.KindLoadBalancer, cloud.KindDNSZone, cloud.KindDNSRecord, cloud.KindVPNGateway,
		cloud.KindDatabase, cloud.KindDistribution, cloud.KindCertificate, cloud.KindSubscription, cloud.KindInvoice, cloud.KindFirewall, cloud.KindBudget} {
		rs, err := w.Store().Resources(ctx, "vc-1", kind, "", 0)
		require.NoError(t, err)
		require.Empty(t, rs, kind)
	}
	_, failing := w.AccountHealth("vc-1")
	require.False(t, failing, "the kinds vSphere does not have are not failures")
	require.Equal(t, 1, w.provs.openCount(), "one provider (one vCenter session) serves every kind")
}
