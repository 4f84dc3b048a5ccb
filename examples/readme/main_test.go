package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/workertest"
)

// TestHandleLaunch: the README's handler acknowledges a launch request and
// poisons, without retries, one that does not decode.
func TestHandleLaunch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		outcome worker.Outcome
		reason  string
	}{
		{name: "Launch", payload: `{"Image":"debian-13","Size":"m1.small"}`, outcome: worker.Handled},
		{name: "NotALaunch", payload: `["debian-13"]`, outcome: worker.Poisoned, reason: "cannot unmarshal array"},
		{name: "NoPayload", payload: "", outcome: worker.Poisoned, reason: "has no payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := worker.Action{Type: "server.launch", Customer: "acme", Payload: json.RawMessage(tt.payload)}
			res := workertest.Run(t, worker.HandlerFunc(handleLaunch), a)
			require.Equal(t, tt.outcome, res.Outcome, "err: %v", res.Err)
			require.Contains(t, res.Reason, tt.reason)
			require.Zero(t, res.Wait)
		})
	}
	// The README's snippet.
	a, _ := worker.NewAction("server.launch", map[string]string{"image": "debian-13"})
	res := workertest.Run(t, worker.HandlerFunc(handleLaunch), a)
	require.Equal(t, worker.Handled, res.Outcome)
}
