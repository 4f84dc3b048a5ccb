package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// hostEffect is a row a host handler writes as its effect, in a table of
// the host's own.
type hostEffect struct {
	ID  int64  `gorm:"primaryKey;autoIncrement"`
	Key string `gorm:"size:255;not null"`
	By  int    `gorm:"not null"` // which caller wrote it
}

func (hostEffect) TableName() string { return "host_effects" }

// openInboxStore opens a store on b with the host's table created.
func openInboxStore(t *testing.T, b backend, clock *testClock) *Store {
	t.Helper()
	s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
	require.NoError(t, s.DB().AutoMigrate(&hostEffect{}))
	return s
}

// insertEffect is an fn that writes one effect row.
func insertEffect(key string, by int) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error { return tx.Create(&hostEffect{Key: key, By: by}).Error }
}

// TestRunOnceConcurrentDuplicates: N deliveries of one action call RunOnce
// at once. The effect is written once. When the first caller's fn fails,
// its transaction rolls back, the key stays free, and exactly one of the
// callers that waited runs fn in turn.
func TestRunOnceConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	const callers = 12
	for _, tc := range []struct {
		name      string
		failFirst bool
		wantCalls int32 // fn calls
		wantFail  int   // callers that got fn's error
	}{
		{name: "FirstCommits", wantCalls: 1},
		{name: "FirstRollsBack", failFirst: true, wantCalls: 2, wantFail: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachBackend(t, func(t *testing.T, b backend) {
				s := openInboxStore(t, b, newTestClock())
				ctx := context.Background()
				errFirst := errors.New("first attempt fails")
				var calls, ran atomic.Int32
				errs := make([]error, callers)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range callers {
					wg.Go(func() {
						<-start
						r, err := s.RunOnce(ctx, "order.charge", "order-42", func(tx *gorm.DB) error {
							n := calls.Add(1)
							if err := insertEffect("order-42", i)(tx); err != nil {
								return err
							}
							time.Sleep(50 * time.Millisecond) // hold the transaction while the others arrive
							if tc.failFirst && n == 1 {
								return errFirst
							}
							return nil
						})
						if r {
							ran.Add(1)
						}
						errs[i] = err
					})
				}
				close(start)
				wg.Wait()

				failed := 0
				for _, err := range errs {
					if err != nil {
						require.ErrorIs(t, err, errFirst)
						failed++
					}
				}
				require.Equal(t, tc.wantFail, failed)
				require.Equal(t, tc.wantCalls, calls.Load(), "fn calls")
				require.EqualValues(t, 1, ran.Load(), "callers told ran=true")
				require.EqualValues(t, 1, countRows(t, s.DB(), "host_effects"), "effect rows")
				require.EqualValues(t, 1, countRows(t, s.DB(), tblInbox), "inbox rows")
				t.Logf("%s: callers=%d fn_calls=%d ran=%d failed=%d effect_rows=1", b.name, callers, calls.Load(), ran.Load(), failed)
			})
		})
	}
}

// testError is an error type a handler defines: RunOnce's error must let
// errors.As find it (the root package relies on this for Permanent).
type testError struct{ code int }

func (e *testError) Error() string { return fmt.Sprintf("test error %d", e.code) }

