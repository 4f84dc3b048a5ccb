package state_test

import (
	"fmt"
	"testing"

	"github.com/stratusworks/worker/state"
	"github.com/stretchr/testify/require"
)

func TestTargetString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "acct/server", state.Target{Account: "acct", Kind: "server"}.String())
	require.Equal(t, "acct/server/i-1", state.Target{Account: "acct", Kind: "server", Resource: "i-1"}.String())
}

func ExampleTarget_String() {
	fmt.Println(state.Target{Account: "acct-42", Customer: "acme", Kind: "firewall", Resource: "sg-7"})
	// Output: acct-42/firewall/sg-7
}
