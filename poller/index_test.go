package poller

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIndex(t *testing.T) {
	s, _ := newTestSchedule(t, Config{})
	rng := newTestRand(3)
	live := map[string]bool{}
	for step := range 20_000 {
		r := resourceID(rng.IntN(3000))
		tg := target(accountID(rng.IntN(3)), "server", r)
		key := tg.String()
		if rng.IntN(3) == 0 {
			require.Equal(t, live[key], s.Remove(tg), "step %d", step)
			delete(live, key)
		} else {
			require.NoError(t, s.Set(tg, time.Minute))
			live[key] = true
		}
	}
	require.Equal(t, len(live), s.Stats().Targets)
	checkInvariants(t, s)
}
