package persist

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

// series returns n samples of server every step from start, with values
// that depend on i (cpu = i % 100, mem = 50, throughput = 1000*i).
func series(server string, start time.Time, step time.Duration, n int) []state.Sample {
	out := make([]state.Sample, n)
	for i := range n {
		out[i] = state.Sample{Server: server, At: start.Add(time.Duration(i) * step), CPU: float64(i % 100), Memory: 50,
			DiskRead: int64(1000 * i), DiskWrite: 10, NetRx: 20, NetTx: int64(i)}
	}
	return out
}

func anaRows(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.ana.reader.Raw("SELECT COUNT(*) FROM "+table).Scan(&n).Error)
	return n
}

// TestAppendSamples: samples of many servers across hours are stored, the
// hourly rollups hold min/avg/max; a redelivery and overlapping windows
// count once; a late sample recomputes its hour; the purges prune raw rows
// and rollups by their retention, and a sample older than the raw cutoff is
// dropped rather than shrinking its hour's rollup.
func TestAppendSamples(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := openStore(t, Config{Provisioning: b.db(t)})
		start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
		var all []state.Sample
		for v := range 30 {
			all = append(all, series(fmt.Sprintf("vm-%02d", v), start, 20*time.Second, 360)...) // 2 hours each
		}
		n, err := s.AppendSamples(ctx, "acct", all)
		require.NoError(t, err)
		require.Equal(t, 30*360, n)
		require.EqualValues(t, 30*360, anaRows(t, s, tblSamples))
		require.EqualValues(t, 30*2, anaRows(t, s, tblHourly), "one rollup per server and hour")

		again, err := s.AppendSamples(ctx, "acct", all[:1000])
		require.NoError(t, err)
		require.Zero(t, again, "a redelivery adds nothing")
		require.EqualValues(t, 30*360, anaRows(t, s, tblSamples))

		hours, err := s.UsageRollups(ctx, "acct", "vm-07", start, start.Add(24*time.Hour), 100)
		require.NoError(t, err)
		require.Len(t, hours, 2)
		h := hours[0]
		require.Equal(t, start, h.Hour)
		require.Equal(t, 180, h.Samples)
		require.Equal(t, UsageStat{Min: 0, Avg: 45.06, Max: 99}, h.CPU, "i%100 over i = 0..179: 8110/180")
		require.Equal(t, UsageStat{Min: 50, Avg: 50, Max: 50}, h.Memory)
		require.Equal(t, UsageStat{Min: 0, Avg: 89500, Max: 179000}, h.DiskRead)
		require.Equal(t, 180, hours[1].Samples)

		// Overlapping windows and a late sample: the hour is recomputed, not added to.
		late := state.Sample{Server: "vm-07", At: start.Add(30*time.Minute + 10*time.Second), CPU: 100, Memory: 100, DiskRead: 1}
		n, err = s.AppendSamples(ctx, "acct", append([]state.Sample{late}, all[7*360:7*360+200]...))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		hours, err = s.UsageRollups(ctx, "acct", "vm-07", start, start.Add(time.Hour), 100)
		require.NoError(t, err)
		require.Len(t, hours, 1)
		require.Equal(t, 181, hours[0].Samples)
		require.Equal(t, 100.0, hours[0].CPU.Max)
		require.Equal(t, 100.0, hours[0].Memory.Max)

		raw, err := s.UsageSamples(ctx, "acct", "vm-07", start, start.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, raw, 3)
		require.Equal(t, all[7*360], raw[0])

		// Retention: the first hour's raw rows go; its rollup stays.
		deleted, err := s.PurgeSamples(ctx, start.Add(time.Hour+30*time.Minute)) // rounds down to 11:00
		require.NoError(t, err)
		require.Equal(t, 30*180+1, deleted)
		require.EqualValues(t, 30*180, anaRows(t, s, tblSamples))
		require.EqualValues(t, 30*2, anaRows(t, s, tblHourly))
		n, err = s.AppendSamples(ctx, "acct", all[7*360:7*360+5])
		require.NoError(t, err)
		require.Zero(t, n, "samples older than the raw cutoff are dropped")
		hours, err = s.UsageRollups(ctx, "acct", "vm-07", start, start.Add(time.Hour), 100)
		require.NoError(t, err)
		require.Equal(t, 181, hours[0].Samples, "the pruned hour's rollup is kept as it was")
		raw, err = s.UsageSamples(ctx, "acct", "vm-07", time.Unix(0, 0), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), MaxUsagePage)
		require.NoError(t, err)
		require.Len(t, raw, 180, "any range: the raw samples left, the second hour's")
		require.Equal(t, all[7*360+180], raw[0])

		deleted, err = s.PurgeRollups(ctx, start.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, 30, deleted)
		require.EqualValues(t, 30, anaRows(t, s, tblHourly))
	})
}

// TestAppendSamplesBadInput: a bad sample fails the batch with ErrInvalid
// naming its field and value, and nothing of the batch is stored.
func TestAppendSamplesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, Config{})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := state.Sample{Server: "vm-1", At: at, CPU: 1}
	tests := []struct {
		name    string
		account string
		sample  state.Sample
		want    string
	}{
		{"NoAccount", "", ok, `account ""`},
		{"NoServer", "a", state.Sample{At: at}, "Server is"},
		{"ZeroTime", "a", state.Sample{Server: "vm-1"}, "At is zero"},
		{"CPUOver100", "a", state.Sample{Server: "vm-1", At: at, CPU: 101}, "CPU is 101"},
		{"MemoryNaN", "a", state.Sample{Server: "vm-1", At: at, Memory: math.NaN()}, "Memory is NaN"},
		{"NegativeDiskRead", "a", state.Sample{Server: "vm-1", At: at, DiskRead: -1}, "DiskRead is -1"},
		{"NegativeNetTx", "a", state.Sample{Server: "vm-1", At: at, NetTx: -5}, "NetTx is -5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.AppendSamples(ctx, tt.account, []state.Sample{ok, tt.sample})
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tt.want)
		})
	}
	require.Zero(t, anaRows(t, s, tblSamples))
	_, err := s.UsageSamples(ctx, "a", "vm-1", at, at.Add(-time.Second), 10)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = s.UsageRollups(ctx, "a", "vm-1", at, at, MaxUsagePage+1)
	require.ErrorIs(t, err, ErrInvalid)
}

// TestAppendSamplesSeparateAnalytics: samples go to the analytics database
// and nothing to the provisioning one.
func TestAppendSamplesSeparateAnalytics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: filepath.Join(dir, "prov.db")}, Analytics: DBConfig{DSN: filepath.Join(dir, "ana.db")}})
	n, err := s.AppendSamples(context.Background(), "acct", series("vm-1", time.Unix(1_800_000_000, 0), time.Minute, 10))
	require.NoError(t, err)
	require.Equal(t, 10, n)
	var tables int64
	require.NoError(t, s.prov.reader.Raw("SELECT COUNT(*) FROM sqlite_master WHERE name = ?", tblSamples).Scan(&tables).Error)
	require.Zero(t, tables, "the provisioning database has no sample table")
	require.EqualValues(t, 10, anaRows(t, s, tblSamples))
}
