package text

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShorten(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "Empty", in: "", want: ""},
		{name: "Short", in: "acct-42", want: "acct-42"},
		{name: "Exactly", in: strings.Repeat("a", Shown), want: strings.Repeat("a", Shown)},
		{name: "Long", in: strings.Repeat("a", Shown+1), want: strings.Repeat("a", Shown) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, Shorten(tt.in)) })
	}
}
