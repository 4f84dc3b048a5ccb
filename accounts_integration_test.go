package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/workertest"
)

// TestAccountLifecycle follows one account of the registry through its
// life, on SQLite and on MariaDB: put → polled; its credential rotated in
// km → the next poll is answered by a provider built with the new secret,
// with no restart; the publisher process restarted → still polled, though
// the new process never calls Put or Watch; paused → no polls; resumed →
// polled again; deleted → no polls within an interval, or after.
func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const every = time.Minute
			ctx := context.Background()
			db := b.db(t)
			kr := testKeyring(t)
			p := newProbe()
			clk := clock.NewFake(workertest.DefaultStart)
			// One process after the other on the same database.
			start := func() (*workertest.Env, *attempts) {
				env := workertest.NewEnv(t, workertest.SharedClock(clk), workertest.WithEvents(),
					workertest.WithConfig(func(c *worker.Config) {
						c.Store.Provisioning = db                                       // the test's database, shared by both processes
						c.Keyring = kr                                                  // the embedded km holds the account's secret
						c.Providers = map[string]worker.ProviderType{"probe": p.Type()} // observes the secret at the provider
					}))
				polls := newAttempts(t, env.Worker, clk.Now)
				require.NoError(t, env.Worker.Register(polls, every))
				env.Start(t)
				return env, polls
			}
			const id = "acme-prod"
			env, _ := start()

			// Put → polled.
			putSecret(t, env.Worker, "acme", id, "secret-1")
			stored, err := env.Worker.Accounts().Put(ctx, accounts.Account{ID: id, Customer: "acme", Provider: "probe", Credential: "default"})
			require.NoError(t, err)
			require.Equal(t, int64(1), stored.Revision)
			env.Advance(t, 2*every, 5*time.Second)
			require.GreaterOrEqual(t, p.Polls(id), 1, "polled within two intervals of the put")
			require.Equal(t, []probeBuild{{Account: id, Secret: "secret-1", Revision: 1}}, p.Builds(id))
			_, failing := env.Worker.AccountHealth(id)
			require.False(t, failing)

			// Rotated in km → the next poll uses the new secret.
			putSecret(t, env.Worker, "acme", id, "secret-2")
			before := p.Polls(id)
			env.Advance(t, 2*every, 5*time.Second)
			require.Greater(t, p.Polls(id), before, "still polled after the rotation")
			require.Equal(t, "secret-2", p.LastSecret(t, id))
			require.Equal(t, []string{"secret-1", "secret-2"}, secrets(p.Builds(id)), "one rebuild, for the rotation")

			// The publisher process restarts; the new one only reads the registry.
			require.NoError(t, env.Stop())
			env, _ = start()
			before = p.Polls(id)
			env.Advance(t, 2*every, 5*time.Second)
			require.Greater(t, p.Polls(id), before, "polled after the restart")
			require.Equal(t, "secret-2", p.LastSecret(t, id), "the new process reads the rotated secret from km")

			// Paused → no polls.
			require.NoError(t, env.Worker.Accounts().Pause(ctx, id, "invoice overdue"))
			before = p.Polls(id)
			env.Advance(t, 5*every, 5*time.Second)
			require.Equal(t, before, p.Polls(id), "a paused account is not polled")

			// Resumed → polled again.
			require.NoError(t, env.Worker.Accounts().Resume(ctx, id))
			env.Advance(t, 2*every, 5*time.Second)
			require.Greater(t, p.Polls(id), before, "polled again once resumed")

			// Deleted → no polls within one interval, nor after.
			require.NoError(t, env.Worker.Accounts().Delete(ctx, id, accounts.DeleteOptions{}))
			before = p.Polls(id)
			env.Advance(t, every, time.Second)
			require.Equal(t, before, p.Polls(id), "no poll within one interval of the delete")
			env.Advance(t, 5*every, 5*time.Second)
			require.Equal(t, before, p.Polls(id), "no poll after the delete")
			_, err = env.Worker.Accounts().Get(ctx, id)
			require.ErrorIs(t, err, accounts.ErrNotFound)
		})
	}
}

func secrets(bs []probeBuild) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Secret)
	}
	return out
}

