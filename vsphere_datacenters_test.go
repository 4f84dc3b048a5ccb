package worker

import (
	"context"
	"encoding/json"
	"fmt"
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

// TestPollAllDatacentersVSphere: one account, one vSphere provider covering
// both datacenters of a vCenter (govmomi's vcsim) with 200 VMs; the first
// complete poll stores every VM once, with its state and its datacenter as
// the "region" attribute.
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

	cfg := vc.Config(vc.Account())
	cfg.Datacenter = "" // vcsimtest's Config picks DC0; the zero value covers every datacenter
	provider, err := vsphere.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = provider.Close() })
	compute, err := provider.Compute()
	require.NoError(t, err)

	w := newTestWorker(t, Config{
		Store:    sqliteConfig(t), // a database per test, not ./worker.db
		Cloud:    provider,
		Schedule: poller.Config{InitialSpread: -1}, // poll at once, not anywhere in the first minute
	})
	poll := &completeSignal{ServerPoller: cloud.ServerPoller{Compute: compute}, done: make(chan struct{})}
	require.NoError(t, w.Register(poll, time.Minute))
	require.NoError(t, w.Watch(provider.Account(), "acme"))
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

	stored, err := w.Store().Resources(ctx, provider.Account(), "server", "", 0)
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
}
