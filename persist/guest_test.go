package persist

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// storeOffsets gives the store's guest offsets the Get/Put shape the test uses.
type storeOffsets struct{ s *Store }

func (o storeOffsets) Get(ctx context.Context, k GuestFile) (GuestOffset, error) {
	return o.s.GuestOffset(ctx, k)
}
func (o storeOffsets) Put(ctx context.Context, k GuestFile, v GuestOffset) error {
	return o.s.PutGuestOffset(ctx, k, v)
}

func TestGuestOffsets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.db(t)
		s := openStore(t, Config{Provisioning: db})
		offs := storeOffsets{s}
		ctx := context.Background()
		k := GuestFile{Account: "acct-1", ServerID: "i-1", Path: "/var/log/syslog"}

		o, err := offs.Get(ctx, k)
		require.NoError(t, err)
		require.Zero(t, o, "nothing stored yet")

		first := GuestOffset{Identity: "2049:131", Bytes: 4096, Size: 5000, TailHash: strings.Repeat("ab", 32), LocalSize: 4096}
		require.NoError(t, offs.Put(ctx, k, first))
		o, err = offs.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, first, o)

		// Put replaces; other files are separate, paths compare case-sensitively.
		second := GuestOffset{Identity: "2049:999", Bytes: 10, Size: 10, TailHash: strings.Repeat("cd", 32), LocalSize: 4106}
		require.NoError(t, offs.Put(ctx, k, second))
		other := k
		other.Path = "/var/log/SYSLOG"
		require.NoError(t, offs.Put(ctx, other, first))
		o, err = offs.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, second, o)
		o, err = offs.Get(ctx, other)
		require.NoError(t, err)
		require.Equal(t, first, o)
		o, err = offs.Get(ctx, GuestFile{Account: "acct-1", ServerID: "i-2", Path: "/var/log/syslog"})
		require.NoError(t, err)
		require.Zero(t, o)

		// Another store on the same database sees them: they are durable.
		if b.reopenable {
			o, err = storeOffsets{openStore(t, Config{Provisioning: db})}.Get(ctx, k)
			require.NoError(t, err)
			require.Equal(t, second, o)
		}

		long := k
		long.Path = "/" + strings.Repeat("x", maxPathLen)
		require.ErrorIs(t, offs.Put(ctx, long, first), ErrInvalid)
		_, err = offs.Get(ctx, long)
		require.ErrorIs(t, err, ErrInvalid)
		spaced := k
		spaced.Path += " "
		require.ErrorIs(t, offs.Put(ctx, spaced, first), ErrInvalid)
	})
}