// TestRunOnceEffectFails: when fn fails or panics, its writes roll back and
// the key is not recorded, so a later call runs fn; once that commits, no
// call runs fn again.
func TestRunOnceEffectFails(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openInboxStore(t, b, newTestClock())
		ctx := context.Background()

		ran, err := s.RunOnce(ctx, "order.charge", "k1", func(tx *gorm.DB) error {
			require.NoError(t, insertEffect("k1", 1)(tx))
			return fmt.Errorf("charging: %w", &testError{code: 7})
		})
		require.False(t, ran)
		var te *testError
		require.ErrorAs(t, err, &te)
		require.Equal(t, 7, te.code)
		require.ErrorContains(t, err, `persist: run once order.charge "k1": effect failed, rolled back: charging: test error 7`)
		require.EqualValues(t, 0, countRows(t, s.DB(), "host_effects"))
		require.EqualValues(t, 0, countRows(t, s.DB(), tblInbox))

		require.PanicsWithValue(t, "handler bug", func() {
			_, _ = s.RunOnce(ctx, "order.charge", "k1", func(tx *gorm.DB) error {
				require.NoError(t, insertEffect("k1", 2)(tx))
				panic("handler bug")
			})
		})
		require.EqualValues(t, 0, countRows(t, s.DB(), "host_effects"), "a panic rolls back too")
		require.EqualValues(t, 0, countRows(t, s.DB(), tblInbox))

		ran, err = s.RunOnce(ctx, "order.charge", "k1", insertEffect("k1", 3))
		require.NoError(t, err)
		require.True(t, ran, "retried later, it runs")
		ran, err = s.RunOnce(ctx, "order.charge", "k1", func(*gorm.DB) error {
			t.Error("fn called for a recorded key")
			return nil
		})
		require.NoError(t, err)
		require.False(t, ran)
		var effects []hostEffect
		require.NoError(t, s.DB().Find(&effects).Error)
		require.Len(t, effects, 1)
		require.Equal(t, 3, effects[0].By)
	})
}

// TestRunOnceRetriesConflict: an fn that runs into a conflict (a deadlock,
// a busy SQLite) is run again in a fresh transaction; the failed attempt's
// writes are gone.
func TestRunOnceRetriesConflict(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openInboxStore(t, b, newTestClock())
		calls := 0
		ran, err := s.RunOnce(context.Background(), "order.charge", "k1", func(tx *gorm.DB) error {
			calls++
			if err := insertEffect("k1", calls)(tx); err != nil {
				return err
			}
			if calls == 1 {
				return fmt.Errorf("update balance: %w", errConflict)
			}
			return nil
		})
		require.NoError(t, err)
		require.True(t, ran)
		require.Equal(t, 2, calls)
		var effects []hostEffect
		require.NoError(t, s.DB().Find(&effects).Error)
		require.Len(t, effects, 1)
		require.Equal(t, 2, effects[0].By)
	})
}

// TestRunOnceKeysAreExact: keys (and types) are compared byte for byte, and
// a key is scoped by its action type. On MySQL a VARCHAR key under
// utf8mb4_bin would make "k" and "k " one key (PAD SPACE): the second
// action would be acknowledged without its effect.
func TestRunOnceKeysAreExact(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openInboxStore(t, b, newTestClock())
		ctx := context.Background()
		longest := strings.Repeat("é", maxInboxKeyLen/2) + "x" // 255 bytes, 128 characters
		require.Len(t, longest, maxInboxKeyLen)
		for _, tc := range []struct{ typ, key string }{
			{"order.charge", "k"},
			{"order.charge", "k "},
			{"order.charge", "K"},
			{"order.charge", " k"},
			{"order.charge", "1"},
			{"order.charge", "1.0"},
			{"order.charge", "01"},
			{"order.charge", "e\u0301"}, // e + combining acute
			{"order.charge", "\u00e9"},  // é precomposed
			{"order.charge", longest},
			{"order.email", "k"}, // another type: another effect
			{"order.charge ", "k"},
		} {
			ran, err := s.RunOnce(ctx, tc.typ, tc.key, insertEffect(tc.key, 0))
			require.NoError(t, err, "%q %q", tc.typ, tc.key)
			require.True(t, ran, "%q %q is a new key", tc.typ, tc.key)
		}
		ran, err := s.RunOnce(ctx, "order.charge", longest, insertEffect(longest, 0))
		require.NoError(t, err)
		require.False(t, ran, "the longest key is recorded whole")
		require.EqualValues(t, 12, countRows(t, s.DB(), tblInbox))
	})
}

