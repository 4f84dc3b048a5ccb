package status_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/service/status"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var _ status.Source = (*persist.Store)(nil)

// now is the scenario's fixed clock.
var now = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

// TestGolden: a scripted deployment written straight into the store — two
// live instances and a dead one, a lagging kind, a failing and a throttled
// account, a paused account, a poisoned action, a running and a failed job
// — renders the same table and JSON on SQLite and on MariaDB.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) persist.DBConfig
	}{
		{"SQLite", func(t *testing.T) persist.DBConfig {
			return persist.DBConfig{Driver: persist.SQLite, DSN: filepath.Join(t.TempDir(), "w.db")}
		}},
		{"MariaDB", func(t *testing.T) persist.DBConfig {
			return persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := scenario(t, ctx, tc.db(t))
			st, err := status.Gather(ctx, store, status.Options{Now: now})
			require.NoError(t, err)
			var table, js bytes.Buffer
			require.NoError(t, status.RenderTable(&table, st))
			require.NoError(t, status.RenderJSON(&js, st))
			golden(t, "status.txt.golden", table.Bytes())
			golden(t, "status.json.golden", js.Bytes())
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	require.Equal(t, string(want), string(got), "%s differs (go test -update rewrites it)", path)
}

// scenario writes the deployment into a fresh store.
func scenario(t *testing.T, ctx context.Context, db persist.DBConfig) *persist.Store {
	clock := now
	store, err := persist.Open(ctx, persist.Config{Provisioning: db, Now: func() time.Time { return clock }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	ok := []persist.Dependency{{Name: "mq", OK: true, CheckedAt: at(5 * time.Second)}, {Name: "provisioning_db", OK: true, CheckedAt: at(5 * time.Second)}}
	for _, in := range []persist.Instance{
		{ID: "b7e0c2a4-live-publisher", Host: "worker-1", PID: 4101, Roles: []string{"publisher"}, Version: "v1.4.0",
			StartedAt: at(3 * time.Hour), BeatAt: at(4 * time.Second), Interval: 10 * time.Second, Dependencies: ok},
		{ID: "c1f9d3e8-live-subscriber", Host: "worker-2", PID: 4202, Roles: []string{"subscriber", "pinger"}, Version: "v1.4.0",
			StartedAt: at(2 * time.Hour), BeatAt: at(7 * time.Second), Interval: 10 * time.Second,
			Dependencies: append(ok[:1:1], persist.Dependency{Name: "km", OK: false, Error: "km: connection refused", CheckedAt: at(7 * time.Second)})},
		{ID: "a0d4b6f2-dead-subscriber", Host: "worker-3", PID: 3900, Roles: []string{"subscriber"}, Version: "v1.3.2",
			StartedAt: at(26 * time.Hour), BeatAt: at(20 * time.Minute), Interval: 10 * time.Second, Dependencies: ok},
	} {
		require.NoError(t, store.PutInstance(ctx, in))
	}

	reg, err := accounts.New(accounts.Config{Store: store})
	require.NoError(t, err)
	for _, a := range []accounts.Account{
		{ID: "acme-aws", Customer: "acme"},
		{ID: "globex-vc", Customer: "globex", Provider: "vsphere"},
		{ID: "initech-os", Customer: "initech"},
		{ID: "umbrella-gcp", Customer: "umbrella"},
	} {
		clock = at(48 * time.Hour)
		_, err := reg.Put(ctx, a)
		require.NoError(t, err)
	}
	clock = at(90 * time.Minute)
	require.NoError(t, reg.Pause(ctx, "umbrella-gcp", "contract ended; waiting for the customer"))

	require.NoError(t, store.PutPollHealth(ctx,
		// The lagging kind: server polls of globex have failed for 45 minutes
		// on a 1m interval.
		persist.PollHealth{Account: "globex-vc", Kind: "server", Failures: 16, Interval: time.Minute,
			LastError: `poll globex-vc/server page 1: vsphere: login: cloud: authentication failed: ServerFaultCode: Login failure`,
			Since:     at(45 * time.Minute), LastFailure: at(3 * time.Minute), Instance: "b7e0c2a4-live-publisher"},
		persist.PollHealth{Account: "globex-vc", Kind: "network", Failures: 8, Interval: 5 * time.Minute,
			LastError: `poll globex-vc/network page 1: vsphere: login: cloud: authentication failed`,
			Since:     at(40 * time.Minute), LastFailure: at(4 * time.Minute), Instance: "b7e0c2a4-live-publisher"},
		// Throttled, but within its interval: not lagging yet.
		persist.PollHealth{Account: "acme-aws", Kind: "server", Failures: 1, Interval: time.Minute, Throttled: true,
			Since: at(40 * time.Second), LastFailure: at(40 * time.Second), Instance: "b7e0c2a4-live-publisher"},
	))

	clock = at(10 * time.Minute)
	_, _, err = store.TrackJob(ctx, persist.Job{ID: "job-launch-7", Account: "acme-aws", Customer: "acme", Kind: "server",
		OperationID: "op-7781", Deadline: now.Add(20 * time.Minute)})
	require.NoError(t, err)
	clock = at(2 * time.Hour)
	_, _, err = store.TrackJob(ctx, persist.Job{ID: "job-delete-3", Account: "initech-os", Customer: "initech", Kind: "server", OperationID: "op-551"})
	require.NoError(t, err)
	clock = at(95 * time.Minute)
	done, err := store.FinishJob(ctx, "job-delete-3", persist.JobFailed, "", nil, "cloud: server srv-9 is locked by another operation")
	require.NoError(t, err)
	require.True(t, done)
	_, _, err = store.TrackJob(ctx, persist.Job{ID: "job-old-1", Account: "initech-os", Kind: "server", CreatedAt: at(50 * time.Hour)})
	require.NoError(t, err)
	clock = at(30 * time.Hour) // failed too long ago to list
	_, err = store.FinishJob(ctx, "job-old-1", persist.JobTimedOut, "", nil, "timed out")
	require.NoError(t, err)

	for i, p := range []persist.Parked{
		{MessageUUID: "msg-1", Topic: "worker.actions", ActionType: "server.launch", Payload: []byte(`{"account":"initech-os"}`),
			Reason: "permanent: launch request: image \"ubuntu-99\" not found", Attempts: 1, FailedAt: at(25 * time.Minute)},
		{MessageUUID: "msg-2", Topic: "worker.actions", ActionType: "server.launch", Payload: []byte(`{"account":"initech-os"}`),
			Reason: "permanent: launch request: image \"ubuntu-99\" not found", Attempts: 1, FailedAt: at(15 * time.Minute)},
		{MessageUUID: "msg-3", Topic: "worker.actions", ActionType: "firewall.open", Payload: []byte(`{}`),
			Reason: "retry budget exhausted after 25 attempts: cloud: connection reset", Attempts: 25, FailedAt: at(5 * time.Minute)},
	} {
		require.NoError(t, store.AddPoison(ctx, p), i)
	}
	clock = now
	return store
}

// TestGatherErrors: a failing source fails Gather.
func TestGatherErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{Driver: persist.SQLite, DSN: persist.MemoryDSN}})
	require.NoError(t, err)
	require.NoError(t, store.Close())
	_, err = status.Gather(ctx, store, status.Options{})
	require.Error(t, err)
	require.False(t, errors.Is(err, context.Canceled))
}

func TestAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h",
		3*time.Hour + 5*time.Minute: "3h5m", 50 * time.Hour: "2d2h", 72 * time.Hour: "3d",
	} {
		require.Equal(t, want, status.Age(d), d.String())
	}
}
