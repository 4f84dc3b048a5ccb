package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stratusworks/worker/persist"
)

// charge is the row a test handler writes as its effect.
type charge struct {
	ID    int64  `gorm:"primaryKey;autoIncrement"`
	Order string `gorm:"size:255;not null"`
}

func (charge) TableName() string { return "charges" }

// attempts is a middleware that reports every attempt's result (a panic
// too, which it passes on).
func attempts(ch chan<- error) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			defer func() {
				if r := recover(); r != nil {
					ch <- fmt.Errorf("panic: %v", r)
					panic(r)
				}
			}()
			out, err := h(msg)
			ch <- err
			return out, err
		}
	}
}

func countCharges(t *testing.T, w *Worker) int64 {
	t.Helper()
	var n int64
	require.NoError(t, w.db.DB().Model(&charge{}).Count(&n).Error)
	return n
}

// TestHandleTx: HandleTx's handler writes a row; the outcome of each
// delivery, the rows, the handler calls and the poison store are as the
// handler's result says. Defaults as shipped (a first retry ~100ms later).
func TestHandleTx(t *testing.T) {
	t.Parallel()
	errFlaky := errors.New("ledger busy")
	for _, tc := range []struct {
		name string
		// h's result on its n-th call (1-based), after it wrote its row.
		result    func(n int) error
		published int   // copies of one action (same ID and Key)
		attempts  int   // attempts seen by middleware
		calls     int32 // calls of h
		rows      int64
		poisoned  string // reason, if poisoned
	}{
		{name: "RedeliveredOnce", result: func(int) error { return nil }, published: 3, attempts: 3, calls: 1, rows: 1},
		{name: "ErrorRollsBackAndRetries", result: func(n int) error {
			if n == 1 {
				return errFlaky
			}
			return nil
		}, published: 2, attempts: 3, calls: 2, rows: 1},
		{name: "SnoozeRollsBack", result: func(n int) error {
			if n == 1 {
				return Snooze(10 * time.Millisecond)
			}
			return nil
		}, published: 1, attempts: 2, calls: 2, rows: 1},
		{name: "PermanentPoisons", result: func(int) error { return Permanent(errors.New("card declined")) },
			published: 1, attempts: 1, calls: 1, rows: 0, poisoned: "card declined"},
		{name: "PanicPoisons", result: func(int) error { panic("handler bug") },
			published: 1, attempts: 1, calls: 1, rows: 0, poisoned: "handler bug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := make(chan error, 16)
			w := newTestWorker(t, Config{
				Store:      persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()},
				Middleware: []message.HandlerMiddleware{attempts(seen)},
			})
			require.NoError(t, w.db.DB().AutoMigrate(&charge{}))
			var calls atomic.Int32
			require.NoError(t, w.HandleTx("order.charge", func(ctx context.Context, tx *gorm.DB, a Action) error {
				n := calls.Add(1)
				if err := tx.Create(&charge{Order: a.Key}).Error; err != nil {
					return err
				}
				return tc.result(int(n))
			}))
			a := Action{ID: "a-1", Type: "order.charge", Key: "order-42"}
			for range tc.published {
				require.NoError(t, w.Publish(context.Background(), a))
			}
			runWorkerUntilCleanup(t, w)
			for i := range tc.attempts {
				select {
				case <-seen:
				case <-time.After(10 * time.Second):
					t.Fatalf("attempt %d of %d did not happen", i+1, tc.attempts)
				}
			}
			// Anything more would have been an attempt too.
			select {
			case err := <-seen:
				t.Fatalf("unexpected attempt: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
			require.Equal(t, tc.calls, calls.Load(), "handler calls")
			require.Equal(t, tc.rows, countCharges(t, w), "effect rows")
			require.Eventually(t, func() bool {
				p, err := w.Poisoned(context.Background(), PoisonQuery{})
				require.NoError(t, err)
				if tc.poisoned == "" {
					return len(p) == 0
				}
				return len(p) == 1 && p[0].Action.Key == "order-42" && strings.Contains(p[0].Reason, tc.poisoned)
			}, 5*time.Second, 10*time.Millisecond)
		})
	}
}

