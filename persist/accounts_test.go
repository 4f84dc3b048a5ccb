package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/state"
)

func TestAccounts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()

		in := accounts.Account{ID: "acme-prod", Customer: "acme", Provider: "sim", Settings: json.RawMessage(`{"region":"eu-1"}`),
			Credential: "default", Intervals: map[string]time.Duration{"firewall": 5 * time.Second},
			Labels: map[string]string{"team": "ops"}, Revision: 0}
		a, err := s.PutAccount(ctx, in)
		require.NoError(t, err)
		want := in
		want.CreatedAt, want.UpdatedAt, want.Revision = t0, t0, 1
		require.Equal(t, want, a)
		got, err := s.Account(ctx, "acme-prod")
		require.NoError(t, err)
		require.Equal(t, want, got)

		// Replacing keeps CreatedAt and counts the revision.
		clock.Set(t0.Add(time.Minute))
		in.Paused, in.PausedReason, in.Intervals = true, "maintenance", nil
		a, err = s.PutAccount(ctx, in)
		require.NoError(t, err)
		require.Equal(t, int64(2), a.Revision)
		require.Equal(t, t0, a.CreatedAt)
		require.Equal(t, t0.Add(time.Minute), a.UpdatedAt)
		require.True(t, a.Paused)
		require.Nil(t, a.Intervals)

		// A conditional write on an old revision is refused.
		stale := a
		stale.Revision = 1
		_, err = s.PutAccount(ctx, stale)
		require.ErrorIs(t, err, accounts.ErrConflict)
		a.Paused = false
		a, err = s.PutAccount(ctx, a)
		require.NoError(t, err)
		require.Equal(t, int64(3), a.Revision)
		missing := accounts.Account{ID: "nobody", Customer: "c", Revision: 4}
		_, err = s.PutAccount(ctx, missing)
		require.ErrorIs(t, err, accounts.ErrNotFound)

		_, err = s.Account(ctx, "nobody")
		require.ErrorIs(t, err, accounts.ErrNotFound)
		require.ErrorIs(t, err, ErrNotFound)

		// Invalid accounts never reach the table.
		_, err = s.PutAccount(ctx, accounts.Account{ID: " x", Customer: "c"})
		require.ErrorIs(t, err, accounts.ErrInvalid)
	})
}

// TestAccountIDsAreBytes: look-alike ids are other accounts on every engine.
func TestAccountIDsAreBytes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		_, err := s.PutAccount(ctx, accounts.Account{ID: "acme", Customer: "acme"})
		require.NoError(t, err)
		for _, id := range []string{"ACME", "Acme", "acmé"} {
			_, err := s.Account(ctx, id)
			require.ErrorIs(t, err, accounts.ErrNotFound, "%q", id)
			_, err = s.DeleteAccount(ctx, id, true)
			require.ErrorIs(t, err, accounts.ErrNotFound, "%q", id)
			a, err := s.PutAccount(ctx, accounts.Account{ID: id, Customer: "mallory"})
			require.NoError(t, err, "%q", id)
			require.Equal(t, int64(1), a.Revision, "%q is a new account", id)
		}
		a, err := s.Account(ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, "acme", a.Customer)
		require.Equal(t, int64(1), a.Revision)
		// On MySQL an index lookup with a trailing space would match under
		// PAD SPACE; VARBINARY does not.
		for _, id := range []string{"acme ", "acme\u00a0", " acme"} {
			_, err = s.Account(ctx, id)
			require.ErrorIs(t, err, accounts.ErrNotFound, "%q", id)
			_, err = s.DeleteAccount(ctx, id, true)
			require.ErrorIs(t, err, accounts.ErrNotFound, "%q", id)
		}
	})
}

func TestAccountsListAndChanges(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()
		for i := range 25 {
			_, err := s.PutAccount(ctx, accounts.Account{ID: fmt.Sprintf("a%02d", i), Customer: "c"})
			require.NoError(t, err)
		}
		var ids []string
		for after := ""; ; {
			page, err := s.Accounts(ctx, after, 10)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			for _, a := range page {
				ids = append(ids, a.ID)
			}
			after = page[len(page)-1].ID
		}
		require.Len(t, ids, 25)
		require.Equal(t, "a00", ids[0])
		require.Equal(t, "a24", ids[24])

		// Changes: all 25 at t0, in id order; then one deletion later. A
		// publisher that has seen nothing reads from before the zero time
		// (its cursor less the lookback): not a year MySQL takes.
		ch, err := s.AccountChanges(ctx, time.Time{}, "", 100)
		require.NoError(t, err)
		require.Len(t, ch, 25)
		ch, err = s.AccountChanges(ctx, time.Time{}.Add(-time.Minute), "", 100)
		require.NoError(t, err)
		require.Len(t, ch, 25)
		ch, err = s.AccountChanges(ctx, t0, "a20", 100)
		require.NoError(t, err)
		require.Len(t, ch, 4)
		clock.Set(t0.Add(time.Second))
		del, err := s.DeleteAccount(ctx, "a03", false)
		require.NoError(t, err)
		require.True(t, del.Deleted())
		require.Equal(t, int64(2), del.Revision)
		ch, err = s.AccountChanges(ctx, t0, "a24", 100)
		require.NoError(t, err)
		require.Len(t, ch, 1)
		require.Equal(t, "a03", ch[0].ID)
		require.True(t, ch[0].Deleted())
		page, err := s.Accounts(ctx, "", 100)
		require.NoError(t, err)
		require.Len(t, page, 24)
		_, err = s.DeleteAccount(ctx, "a03", false)
		require.ErrorIs(t, err, accounts.ErrNotFound)

		// Putting it again creates it anew.
		clock.Set(t0.Add(2 * time.Second))
		a, err := s.PutAccount(ctx, accounts.Account{ID: "a03", Customer: "c2"})
		require.NoError(t, err)
		require.Equal(t, int64(3), a.Revision)
		require.Equal(t, t0.Add(2*time.Second), a.CreatedAt)
		require.False(t, a.Deleted())
	})
}

