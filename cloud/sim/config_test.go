package sim_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud/sim"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     sim.Config
		wantErr string // names the field; "" = valid
	}{
		{"ZeroIsValid", sim.Config{}, ""},
		{"Full", sim.Config{
			Seed: 1, LaunchDelay: time.Second, TerminateDelay: time.Second, ConsistencyDelay: time.Second,
			DefaultPageSize: 10, MaxPageSize: 10, MaxServersPerAccount: 5,
			RateLimits: map[string]sim.Limit{sim.APIListServers: {PerSecond: 1, Burst: 1}},
			Faults:     sim.Faults{ErrorRate: 1}, Disable: []string{sim.ServiceNetwork},
			Images: []string{"img"}, Sizes: []string{"xl"}, Region: "r", OperationRetention: time.Minute,
		}, ""},
		{"DefaultPageSizeAboveDefaultMax", sim.Config{DefaultPageSize: 5000}, ""},
		{"NegativeLaunchDelay", sim.Config{LaunchDelay: -1}, "Config.LaunchDelay"},
		{"NegativeTerminateDelay", sim.Config{TerminateDelay: -1}, "Config.TerminateDelay"},
		{"NegativeConsistencyDelay", sim.Config{ConsistencyDelay: -time.Second}, "Config.ConsistencyDelay"},
		{"NegativeRetention", sim.Config{OperationRetention: -1}, "Config.OperationRetention"},
		{"NegativeLatency", sim.Config{Faults: sim.Faults{Latency: -1}}, "Config.Faults.Latency"},
		{"NegativeDefaultPageSize", sim.Config{DefaultPageSize: -1}, "Config.DefaultPageSize"},
		{"NegativeMaxPageSize", sim.Config{MaxPageSize: -1}, "Config.MaxPageSize"},
		{"DefaultAboveMax", sim.Config{DefaultPageSize: 50, MaxPageSize: 10}, "Config.DefaultPageSize (50) must not exceed Config.MaxPageSize (10)"},
		{"NegativeQuota", sim.Config{MaxServersPerAccount: -1}, "Config.MaxServersPerAccount"},
		{"ErrorRateAboveOne", sim.Config{Faults: sim.Faults{ErrorRate: 1.5}}, "Config.Faults.ErrorRate"},
		{"ErrorRateNaN", sim.Config{Faults: sim.Faults{ErrorRate: math.NaN()}}, "Config.Faults.ErrorRate"},
		{"UnknownAPI", sim.Config{RateLimits: map[string]sim.Limit{"Reboot": {PerSecond: 1, Burst: 1}}}, `unknown API "Reboot"`},
		{"ZeroRate", sim.Config{RateLimits: map[string]sim.Limit{sim.APILaunch: {Burst: 1}}}, `RateLimits["Launch"].PerSecond`},
		{"ZeroBurst", sim.Config{RateLimits: map[string]sim.Limit{sim.APILaunch: {PerSecond: 1}}}, `RateLimits["Launch"].Burst`},
		{"UnknownService", sim.Config{Disable: []string{"storage"}}, `Config.Disable: unknown service "storage"`},
		{"EmptyImage", sim.Config{Images: []string{"a", ""}}, "Config.Images"},
		{"EmptySize", sim.Config{Sizes: []string{""}}, "Config.Sizes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			_, newErr := sim.New(tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Equal(t, err, newErr, "New reports the Validate error")
		})
	}
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	clk := sim.NewFakeClock(start)
	require.Equal(t, start, clk.Now())
	require.Equal(t, start.Add(time.Minute), clk.Advance(time.Minute))
	require.Equal(t, start.Add(time.Minute), clk.Now())
	clk.Set(start)
	require.Equal(t, start, clk.Now())

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				clk.Advance(time.Second)
				clk.Now()
			}
		})
	}
	wg.Wait()
	require.Equal(t, start.Add(400*time.Second), clk.Now())
}
