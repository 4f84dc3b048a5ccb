package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/clock"
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

