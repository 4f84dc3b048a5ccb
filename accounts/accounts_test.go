package accounts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
)

// TestValidate: every rule of Account.Validate refuses with an error that
// matches ErrInvalid and names the field.
func TestValidate(t *testing.T) {
	t.Parallel()
	ok := accounts.Account{ID: "acme-prod", Customer: "acme"}
	require.NoError(t, ok.Validate())
	full := accounts.Account{ID: "acme-prod", Customer: "acme", Provider: "vsphere", Settings: json.RawMessage(`{"url":"https://vc"}`),
		Credential: "default", Paused: true, PausedReason: "maintenance", Intervals: map[string]time.Duration{"server": time.Minute},
		Labels: map[string]string{"team": "ops"}}
	require.NoError(t, full.Validate())

	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	manyIntervals := map[string]time.Duration{}
	for i := range accounts.MaxIntervals + 1 {
		manyIntervals[fmt.Sprintf("k%d", i)] = time.Minute
	}
	for _, tc := range []struct {
		name  string
		edit  func(*accounts.Account)
		field string
	}{
		{"IDRequired", func(a *accounts.Account) { a.ID = "" }, "id"},
		{"IDTooLong", func(a *accounts.Account) { a.ID = strings.Repeat("a", accounts.MaxIDLen+1) }, "id"},
		{"IDNotUTF8", func(a *accounts.Account) { a.ID = "acme\xff" }, "id"},
		{"IDControl", func(a *accounts.Account) { a.ID = "acme\nprod" }, "id"},
		{"IDSpace", func(a *accounts.Account) { a.ID = "acme " }, "id"},
		{"CustomerRequired", func(a *accounts.Account) { a.Customer = "" }, "customer"},
		{"CustomerTooLong", func(a *accounts.Account) { a.Customer = strings.Repeat("c", accounts.MaxCustomerLen+1) }, "customer"},
		{"ProviderToken", func(a *accounts.Account) { a.Provider = "vSphere" }, "provider"},
		{"ProviderTooLong", func(a *accounts.Account) { a.Provider = strings.Repeat("p", accounts.MaxProviderLen+1) }, "provider"},
		{"SettingsNotJSON", func(a *accounts.Account) { a.Settings = json.RawMessage(`{`) }, "settings"},
		{"SettingsNotObject", func(a *accounts.Account) { a.Settings = json.RawMessage(`[1]`) }, "settings"},
		{"SettingsTooLarge", func(a *accounts.Account) {
			a.Settings = json.RawMessage(`{"x":"` + strings.Repeat("x", accounts.MaxSettingsBytes) + `"}`)
		}, "settings"},
		{"SettingsSecret", func(a *accounts.Account) { a.Settings = json.RawMessage(`{"password":"hunter2"}`) }, "settings.password"},
		{"SettingsAPIKey", func(a *accounts.Account) { a.Settings = json.RawMessage(`{"api_key":"k"}`) }, "settings.api_key"},
		{"CredentialTooLong", func(a *accounts.Account) { a.Credential = strings.Repeat("c", accounts.MaxCredentialLen+1) }, "credential"},
		{"CredentialSpace", func(a *accounts.Account) { a.Credential = " default" }, "credential"},
		{"PausedReasonTooLong", func(a *accounts.Account) { a.PausedReason = strings.Repeat("r", accounts.MaxPausedReason+1) }, "paused_reason"},
		{"PausedReasonNotUTF8", func(a *accounts.Account) { a.PausedReason = "\xff" }, "paused_reason"},
		{"IntervalsTooMany", func(a *accounts.Account) { a.Intervals = manyIntervals }, "intervals"},
		{"IntervalKind", func(a *accounts.Account) { a.Intervals = map[string]time.Duration{"Server": time.Minute} }, "intervals"},
		{"IntervalTooShort", func(a *accounts.Account) { a.Intervals = map[string]time.Duration{"server": time.Millisecond} }, "intervals.server"},
		{"IntervalTooLong", func(a *accounts.Account) {
			a.Intervals = map[string]time.Duration{"server": accounts.MaxIntervalLength + time.Second}
		}, "intervals.server"},
		{"LabelsTooMany", func(a *accounts.Account) { a.Labels = many(accounts.MaxLabels + 1) }, "labels"},
		{"LabelKey", func(a *accounts.Account) { a.Labels = map[string]string{"Team": "ops"} }, "labels"},
		{"LabelValueTooLong", func(a *accounts.Account) {
			a.Labels = map[string]string{"team": strings.Repeat("v", accounts.MaxLabelValueLen+1)}
		}, "labels.team"},
		{"LabelValueControl", func(a *accounts.Account) { a.Labels = map[string]string{"team": "o\tps"} }, "labels.team"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := full.Clone()
			tc.edit(&a)
			err := a.Validate()
			require.ErrorIs(t, err, accounts.ErrInvalid)
			var fe *accounts.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, err.Error(), tc.field+" ")
			require.LessOrEqual(t, len(fe.Value), 64, "the value is shortened in the error")
		})
	}
}

