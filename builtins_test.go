package worker_test

// The built-in handlers (poll, job.track, job.check, server.launch,
// guest.logs, poll.report), each driven through a workertest.Env: a worker
// on its shipped defaults with an in-memory database and a simulated cloud
// on one fake clock. These tests are in the external test package because
// workertest imports the root package.

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/sshtest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
	"github.com/stratusworks/worker/workertest"
)

func addServers(t *testing.T, c *sim.Cloud, account string, n int) []cloud.Server {
	t.Helper()
	var out []cloud.Server
	for range n {
		s, err := c.AddServer(account, cloud.Server{Name: "web", Image: "debian-12", State: cloud.StateRunning})
		require.NoError(t, err)
		out = append(out, s)
	}
	return out
}

func decodeChange(t *testing.T, a worker.Action) state.Change {
	t.Helper()
	var ch state.Change
	require.NoError(t, a.Decode(&ch))
	return ch
}

// waitPoisoned waits until n actions are in the poison store and returns them.
func waitPoisoned(t *testing.T, w *worker.Worker, n int) []worker.PoisonedAction {
	t.Helper()
	var ps []worker.PoisonedAction
	require.Eventually(t, func() bool {
		var err error
		ps, err = w.Poisoned(context.Background(), worker.PoisonQuery{})
		return err == nil && len(ps) >= n
	}, 10*time.Second, 5*time.Millisecond)
	require.Len(t, ps, n)
	return ps
}

// TestBuiltinPoll (poll): the first polls store every server and firewall
// and announce each once; steady state writes and announces nothing; a
// server gone from complete listings is deleted after the default grace
// (5m), with one server.deleted event.
func TestBuiltinPoll(t *testing.T) {
	t.Parallel()
	env := workertest.NewEnv(t)
	servers := addServers(t, env.Cloud, "acct-1", 5) // three pages of two
	_, err := env.Cloud.AddFirewall("acct-1", cloud.Firewall{Name: "default"})
	require.NoError(t, err)
	compute, err := env.Cloud.Compute()
	require.NoError(t, err)
	network, err := env.Cloud.Network()
	require.NoError(t, err)
	require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute, PageSize: 2}, time.Minute))
	require.NoError(t, env.Worker.Register(cloud.FirewallPoller{Network: network}, 15*time.Second))
	require.NoError(t, env.Worker.Watch("acct-1", "acme"))
	env.Start(t)

	env.Advance(t, time.Minute, 5*time.Second)
	created := map[string]bool{}
	for range servers {
		ch := decodeChange(t, env.Event(t, "server.changed"))
		require.Equal(t, state.Created, ch.Op)
		created[ch.After.ID] = true
	}
	require.Len(t, created, 5)
	require.Equal(t, state.Created, decodeChange(t, env.Event(t, "firewall.changed")).Op)
	r, err := env.Worker.Store().Resource(context.Background(), "acct-1", "server", servers[0].ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Version)

	env.Advance(t, 5*time.Minute, 5*time.Second)
	require.Empty(t, env.Drain(t), "steady state publishes nothing")
	r2, err := env.Worker.Store().Resource(context.Background(), "acct-1", "server", servers[0].ID)
	require.NoError(t, err)
	require.Equal(t, r.Version, r2.Version, "steady state writes nothing")

	_, err = compute.Terminate(context.Background(), "acct-1", servers[1].ID)
	require.NoError(t, err)
	env.Advance(t, 2*time.Minute, 5*time.Second) // STOPPING, TERMINATED, then gone from listings
	env.Drain(t)                                 // the state changes on the way
	_, err = env.Worker.Store().Resource(context.Background(), "acct-1", "server", servers[1].ID)
	require.NoError(t, err, "missing, but not deleted before the grace period")
	// Missing since a listing 20-92s after the termination (listings come
	// every minute ±10%), deleted at the first listing 5m after that.
	env.Advance(t, 7*time.Minute, 5*time.Second)
	require.Equal(t, servers[1].ID, env.Event(t, "server.deleted").Resource)
	_, err = env.Worker.Store().Resource(context.Background(), "acct-1", "server", servers[1].ID)
	require.ErrorIs(t, err, persist.ErrNotFound)
	require.Empty(t, env.Drain(t))
}

