package vsphere

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// Tests of internals that need no simulator. The tests against vcsim are in
// package vsphere_test (vsphere_test.go), which shares vcsimtest with other
// packages; export_test.go gives them the few internals they check.

const testPassword = "pa55-Word-never-print-me"

func TestNetworkAndBillingNotSupported(t *testing.T) {
	t.Parallel()
	p := &Provider{}
	_, err := p.Network()
	require.ErrorIs(t, err, cloud.ErrNotSupported)
	_, err = p.Billing()
	require.ErrorIs(t, err, cloud.ErrNotSupported)
	require.False(t, cloud.IsTransient(err))
	require.Equal(t, "vsphere", p.Name())
}

func TestClassify(t *testing.T) {
	t.Parallel()
	vim := func(f types.BaseMethodFault) error {
		return errors.Join(errors.New("call"), taskErr(f))
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"InvalidLogin", vim(&types.InvalidLogin{}), cloud.ErrAuthentication},
		{"NotAuthenticated", vim(&types.NotAuthenticated{}), cloud.ErrAuthentication},
		{"NoPermission", vim(&types.NoPermission{}), cloud.ErrAuthentication},
		{"ManagedObjectNotFound", vim(&types.ManagedObjectNotFound{}), cloud.ErrNotFound},
		{"InsufficientCpu", vim(&types.InsufficientCpuResourcesFault{}), cloud.ErrCapacity},
		{"InsufficientHostCapacity", vim(&types.InsufficientHostCapacityFault{}), cloud.ErrCapacity},
		{"NoDiskSpace", vim(&types.NoDiskSpace{}), cloud.ErrCapacity},
		{"NotEnoughLicenses", vim(&types.NotEnoughLicenses{}), cloud.ErrQuota},
		{"HostNotConnected", vim(&types.HostNotConnected{}), cloud.ErrCommunication},
		{"Refused", &url.Error{Op: "Post", URL: "/sdk", Err: errors.New("connection refused")}, cloud.ErrCommunication},
		{"DuplicateName", vim(&types.DuplicateName{}), cloud.ErrInvalidRequest},
		{"InvalidArgument", vim(&types.InvalidArgument{}), cloud.ErrInvalidRequest},
		{"Unknown", vim(&types.InvalidPowerState{}), nil},
		{"Plain", errors.New("boom"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("op", tc.err)
			if tc.want == nil {
				require.NoError(t, got)
				return
			}
			require.ErrorIs(t, got, tc.want)
			require.ErrorIs(t, wrap(context.Background(), "op", tc.err), tc.want)
		})
	}
	t.Run("Throttled", func(t *testing.T) {
		err := wrap(context.Background(), "list", &url.Error{Op: "Post", URL: "/sdk", Err: errors.New("429 Too Many Requests")})
		_, ok := cloud.RetryAfter(err)
		require.True(t, ok)
	})
}

func TestCompareIDsIsATotalOrder(t *testing.T) {
	t.Parallel()
	ids := []string{"vm-10", "vm-9", "vm-10x", "vm-2", "host-3", "vmx", "vm-100", "a"}
	slices.SortFunc(ids, compareIDs)
	require.Equal(t, []string{"host-3", "vm-2", "vm-9", "vm-10", "vm-100", "a", "vm-10x", "vmx"}, ids)
	for _, a := range ids {
		for _, b := range ids {
			require.Equal(t, compareIDs(a, b), -compareIDs(b, a))
		}
	}
}

func taskErr(f types.BaseMethodFault) error {
	return task.Error{LocalizedMethodFault: &types.LocalizedMethodFault{Fault: f, LocalizedMessage: "simulated"}}
}

func TestInflightOperationsOverrideState(t *testing.T) {
	t.Parallel()
	l := newOpLog(2)
	launch := &opRecord{id: "task-1", kind: kindLaunch}
	l.add(launch)
	l.add(&opRecord{id: "task-2", kind: kindTerminate, vmID: "vm-2"})
	require.Equal(t, map[string]cloud.ServerState{"vm-2": cloud.StateStopping}, l.inflight(),
		"a launch whose VM is not known yet changes nothing")
	l.setVM(launch, "vm-1")
	on := mo.VirtualMachine{}
	on.Self.Value, on.Runtime.PowerState = "vm-1", types.VirtualMachinePowerStatePoweredOff
	require.Equal(t, cloud.StatePending, serverState(on, l.inflight()))
	l.finish(launch, cloud.Operation{State: cloud.OpSucceeded, ResourceID: "vm-1"})
	require.Equal(t, cloud.StateStopped, serverState(on, l.inflight()))

	l.add(&opRecord{id: "task-3", kind: kindLaunch})
	require.Nil(t, l.get("task-1"), "the oldest record is forgotten beyond the bound")
	require.NotNil(t, l.get("task-3"))
}
