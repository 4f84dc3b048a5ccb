package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/faultproxy"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// heartbeatBackends are the databases the membership tests run on: a
// SQLite file several processes share, and MariaDB.
var heartbeatBackends = []struct {
	name string
	db   func(t *testing.T) persist.DBConfig
}{
	{name: "SQLiteFile", db: func(t *testing.T) persist.DBConfig {
		return persist.DBConfig{Driver: persist.SQLite, DSN: filepath.Join(t.TempDir(), "worker.db")}
	}},
	{name: "MariaDB", db: func(t *testing.T) persist.DBConfig {
		return persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}
	}},
}

func forEachHeartbeatBackend(t *testing.T, fn func(t *testing.T, db persist.DBConfig)) {
	for _, b := range heartbeatBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.db(t))
		})
	}
}

// schedClock is a schedule configuration that only sets the worker's clock.
func schedClock(c clock.Clock) poller.Config { return poller.Config{Clock: c} }

var heartbeatT0 = time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)

// memberByID finds an instance in the membership view.
func memberByID(t *testing.T, ms []Member, id string) Member {
	t.Helper()
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("instance %s is not a member: %+v", id, ms)
	return Member{}
}

func dependency(t *testing.T, m Member, name string) persist.Dependency {
	t.Helper()
	for _, d := range m.Dependencies {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("instance %s reports no %s dependency: %+v", m.ID, name, m.Dependencies)
	return persist.Dependency{}
}

// TestHeartbeatWrittenAndRefreshed: a running worker (the zero-value
// Config but for its database and clock) writes its instance row at once
// and every beat replaces it: one row, a newer last beat, the same start;
// at a clean shutdown the row shows it stopped.
func TestHeartbeatWrittenAndRefreshed(t *testing.T) {
	t.Parallel()
	forEachHeartbeatBackend(t, func(t *testing.T, db persist.DBConfig) {
		clk := clock.NewFake(heartbeatT0)
		w := newTestWorker(t, Config{
			Store:    persist.Config{Provisioning: db, Logger: discardLogger()}, // a fresh database per test
			Schedule: schedClock(clk),                                           // the fake clock of the test
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		<-w.Running()

		var m Member
		require.Eventually(t, func() bool {
			ms, err := w.Members(context.Background())
			require.NoError(t, err)
			if len(ms) == 0 {
				return false
			}
			m = ms[0]
			return true
		}, 30*time.Second, 10*time.Millisecond, "the first beat is written when Run starts")
		require.Equal(t, w.InstanceID(), m.ID)
		require.Equal(t, []string{"publisher", "subscriber"}, m.Roles)
		require.Equal(t, heartbeatT0, m.StartedAt)
		require.Equal(t, heartbeatT0, m.BeatAt)
		require.Equal(t, DefaultHeartbeatInterval, m.Interval)
		require.NotEmpty(t, m.Host)
		require.NotZero(t, m.PID)
		require.NotEmpty(t, m.Version)
		require.True(t, m.Alive)
		require.Equal(t, MemberAlive, m.Status)
		for _, name := range []string{DependencyMQ, DependencyProvisioning, DependencyAnalytics} {
			require.True(t, dependency(t, m, name).OK, name)
		}

		clk.Advance(DefaultHeartbeatInterval)
		require.NoError(t, w.beats.run(context.Background()))
		ms, err := w.Members(context.Background())
		require.NoError(t, err)
		require.Len(t, ms, 1, "a beat replaces the instance's row")
		require.Equal(t, heartbeatT0.Add(DefaultHeartbeatInterval), ms[0].BeatAt)
		require.Equal(t, heartbeatT0, ms[0].StartedAt)

		cancel()
		require.NoError(t, <-done)
		reader := newTestWorker(t, Config{Store: persist.Config{Provisioning: db, Logger: discardLogger()}, Schedule: schedClock(clk)})
		ms, err = reader.Members(context.Background())
		require.NoError(t, err)
		require.Equal(t, MemberStopped, memberByID(t, ms, w.InstanceID()).Status, "a clean shutdown shows stopped, not dead")
	})
}

// TestMembersRolesAndDeath: two pingers, a publisher and a subscriber on
// one database are four members with their roles; when the subscriber
// "dies" (it stops beating without the clean-shutdown mark) it is dead
// once DeadAfter of its beats are missed, while the others, beating on,
// stay alive.
func TestMembersRolesAndDeath(t *testing.T) {
	t.Parallel()
	forEachHeartbeatBackend(t, func(t *testing.T, db persist.DBConfig) {
		clk := clock.NewFake(heartbeatT0)
		start := func(role Role) *Worker {
			w := newTestWorker(t, Config{Role: role,
				Store:    persist.Config{Provisioning: db, Logger: discardLogger()}, // one database for the deployment
				Schedule: schedClock(clk)})                                          // the fake clock of the test
			runWorkerUntilCleanup(t, w)
			return w
		}
		procs := map[Role][]*Worker{}
		for _, r := range []Role{RolePinger, RolePinger, RolePublisher, RoleSubscriber} {
			procs[r] = append(procs[r], start(r))
		}
		all := []*Worker{procs[RolePinger][0], procs[RolePinger][1], procs[RolePublisher][0], procs[RoleSubscriber][0]}
		reader := all[2]
		var ms []Member
		require.Eventually(t, func() bool {
			var err error
			ms, err = reader.Members(context.Background())
			require.NoError(t, err)
			return len(ms) == 4
		}, 30*time.Second, 10*time.Millisecond, "every process beats when it starts")
		for r, ws := range procs {
			for _, w := range ws {
				m := memberByID(t, ms, w.InstanceID())
				require.Equal(t, []string{string(r)}, m.Roles)
				require.Equal(t, MemberAlive, m.Status)
			}
		}

		sub := procs[RoleSubscriber][0]
		sub.beats.dead.Store(true) // SIGKILL: no more beats, no stop mark
		dead := time.Duration(DefaultHeartbeatDeadAfter) * DefaultHeartbeatInterval
		for step := time.Duration(0); step < dead; step += DefaultHeartbeatInterval {
			clk.Advance(DefaultHeartbeatInterval)
			for _, w := range all {
				require.NoError(t, w.beats.run(context.Background()))
			}
			ms, err := reader.Members(context.Background())
			require.NoError(t, err)
			require.True(t, memberByID(t, ms, sub.InstanceID()).Alive, "missed %v of beats: not dead yet", step+DefaultHeartbeatInterval)
		}
		clk.Advance(time.Second)
		ms, err := reader.Members(context.Background())
		require.NoError(t, err)
		require.Len(t, ms, 4)
		for _, m := range ms {
			if m.ID == sub.InstanceID() {
				require.Equal(t, MemberDead, m.Status)
				require.False(t, m.Alive)
				continue
			}
			require.Equal(t, MemberAlive, m.Status, "%v", m.Roles)
		}

		// A day later the row of the dead is purged; the living beat on.
		clk.Advance(instancesKept)
		for _, w := range all {
			require.NoError(t, w.beats.run(context.Background()))
		}
		n, err := reader.store.(memberStore).PurgeInstances(context.Background(), clk.Now().Add(-instancesKept))
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

// TestHeartbeatDependencyDown: an analytics database that stops answering
// (its address now a closed port) shows in the next beat as not reachable,
// with an error naming its address and not its password, while the
// provisioning database stays reachable; a key manager that fails shows
// as not reachable too.
func TestHeartbeatDependencyDown(t *testing.T) {
	t.Parallel()
	prov := testenv.MySQLDSN(t)
	ana, err := mysql.ParseDSN(testenv.RestrictedDSN(t, testenv.MySQLDSN(t))) // a login with a password
	require.NoError(t, err)
	require.NotEmpty(t, ana.Passwd)
	proxy, err := faultproxy.New(ana.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	ana.Addr = proxy.Addr()
	keys := &failingKM{}

	w := newTestWorker(t, Config{
		Store: persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: prov},
			Analytics: persist.DBConfig{Driver: persist.MySQL, DSN: ana.FormatDSN()}, Logger: discardLogger()}, // the databases under test
		Credentials: keys, // a key manager to check
	})
	ctx := context.Background()
	require.NoError(t, w.beats.run(ctx))
	ms, err := w.Members(ctx)
	require.NoError(t, err)
	m := memberByID(t, ms, w.InstanceID())
	for _, name := range []string{DependencyMQ, DependencyProvisioning, DependencyAnalytics, DependencyKM} {
		require.True(t, dependency(t, m, name).OK, name)
	}

	require.NoError(t, proxy.Close())
	keys.fail.Store(true)
	require.NoError(t, w.beats.run(ctx), "the beat itself is written to the provisioning database")
	ms, err = w.Members(ctx)
	require.NoError(t, err)
	m = memberByID(t, ms, w.InstanceID())
	require.True(t, dependency(t, m, DependencyProvisioning).OK)
	d := dependency(t, m, DependencyAnalytics)
	require.False(t, d.OK)
	require.Contains(t, d.Error, proxy.Addr(), "the error names the database")
	require.NotContains(t, d.Error, ana.Passwd)
	k := dependency(t, m, DependencyKM)
	require.False(t, k.OK)
	require.Contains(t, k.Error, "km.example")
	require.NotContains(t, k.Error, ana.Passwd)
}

// failingKM is a key manager whose listings fail once fail is set; its
// error carries a DSN's password if one is given, which the heartbeat
// must not store.
type failingKM struct {
	km.Store
	fail atomic.Bool
}

func (f *failingKM) List(context.Context, string) ([]km.CredentialInfo, error) {
	if f.fail.Load() {
		return nil, errors.New("km: dial km.example:8443: connection refused")
	}
	return nil, nil
}

// probeType is a provider type for the probe tests: settings {"refuse":
// true} refuse the credential at login; otherwise the provider is a sim
// cloud that answers Ping (cloud.Pinger) when settings say {"ping": true}.
func probeType(pings *atomic.Int64) ProviderType {
	return ProviderType{New: func(_ context.Context, a accounts.Account, _ *km.Credential) (cloud.Provider, error) {
		var s struct{ Refuse, Ping bool }
		if len(a.Settings) > 0 {
			if err := json.Unmarshal(a.Settings, &s); err != nil {
				return nil, err
			}
		}
		if s.Refuse {
			return nil, fmt.Errorf("%w: account %q: the access key was refused", cloud.ErrAuthentication, a.ID)
		}
		c, err := sim.New(sim.Config{})
		if err != nil {
			return nil, err
		}
		if err := c.AddAccount(a.ID); err != nil {
			return nil, err
		}
		if s.Ping {
			return pingingCloud{Provider: c, pings: pings}, nil
		}
		return c, nil
	}}
}

type pingingCloud struct {
	cloud.Provider
	pings *atomic.Int64
}

func (p pingingCloud) Ping(context.Context, string) error { p.pings.Add(1); return nil }

// TestPingerProbes: three pingers on one database probe every enabled
// account: one row per (pinger, account), replaced by the next round (no
// duplicates, no conflicts); an account whose cloud refuses its credential
// is recorded as such; a paused account is not probed; a provider with a
// Ping of its own is pinged.
func TestPingerProbes(t *testing.T) {
	t.Parallel()
	forEachHeartbeatBackend(t, func(t *testing.T, db persist.DBConfig) {
		var pings atomic.Int64
		var pingers []*Worker
		for range 3 {
			pingers = append(pingers, newTestWorker(t, Config{Role: RolePinger,
				Store:     persist.Config{Provisioning: db, Logger: discardLogger()}, // one database for the deployment
				Providers: map[string]ProviderType{"probe": probeType(&pings)}}))     // a cloud that can refuse
		}
		ctx := context.Background()
		reg := pingers[0].Accounts()
		for _, a := range []accounts.Account{
			{ID: "good", Customer: "acme", Provider: "sim"},
			{ID: "refused", Customer: "acme", Provider: "probe", Settings: json.RawMessage(`{"refuse":true}`)},
			{ID: "pinged", Customer: "acme", Provider: "probe", Settings: json.RawMessage(`{"ping":true}`)},
			{ID: "paused", Customer: "acme", Provider: "sim"},
		} {
			_, err := reg.Put(ctx, a)
			require.NoError(t, err)
		}
		require.NoError(t, reg.Pause(ctx, "paused", "test"))

		for range 2 {
			errs := make(chan error, len(pingers))
			for _, p := range pingers {
				go func() { errs <- p.probes.run(ctx) }()
			}
			for range pingers {
				require.NoError(t, <-errs)
			}
		}
		all, err := pingers[0].Probes(ctx, "")
		require.NoError(t, err)
		require.Len(t, all, 9, "three accounts, three pingers: %+v", all)
		for _, account := range []string{"good", "pinged", "refused"} {
			ps, err := pingers[1].Probes(ctx, account)
			require.NoError(t, err)
			require.Len(t, ps, 3)
			seen := map[string]bool{}
			for _, p := range ps {
				seen[p.Instance] = true
				require.Equal(t, account, p.Account)
				require.GreaterOrEqual(t, p.Latency, time.Duration(0))
				if account == "refused" {
					require.False(t, p.OK)
					require.False(t, p.AuthOK)
					require.Contains(t, p.Error, "refused")
				} else {
					require.True(t, p.OK, p.Error)
					require.True(t, p.AuthOK)
					require.Empty(t, p.Error)
				}
			}
			for _, w := range pingers {
				require.True(t, seen[w.InstanceID()], "pinger %s probed %s", w.InstanceID(), account)
			}
		}
		require.Equal(t, int64(6), pings.Load(), "the pinged account's provider answers Ping: three pingers, two rounds")
		ps, err := pingers[0].Probes(ctx, "paused")
		require.NoError(t, err)
		require.Empty(t, ps)
	})
}

// TestPingerRole: a pinger handles nothing and holds no schedule.
func TestPingerRole(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t, Config{Role: RolePinger, Store: sqliteConfig(t)}) // a fresh database
	require.ErrorIs(t, w.HandleFunc("t", func(context.Context, Action) error { return nil }), ErrRoleNotSupported)
	require.Nil(t, w.sched)
	require.Empty(t, w.sub.Queues())
	require.NotNil(t, w.probes)
	top := Topology{}
	top.setDefaults()
	require.Equal(t, QueueEvents, top.QueueFor(TypeHeartbeat), "heartbeats go to the events queue")
}

// TestHeartbeatConfigValidate: the zero values are valid; bad values are
// refused naming the field.
func TestHeartbeatConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Config{Role: RolePinger}.Validate())
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Heartbeat: HeartbeatConfig{Interval: time.Millisecond}}, "Heartbeat.Interval"},
		{Config{Heartbeat: HeartbeatConfig{DeadAfter: -1}}, "Heartbeat.DeadAfter"},
		{Config{Heartbeat: HeartbeatConfig{Version: strings.Repeat("v", 256)}}, "Heartbeat.Version"},
		{Config{Pinger: PingerConfig{ProbeInterval: -time.Second}}, "Pinger.ProbeInterval"},
		{Config{Pinger: PingerConfig{ProbeTimeout: -time.Second}}, "Pinger.ProbeTimeout"},
		{Config{Role: "pinging"}, "Role"},
	} {
		err := tc.cfg.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig, tc.field)
		require.Contains(t, err.Error(), tc.field)
	}
}