// TestBuiltinJobTrack (job.track): a dispatcher's job is stored and
// followed to its end; a job the tracker cannot follow is poisoned with the
// reason.
func TestBuiltinJobTrack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload func(opID string) any
		reason  string // "" = tracked to completion
	}{
		{name: "Tracked", payload: func(opID string) any { return persist.Job{ID: "job-1", OperationID: opID} }},
		{name: "NeitherOperationNorResource", payload: func(string) any { return persist.Job{ID: "job-1"} },
			reason: "TrackJob needs ID, Account and OperationID or ResourceID"},
		{name: "NotAJob", payload: func(string) any { return []int{1} }, reason: "invalid action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := workertest.NewEnv(t)
			require.NoError(t, env.Cloud.AddAccount("acct-1"))
			compute, err := env.Cloud.Compute()
			require.NoError(t, err)
			op, err := compute.Launch(context.Background(), "acct-1", cloud.LaunchRequest{Name: "db-1", Image: "debian-12"})
			require.NoError(t, err)
			env.Start(t)
			a, err := worker.NewAction(worker.TypeJobTrack, tt.payload(op.ID))
			require.NoError(t, err)
			a.Account, a.Customer = "acct-1", "acme" // the job's, when the payload has none
			env.Publish(t, a)
			if tt.reason != "" {
				ps := waitPoisoned(t, env.Worker, 1)
				require.Contains(t, ps[0].Reason, tt.reason)
				require.Equal(t, 1, ps[0].Attempts, "permanent: not retried")
				return
			}
			require.Eventually(t, func() bool {
				_, err := env.Worker.Store().Job(context.Background(), "job-1")
				return err == nil
			}, 10*time.Second, 5*time.Millisecond)
			env.Advance(t, time.Minute, 5*time.Second)
			var job persist.Job
			require.NoError(t, env.Event(t, persist.EventJobCompleted).Decode(&job))
			require.Equal(t, "job-1", job.ID)
			require.Equal(t, "acct-1", job.Account)
			require.Equal(t, "acme", job.Customer)
			require.Equal(t, op.ResourceID, job.ResourceID)
		})
	}
}

// TestBuiltinJobCheck (job.check): a tracked job is checked until the cloud
// says it ended, or its deadline passed; its outcome is announced once.
func TestBuiltinJobCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		job   func(t *testing.T, c *sim.Cloud, now time.Time) persist.Job
		state persist.JobState
		event string
	}{
		{name: "OperationSucceeds", state: persist.JobSucceeded, event: persist.EventJobCompleted,
			job: func(t *testing.T, c *sim.Cloud, _ time.Time) persist.Job {
				compute, err := c.Compute()
				require.NoError(t, err)
				op, err := compute.Launch(context.Background(), "acct-1", cloud.LaunchRequest{Name: "db-1", Image: "debian-12"})
				require.NoError(t, err)
				return persist.Job{ID: "job-1", Account: "acct-1", OperationID: op.ID}
			}},
		{name: "ServerInError", state: persist.JobFailed, event: persist.EventJobFailed,
			job: func(t *testing.T, c *sim.Cloud, _ time.Time) persist.Job {
				s, err := c.AddServer("acct-1", cloud.Server{Name: "db-1", Image: "debian-12", State: cloud.StateError})
				require.NoError(t, err)
				return persist.Job{ID: "job-1", Account: "acct-1", ResourceID: s.ID}
			}},
		{name: "DeadlinePasses", state: persist.JobTimedOut, event: persist.EventJobTimedOut,
			job: func(t *testing.T, c *sim.Cloud, now time.Time) persist.Job {
				compute, err := c.Compute()
				require.NoError(t, err)
				op, err := compute.Launch(context.Background(), "acct-1", cloud.LaunchRequest{Name: "db-1", Image: "debian-12"})
				require.NoError(t, err) // running for 30s, longer than the deadline
				return persist.Job{ID: "job-1", Account: "acct-1", OperationID: op.ID, Deadline: now.Add(5 * time.Second)}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := workertest.NewEnv(t)
			require.NoError(t, env.Cloud.AddAccount("acct-1"))
			env.Start(t)
			require.NoError(t, env.Worker.TrackJob(context.Background(), tt.job(t, env.Cloud, env.Clock.Now())))
			env.Advance(t, time.Minute, 5*time.Second)
			var job persist.Job
			require.NoError(t, env.Event(t, tt.event).Decode(&job))
			require.Equal(t, "job-1", job.ID)
			require.Equal(t, tt.state, job.State)
			stored, err := env.Worker.Store().Job(context.Background(), "job-1")
			require.NoError(t, err)
			require.Equal(t, tt.state, stored.State)
			env.Advance(t, time.Minute, 10*time.Second)
			require.Empty(t, env.Drain(t), "announced once")
		})
	}
}

