package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/km"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// completeSignal is the server poller, telling when it has returned the last
// page of a complete listing.
type completeSignal struct {
	cloud.ServerPoller
	once sync.Once
	done chan struct{}
}

func (p *completeSignal) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	snap, next, err := p.ServerPoller.Poll(ctx, t, cursor)
	if err == nil && next == "" && snap.Complete {
		p.once.Do(func() { close(p.done) })
	}
	return snap, next, err
}

// TestPollAllDatacentersVSphere: one account of the registry, on the
// built-in vsphere type with its password in km, covering both datacenters
// of a vCenter (govmomi's vcsim) with 200 VMs; the first complete poll
// stores every VM once, with its state and its datacenter as the "region"
// attribute, and one vCenter session is open for it.
func TestPollAllDatacentersVSphere(t *testing.T) {
	const perDatacenter = 100
	vc := vcsimtest.New(t, vcsimtest.Options{Datacenters: 2, Servers: perDatacenter})
	ctx := context.Background()
	want := map[string]map[string]string{} // VM id -> state, region
	vms := vc.VMs(t)
	for dc := range 2 {
		for i := range perDatacenter {
			name := fmt.Sprintf("DC%d_C0_RP0_VM%d", dc, i)
			st := cloud.StateRunning
			if i%10 == 3 { // every tenth VM powered off
				task, err := object.NewVirtualMachine(vc.Client, vms[name].Self).PowerOff(ctx)
				require.NoError(t, err)
				require.NoError(t, task.Wait(ctx))
				st = cloud.StateStopped
			}
			want[vms[name].Self.Value] = map[string]string{"state": string(st), "region": fmt.Sprintf("DC%d", dc), "name": name}
		}
	}
	require.Len(t, want, 2*perDatacenter, "VM ids are unique across the datacenters")

	kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{0x42}, 32))})
	require.NoError(t, err)
	w := newTestWorker(t, Config{
		Store:    sqliteConfig(t),                  // a database per test, not ./worker.db
		Keyring:  kr,                               // the embedded key manager holds the vCenter password
		Schedule: poller.Config{InitialSpread: -1}, // poll at once, not anywhere in the first minute
	})
	// ONE account of the built-in vsphere type: settings without a secret
	// (no datacenter: every datacenter), the login from km.
	require.NoError(t, w.Credentials().Put(ctx, km.Credential{Customer: "acme", Account: "vc-1", Kind: km.KindCloud, Name: "default",
		Meta:   map[string]string{km.MetaUser: vcsimtest.DefaultUsername},
		Fields: map[string]km.Secret{km.FieldPassword: km.NewSecretString(vcsimtest.DefaultPassword)}}))
	_, err = w.Accounts().Put(ctx, accounts.Account{ID: "vc-1", Customer: "acme", Provider: "vsphere", Credential: "default",
		Settings: json.RawMessage(fmt.Sprintf(`{"url":%q,"insecure":true}`, "https://"+vc.Server.URL.Host+"/sdk"))})
	require.NoError(t, err)
	compute, err := w.Cloud().Compute()
	require.NoError(t, err)
	poll := &completeSignal{ServerPoller: cloud.ServerPoller{Compute: compute}, done: make(chan struct{})}
	require.NoError(t, w.Register(poll, time.Minute))
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- w.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-stopped })

	select {
	case <-poll.done:
	case <-time.After(time.Minute):
		t.Fatal("no complete poll within a minute")
	}
	require.Eventually(t, w.ScheduleIdle, 30*time.Second, time.Millisecond, "the poll's last page is saved")
	t.Logf("first complete poll of %d VMs in 2 datacenters (pages of %d): %v",
		len(want), vsphere.DefaultPageSize, time.Since(start))

	stored, err := w.Store().Resources(ctx, "vc-1", "server", "", 0)
	require.NoError(t, err)
	require.Len(t, stored, len(want))
	for _, r := range stored {
		exp, ok := want[r.ID]
		require.True(t, ok, "stored %s, which is not a server", r.ID)
		var attrs map[string]any
		require.NoError(t, json.Unmarshal(r.Attributes, &attrs))
		require.Equal(t, exp["state"], attrs["state"], exp["name"])
		require.Equal(t, exp["region"], attrs["region"], exp["name"])
		require.Equal(t, exp["name"], attrs["name"])
		require.Equal(t, "acme", r.Customer)
		require.Equal(t, int64(1), r.Version, "stored once")
	}
	require.Equal(t, 1, w.provs.openCount(), "one provider (one vCenter session) for the account")
}