// TestAccountJSON: intervals travel as duration strings, a round trip is
// lossless, and unknown fields and bad durations are refused naming them.
func TestAccountJSON(t *testing.T) {
	t.Parallel()
	in := accounts.Account{ID: "acme-prod", Customer: "acme", Provider: "sim", Settings: json.RawMessage(`{"servers":3}`),
		Credential: "default", Paused: true, PausedReason: "maintenance",
		Intervals: map[string]time.Duration{"server": 90 * time.Second, "firewall": time.Hour},
		Labels:    map[string]string{"team": "ops"}, Revision: 7,
		CreatedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 1, 6, 9, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Equal(t, map[string]any{"server": "1m30s", "firewall": "1h0m0s"}, raw["intervals"])
	require.NotContains(t, raw, "deleted_at", "a zero time is left out")

	var out accounts.Account
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, in, out)

	// Hand-written durations.
	require.NoError(t, json.Unmarshal([]byte(`{"id":"a","customer":"c","intervals":{"server":"5s"}}`), &out))
	require.Equal(t, map[string]time.Duration{"server": 5 * time.Second}, out.Intervals)

	err = json.Unmarshal([]byte(`{"id":"a","customer":"c","pasued":true}`), &out)
	require.ErrorIs(t, err, accounts.ErrInvalid)
	require.Contains(t, err.Error(), "pasued")

	err = json.Unmarshal([]byte(`{"id":"a","customer":"c","intervals":{"server":"often"}}`), &out)
	require.ErrorIs(t, err, accounts.ErrInvalid)
	var fe *accounts.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "intervals.server", fe.Field)
	require.Equal(t, "often", fe.Value)
}

// forEachStore runs f on a registry over persist on SQLite and on MariaDB.
func forEachStore(t *testing.T, f func(t *testing.T, r *accounts.Registry, changed *[]accounts.Account)) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) persist.DBConfig
	}{
		{"SQLite", func(t *testing.T) persist.DBConfig {
			return persist.DBConfig{DSN: filepath.Join(t.TempDir(), "worker.db")}
		}},
		{"MariaDB", func(t *testing.T) persist.DBConfig {
			return persist.DBConfig{Driver: persist.MySQL, DSN: testenv.MySQLDSN(t)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := persist.Open(context.Background(), persist.Config{Provisioning: tc.db(t), Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			var changed []accounts.Account
			r, err := accounts.New(accounts.Config{Store: s, Changed: func(a accounts.Account) { changed = append(changed, a) }})
			require.NoError(t, err)
			f(t, r, &changed)
		})
	}
}

func TestRegistryList(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, r *accounts.Registry, _ *[]accounts.Account) {
		ctx := context.Background()
		const n = 25
		for i := range n {
			_, err := r.Put(ctx, accounts.Account{ID: fmt.Sprintf("acct-%03d", i), Customer: "acme"})
			require.NoError(t, err)
		}
		require.NoError(t, r.Delete(ctx, "acct-007", accounts.DeleteOptions{}))

		var ids []string
		pages := 0
		for after := ""; ; {
			p, err := r.List(ctx, accounts.ListOptions{After: after, Limit: 10})
			require.NoError(t, err)
			pages++
			require.LessOrEqual(t, len(p.Accounts), 10)
			for _, a := range p.Accounts {
				ids = append(ids, a.ID)
			}
			if p.Next == "" {
				break
			}
			require.Equal(t, p.Accounts[len(p.Accounts)-1].ID, p.Next)
			after = p.Next
		}
		require.Equal(t, 3, pages, "24 live accounts in pages of 10")
		require.Len(t, ids, n-1)
		require.NotContains(t, ids, "acct-007", "deleted accounts are not listed")
		require.IsIncreasing(t, ids)

		// Exactly one full page: no Next.
		p, err := r.List(ctx, accounts.ListOptions{Limit: n - 1})
		require.NoError(t, err)
		require.Len(t, p.Accounts, n-1)
		require.Empty(t, p.Next)
		// The default limit is 100.
		p, err = r.List(ctx, accounts.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Accounts, n-1)

		for _, bad := range []int{-1, 1001} {
			_, err = r.List(ctx, accounts.ListOptions{Limit: bad})
			require.ErrorIs(t, err, accounts.ErrInvalid)
			require.Contains(t, err.Error(), "limit")
		}
	})
}

