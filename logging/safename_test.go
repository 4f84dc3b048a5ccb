package logging

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var timeZero time.Time

func TestSafeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id     string
		plain  bool   // kept as it is
		prefix string // readable prefix of a hashed name
	}{
		{id: "acme", plain: true},
		{id: "acme-2_b", plain: true},
		{id: strings.Repeat("a", 64), plain: true},
		{id: strings.Repeat("a", 65), prefix: strings.Repeat("a", 32)},
		{id: "Acme", prefix: "acme"},
		{id: "a/b", prefix: "a_b"},
		{id: `a\b`, prefix: "a_b"},
		{id: "../../etc", prefix: "______etc"},
		{id: "..", prefix: "__"},
		{id: ".", prefix: "_"},
		{id: ".hidden", prefix: "_hidden"},
		{id: "\x00x", prefix: "_x"},
		{id: "a\nb", prefix: "a_b"},
		{id: "con", prefix: "con_"},
		{id: "CON", prefix: "con_"},
		{id: "lpt1", prefix: "lpt1_"},
		{id: "ümlaut", prefix: "_mlaut"},
		{id: "日本", prefix: "__"},
		{id: "a.b", prefix: "a_b"},
		{id: "\xff", prefix: "_"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got, err := SafeName(tt.id)
		require.NoError(t, err, "%q", tt.id)
		if tt.plain {
			require.Equal(t, tt.id, got)
		} else {
			require.True(t, strings.HasPrefix(got, tt.prefix+"."), "SafeName(%q) = %q, want prefix %q", tt.id, got, tt.prefix)
			require.Len(t, got, len(tt.prefix)+1+16)
		}
		requireSafe(t, got)
		lower := strings.ToLower(got)
		if other, dup := seen[lower]; dup {
			t.Fatalf("SafeName(%q) and SafeName(%q) collide: %q", tt.id, other, got)
		}
		seen[lower] = tt.id
		again, _ := SafeName(tt.id)
		require.Equal(t, got, again, "deterministic")
	}
	_, err := SafeName("")
	require.ErrorIs(t, err, ErrEmptyCustomer)
}

func requireSafe(t *testing.T, name string) {
	t.Helper()
	require.NotEmpty(t, name)
	require.LessOrEqual(t, len(name), 64)
	require.NotEqual(t, '.', name[0])
	require.NotContains(t, []string{".", ".."}, name)
	for i := 0; i < len(name); i++ {
		require.True(t, plainByte(name[i]) || name[i] == '.', "byte %q in %q", name[i], name)
	}
	base, _, _ := strings.Cut(name, ".")
	require.False(t, reserved[base], "reserved name %q", name)
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"acme", "a/b", "../../etc", "\x00", "Acme", "con"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got, err := SafeName(id)
		if id == "" {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		requireSafe(t, got)
		// A name kept as it is has no '.'; a hashed one always has: the two
		// families never meet.
		require.Equal(t, got == id, !strings.Contains(got, "."))
	})
}
