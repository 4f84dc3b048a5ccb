package persist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestPoison(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()

		msgs := []Parked{
			{MessageUUID: "m-1", Topic: "actions", ActionType: "server.launch", Metadata: map[string]string{"correlation_id": "c-1"},
				Payload: []byte(`{"size":"m1"}`), Reason: "quota exceeded", Attempts: 5, FailedAt: t0},
			{MessageUUID: "m-2", Topic: "actions", ActionType: "server.launch", Payload: []byte{0, 1, 2, 255}, Reason: "bad payload", Attempts: 1,
				FailedAt: t0.Add(time.Minute)},
			{MessageUUID: "m-3", Topic: "polls", ActionType: "poll", Reason: "panic", Attempts: 3}, // FailedAt: now
		}
		clock.Set(t0.Add(time.Hour + 500*time.Microsecond))
		for _, m := range msgs {
			require.NoError(t, s.AddPoison(ctx, m))
		}

		list, err := s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Len(t, list, 3)
		require.Equal(t, []string{"m-3", "m-2", "m-1"}, uuids(list), "newest failure first")
		for i := range list {
			require.NotZero(t, list[i].ID)
		}
		want := msgs[0]
		want.ID = list[2].ID
		require.Equal(t, want, list[2], "round trip")
		require.Equal(t, []byte{0, 1, 2, 255}, list[1].Payload)
		require.Nil(t, list[1].Metadata)
		require.Equal(t, t0.Add(time.Hour+500*time.Microsecond), list[0].FailedAt)
		require.Nil(t, list[0].Payload)

		got, err := s.GetPoison(ctx, list[2].ID)
		require.NoError(t, err)
		require.Equal(t, want, got)
		_, err = s.GetPoison(ctx, 987654)
		require.ErrorIs(t, err, ErrNotFound)

		limited, err := s.ListPoison(ctx, PoisonFilter{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, []string{"m-3", "m-2"}, uuids(limited))

		clock.Set(t0.Add(2 * time.Hour))
		require.NoError(t, s.MarkPoisonReplayed(ctx, list[2].ID, list[1].ID, 987654))
		require.NoError(t, s.MarkPoisonReplayed(ctx))
		list, err = s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"m-3"}, uuids(list))
		all, err := s.ListPoison(ctx, PoisonFilter{IncludeReplayed: true})
		require.NoError(t, err)
		require.Equal(t, []string{"m-3", "m-2", "m-1"}, uuids(all))
		require.NotNil(t, all[2].ReplayedAt)
		require.Equal(t, t0.Add(2*time.Hour), *all[2].ReplayedAt)
		m1ID := all[2].ID

		// The replayed message fails again: same row, new reason, listed again.
		again := msgs[0]
		again.Reason, again.Attempts, again.FailedAt = "still over quota", 7, t0.Add(3*time.Hour)
		require.NoError(t, s.AddPoison(ctx, again))
		got, err = s.GetPoison(ctx, m1ID)
		require.NoError(t, err)
		require.Equal(t, "still over quota", got.Reason)
		require.Equal(t, 7, got.Attempts)
		require.Equal(t, t0.Add(3*time.Hour), got.FailedAt)
		require.Nil(t, got.ReplayedAt)
		list, err = s.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"m-1", "m-3"}, uuids(list))
		require.Equal(t, m1ID, list[0].ID)

		err = s.AddPoison(ctx, Parked{Topic: "x"})
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorContains(t, err, "MessageUUID is required")
	})
}

func uuids(ps []Parked) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.MessageUUID
	}
	return out
}

