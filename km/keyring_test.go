package km_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/km"
)

var testBinding = km.Binding{Customer: "acme", Account: "123456", Name: "default"}

func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	for _, size := range []int{0, 1, 31, 32, 1000, 64 << 10} {
		pt := bytes.Repeat([]byte{0xA5}, size)
		env, err := kr.Seal(testBinding, pt)
		require.NoError(t, err)
		require.False(t, bytes.Contains(env, []byte("\xA5\xA5\xA5\xA5\xA5\xA5\xA5\xA5")) && size > 0, "payload in the clear")
		got, err := kr.Open(testBinding, env)
		require.NoError(t, err)
		require.Equal(t, size, got.Len())
		if size > 0 {
			require.Equal(t, pt, got.Reveal())
		}
		hdr, err := km.ParseEnvelope(env)
		require.NoError(t, err)
		require.Equal(t, km.EnvelopeHeader{Format: 1, KeyID: "prod", KeyVersion: 1}, hdr)
	}

	t.Run("FreshDataKeyAndNonceEachSeal", func(t *testing.T) {
		t.Parallel()
		a, err := kr.Seal(testBinding, []byte(canary))
		require.NoError(t, err)
		b, err := kr.Seal(testBinding, []byte(canary))
		require.NoError(t, err)
		require.NotEqual(t, a, b)
		require.NotContains(t, string(a), canary)
	})
}

// envelope offsets for key id "prod" (4 bytes), see the format in envelope.go.
const (
	offKCV     = 4 + 4 + 4
	offWrapped = offKCV + 8
	offNonce   = offWrapped + 60
	offCipher  = offNonce + 12
)