// TestRunOnceInvalid: what the inbox cannot record exactly is refused with
// ErrInvalid naming the value, and fn is not called.
func TestRunOnceInvalid(t *testing.T) {
	t.Parallel()
	s := openStore(t, Config{Provisioning: DBConfig{DSN: MemoryDSN}})
	long := strings.Repeat("k", maxInboxKeyLen+1)
	fn := func(*gorm.DB) error { t.Error("fn called"); return nil }
	for _, tc := range []struct {
		name, typ, key string
		fn             func(*gorm.DB) error
		want           string
	}{
		{name: "EmptyKey", typ: "t", key: "", fn: fn, want: `key is required (got "")`},
		{name: "LongKey", typ: "t", key: long, fn: fn, want: `key "` + long[:64] + `…" is 256 bytes, longer than 255`},
		{name: "KeyNotUTF8", typ: "t", key: "order-\xff", fn: fn, want: `key "order-\xff" is not valid UTF-8`},
		{name: "EmptyType", typ: "", key: "k", fn: fn, want: `action type is required (got "")`},
		{name: "LongType", typ: strings.Repeat("t", maxActionLen+1), key: "k", fn: fn, want: "is 129 bytes, longer than 128"},
		{name: "TypeNotUTF8", typ: "t\xfe", key: "k", fn: fn, want: `action type "t\xfe" is not valid UTF-8`},
		{name: "NilFn", typ: "t", key: "k", want: `persist: run once t "k": fn is nil`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran, err := s.RunOnce(context.Background(), tc.typ, tc.key, tc.fn)
			require.False(t, ran)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.EqualValues(t, 0, countRows(t, s.DB(), tblInbox))
}

// TestRunOnceUnavailable: a database that went away fails RunOnce with
// ErrUnavailable, classified as every store error is; fn is not called.
func TestRunOnceUnavailable(t *testing.T) {
	t.Parallel()
	proxy, mc := proxiedMySQL(t)
	s := openStore(t, Config{Provisioning: DBConfig{Driver: MySQL, DSN: mc.FormatDSN()}})
	ctx := context.Background()
	ran, err := s.RunOnce(ctx, "t", "before", func(*gorm.DB) error { return nil })
	require.NoError(t, err)
	require.True(t, ran)

	proxy.down()
	ran, err = s.RunOnce(ctx, "t", "during", func(*gorm.DB) error { t.Error("fn called"); return nil })
	require.False(t, ran)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, `persist: run once t "during": `)
}

// TestPurgeInbox: only records made before the cutoff go, in batches; a
// purged key is free again.
func TestPurgeInbox(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openInboxStore(t, b, clock)
		s.purgeBatch = 2
		ctx := context.Background()
		record := func(at time.Time, key string) {
			clock.Set(at)
			ran, err := s.RunOnce(ctx, "t", key, insertEffect(key, 0))
			require.NoError(t, err)
			require.True(t, ran)
		}
		for i := range 5 {
			record(t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("old-%d", i))
		}
		cutoff := t0.Add(time.Hour)
		record(cutoff, "at-cutoff")
		record(cutoff.Add(time.Microsecond), "new")

		n, err := s.PurgeInbox(ctx, cutoff)
		require.NoError(t, err)
		require.Equal(t, 5, n, "the five older records, over three batches")
		var left []string
		require.NoError(t, s.DB().Model(&inboxRow{}).Order("id").Pluck("idempotency_key", &left).Error)
		require.Equal(t, []string{"at-cutoff", "new"}, left)

		n, err = s.PurgeInbox(ctx, cutoff)
		require.NoError(t, err)
		require.Zero(t, n, "nothing more to purge")

		ran, err := s.RunOnce(ctx, "t", "old-0", insertEffect("old-0", 1))
		require.NoError(t, err)
		require.True(t, ran, "a purged key runs again")
		ran, err = s.RunOnce(ctx, "t", "new", insertEffect("new", 1))
		require.NoError(t, err)
		require.False(t, ran)
	})
}