// plainStore is a host's store without an inbox: it has only the methods
// of Store.
type plainStore struct{ Store }

// TestHandleTxNeedsInbox: HandleTx works on the built-in store and on a
// host's Storage that implements InboxStore, and otherwise says why not.
func TestHandleTxNeedsInbox(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *gorm.DB, Action) error { return nil }
	own, err := persist.Open(context.Background(), persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = own.Close() })
	for _, tc := range []struct {
		name string
		cfg  Config
		h    func(context.Context, *gorm.DB, Action) error
		want error
		msg  string
	}{
		{name: "BuiltInStore", cfg: Config{Store: persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}}}, h: h},
		{name: "HostPersistStore", cfg: Config{Storage: own}, h: h},
		{name: "HostStoreWithoutInbox", cfg: Config{Storage: plainStore{own}}, h: h, want: ErrInvalidConfig,
			msg: `HandleTx("order.charge"): Storage (worker.plainStore) does not implement worker.InboxStore`},
		{name: "Publisher", cfg: Config{Role: RolePublisher, Store: persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}}}, h: h,
			want: ErrRoleNotSupported, msg: `Handle("order.charge") on a publisher worker`},
		{name: "NilHandler", cfg: Config{Store: persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}}},
			msg: `HandleTx("order.charge"): handler func is nil`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newTestWorker(t, tc.cfg)
			err := w.HandleTx("order.charge", tc.h)
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.msg)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

// TestHandleTxNoKey: an action whose key the inbox refuses is poisoned at
// once, with the reason, without calling the handler.
func TestHandleTxNoKey(t *testing.T) {
	t.Parallel()
	own, err := persist.Open(context.Background(), persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = own.Close() })
	called := false
	o := onceHandler{inbox: own, log: discardLogger(), h: func(context.Context, *gorm.DB, Action) error { called = true; return nil }}
	err = o.Handle(context.Background(), Action{Type: "order.charge"}) // no ID, no Key: a foreign message without an id
	require.True(t, IsPermanent(err), "%v", err)
	require.ErrorIs(t, err, persist.ErrInvalid)
	require.ErrorContains(t, err, `cannot record its key in the inbox: persist: run once: key is required (got "")`)
	require.False(t, called)
}

// fakeInbox records the purges asked of it.
type fakeInbox struct {
	InboxStore
	purged []time.Time
}

func (f *fakeInbox) PurgeInbox(_ context.Context, olderThan time.Time) (int, error) {
	f.purged = append(f.purged, olderThan)
	return 0, nil
}

// TestInboxPurgeDuty: every worker with an inbox purges keys older than
// InboxRetention, or twice the retry budget when that is longer; a host
// store without an inbox has no such duty.
func TestInboxPurgeDuty(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		budget time.Duration
		keep   time.Duration
	}{
		{name: "DefaultBudget", keep: InboxRetention},
		{name: "LongBudget", budget: 5 * 24 * time.Hour, keep: 10 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inbox := &fakeInbox{}
			cfg := Config{Retry: RetryPolicy{Budget: tc.budget}}
			cfg.setDefaults()
			w := &Worker{cfg: cfg, store: struct {
				Store
				InboxStore
			}{InboxStore: inbox}, now: func() time.Time { return now }}
			ds := w.inboxDuties()
			require.Len(t, ds, 1)
			require.Equal(t, inboxPurgeEvery, ds[0].every)
			require.NoError(t, ds[0].run(context.Background()))
			require.Equal(t, []time.Time{now.Add(-tc.keep)}, inbox.purged)
		})
	}
	w := &Worker{store: plainStore{}}
	require.Empty(t, w.inboxDuties())
}
