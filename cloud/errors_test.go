package cloud_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stretchr/testify/require"
)

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		{"Throttled", fmt.Errorf("list: %w", &cloud.ThrottledError{API: "ListServers", RetryAfter: time.Second}), true},
		{"Communication", fmt.Errorf("x: %w", cloud.ErrCommunication), true},
		{"Capacity", cloud.ErrCapacity, true},
		{"Unknown", errors.New("boom"), true},
		{"NotFound", fmt.Errorf("get i-1: %w", cloud.ErrNotFound), false},
		{"Auth", cloud.ErrAuthentication, false},
		{"Quota", cloud.ErrQuota, false},
		{"NotSupported", cloud.NotSupported("vsphere", "network"), false},
		{"InvalidRequest", fmt.Errorf("launch: %w", cloud.ErrInvalidRequest), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, cloud.IsTransient(tt.err))
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	d, ok := cloud.RetryAfter(fmt.Errorf("wrapped: %w", &cloud.ThrottledError{API: "Launch", RetryAfter: 3 * time.Second}))
	require.True(t, ok)
	require.Equal(t, 3*time.Second, d)
	_, ok = cloud.RetryAfter(cloud.ErrQuota)
	require.False(t, ok)
	require.Equal(t, "cloud: Launch throttled, retry after 3s", (&cloud.ThrottledError{API: "Launch", RetryAfter: 3 * time.Second}).Error())
	require.ErrorContains(t, cloud.NotSupported("vsphere", "billing"), "vsphere has no billing service")
	require.True(t, cloud.OpSucceeded.Terminal())
	require.False(t, cloud.OpRunning.Terminal())
}