// TestHeartbeatEventsOnRabbitMQ: on RabbitMQ every beat is also a
// worker.heartbeat event on the events queue, which another process can
// handle: a subscriber hears the publisher's beats (and its own), and the
// beats record the broker reachable.
func TestHeartbeatEventsOnRabbitMQ(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := uniqueTopology(t, url)
	db := persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}, Logger: discardLogger()}
	pub := newTestWorker(t, Config{Role: RolePublisher, MQ: MQConfig{URL: url}, Topology: top, Store: db}) // the broker and database under test
	sub := newTestWorker(t, Config{Role: RoleSubscriber, MQ: MQConfig{URL: url}, Topology: top, Store: db})
	heard := make(chan Member, 16)
	require.NoError(t, sub.HandleFunc(TypeHeartbeat, func(_ context.Context, a Action) error {
		var m Member
		if err := a.Decode(&m); err != nil {
			return Permanent(err)
		}
		heard <- m
		return nil
	}))
	runWorkerUntilCleanup(t, sub)
	runWorkerUntilCleanup(t, pub)
	from := map[string]Member{}
	for len(from) < 2 {
		select {
		case m := <-heard:
			from[m.ID] = m
		case <-time.After(30 * time.Second):
			t.Fatalf("heard the heartbeats of %d processes, want 2", len(from))
		}
	}
	require.Equal(t, []string{"publisher"}, from[pub.InstanceID()].Roles)
	require.Equal(t, []string{"subscriber"}, from[sub.InstanceID()].Roles)
	require.True(t, from[pub.InstanceID()].Alive)

	var ms []Member
	require.Eventually(t, func() bool { // the row is written after the event is published
		var err error
		ms, err = sub.Members(context.Background())
		require.NoError(t, err)
		return len(ms) == 2
	}, 30*time.Second, 10*time.Millisecond)
	for _, m := range ms {
		require.True(t, dependency(t, m, DependencyMQ).OK)
	}
}