// TestPoisonBadInput: AddPoison stores every message, whatever it contains,
// once, in a bounded and valid form that still shows what was wrong.
func TestPoisonBadInput(t *testing.T) {
	t.Parallel()
	mib := func(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n<<16) }
	many := map[string]string{}
	for i := range 3000 {
		many[fmt.Sprintf("key-%04d", i)] = strings.Repeat("v", 40)
	}
	tests := []struct {
		name      string
		p         Parked
		mysqlOnly bool                           // too large to be worth it on every backend
		check     func(t *testing.T, got Parked) // beyond the bounds every case meets
	}{
		{name: "LongID", p: Parked{MessageUUID: strings.Repeat("a", 300)}, check: func(t *testing.T, got Parked) {
			sum := sha256.Sum256([]byte(strings.Repeat("a", 300)))
			require.Equal(t, strings.Repeat("a", maxUUIDLen-65)+"~"+hex.EncodeToString(sum[:]), got.MessageUUID)
		}},
		{name: "LongMultibyteID", p: Parked{MessageUUID: strings.Repeat("é", 150)}, check: func(t *testing.T, got Parked) {
			require.True(t, strings.HasPrefix(got.MessageUUID, strings.Repeat("é", 63)+"~"), got.MessageUUID)
		}},
		{name: "IDInvalidUTF8", p: Parked{MessageUUID: "m-\xff\xfe-1"}, check: func(t *testing.T, got Parked) {
			require.Equal(t, `m-\xff\xfe-1`, got.MessageUUID)
		}},
		{name: "TypeInvalidUTF8", p: Parked{MessageUUID: "m", ActionType: "server.\xc3launch"}, check: func(t *testing.T, got Parked) {
			require.Equal(t, `server.\xc3launch`, got.ActionType)
		}},
		{name: "TypeNUL", p: Parked{MessageUUID: "m", ActionType: "server\x00launch"}, check: func(t *testing.T, got Parked) {
			require.Equal(t, `server\x00launch`, got.ActionType)
		}},
		{name: "LongType", p: Parked{MessageUUID: "m", ActionType: strings.Repeat("t", 500)}},
		{name: "TopicInvalidAndLong", p: Parked{MessageUUID: "m", Topic: strings.Repeat("q\xff", 200)}},
		{name: "MetadataKeyInvalid", p: Parked{MessageUUID: "m", Metadata: map[string]string{"k\xff": "v"}}, check: func(t *testing.T, got Parked) {
			require.Equal(t, map[string]string{`k\xff`: "v"}, got.Metadata)
		}},
		{name: "MetadataValueInvalid", p: Parked{MessageUUID: "m", Metadata: map[string]string{"k": "v\xe2\x82", "ok": "fine"}}, check: func(t *testing.T, got Parked) {
			require.Equal(t, map[string]string{"k": `v\xe2\x82`, "ok": "fine"}, got.Metadata)
		}},
		{name: "Metadata100k", p: Parked{MessageUUID: "m", Metadata: map[string]string{"big": strings.Repeat("x", 100_000), "small": "s"}},
			check: func(t *testing.T, got Parked) {
				require.Equal(t, "s", got.Metadata["small"])
				require.True(t, strings.HasSuffix(got.Metadata["big"], "…[100000 bytes in all]"), "the cut is noted")
			}},
		{name: "ManyMetadataKeys", p: Parked{MessageUUID: "m", Metadata: many}, check: func(t *testing.T, got Parked) {
			require.Equal(t, strings.Repeat("v", 40), got.Metadata["key-0000"], "the first keys are kept whole")
			require.Regexp(t, `^\d+ keys$`, got.Metadata[metaDroppedKey])
		}},
		{name: "LongMetadataKey", p: Parked{MessageUUID: "m", Metadata: map[string]string{strings.Repeat("k", 1000): "v"}}},
		{name: "Reason1MB", p: Parked{MessageUUID: "m", Reason: strings.Repeat("r", 1_000_000)}, check: func(t *testing.T, got Parked) {
			require.True(t, strings.HasSuffix(got.Reason, "…[1000000 bytes in all]"))
		}},
		{name: "ReasonInvalidUTF8", p: Parked{MessageUUID: "m", Reason: "panic: \xff"}, check: func(t *testing.T, got Parked) {
			require.Equal(t, `panic: \xff`, got.Reason)
		}},
		{name: "EmptyBody", p: Parked{MessageUUID: "m", Payload: []byte{}}},
		{name: "HugeAttempts", p: Parked{MessageUUID: "m", Attempts: math.MaxInt64 - 1}, check: func(t *testing.T, got Parked) {
			require.Equal(t, math.MaxInt32, got.Attempts)
		}},
		{name: "BinaryBody", p: Parked{MessageUUID: "m", Payload: []byte{0, 0xff, 0xfe, 0}}},
		{name: "Body1MiB", p: Parked{MessageUUID: "m", Payload: mib(1)}},
		{name: "Body5MiB", p: Parked{MessageUUID: "m", Payload: mib(5)}},
		{name: "Body20MiB", p: Parked{MessageUUID: "m", Payload: mib(20)}, mysqlOnly: true},
		{name: "Everything", p: Parked{MessageUUID: strings.Repeat("\xff", 300) + "-everything", Topic: "t\x00", ActionType: "\xfe",
			Metadata: map[string]string{"\x00": strings.Repeat("\xff", 70_000)}, Reason: strings.Repeat("\xc3", 100_000), Payload: mib(2)}},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { // not parallel: each counts the rows it adds
				if tt.mysqlOnly && b.name != "MySQL" {
					t.Skip("MySQL only: the case is about max_allowed_packet")
				}
				p := tt.p
				if p.MessageUUID == "m" {
					p.MessageUUID = tt.name // one row per case
				}
				if p.Attempts == 0 {
					p.Attempts = 3
				}
				before := countRows(t, s.DB(), tblPoison)
				require.NoError(t, s.AddPoison(ctx, p))
				again := p // delivered and poisoned once more
				again.Attempts = p.Attempts + 1
				require.NoError(t, s.AddPoison(ctx, again), "idempotent")
				require.Equal(t, before+1, countRows(t, s.DB(), tblPoison), "one row per message")

				var id int64
				require.NoError(t, s.DB().Raw("SELECT MAX(id) FROM "+tblPoison).Scan(&id).Error)
				got, err := s.GetPoison(ctx, id)
				require.NoError(t, err)
				require.Equal(t, min(again.Attempts, math.MaxInt32), got.Attempts, "the second call updated the row")
				requireBoundedPoison(t, got)
				list, err := s.ListPoison(ctx, PoisonFilter{Limit: 1})
				require.NoError(t, err)
				require.Equal(t, got, list[0])

				if len(p.Payload) > MaxPoisonPayload {
					sum := sha256.Sum256(p.Payload)
					require.True(t, got.Truncated())
					require.Equal(t, p.Payload[:MaxPoisonPayload], got.Payload)
					require.Equal(t, int64(len(p.Payload)), got.PayloadSize)
					require.Equal(t, hex.EncodeToString(sum[:]), got.PayloadSHA256)
					err := got.Replayable()
					require.ErrorIs(t, err, ErrInvalid)
					require.ErrorContains(t, err, fmt.Sprintf("cannot be replayed: the store kept %d of its %d payload bytes", MaxPoisonPayload, len(p.Payload)))
				} else {
					require.False(t, got.Truncated())
					require.NoError(t, got.Replayable())
					require.Zero(t, got.PayloadSize)
					require.Empty(t, got.PayloadSHA256)
					if len(p.Payload) == 0 {
						require.Nil(t, got.Payload)
					} else {
						require.Equal(t, p.Payload, got.Payload)
					}
				}
				if tt.check != nil {
					tt.check(t, got)
				}
			})
		}
	})
}