// TestBuiltinServerLaunch (server.launch): one server per key, tagged with
// it, with the management port opened to SOURCE_CIDR on its firewall and
// the launch tracked to job.completed; the same action again launches
// nothing; a request that cannot launch is poisoned.
func TestBuiltinServerLaunch(t *testing.T) {
	t.Parallel()
	env := workertest.NewEnv(t, workertest.WithConfig(func(c *worker.Config) {
		c.SourceCIDR = netip.MustParsePrefix("192.0.2.0/28")
	}))
	require.NoError(t, env.Cloud.AddAccount("acct-1"))
	fw, err := env.Cloud.AddFirewall("acct-1", cloud.Firewall{Name: "web"})
	require.NoError(t, err)
	env.Start(t)

	a, err := worker.NewAction(worker.TypeServerLaunch, worker.LaunchRequest{
		LaunchRequest: cloud.LaunchRequest{Name: "web-1", Image: "debian-12"}, Firewall: fw.ID})
	require.NoError(t, err)
	a.Account, a.Customer, a.Key = "acct-1", "acme", "launch-42"
	env.Publish(t, a)
	require.Eventually(t, func() bool { // launched, and its job tracked (so on the schedule)
		in, err := env.Worker.Store().LaunchIntent(context.Background(), "launch-42")
		_, jerr := env.Worker.Store().Job(context.Background(), "launch/launch-42")
		return err == nil && in.State == persist.LaunchLaunched && jerr == nil
	}, 10*time.Second, 5*time.Millisecond)
	env.Advance(t, time.Minute, 5*time.Second) // the launch takes 30s
	var job persist.Job
	require.NoError(t, env.Event(t, persist.EventJobCompleted).Decode(&job))
	require.Equal(t, "launch/launch-42", job.ID)

	servers := env.Cloud.Servers("acct-1")
	require.Len(t, servers, 1)
	require.Equal(t, "launch-42", servers[0].Tags[worker.LaunchTag])
	require.Equal(t, servers[0].ID, job.ResourceID)
	rules := env.Cloud.Firewalls("acct-1")[0].Rules
	require.Len(t, rules, 1)
	require.Equal(t, cloud.Ingress, rules[0].Direction)
	require.Equal(t, "192.0.2.0/28", rules[0].CIDR)
	require.Equal(t, 22, rules[0].FromPort)

	env.Publish(t, a) // redelivered
	env.Advance(t, time.Minute, 5*time.Second)
	require.Len(t, env.Cloud.Servers("acct-1"), 1, "no second server")

	tests := []struct {
		name   string
		action worker.Action
		reason string
	}{
		{name: "NoAccount", reason: "has no Account",
			action: worker.Action{Type: worker.TypeServerLaunch, Payload: json.RawMessage(`{"image":"debian-12"}`)}},
		{name: "NotARequest", reason: "invalid action",
			action: worker.Action{Type: worker.TypeServerLaunch, Account: "acct-1", Payload: json.RawMessage(`"web"`)}},
		{name: "UnknownImage", reason: "debian-99",
			action: worker.Action{Type: worker.TypeServerLaunch, Account: "acct-1", Payload: json.RawMessage(`{"image":"debian-99"}`)}},
	}
	for i, tt := range tests {
		env.Publish(t, tt.action)
		ps := waitPoisoned(t, env.Worker, i+1)
		require.Contains(t, ps[0].Reason, tt.reason, tt.name) // newest first
	}
	require.Len(t, env.Cloud.Servers("acct-1"), 1)
}

// TestBuiltinGuestLogs (guest.logs): a watched account's RUNNING server has
// its log copied on the guest-log interval with the SSH key from the
// embedded key manager, complete lines only, each once.
func TestBuiltinGuestLogs(t *testing.T) {
	t.Parallel()
	const syslog = "/var/log/syslog"
	client, key := sshtest.NewKeyPEM(t)
	srv := sshtest.New(t, client.PublicKey(), 0)
	kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret([]byte(strings.Repeat("k", 32)))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = kr.Close() })
	logDir := filepath.Join(t.TempDir(), "logs")

	env := workertest.NewEnv(t, workertest.WithConfig(func(c *worker.Config) {
		c.SourceCIDR = netip.MustParsePrefix("127.0.0.0/8")
		c.Keyring = kr
		c.GuestLogs = worker.GuestLogsConfig{Interval: time.Minute, Collector: guest.CollectorConfig{
			HostKeys: guest.PinnedKeys(map[string]ssh.PublicKey{srv.Addr: srv.HostKey}),
			Files:    []string{syslog},
			LogDir:   logDir,
		}}
	}))
	require.NoError(t, env.Worker.Credentials().Put(context.Background(), km.Credential{Customer: "acme", Account: "acct-1",
		Kind: km.KindSSH, Name: "ssh", Meta: map[string]string{km.MetaUser: "collector"},
		Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecret(key)}}))
	up, err := env.Cloud.AddServer("acct-1", cloud.Server{Name: "web", State: cloud.StateRunning, PrivateIPs: []string{srv.Addr}})
	require.NoError(t, err)
	srv.Write(t, syslog, "boot 1\nboot 2\n")
	compute, err := env.Cloud.Compute()
	require.NoError(t, err)
	require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, env.Worker.Watch("acct-1", "acme"))
	env.Start(t)

	local := func() string {
		dir, err := logging.CustomerDir(logDir, "acme")
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(dir, "guests", "acct-1", up.ID, "syslog"))
		if errors.Is(err, os.ErrNotExist) {
			return ""
		}
		require.NoError(t, err)
		return string(b)
	}
	// Collections come every minute ±10% (the default jitter), so 90s
	// always hold one; the first may come before the first listing is
	// stored.
	env.Advance(t, 3*time.Minute, 10*time.Second)
	require.Equal(t, "boot 1\nboot 2\n", local())
	srv.Append(t, syslog, "cron ran\npartial")
	env.Advance(t, 90*time.Second, 10*time.Second)
	require.Equal(t, "boot 1\nboot 2\ncron ran\n", local(), "complete lines only")
	srv.Append(t, syslog, " line\n")
	env.Advance(t, 90*time.Second, 10*time.Second)
	require.Equal(t, "boot 1\nboot 2\ncron ran\npartial line\n", local(), "each line once")
}

