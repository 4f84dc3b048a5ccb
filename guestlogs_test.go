package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/sshtest"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

const guestSyslog = "/var/log/syslog"

// guestLogsEnv is a guest SSH server, the SSH credential that logs in to it,
// a keyring and a log directory.
type guestLogsEnv struct {
	srv     *sshtest.Server
	key     []byte // the client's private key, OpenSSH PEM
	keyring *km.Keyring
	logDir  string
}

func newGuestLogsEnv(t *testing.T) *guestLogsEnv {
	t.Helper()
	client, key := sshtest.NewKeyPEM(t)
	kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret([]byte(strings.Repeat("k", 32)))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = kr.Close() })
	return &guestLogsEnv{srv: sshtest.New(t, client.PublicKey(), 0), key: key, keyring: kr, logDir: filepath.Join(t.TempDir(), "logs")}
}

// putKey stores the account's SSH credential.
func (e *guestLogsEnv) putKey(t *testing.T, s km.Store, customer, account string) {
	t.Helper()
	require.NoError(t, s.Put(context.Background(), km.Credential{Customer: customer, Account: account, Kind: km.KindSSH, Name: "ssh",
		Meta: map[string]string{km.MetaUser: "collector"}, Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecret(e.key)}}))
}

// separateKM is a key manager in its own database, standing for a remote one.
func (e *guestLogsEnv) separateKM(t *testing.T) km.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "km.db")
	// km creates no tables: persist's migrations own them (issue 18).
	require.NoError(t, persist.Migrate(context.Background(), persist.Config{Provisioning: persist.DBConfig{DSN: path}, Logger: slog.New(slog.DiscardHandler)}))
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = sqlDB.Close() })
	store, err := km.NewLocalStore(db, e.keyring)
	require.NoError(t, err)
	return store
}

func (e *guestLogsEnv) config(every time.Duration, hangingAddr string) GuestLogsConfig {
	return GuestLogsConfig{
		Interval: every,
		Collector: guest.CollectorConfig{
			HostKeys: guest.PinnedKeys(map[string]ssh.PublicKey{e.srv.Addr: e.srv.HostKey, hangingAddr: e.srv.HostKey}),
			Files:    []string{guestSyslog},
			Timeout:  2 * time.Second,
			LogDir:   e.logDir,
		},
	}
}