// TestAccountsTwoProviderTypes: one worker polls an account on the
// built-in "sim" type and one on the built-in "vsphere" type (govmomi's
// vcsim), each with its credential in km; one of them has a secret its
// cloud refuses. The other is unaffected: it keeps its cadence and reports
// no failure. The refused one backs off (its attempts space out) and
// AccountHealth says why.
func TestAccountsTwoProviderTypes(t *testing.T) {
	t.Parallel()
	for name, refused := range map[string]string{"VSphereRefused": "vsphere", "SimRefused": "sim"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const every = time.Minute
			ctx := context.Background()
			vc := vcsimtest.New(t, vcsimtest.Options{Servers: 3})
			env := workertest.NewEnv(t, workertest.WithEvents(), workertest.WithConfig(func(c *worker.Config) {
				c.Keyring = testKeyring(t) // the embedded km holds both accounts' secrets
			}))
			polls := newAttempts(t, env.Worker, env.Clock.Now)
			require.NoError(t, env.Worker.Register(polls, every))
			env.Start(t)

			simSecret, vcPassword := "sim-secret", vcsimtest.DefaultPassword
			switch refused {
			case "sim":
				simSecret = "not-the-sim-secret"
			case "vsphere":
				vcPassword = "not-the-password"
			}
			sum := sha256.Sum256([]byte("sim-secret"))
			putSecret(t, env.Worker, "acme", "acme-sim", simSecret)
			_, err := env.Worker.Accounts().Put(ctx, accounts.Account{ID: "acme-sim", Customer: "acme", Provider: "sim",
				Settings:   json.RawMessage(fmt.Sprintf(`{"servers":2,"credential_sha256":%q}`, hex.EncodeToString(sum[:]))),
				Credential: "default"})
			require.NoError(t, err)
			require.NoError(t, env.Worker.Credentials().Put(ctx, km.Credential{
				Customer: "globex", Account: "globex-vc", Kind: km.KindCloud, Name: "default",
				Meta:   map[string]string{km.MetaUser: vcsimtest.DefaultUsername},
				Fields: map[string]km.Secret{km.FieldPassword: km.NewSecretString(vcPassword)},
			}))
			_, err = env.Worker.Accounts().Put(ctx, accounts.Account{ID: "globex-vc", Customer: "globex", Provider: "vsphere",
				Settings:   json.RawMessage(fmt.Sprintf(`{"url":%q,"insecure":true,"datacenter":"DC0"}`, "https://"+vc.Server.URL.Host+"/sdk")),
				Credential: "default"})
			require.NoError(t, err)

			env.Advance(t, 30*every, 5*time.Second)

			bad, good := "acme-sim", "globex-vc"
			goodServers := 3
			if refused == "vsphere" {
				bad, good, goodServers = good, bad, 2
			}
			// The healthy account: polled every interval, its servers stored.
			okTimes := polls.times(good)
			require.GreaterOrEqual(t, len(okTimes), 28, "about one poll a minute for 30 minutes")
			for i := 1; i < len(okTimes); i++ {
				gap := okTimes[i].Sub(okTimes[i-1])
				require.True(t, gap >= every/2 && gap <= 3*every/2, "healthy account's poll %d came %v after the last", i, gap)
			}
			_, failing := env.Worker.AccountHealth(good)
			require.False(t, failing, "the healthy account reports no failure")
			stored, err := env.Worker.Store().Resources(ctx, good, "server", "", 0)
			require.NoError(t, err)
			require.Len(t, stored, goodServers)

			// The refused account: it backs off, and says why.
			badTimes := polls.times(bad)
			require.GreaterOrEqual(t, len(badTimes), 4)
			require.Less(t, len(badTimes), len(okTimes)/2, "the refused account is tried less and less often")
			first, last := badTimes[1].Sub(badTimes[0]), badTimes[len(badTimes)-1].Sub(badTimes[len(badTimes)-2])
			require.Greater(t, last, 4*first, "its attempts space out (first gap %v, last %v)", first, last)
			h, failing := env.Worker.AccountHealth(bad)
			require.True(t, failing)
			require.Equal(t, bad, h.Account)
			require.Equal(t, len(badTimes), h.Failures, "every attempt failed")
			require.Contains(t, h.LastError, cloud.ErrAuthentication.Error())
			require.Contains(t, h.LastError, bad)
			require.False(t, h.Throttled)
			require.Equal(t, badTimes[0], h.Since)
			require.Equal(t, badTimes[len(badTimes)-1], h.LastFailure)
			stored, err = env.Worker.Store().Resources(ctx, bad, "server", "", 0)
			require.NoError(t, err)
			require.Empty(t, stored)
		})
	}
}

// handledLog is a middleware recording what each attempt of a handler
// returned, by message (action) id.
type handledLog struct {
	mu   sync.Mutex
	errs map[string][]error
}

func (l *handledLog) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		l.mu.Lock()
		if l.errs == nil {
			l.errs = map[string][]error{}
		}
		l.errs[msg.UUID] = append(l.errs[msg.UUID], err)
		l.mu.Unlock()
		return out, err
	}
}

// wait returns what the handler returned for the action's first n deliveries.
func (l *handledLog) wait(t *testing.T, id string, n int) []error {
	t.Helper()
	var errs []error
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		errs = slices.Clone(l.errs[id])
		return len(errs) >= n
	}, 10*time.Second, time.Millisecond, "action %s handled %d times", id, n)
	return errs
}