// TestHeartbeatsAreNotPoison: a subscriber that consumes the events queue
// for an event type of its own, but has no handler for the heartbeats that
// share that queue, takes them as read: after several beats of two
// processes, nothing is in the poison store. (The interval is short so the
// test sees several beats; the default is 10s.)
func TestHeartbeatsAreNotPoison(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	top := uniqueTopology(t, url)
	db := persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}, Logger: discardLogger()}
	beat := HeartbeatConfig{Interval: 200 * time.Millisecond}
	pub := newTestWorker(t, Config{Role: RolePublisher, MQ: MQConfig{URL: url}, Topology: top, Store: db, Heartbeat: beat})
	sub := newTestWorker(t, Config{Role: RoleSubscriber, MQ: MQConfig{URL: url}, Topology: top, Store: db, Heartbeat: beat})
	require.NoError(t, sub.HandleFunc("server.changed", func(context.Context, Action) error { return nil }))
	runWorkerUntilCleanup(t, sub)
	runWorkerUntilCleanup(t, pub)
	require.Eventually(t, func() bool { // several beats of both, on the broker and in the table
		ms, err := sub.Members(context.Background())
		require.NoError(t, err)
		return len(ms) == 2 && ms[0].BeatAt.Sub(ms[0].StartedAt) > time.Second && ms[1].BeatAt.Sub(ms[1].StartedAt) > time.Second
	}, 30*time.Second, 20*time.Millisecond)
	ps, err := sub.Poisoned(context.Background(), PoisonQuery{})
	require.NoError(t, err)
	require.Empty(t, ps, "heartbeats are not poison")
}
