package poller

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// newTestSchedule returns a schedule on a fake clock at t0. Unless cfg says
// otherwise it has a fixed seed and no budget.
func newTestSchedule(t testing.TB, cfg Config) (*Schedule, *FakeClock) {
	t.Helper()
	clock := NewFakeClock(t0)
	cfg.Clock = clock
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	if cfg.Budget == (Limit{}) {
		cfg.Budget = Unlimited
	}
	s, err := New(cfg)
	require.NoError(t, err)
	return s, clock
}

// noSpread is a config whose targets are due exactly on time: no jitter, no
// initial spread.
func noSpread() Config { return Config{Jitter: -1, InitialSpread: -1} }

func target(account, kind, resource string) state.Target {
	return state.Target{Account: account, Customer: "cust-" + account, Kind: kind, Resource: resource}
}

// event is one dispatch seen by simulate.
type event struct {
	At time.Time
	D  Dispatch
}

// simulate runs the schedule event by event until `until`: it moves the clock
// to each wake-up time, dispatches everything due and reports each dispatch
// with outcome (nil: not reported). It returns the dispatches in order.
func simulate(t testing.TB, s *Schedule, clock *FakeClock, until time.Time, outcome func(Dispatch) *Outcome) []event {
	t.Helper()
	var log []event
	for {
		next, ok := s.NextWake()
		if !ok || next.After(until) {
			break
		}
		if next.After(clock.Now()) {
			clock.Set(next)
		}
		for _, d := range s.Due(clock.Now(), 0) {
			log = append(log, event{At: clock.Now(), D: d})
			if o := outcome(d); o != nil {
				require.True(t, s.Report(d, *o), "report %v", d.Target)
			}
		}
	}
	clock.Set(until)
	checkInvariants(t, s)
	return log
}

func ok(Dispatch) *Outcome { return &Outcome{} }

// count returns how many events match.
func count(log []event, match func(state.Target) bool) int {
	n := 0
	for _, e := range log {
		if match(e.D.Target) {
			n++
		}
	}
	return n
}

func ofAccount(a string) func(state.Target) bool {
	return func(t state.Target) bool { return t.Account == a }
}

func ofKind(k string) func(state.Target) bool {
	return func(t state.Target) bool { return t.Kind == k }
}

// checkInvariants verifies the schedule's internal structures agree.
func checkInvariants(t testing.TB, s *Schedule) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i < len(s.heap); i++ {
		p := (i - 1) >> 2
		require.LessOrEqual(t, s.heap[p].key, s.heap[i].key, "heap order at %d", i)
	}
	for i, it := range s.heap {
		require.Equal(t, int32(i), s.ent(it.slot).heapIdx, "heapIdx of slot %d", it.slot)
	}
	live, inFlight, waiting := 0, 0, 0
	for sl := uint32(0); sl < s.nslots; sl++ {
		e := s.ent(sl)
		switch e.state {
		case stFree:
			continue
		case stIdle:
			require.GreaterOrEqual(t, e.heapIdx, int32(0))
			require.Equal(t, e.due, s.heap[e.heapIdx].key)
		case stInFlight:
			inFlight++
			require.GreaterOrEqual(t, e.heapIdx, int32(0))
			require.NotZero(t, e.lease)
		case stWaiting:
			waiting++
			require.Equal(t, int32(-1), e.heapIdx)
		}
		live++
		a := s.accountByID[e.account]
		require.NotNil(t, a)
		i := s.idxFind(e.account, e.kind, e.resource)
		require.GreaterOrEqual(t, i, 0, "slot %d indexed", sl)
		require.Equal(t, sl+1, s.idx[i])
	}
	require.Equal(t, live, s.idxN)
	cells := 0
	for _, c := range s.idx {
		if c != 0 {
			cells++
			require.NotEqual(t, stFree, s.ent(c-1).state)
		}
	}
	require.Equal(t, live, cells)
	require.Equal(t, live, len(s.heap)+waiting)
	require.Equal(t, inFlight, s.inFlight)
	require.Equal(t, waiting, s.waiting)
	n := 0
	for _, a := range s.accounts {
		require.Same(t, a, s.accountByID[a.id])
		cnt := 0
		for sl := a.head; sl != 0; sl = s.ent(sl - 1).next {
			require.Equal(t, a.id, s.ent(sl-1).account)
			cnt++
		}
		require.Equal(t, a.n, cnt, "account %s", a.name)
		n += cnt
		require.Equal(t, a.bhead < len(a.backlog), a.readyIdx >= 0, "account %s in ready heap iff backlog", a.name)
	}
	require.Equal(t, live, n)
}

func resourceID(i int) string { return fmt.Sprintf("i-0abc%012x", i) }

func accountID(i int) string { return fmt.Sprintf("acct-%06d", i) }

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }
