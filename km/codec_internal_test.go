package km

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCodecRoundTripAndTruncation(t *testing.T) {
	t.Parallel()
	c := Credential{
		Customer: "acme", Account: "1", Provider: "aws", Kind: KindCloud, Name: "n",
		Fields:    map[string]Secret{"a": NewSecretString("x"), "b": NewSecretString("yy")},
		Meta:      map[string]string{"region": "eu"},
		CreatedAt: time.Unix(100, 5).UTC(), UpdatedAt: time.Unix(200, 0).UTC(),
	}
	b := marshalCredential(c)
	require.Equal(t, len(b), len(marshalCredential(c)), "deterministic")
	got, err := unmarshalCredential(b)
	require.NoError(t, err)
	require.Equal(t, c.Info(), got.Info())
	require.True(t, got.Fields["b"].Equal(c.Fields["b"]))
	for i := range len(b) {
		_, err := unmarshalCredential(b[:i])
		require.Error(t, err, "truncated at %d", i)
	}
	_, err = unmarshalCredential(append(b, 0))
	require.Error(t, err, "trailing bytes")
}

func TestMarshalCredentialDoesNotReallocate(t *testing.T) {
	t.Parallel()
	c := Credential{Customer: "c", Account: "a", Kind: KindSSH, Name: "n",
		Fields: map[string]Secret{"k": NewSecret(make([]byte, 5000))}}
	b := marshalCredential(c)
	require.LessOrEqual(t, len(b), cap(b))
	// The capacity was computed up front: append never had to grow (and
	// leave a copy of the secret behind).
	require.Less(t, cap(b)-len(b), 200)
}