func TestRegistryPauseResume(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, r *accounts.Registry, changed *[]accounts.Account) {
		ctx := context.Background()
		_, err := r.Put(ctx, accounts.Account{ID: "acme-prod", Customer: "acme"})
		require.NoError(t, err)

		require.NoError(t, r.Pause(ctx, "acme-prod", "invoice overdue"))
		a, err := r.Get(ctx, "acme-prod")
		require.NoError(t, err)
		require.True(t, a.Paused)
		require.Equal(t, "invoice overdue", a.PausedReason)
		require.Equal(t, int64(2), a.Revision)

		require.NoError(t, r.Pause(ctx, "acme-prod", "invoice overdue"), "pausing again is a no-op")
		a, err = r.Get(ctx, "acme-prod")
		require.NoError(t, err)
		require.Equal(t, int64(2), a.Revision, "no write for a no-op pause")

		require.NoError(t, r.Resume(ctx, "acme-prod"))
		require.NoError(t, r.Resume(ctx, "acme-prod"), "resuming again is a no-op")
		a, err = r.Get(ctx, "acme-prod")
		require.NoError(t, err)
		require.False(t, a.Paused)
		require.Empty(t, a.PausedReason)
		require.Equal(t, int64(3), a.Revision)

		// Changed saw every write, and only writes.
		var revs []int64
		for _, c := range *changed {
			revs = append(revs, c.Revision)
		}
		require.Equal(t, []int64{1, 2, 3}, revs)

		require.ErrorIs(t, r.Pause(ctx, "nobody", "x"), accounts.ErrNotFound)
		require.ErrorIs(t, r.Resume(ctx, "nobody"), accounts.ErrNotFound)
		require.ErrorIs(t, r.Pause(ctx, "acme-prod", strings.Repeat("r", accounts.MaxPausedReason+1)), accounts.ErrInvalid)
	})
}

func TestRegistryConflict(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, r *accounts.Registry, _ *[]accounts.Account) {
		ctx := context.Background()
		a, err := r.Put(ctx, accounts.Account{ID: "acme-prod", Customer: "acme"})
		require.NoError(t, err)
		require.Equal(t, int64(1), a.Revision)

		// Two writers read revision 1; the first write wins.
		first, second := a, a
		first.Labels = map[string]string{"by": "first"}
		second.Labels = map[string]string{"by": "second"}
		won, err := r.Put(ctx, first)
		require.NoError(t, err)
		require.Equal(t, int64(2), won.Revision)
		_, err = r.Put(ctx, second)
		require.ErrorIs(t, err, accounts.ErrConflict)
		got, err := r.Get(ctx, "acme-prod")
		require.NoError(t, err)
		require.Equal(t, "first", got.Labels["by"])
		require.Equal(t, int64(2), got.Revision)

		// A conditional put of a deleted account finds nothing.
		require.NoError(t, r.Delete(ctx, "acme-prod", accounts.DeleteOptions{}))
		_, err = r.Put(ctx, got)
		require.ErrorIs(t, err, accounts.ErrNotFound)
		_, err = r.Get(ctx, "acme-prod")
		require.ErrorIs(t, err, accounts.ErrNotFound)
		require.ErrorIs(t, r.Delete(ctx, "acme-prod", accounts.DeleteOptions{}), accounts.ErrNotFound)

		// An invalid account is refused before the store.
		_, err = r.Put(ctx, accounts.Account{ID: "x"})
		require.True(t, errors.Is(err, accounts.ErrInvalid))
	})
}