func TestDeleteAccountEventAndPurge(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		for _, id := range []string{"keep", "purge", "other"} {
			_, err := s.PutAccount(ctx, accounts.Account{ID: id, Customer: "c"})
			require.NoError(t, err)
			_, err = s.Save(ctx, state.Target{Kind: "server", Account: id, Customer: "c"},
				state.Snapshot{Complete: true, Observations: []state.Observation{{Kind: "server", ID: "vm-1", Attributes: json.RawMessage(`{"state":"RUNNING"}`)}}})
			require.NoError(t, err)
		}
		before, err := s.PendingEvents(ctx, 1000)
		require.NoError(t, err)
		require.NoError(t, s.MarkEventsSent(ctx, eventIDs(before)...))

		_, err = s.DeleteAccount(ctx, "keep", false)
		require.NoError(t, err)
		_, err = s.DeleteAccount(ctx, "purge", true)
		require.NoError(t, err)

		evs, err := s.PendingEvents(ctx, 100)
		require.NoError(t, err)
		require.Len(t, evs, 2)
		for i, id := range []string{"keep", "purge"} {
			require.Equal(t, EventAccountDeleted, evs[i].Type)
			require.Equal(t, id, evs[i].Account)
			var a accounts.Account
			require.NoError(t, json.Unmarshal(evs[i].Payload, &a))
			require.Equal(t, id, a.ID)
			require.True(t, a.Deleted())
		}
		for id, n := range map[string]int{"keep": 1, "purge": 0, "other": 1} {
			rs, err := s.Resources(ctx, id, "server", "", 10)
			require.NoError(t, err)
			require.Len(t, rs, n, id)
		}
	})
}

// TestPutAccountConcurrent: concurrent conditional writers of one account:
// exactly one wins each revision, none is lost.
func TestPutAccountConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		a, err := s.PutAccount(ctx, accounts.Account{ID: "shared", Customer: "c"})
		require.NoError(t, err)
		const writers = 8
		var wg sync.WaitGroup
		wins := make(chan int64, writers)
		for i := range writers {
			wg.Go(func() {
				mine := a
				mine.Labels = map[string]string{"writer": fmt.Sprint(i)}
				got, err := s.PutAccount(ctx, mine)
				if err == nil {
					wins <- got.Revision
					return
				}
				require.ErrorIs(t, err, accounts.ErrConflict)
			})
		}
		wg.Wait()
		close(wins)
		require.Len(t, wins, 1, "one conditional write of revision 1 wins")
		require.Equal(t, int64(2), <-wins)
	})
}

// BenchmarkAccountSync measures what following the registry costs a
// publisher: one read of the change feed (the last minute) when nothing
// changed, with 1,000 accounts in the registry — the query each publisher
// runs every AccountSyncInterval — next to a full listing of them, which
// the change feed saves.
func BenchmarkAccountSync(b *testing.B) {
	for _, bk := range backends {
		if bk.name == "SQLiteMemory" {
			continue
		}
		b.Run(bk.name, func(b *testing.B) {
			clock := newTestClock()
			s, err := Open(context.Background(), Config{Provisioning: bk.db(b), Now: clock.Now,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(b, err)
			b.Cleanup(func() { _ = s.Close() })
			ctx := context.Background()
			for i := range 1000 {
				_, err := s.PutAccount(ctx, accounts.Account{ID: fmt.Sprintf("acct-%04d", i), Customer: "c"})
				require.NoError(b, err)
			}
			clock.Set(t0.Add(time.Hour))
			b.Run("ChangeFeedIdle", func(b *testing.B) {
				for b.Loop() {
					ch, err := s.AccountChanges(ctx, clock.Now().Add(-time.Minute), "", 500)
					if err != nil || len(ch) != 0 {
						b.Fatal(err, len(ch))
					}
				}
			})
			b.Run("FullList", func(b *testing.B) {
				for b.Loop() {
					n := 0
					for after := ""; ; {
						page, err := s.Accounts(ctx, after, 500)
						if err != nil {
							b.Fatal(err)
						}
						n += len(page)
						if len(page) < 500 {
							break
						}
						after = page[len(page)-1].ID
					}
					if n != 1000 {
						b.Fatal(n)
					}
				}
			})
		})
	}
}
