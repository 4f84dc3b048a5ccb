package vcsimtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
)

// Not parallel: see the package documentation.

// extraConfig returns the VM's extraConfig as a map.
func extraConfig(t *testing.T, sim *vcsimtest.Sim, name string) map[string]string {
	t.Helper()
	vm, ok := sim.VMs(t)[name]
	require.True(t, ok, "no VM %s", name)
	out := map[string]string{}
	if vm.Config != nil {
		for _, o := range vm.Config.ExtraConfig {
			ov := o.GetOptionValue()
			s, _ := ov.Value.(string)
			out[ov.Key] = s
		}
	}
	return out
}

// waitTask waits, in the admin session, for the launch's clone task itself:
// not for the provider's operation, whose follow-up steps could hide a clone
// that lacks its spec.
func waitTask(t *testing.T, sim *vcsimtest.Sim, op cloud.Operation) {
	t.Helper()
	require.NoError(t, object.NewTask(sim.Client, types.ManagedObjectReference{Type: "Task", Value: op.ID}).Wait(context.Background()))
}

func TestDefaults(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{})
	ctx := context.Background()
	require.Equal(t, 0, sim.VMCount(t))
	require.Len(t, sim.VMs(t), 1, "just the template")
	require.Equal(t, "DC0_C0_RP0_VM0", sim.Template())

	cfg := sim.Config("acct-1")
	require.NoError(t, cfg.Validate())
	require.Equal(t, "acct-1", cfg.Account)
	require.True(t, cfg.Insecure)
	require.Equal(t, "DC0", cfg.Datacenter)
	require.Equal(t, map[string]string{vcsimtest.DefaultImage: sim.Template()}, cfg.Templates)
	require.Equal(t, vcsimtest.DefaultSizes(), cfg.Sizes)
	cfg.Sizes["big"] = vsphere.Size{CPUs: 1, MemoryMB: 4}
	require.NotContains(t, sim.Config("acct-1").Sizes, "big", "each Config has its own maps")

	p := sim.Provider(t)
	require.Equal(t, vcsimtest.DefaultAccount, p.Account())
	page, err := p.ListServers(ctx, sim.Account(), cloud.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, page.Servers, "the template is not a server")

	tags := map[string]string{"idempotency-key": "k-1", "owner": "alice"}
	op, err := p.Launch(ctx, sim.Account(), cloud.LaunchRequest{
		Name: "web-1", Image: vcsimtest.DefaultImage, Size: vcsimtest.DefaultSize, Tags: tags,
	})
	require.NoError(t, err)
	waitTask(t, sim, op)
	// The clone task has completed: the spec's tags and size are on the clone.
	require.Equal(t, 1, sim.VMCount(t))
	require.Equal(t, `{"idempotency-key":"k-1","owner":"alice"}`, extraConfig(t, sim, "web-1")["stratusworks.tags"])
	require.EqualValues(t, 2, sim.VMs(t)["web-1"].Summary.Config.NumCpu)
	found, err := p.FindServersByTag(ctx, sim.Account(), "idempotency-key", "k-1")
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.Equal(t, "web-1", found[0].Name)
	require.Equal(t, tags, found[0].Tags)

	// Another account's provider on the same simulator.
	other, err := vsphere.New(ctx, sim.Config("acct-2"))
	require.NoError(t, err)
	defer other.Close()
	page, err = other.ListServers(ctx, "acct-2", cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Servers, 1)
}

func TestOptions(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{
		Datacenters: 2, Servers: 2, Images: []string{"debian-13", "ubuntu-24.04"},
		Sizes:    map[string]vsphere.Size{"tiny": {CPUs: 1, MemoryMB: 512}},
		Username: "u@lab", Password: "p-lab", Account: "lab", VerifyTLS: true,
	})
	require.Equal(t, 4, sim.VMCount(t))
	require.Len(t, sim.VMs(t), 6)
	require.True(t, sim.VMs(t)["DC1_C0_RP0_VM2"].Summary.Config.Template)
	require.Equal(t, "DC0_C0_RP0_VM2", sim.Template())

	cfg := sim.Config("lab")
	require.False(t, cfg.Insecure)
	require.FileExists(t, cfg.CAFile)
	require.Equal(t, "u@lab", cfg.Username)
	require.Equal(t, "p-lab", cfg.Password.Reveal())
	require.Equal(t, map[string]string{"debian-13": "DC0_C0_RP0_VM2", "ubuntu-24.04": "DC0_C0_RP0_VM2"}, cfg.Templates)
	require.Equal(t, map[string]vsphere.Size{"tiny": {CPUs: 1, MemoryMB: 512}}, cfg.Sizes)

	p := sim.Provider(t)
	require.Equal(t, "lab", p.Account())
	op, err := p.Launch(context.Background(), "lab", cloud.LaunchRequest{Name: "u", Image: "ubuntu-24.04", Size: "tiny"})
	require.NoError(t, err)
	waitTask(t, sim, op)
	require.Equal(t, 5, sim.VMCount(t))
	require.EqualValues(t, 512, sim.VMs(t)["u"].Summary.Config.MemorySizeMB)
}

func TestPlainClone(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{PlainClone: true})
	p := sim.Provider(t)
	op, err := p.Launch(context.Background(), sim.Account(), cloud.LaunchRequest{
		Name: "plain", Image: vcsimtest.DefaultImage, Tags: map[string]string{"a": "b"},
	})
	require.NoError(t, err)
	waitTask(t, sim, op)
	require.NotContains(t, extraConfig(t, sim, "plain"), "stratusworks.tags", "plain vcsim drops the clone spec")

	// The provider's follow-up steps still complete the launch.
	deadline := time.Now().Add(10 * time.Second)
	for !op.State.Terminal() {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(10 * time.Millisecond)
		op, err = p.Operation(context.Background(), sim.Account(), op.ID)
		require.NoError(t, err)
	}
	require.Equal(t, cloud.OpSucceeded, op.State, op.Error)
}