func (e *guestLogsEnv) local(t *testing.T, customer, account, serverID string) string {
	t.Helper()
	dir, err := logging.CustomerDir(e.logDir, customer)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, "guests", account, serverID, "syslog"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

// TestGuestLogsScheduledCollection: a watched account's RUNNING servers have
// their logs collected on the guest-log interval, with the SSH key from km,
// from an address inside SOURCE_CIDR, into the customer's directory; new lines
// arrive at the next collection, a restarted worker neither duplicates nor
// skips lines, a stopped server is not contacted and an unreachable one does
// not block the others.
func TestGuestLogsScheduledCollection(t *testing.T) {
	t.Parallel()
	env := newGuestLogsEnv(t)
	hanging := sshtest.Hanging(t)
	gl := env.config(time.Minute, hanging)
	withGuestLogs := func(c *Config, _ *sim.Config) {
		c.SourceCIDR = netip.MustParsePrefix("127.0.0.0/8")
		c.GuestLogs = gl
		c.Keyring = env.keyring // logins from the embedded key manager
	}
	h := newCloudHarness(t, withGuestLogs)
	env.putKey(t, h.w.Credentials(), "acme", "acct-1")
	up, err := h.sim.AddServer("acct-1", cloud.Server{Name: "web", State: cloud.StateRunning, PrivateIPs: []string{env.srv.Addr}})
	require.NoError(t, err)
	_, err = h.sim.AddServer("acct-1", cloud.Server{Name: "stopped", State: cloud.StateStopped, PrivateIPs: []string{hanging}})
	require.NoError(t, err)
	_, err = h.sim.AddServer("acct-1", cloud.Server{Name: "unreachable", State: cloud.StateRunning, PrivateIPs: []string{hanging}})
	require.NoError(t, err)
	env.srv.Write(t, guestSyslog, "boot 1\nboot 2\n")

	compute, err := h.sim.Compute()
	require.NoError(t, err)
	require.NoError(t, h.w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, h.w.Watch("acct-1", "acme"))
	require.True(t, h.w.guests.collector.SourceAddr().IsLoopback())
	h.run(h.w)
	h.settle()
	h.advance(time.Minute, 10*time.Second) // the first collection may have run before the first listing was stored
	require.Equal(t, "boot 1\nboot 2\n", env.local(t, "acme", "acct-1", up.ID))

	env.srv.Append(t, guestSyslog, "cron ran\npartial")
	h.advance(time.Minute, 10*time.Second)
	require.Equal(t, "boot 1\nboot 2\ncron ran\n", env.local(t, "acme", "acct-1", up.ID), "only complete lines")

	// Restart: the offsets are in the store, so nothing is read twice.
	h.stop()
	env.srv.Append(t, guestSyslog, " line\nafter restart\n")
	h.w = h.newWorker(h.w.cfg)
	require.NoError(t, h.w.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
	require.NoError(t, h.w.Watch("acct-1", "acme"))
	h.run(h.w)
	h.advance(2*time.Minute, 10*time.Second)
	require.Equal(t, "boot 1\nboot 2\ncron ran\npartial line\nafter restart\n", env.local(t, "acme", "acct-1", up.ID))

	remotes, _ := env.srv.Seen()
	require.NotEmpty(t, remotes)
	for _, r := range remotes {
		require.True(t, netip.MustParsePrefix("127.0.0.0/8").Contains(r), "connection from %s", r)
	}
	entries, err := os.ReadDir(filepath.Join(env.logDir, "acme", "guests", "acct-1"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the reachable running server has a directory")
}

func TestGuestLogsConfig(t *testing.T) {
	t.Parallel()
	env := newGuestLogsEnv(t)
	ok := env.config(time.Minute, "127.0.0.1:1")
	ok.Collector.Credentials = km.SSHLogins{Store: env.separateKM(t)}
	cidr := netip.MustParsePrefix("127.0.0.0/8")
	tests := []struct {
		name string
		cfg  func(c *Config)
		want string // "" = valid
	}{
		{name: "off by default", cfg: func(c *Config) {}},
		{name: "enabled", cfg: func(c *Config) { c.SourceCIDR = cidr; c.GuestLogs = ok }},
		{name: "negative interval", cfg: func(c *Config) { c.GuestLogs.Interval = -time.Second }, want: "GuestLogs.Interval"},
		{name: "no source network", cfg: func(c *Config) { c.GuestLogs = ok }, want: "SourceCIDR"},
		{name: "collector source network", cfg: func(c *Config) { c.GuestLogs = ok; c.GuestLogs.Collector.SourceCIDR = cidr }},
		{name: "no host keys", cfg: func(c *Config) {
			c.SourceCIDR = cidr
			c.GuestLogs = ok
			c.GuestLogs.Collector.HostKeys = nil
		}, want: "GuestLogs.Collector: guest: CollectorConfig.HostKeys is required"},
		{name: "no credentials", cfg: func(c *Config) {
			c.SourceCIDR = cidr
			c.GuestLogs = ok
			c.GuestLogs.Collector.Credentials = nil
		}, want: "GuestLogs.Collector.Credentials is required without a Keyring"},
		{name: "credentials from the embedded key manager", cfg: func(c *Config) {
			c.SourceCIDR = cidr
			c.GuestLogs = ok
			c.GuestLogs.Collector.Credentials = nil
			c.Keyring = env.keyring
		}},
		{name: "negative credential cache TTL", cfg: func(c *Config) { c.CredentialCacheTTL = -1 }, want: "CredentialCacheTTL"},
		{name: "bad server kind", cfg: func(c *Config) {
			c.SourceCIDR = cidr
			c.GuestLogs = ok
			c.GuestLogs.ServerKind = "Servers!"
		}, want: "GuestLogs.ServerKind"},
		{name: "publisher needs only the interval", cfg: func(c *Config) {
			c.Role = RolePublisher
			c.GuestLogs = GuestLogsConfig{Interval: time.Minute}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			tt.cfg(&c)
			err := c.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("no local address in the source network", func(t *testing.T) {
		foreign := foreignPrefix(t)
		cfg := Config{Store: sqliteConfig(t), SourceCIDR: foreign, GuestLogs: ok}
		_, err := New(context.Background(), cfg)
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, foreign.String())
		require.ErrorContains(t, err, "no address of this host is inside it")
	})
}

// foreignPrefix returns a documentation network none of this host's
// addresses is in.
func foreignPrefix(t *testing.T) netip.Prefix {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
next:
	for _, p := range []string{"203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "2001:db8:5eed::/48"} {
		pfx := netip.MustParsePrefix(p)
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && pfx.Contains(ip.Unmap()) {
					continue next
				}
			}
		}
		return pfx
	}
	t.Skip("this host has an address in every documentation network tried")
	return netip.Prefix{}
}

// TestGuestLogsSplitRolesRabbitMQMariaDB: the classic split on real services.
// The publisher process schedules the collection; the subscriber process (the
// one on the guests' network) lists the servers it polled into MariaDB and
// collects them with the key from the embedded key manager, which lives in
// the same database; outcomes go back to the publisher's schedule as
// poll.report actions.
func TestGuestLogsSplitRolesRabbitMQMariaDB(t *testing.T) {
	t.Parallel()
	url := testenv.AMQPURL(t)
	dsn := testenv.MySQLDSN(t)
	top := uniqueTopology(t, url)

	env := newGuestLogsEnv(t)
	cloudSim, err := sim.New(sim.Config{Seed: 3})
	require.NoError(t, err)
	up, err := cloudSim.AddServer("acct-9", cloud.Server{Name: "db", State: cloud.StateRunning, PrivateIPs: []string{env.srv.Addr}})
	require.NoError(t, err)
	env.srv.Write(t, guestSyslog, "first\n")
	compute, err := cloudSim.Compute()
	require.NoError(t, err)

	base := Config{
		MQ:        MQConfig{URL: url},
		Store:     persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: dsn}, Logger: discardLogger()},
		Topology:  top,
		Schedule:  poller.Config{Seed: 1, Jitter: -1, InitialSpread: -1, Budget: poller.Unlimited},
		GuestLogs: GuestLogsConfig{Interval: 500 * time.Millisecond},
	}
	run := func(w *Worker) {
		require.NoError(t, w.Register(cloud.ServerPoller{Compute: compute}, 500*time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		<-w.Running()
		t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	}

	subCfg := base
	subCfg.Role = RoleSubscriber
	subCfg.SourceCIDR = netip.MustParsePrefix("127.0.0.0/8")
	subCfg.Keyring = env.keyring
	subCfg.GuestLogs = env.config(500*time.Millisecond, "127.0.0.1:1")
	sub := newTestWorker(t, subCfg)
	env.putKey(t, sub.Credentials(), "acme", "acct-9")
	run(sub)

	pubCfg := base
	pubCfg.Role = RolePublisher
	pub := newTestWorker(t, pubCfg)
	require.Nil(t, pub.Credentials())
	require.Nil(t, pub.guests, "a publisher does not collect")
	run(pub)
	require.NoError(t, pub.Watch("acct-9", "acme"))

	require.Eventually(t, func() bool { return env.local(t, "acme", "acct-9", up.ID) == "first\n" }, 30*time.Second, 20*time.Millisecond)
	env.srv.Append(t, guestSyslog, "second\n")
	require.Eventually(t, func() bool { return env.local(t, "acme", "acct-9", up.ID) == "first\nsecond\n" }, 30*time.Second, 20*time.Millisecond)
}