// TestAccountActionsThroughTheQueue: a dispatcher manages the registry
// with "account.put" and "account.delete" actions. A valid put is stored
// and polled; an invalid one is poisoned with a reason naming the field
// and stores nothing; a redelivered put or delete succeeds again with one
// effect: one revision, one provider build, one account.deleted event.
func TestAccountActionsThroughTheQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProbe()
	var handled handledLog
	env := workertest.NewEnv(t, workertest.WithEvents(persist.EventAccountDeleted), workertest.WithConfig(func(c *worker.Config) {
		c.Providers = map[string]worker.ProviderType{"probe": p.Type()} // observes the builds and polls
		c.Middleware = []message.HandlerMiddleware{handled.middleware}  // observes each delivery's outcome
	}))
	polls := newAttempts(t, env.Worker, env.Clock.Now)
	require.NoError(t, env.Worker.Register(polls, time.Minute))
	env.Start(t)

	const id = "acme-prod"
	put, err := worker.NewAction(worker.TypeAccountPut, accounts.Account{ID: id, Customer: "acme", Provider: "probe",
		Labels: map[string]string{"team": "ops"}})
	require.NoError(t, err)
	env.Publish(t, put)
	require.Equal(t, []error{nil}, handled.wait(t, put.ID, 1))
	a, err := env.Worker.Accounts().Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "ops", a.Labels["team"])
	require.Equal(t, int64(1), a.Revision)
	env.Advance(t, 2*time.Minute, 5*time.Second)
	require.GreaterOrEqual(t, p.Polls(id), 1, "polled after the put")

	// The same put delivered again: no error, and nothing changes.
	env.Publish(t, put)
	require.Equal(t, []error{nil, nil}, handled.wait(t, put.ID, 2))
	before := p.Polls(id)
	env.Advance(t, 2*time.Minute, 5*time.Second)
	require.Greater(t, p.Polls(id), before, "still polled")
	a, err = env.Worker.Accounts().Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(1), a.Revision, "a redelivered put writes nothing")
	require.Len(t, p.Builds(id), 1, "a redelivered put does not rebuild the provider")

	// Invalid puts are poisoned, naming the field.
	invalid := map[string]worker.Action{}
	for field, payload := range map[string]any{
		"customer":         accounts.Account{ID: "no-customer", Provider: "probe"},
		"provider":         accounts.Account{ID: "bad-provider", Customer: "acme", Provider: "nope"},
		"settings.servers": accounts.Account{ID: "bad-settings", Customer: "acme", Provider: "sim", Settings: json.RawMessage(`{"servers":-1}`)},
		"credential":       accounts.Account{ID: "no-km", Customer: "acme", Provider: "sim", Credential: "default"},
		"pasued":           json.RawMessage(`{"id":"typo","customer":"acme","pasued":true}`),
	} {
		a, err := worker.NewAction(worker.TypeAccountPut, payload)
		require.NoError(t, err)
		env.Publish(t, a)
		invalid[field] = a
	}
	var poisoned []worker.PoisonedAction
	require.Eventually(t, func() bool {
		poisoned, err = env.Worker.Poisoned(ctx, worker.PoisonQuery{})
		require.NoError(t, err)
		return len(poisoned) >= len(invalid)
	}, 10*time.Second, 5*time.Millisecond)
	require.Len(t, poisoned, len(invalid), "only the invalid puts are poisoned")
	reasons := map[string]string{}
	for _, pa := range poisoned {
		reasons[pa.Action.ID] = pa.Reason
	}
	for field, a := range invalid {
		require.Contains(t, reasons[a.ID], field, "the reason names %s", field)
		require.Equal(t, 1, poisonedAttempts(poisoned, a.ID), "poisoned at once, not retried")
	}
	page, err := env.Worker.Accounts().List(ctx, accounts.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Accounts, 1, "no invalid account was stored")

	// Delete, then the same delete again.
	del, err := worker.NewAction(worker.TypeAccountDelete, worker.AccountDelete{ID: id})
	require.NoError(t, err)
	env.Publish(t, del)
	require.Equal(t, []error{nil}, handled.wait(t, del.ID, 1))
	env.Publish(t, del)
	require.Equal(t, []error{nil, nil}, handled.wait(t, del.ID, 2))
	ev := env.Event(t, persist.EventAccountDeleted)
	require.Equal(t, id, ev.Account)
	require.Empty(t, env.Drain(t), "one account.deleted event for two deliveries")
	_, err = env.Worker.Accounts().Get(ctx, id)
	require.ErrorIs(t, err, accounts.ErrNotFound)
	before = p.Polls(id)
	env.Advance(t, 3*time.Minute, 5*time.Second)
	require.Equal(t, before, p.Polls(id), "not polled once deleted")
	poisoned, err = env.Worker.Poisoned(ctx, worker.PoisonQuery{})
	require.NoError(t, err)
	require.Len(t, poisoned, len(invalid), "the redeliveries were not poisoned")
}

func poisonedAttempts(ps []worker.PoisonedAction, id string) int {
	for _, p := range ps {
		if p.Action.ID == id {
			return p.Attempts
		}
	}
	return 0
}