// requireBoundedPoison checks what every poison record read back meets.
func requireBoundedPoison(t *testing.T, p Parked) {
	t.Helper()
	texts := []string{p.MessageUUID, p.Topic, p.ActionType, p.Reason}
	for k, v := range p.Metadata {
		texts = append(texts, k, v)
		require.LessOrEqual(t, len(k), maxMetaKeyLen)
	}
	for _, s := range texts {
		require.True(t, utf8.ValidString(s), "%q", s)
		require.NotContains(t, s, "\x00")
	}
	require.NotEmpty(t, p.MessageUUID)
	require.LessOrEqual(t, len(p.MessageUUID), maxUUIDLen)
	require.LessOrEqual(t, len(p.Topic), maxTopicLen)
	require.LessOrEqual(t, len(p.ActionType), maxActionLen)
	require.LessOrEqual(t, len(p.Reason), maxPoisonReason)
	require.LessOrEqual(t, metadataSize(p.Metadata), maxPoisonMetadata)
	require.LessOrEqual(t, len(p.Payload), MaxPoisonPayload)
}

// TestDeferBadInput: Defer makes metadata valid rather than fail, and
// refuses with ErrInvalid what it cannot store whole.
func TestDeferBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		due := t0.Add(time.Hour)

		require.NoError(t, s.Defer(ctx, Parked{MessageUUID: "md", Topic: "t",
			Metadata: map[string]string{"k\xff": "v\x00", "ok": "fine"}}, due))
		body := bytes.Repeat([]byte{7}, 5<<20)
		require.NoError(t, s.Defer(ctx, Parked{MessageUUID: "big", Topic: "t", Payload: body}, due), "5 MiB fits every backend")
		require.NoError(t, s.Defer(ctx, Parked{MessageUUID: "empty", Topic: "t", Payload: []byte{}}, due))
		got, err := s.DueDeferred(ctx, due, 0)
		require.NoError(t, err)
		byID := map[string]Deferred{}
		for _, d := range got {
			byID[d.MessageUUID] = d
		}
		require.Equal(t, map[string]string{`k\xff`: `v\x00`, "ok": "fine"}, byID["md"].Metadata)
		require.Equal(t, body, byID["big"].Payload, "stored whole")
		require.Nil(t, byID["empty"].Payload)

		for _, p := range []Parked{
			{MessageUUID: strings.Repeat("a", 300), Topic: "t"},
			{MessageUUID: "m-\xff", Topic: "t"},
			{MessageUUID: "m", Topic: "t\xff"},
			{MessageUUID: "m", Topic: strings.Repeat("t", 300)},
			{MessageUUID: ""},
			{MessageUUID: "m", Attempts: math.MaxInt32 + 1},
		} {
			err := s.Defer(ctx, p, due)
			require.ErrorIs(t, err, ErrInvalid, "%q", p.MessageUUID)
		}

		huge := Parked{MessageUUID: "huge", Topic: "t", Payload: make([]byte, s.prov.maxRow+1)}
		if b.name == "MySQL" { // a 16 MiB server refuses 20 MiB; on SQLite a row beyond 1 GB is not worth the memory
			err := s.Defer(ctx, huge, due)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, fmt.Sprintf("persist: defer huge: the message is %d bytes", len(huge.Payload)+len("huge")+len("t")+2))
			require.ErrorContains(t, err, fmt.Sprintf("stores at most %d in a row", s.prov.maxRow))
			t.Logf("%v", err)
			fits := Parked{MessageUUID: "fits", Topic: "t", Metadata: map[string]string{"k": strings.Repeat("v", 1000)},
				Payload: make([]byte, s.prov.maxRow-1100)}
			require.NoError(t, s.Defer(ctx, fits, due), "the bound is not stricter than the server")
		}
	})
}

