package worker_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// probe is a provider type for tests of the account registry: each build
// (a call of its New) is a simulated cloud of its own that records the
// secret (km.FieldSecretKey) it was built with, and every ListServers call
// records which build answered it. That is how a test sees, at the
// provider, which credential a poll used.
type probe struct {
	mu     sync.Mutex
	builds []probeBuild
	calls  map[string][]int // account -> the build that answered each ListServers, in order
}

type probeBuild struct {
	Account, Secret string
	Revision        int64 // the account's revision it was built from
}

func newProbe() *probe { return &probe{calls: map[string][]int{}} }

// Type is the probe as a worker.ProviderType.
func (p *probe) Type() worker.ProviderType {
	return worker.ProviderType{New: func(_ context.Context, a accounts.Account, cred *km.Credential) (cloud.Provider, error) {
		var secret string
		if cred != nil {
			b := cred.Field(km.FieldSecretKey).Reveal()
			secret = string(b)
			clear(b)
		}
		c, err := sim.New(sim.Config{})
		if err != nil {
			return nil, err
		}
		if err := c.AddAccount(a.ID); err != nil {
			return nil, err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.builds = append(p.builds, probeBuild{Account: a.ID, Secret: secret, Revision: a.Revision})
		return probeProvider{Cloud: c, p: p, build: len(p.builds) - 1}, nil
	}}
}

// Polls is how many ListServers calls the account's providers answered.
func (p *probe) Polls(account string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls[account])
}

// Builds are the account's builds, oldest first.
func (p *probe) Builds(account string) []probeBuild {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []probeBuild
	for _, b := range p.builds {
		if b.Account == account {
			out = append(out, b)
		}
	}
	return out
}

// LastSecret is the secret of the build that answered the account's last
// ListServers call.
func (p *probe) LastSecret(t *testing.T, account string) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	calls := p.calls[account]
	require.NotEmpty(t, calls, "account %s was never polled", account)
	return p.builds[calls[len(calls)-1]].Secret
}

type probeProvider struct {
	*sim.Cloud
	p     *probe
	build int
}

func (pp probeProvider) Compute() (cloud.Compute, error) {
	c, err := pp.Cloud.Compute()
	return probeCompute{Compute: c, pp: pp}, err
}

type probeCompute struct {
	cloud.Compute
	pp probeProvider
}

func (c probeCompute) ListServers(ctx context.Context, account string, o cloud.ListOptions) (cloud.ServerPage, error) {
	c.pp.p.mu.Lock()
	c.pp.p.calls[account] = append(c.pp.p.calls[account], c.pp.build)
	c.pp.p.mu.Unlock()
	return c.Compute.ListServers(ctx, account, o)
}

// attempts is the server poller on Worker.Cloud, recording the time (on
// the test's clock) of every poll attempt per account, failed ones too.
type attempts struct {
	cloud.ServerPoller
	now func() time.Time

	mu sync.Mutex
	at map[string][]time.Time
}

func newAttempts(t *testing.T, w *worker.Worker, now func() time.Time) *attempts {
	compute, err := w.Cloud().Compute()
	require.NoError(t, err)
	return &attempts{ServerPoller: cloud.ServerPoller{Compute: compute}, now: now, at: map[string][]time.Time{}}
}

func (p *attempts) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	if cursor == "" {
		p.mu.Lock()
		p.at[t.Account] = append(p.at[t.Account], p.now())
		p.mu.Unlock()
	}
	return p.ServerPoller.Poll(ctx, t, cursor)
}

func (p *attempts) times(account string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.at[account]...)
}

// testKeyring is the embedded key manager's master key for a test.
func testKeyring(t *testing.T) *km.Keyring {
	kr, err := km.NewKeyring(km.MasterKey{ID: "test", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{0x42}, 32))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = kr.Close() })
	return kr
}

// backends are the provisioning databases the registry is tested on: a
// SQLite file and a MariaDB database of the test's own (skipped, saying
// why, when WORKER_TEST_MYSQL_DSN is unset).
var backends = []struct {
	name string
	db   func(t *testing.T) persist.DBConfig
}{
	{"SQLite", func(t *testing.T) persist.DBConfig {
		return persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}
	}},
	{"MariaDB", func(t *testing.T) persist.DBConfig {
		return persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}
	}},
}

// putSecret stores (or rotates) the account's "default" cloud credential.
func putSecret(t *testing.T, w *worker.Worker, customer, account, secret string) {
	t.Helper()
	require.NoError(t, w.Credentials().Put(context.Background(), km.Credential{
		Customer: customer, Account: account, Kind: km.KindCloud, Name: "default",
		Fields: map[string]km.Secret{km.FieldSecretKey: km.NewSecretString(secret)},
	}))
}
