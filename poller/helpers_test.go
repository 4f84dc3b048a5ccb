package poller

import (
	"fmt"
	"math"
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
	listed := map[uint32]map[uint32]bool{} // account -> slots in its failing list
	for _, a := range s.accounts {
		listed[a.id] = map[uint32]bool{}
		for _, sl := range a.failing {
			listed[a.id][sl] = true
		}
	}
	live, inFlight, waiting := 0, 0, 0
	for sl := uint32(0); sl < s.nslots; sl++ {
		e := s.ent(sl)
		if e.state != stFree && e.state != stInFlight && e.flags&(fErr|fOwnErr) == fErr {
			require.NotZero(t, e.flags&fListed, "slot %d fails with errors: listed for recovery", sl)
		}
		if e.flags&fListed != 0 {
			require.True(t, listed[e.account][sl], "slot %d flagged listed is in its account's list", sl)
		}
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

// newDefaultSchedule returns a schedule with the shipped defaults on a fake
// clock at t0. Only Clock and Seed are set; the seed fixes the random draws
// so that a failure reproduces.
func newDefaultSchedule(t testing.TB) (*Schedule, *FakeClock) {
	t.Helper()
	clock := NewFakeClock(t0)
	s, err := New(Config{Clock: clock, Seed: 42})
	require.NoError(t, err)
	return s, clock
}

// mevent is one dispatch seen by drive.
type mevent struct {
	At   time.Duration // the clock's Monotonic reading when dispatched
	Wall time.Time     // its Now
	D    Dispatch
}

// drive runs the schedule event by event for d of monotonic time, through
// the wall-clock API alone, as a publisher loop would: it lets time pass to
// each wake-up (NextWake), dispatches everything due (Due(clock.Now())) and
// reports each dispatch with outcome (nil: not reported).
func drive(t testing.TB, s *Schedule, clock *FakeClock, d time.Duration, outcome func(mevent) *Outcome) []mevent {
	t.Helper()
	end := clock.Monotonic() + d
	var log []mevent
	for {
		next, ok := s.NextWake()
		if !ok {
			break
		}
		wait := max(next.Sub(clock.Now()), 0)
		if clock.Monotonic()+wait > end {
			break
		}
		clock.Advance(wait)
		for _, d := range s.Due(clock.Now(), 0) {
			ev := mevent{At: clock.Monotonic(), Wall: clock.Now(), D: d}
			log = append(log, ev)
			if o := outcome(ev); o != nil {
				require.True(t, s.Report(d, *o), "report %v", d.Target)
			}
		}
	}
	clock.Advance(end - clock.Monotonic())
	checkInvariants(t, s)
	return log
}

func okAt(mevent) *Outcome { return &Outcome{} }

// dispatchTimes returns the monotonic times of the dispatches of each target.
func dispatchTimes(log []mevent) map[state.Target][]time.Duration {
	m := map[state.Target][]time.Duration{}
	for _, e := range log {
		m[e.D.Target] = append(m[e.D.Target], e.At)
	}
	return m
}

// countIn counts the times in [from, to).
func countIn(times []time.Duration, from, to time.Duration) int {
	n := 0
	for _, at := range times {
		if at >= from && at < to {
			n++
		}
	}
	return n
}

// requireWithinBudget checks the token-bucket bound on sorted dispatch times:
// no window of length w holds more than Burst + PerSecond × w of them, for
// windows of 1 s, 10 s and 1 min starting at any dispatch.
func requireWithinBudget(t testing.TB, times []time.Duration, lim Limit, msg string) {
	t.Helper()
	for _, w := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		bound := lim.Burst + int(math.Floor(lim.PerSecond*w.Seconds()))
		j := 0
		for i := range times {
			for j < len(times) && times[j] < times[i]+w {
				j++
			}
			require.LessOrEqual(t, j-i, bound, "%s: %d dispatches in the %v from %v", msg, j-i, w, times[i])
		}
	}
}