// TestBuiltinPollReport (poll.report): in the classic split, the publisher
// process owns the schedule and the subscriber process runs the polls; each
// poll's outcome travels back as a poll.report action, so the publisher's
// schedule settles (nothing left in flight) and keeps polling at the kind's
// interval. The two share a Watermill gochannel, the clock and the cloud.
func TestBuiltinPollReport(t *testing.T) {
	t.Parallel()
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = bus.Close() })
	clk := clock.NewFake(workertest.DefaultStart)
	c, err := sim.New(sim.Config{Now: clk.Now})
	require.NoError(t, err)
	servers := addServers(t, c, "acct-1", 3)
	compute, err := c.Compute()
	require.NoError(t, err)
	split := func(role worker.Role) workertest.EnvOption {
		return workertest.WithConfig(func(cfg *worker.Config) {
			cfg.Role = role
			cfg.Transport = worker.Transport{Publisher: bus, Subscriber: bus}
		})
	}
	sub := workertest.NewEnv(t, workertest.SharedClock(clk), workertest.SharedCloud(c), split(worker.RoleSubscriber))
	pub := workertest.NewEnv(t, workertest.SharedClock(clk), workertest.SharedCloud(c), split(worker.RolePublisher))
	for _, env := range []*workertest.Env{sub, pub} {
		require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	}
	require.NoError(t, pub.Worker.Watch("acct-1", "acme"))
	sub.Start(t) // first: gochannel drops what is published before anyone subscribes
	pub.Start(t)

	pub.Advance(t, time.Minute, 5*time.Second) // settles only once the poll's report is back
	for _, s := range servers {
		_, err := sub.Worker.Store().Resource(context.Background(), "acct-1", "server", s.ID)
		require.NoError(t, err, "the subscriber polled into its store")
	}
	calls := c.Calls(sim.APIListServers)
	require.GreaterOrEqual(t, calls, 1)
	pub.Advance(t, 10*time.Minute, 5*time.Second)
	// Every minute (±10% jitter): a lost report would have held the target
	// in flight for the 5m InFlightTimeout instead.
	require.InDelta(t, 10, c.Calls(sim.APIListServers)-calls, 1)
}

// TestWorkerScheduleIdle: the schedule is idle when nothing it dispatched
// awaits an outcome and nothing is due; a worker without a schedule always is.
func TestWorkerScheduleIdle(t *testing.T) {
	t.Parallel()
	sub := workertest.NewEnv(t, workertest.WithConfig(func(c *worker.Config) { c.Role = worker.RoleSubscriber }))
	require.True(t, sub.Worker.ScheduleIdle())

	env := workertest.NewEnv(t, workertest.WithConfig(func(c *worker.Config) { c.Schedule.InitialSpread = -1 }))
	require.True(t, env.Worker.ScheduleIdle(), "nothing scheduled")
	require.NoError(t, env.Worker.Register(worker.PollerFunc("thing", func(context.Context, state.Target, string) (state.Snapshot, string, error) {
		return state.Snapshot{}, "", nil
	}), time.Minute))
	require.NoError(t, env.Worker.Watch("acct-1", "acme"))
	require.False(t, env.Worker.ScheduleIdle(), "due at once, not run yet")
	env.Start(t)
	env.Settle(t)
	require.True(t, env.Worker.ScheduleIdle())
	env.Advance(t, 2*time.Minute, time.Minute)
	require.True(t, env.Worker.ScheduleIdle())
}
