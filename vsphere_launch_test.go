package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// TestLaunchCrashAfterCloudCallVSphere is TestLaunchCrashAfterCloudCall on
// vSphere (govmomi's vcsim): the worker dies right after the clone was
// started; the redelivered launch finds the VM by its key and clones nothing more.
func TestLaunchCrashAfterCloudCallVSphere(t *testing.T) {
	vc := vcsimtest.New(t, vcsimtest.Options{})
	provider := vc.Provider(t)
	before := vc.VMCount(t)

	w := newTestWorker(t, Config{
		Store:                   sqliteConfig(t),
		Cloud:                   provider,
		Retry:                   RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxAttempts: 20},
		JobCheckInterval:        50 * time.Millisecond,
		LaunchConsistencyWindow: time.Millisecond, // vCenter lists a VM as soon as it exists
		Logger:                  testLogger(t),
	})
	var crashed atomic.Bool
	w.launcher.afterLaunch = func() error {
		if crashed.CompareAndSwap(false, true) {
			return errors.New("simulated crash after the clone started")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-stopped })
	<-w.Running()

	a, err := NewAction(TypeServerLaunch, LaunchRequest{LaunchRequest: cloud.LaunchRequest{Name: "web-1", Image: vcsimtest.DefaultImage}})
	require.NoError(t, err)
	a.Account, a.Key = provider.Account(), "launch-vsphere-1"
	require.NoError(t, w.Publish(ctx, a))
	// The redelivery finds the VM by its key and records the launch. (Its job
	// then waits for the VM to run; vcsim does not apply the clone's power-on
	// to a VM found that way, so the test stops at the record.)
	require.Eventually(t, func() bool {
		in, err := w.Store().LaunchIntent(ctx, "launch-vsphere-1")
		return err == nil && in.State == persist.LaunchLaunched
	}, 30*time.Second, 10*time.Millisecond)
	require.True(t, crashed.Load())
	require.Equal(t, before+1, vc.VMCount(t), "exactly one VM cloned")
	in, err := w.Store().LaunchIntent(ctx, "launch-vsphere-1")
	require.NoError(t, err)
	require.Equal(t, persist.LaunchLaunched, in.State)
	found, err := provider.FindServersByTag(ctx, provider.Account(), LaunchTag, "launch-vsphere-1")
	require.NoError(t, err)
	require.Len(t, found, 1)
}