func TestKeyringOpenErrors(t *testing.T) {
	t.Parallel()
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	env, err := kr.Seal(testBinding, []byte(canary))
	require.NoError(t, err)

	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x01; return b }
	}
	cases := []struct {
		name    string
		keyring *km.Keyring
		binding km.Binding
		mutate  func([]byte) []byte
		want    error
	}{
		{"TamperedCiphertext", kr, testBinding, flip(offCipher + 3), km.ErrTampered},
		{"TamperedTag", kr, testBinding, func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }, km.ErrTampered},
		{"TamperedPayloadNonce", kr, testBinding, flip(offNonce), km.ErrTampered},
		{"TamperedWrappedKey", kr, testBinding, flip(offWrapped + 20), km.ErrTampered},
		{"TamperedWrapNonce", kr, testBinding, flip(offWrapped), km.ErrTampered},
		{"TamperedKeyCheckValue", kr, testBinding, flip(offKCV), km.ErrTampered},
		{"Truncated", kr, testBinding, func(b []byte) []byte { return b[:offCipher+10] }, km.ErrTampered},
		{"Empty", kr, testBinding, func([]byte) []byte { return nil }, km.ErrTampered},
		{"BadMagic", kr, testBinding, flip(0), km.ErrTampered},
		{"FutureFormat", kr, testBinding, func(b []byte) []byte { b[2] = 9; return b }, km.ErrTampered},
		{"MovedToOtherName", kr, km.Binding{"acme", "123456", "other"}, nil, km.ErrTampered},
		{"MovedToOtherAccount", kr, km.Binding{"acme", "654321", "default"}, nil, km.ErrTampered},
		{"MovedToOtherCustomer", kr, km.Binding{"evil", "123456", "default"}, nil, km.ErrTampered},
		{"AmbiguousConcatenation", kr, km.Binding{"acme1", "23456", "default"}, nil, km.ErrTampered},
		{"WrongKeySameIDAndVersion", newKeyring(t, masterKey("prod", 1, 0x22)), testBinding, nil, km.ErrWrongKey},
		{"UnknownKeyID", newKeyring(t, masterKey("staging", 1, 0x11)), testBinding, nil, km.ErrUnknownKey},
		{"UnknownKeyVersion", newKeyring(t, masterKey("prod", 2, 0x11)), testBinding, nil, km.ErrUnknownKey},
		{"RelabelledVersion", newKeyring(t, masterKey("prod", 1, 0x11), masterKey("prod", 2, 0x11)), testBinding,
			func(b []byte) []byte { b[4+4+3] = 2; return b }, km.ErrTampered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := bytes.Clone(env)
			if tc.mutate != nil {
				e = tc.mutate(e)
			}
			got, err := tc.keyring.Open(tc.binding, e)
			require.ErrorIs(t, err, tc.want)
			for _, other := range []error{km.ErrTampered, km.ErrWrongKey, km.ErrUnknownKey} {
				if other != tc.want {
					require.NotErrorIs(t, err, other)
				}
			}
			require.True(t, got.IsZero())
			requireNoLeak(t, err.Error(), canary, "error")
			requireNoLeak(t, err.Error(), string(keyBytes(0x11)), "error")
			requireNoLeak(t, err.Error(), string(keyBytes(0x22)), "error")
		})
	}
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	kr := newKeyring(t, masterKey("prod", 1, 0x11))
	old, err := kr.Seal(testBinding, []byte(canary))
	require.NoError(t, err)

	require.NoError(t, kr.Add(masterKey("prod", 2, 0x22)))
	require.Equal(t, km.KeyRef{ID: "prod", Version: 2}, kr.Current())
	require.Equal(t, []km.KeyRef{{"prod", 1}, {"prod", 2}}, kr.Keys())

	t.Run("OldEnvelopeStillOpens", func(t *testing.T) {
		t.Parallel()
		got, err := kr.Open(testBinding, old)
		require.NoError(t, err)
		require.Equal(t, canary, string(got.Reveal()))
	})
	t.Run("NewSealsUseNewestVersion", func(t *testing.T) {
		t.Parallel()
		env, err := kr.Seal(testBinding, []byte("x"))
		require.NoError(t, err)
		hdr, err := km.ParseEnvelope(env)
		require.NoError(t, err)
		require.Equal(t, 2, hdr.KeyVersion)
	})
	t.Run("RewrapMovesToNewestWithoutTouchingPayload", func(t *testing.T) {
		t.Parallel()
		moved, err := kr.Rewrap(old)
		require.NoError(t, err)
		hdr, err := km.ParseEnvelope(moved)
		require.NoError(t, err)
		require.Equal(t, km.EnvelopeHeader{Format: 1, KeyID: "prod", KeyVersion: 2}, hdr)
		// The payload nonce and ciphertext are kept byte for byte: Rewrap
		// never decrypted nor re-encrypted them (it has no binding to do so).
		require.Equal(t, old[offNonce:], moved[offNonce:])
		require.NotEqual(t, old[offWrapped:offNonce], moved[offWrapped:offNonce])

		// Only v2 is needed now.
		v2only := newKeyring(t, masterKey("prod", 2, 0x22))
		got, err := v2only.Open(testBinding, moved)
		require.NoError(t, err)
		require.Equal(t, canary, string(got.Reveal()))
		_, err = v2only.Open(testBinding, old)
		require.ErrorIs(t, err, km.ErrUnknownKey)

		again, err := kr.Rewrap(moved)
		require.NoError(t, err)
		require.Equal(t, moved, again, "already current: unchanged")
	})
	t.Run("RewrapErrors", func(t *testing.T) {
		t.Parallel()
		bad := bytes.Clone(old)
		bad[offWrapped+30] ^= 1
		_, err := kr.Rewrap(bad)
		require.ErrorIs(t, err, km.ErrTampered)
		_, err = newKeyring(t, masterKey("other", 5, 0x33)).Rewrap(old)
		require.ErrorIs(t, err, km.ErrUnknownKey)
		wrong := newKeyring(t, masterKey("prod", 1, 0x44), masterKey("prod", 2, 0x22))
		_, err = wrong.Rewrap(old)
		require.ErrorIs(t, err, km.ErrWrongKey)
	})
	t.Run("ConcurrentSealOpenAdd", func(t *testing.T) {
		t.Parallel()
		kr := newKeyring(t, masterKey("c", 1, 0x11))
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for range 20 {
					env, err := kr.Seal(testBinding, []byte("x"))
					require.NoError(t, err)
					_, err = kr.Open(testBinding, env)
					require.NoError(t, err)
				}
			})
			_ = i
		}
		require.NoError(t, kr.Add(masterKey("c", 2, 0x22)))
		wg.Wait()
	})
}

func TestKeyringValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		keys []km.MasterKey
		msg  string
	}{
		{"NoKeys", nil, "at least one"},
		{"EmptyID", []km.MasterKey{masterKey("", 1, 1)}, "ID"},
		{"IDWithColon", []km.MasterKey{masterKey("a:b", 1, 1)}, "ID"},
		{"ZeroVersion", []km.MasterKey{masterKey("a", 0, 1)}, "Version"},
		{"ShortKey", []km.MasterKey{{ID: "a", Version: 1, Key: km.NewSecretString("short")}}, "32 bytes"},
		{"DuplicateVersion", []km.MasterKey{masterKey("a", 1, 1), masterKey("b", 1, 2)}, "already held"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := km.NewKeyring(tc.keys...)
			require.ErrorIs(t, err, km.ErrInvalid)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestKeyringClose(t *testing.T) {
	t.Parallel()
	kr, err := km.NewKeyring(masterKey("prod", 1, 0x11))
	require.NoError(t, err)
	env, err := kr.Seal(testBinding, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, kr.Close())
	require.NoError(t, kr.Close())
	_, err = kr.Seal(testBinding, []byte("x"))
	require.ErrorIs(t, err, km.ErrClosed)
	_, err = kr.Open(testBinding, env)
	require.ErrorIs(t, err, km.ErrClosed)
	_, err = kr.Rewrap(env)
	require.ErrorIs(t, err, km.ErrClosed)
	require.ErrorIs(t, kr.Add(masterKey("prod", 2, 0x22)), km.ErrClosed)
	require.False(t, strings.Contains(err.Error(), "\x11"))
}