// TestPoisonPayloadColumnsMigration: migration 8 adds the payload size and
// hash columns to a poison table that already holds messages, which read
// back as whole.
func TestPoisonPayloadColumnsMigration(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		if !b.reopenable {
			t.Skip("needs a second Open of the same database")
		}
		db := b.db(t)
		ctx := context.Background()
		s := openStore(t, Config{Provisioning: db})
		require.NoError(t, s.AddPoison(ctx, Parked{MessageUUID: "old", Topic: "t", Payload: []byte("p")}))
		for _, col := range []string{"payload_size", "payload_sha256"} {
			require.NoError(t, s.DB().Exec("ALTER TABLE "+tblPoison+" DROP COLUMN "+col).Error)
		}
		require.NoError(t, s.DB().Exec("DELETE FROM "+provisioningMigrations.table+" WHERE version = 8").Error)

		s2 := openStore(t, Config{Provisioning: db})
		requireMigratedOnce(t, s2)
		for _, col := range []string{"payload_size", "payload_sha256"} {
			require.True(t, s2.DB().Migrator().HasColumn(tblPoison, col), col)
		}
		list, err := s2.ListPoison(ctx, PoisonFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, []byte("p"), list[0].Payload)
		require.False(t, list[0].Truncated())
		require.NoError(t, list[0].Replayable())
	})
}
