package poller

import (
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"Zero", Config{}, ""},
		{"JitterDisabled", Config{Jitter: -1}, ""},
		{"JitterTooLarge", Config{Jitter: 0.6}, "Jitter"},
		{"JitterNaN", Config{Jitter: math.NaN()}, "Jitter"},
		{"NegativeBackoffInitial", Config{Backoff: Backoff{InitialInterval: -1}}, "Backoff.InitialInterval"},
		{"NegativeBackoffMax", Config{Backoff: Backoff{MaxInterval: -1}}, "Backoff.MaxInterval"},
		{"BackoffMaxBelowInitial", Config{Backoff: Backoff{InitialInterval: time.Minute, MaxInterval: time.Second}}, "Backoff.MaxInterval"},
		{"BackoffMaxBelowDefaultInitial", Config{Backoff: Backoff{MaxInterval: time.Second}}, "Backoff.MaxInterval"},
		{"BackoffMultiplierBelowOne", Config{Backoff: Backoff{Multiplier: 0.5}}, "Backoff.Multiplier"},
		{"BackoffMultiplierInf", Config{Backoff: Backoff{Multiplier: math.Inf(1)}}, "Backoff.Multiplier"},
		{"BackoffMaxIntervalsBelowOne", Config{Backoff: Backoff{MaxTargetIntervals: 0.5}}, "Backoff.MaxTargetIntervals"},
		{"BackoffMaxIntervalsNegative", Config{Backoff: Backoff{MaxTargetIntervals: -1}}, "Backoff.MaxTargetIntervals"},
		{"BackoffMaxIntervalsNaN", Config{Backoff: Backoff{MaxTargetIntervals: math.NaN()}}, "Backoff.MaxTargetIntervals"},
		{"BackoffMaxIntervalsInf", Config{Backoff: Backoff{MaxTargetIntervals: math.Inf(1)}}, "Backoff.MaxTargetIntervals"},
		{"BackoffMaxIntervalsOne", Config{Backoff: Backoff{MaxTargetIntervals: 1}}, ""},
		{"BudgetNaN", Config{Budget: Limit{PerSecond: math.NaN()}}, "Budget.PerSecond"},
		{"NegativeInFlightTimeout", Config{InFlightTimeout: -time.Second}, "InFlightTimeout"},
		{"NegativeBatchSize", Config{BatchSize: -1}, "BatchSize"},
		{"NegativeBudget", Config{Budget: Limit{PerSecond: -1}}, "Budget.PerSecond"},
		{"BurstWithoutRate", Config{Budget: Limit{Burst: 3}}, "Budget.PerSecond"},
		{"NegativeBurst", Config{Budget: Limit{PerSecond: 1, Burst: -1}}, "Budget.Burst"},
		{"UnlimitedBudget", Config{Budget: Unlimited}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, newErr := New(tt.cfg)
			if tt.field == "" {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tt.field)
			require.ErrorIs(t, newErr, ErrInvalidConfig)
		})
	}
}

// TestConfigZeroFieldsValid: the zero value of every field is valid (it
// means the default), whatever the other fields hold. The fields are found by
// reflection, so a field added later is covered, and must be filled in below.
func TestConfigZeroFieldsValid(t *testing.T) {
	full := Config{
		Clock:           NewFakeClock(t0),
		Jitter:          0.2,
		Seed:            3,
		InitialSpread:   time.Second,
		Backoff:         Backoff{InitialInterval: time.Second, MaxInterval: time.Minute, Multiplier: 3, MaxTargetIntervals: 4},
		InFlightTimeout: time.Minute,
		Budget:          Limit{PerSecond: 3, Burst: 4},
		Budgets:         func(string) Limit { return Limit{} },
		BatchSize:       10,
	}
	require.NoError(t, full.Validate())
	// Limit is one value: its zero means the default budget. (Burst alone may
	// be zero; a Burst without PerSecond is invalid, see BurstWithoutRate.)
	leaves := func(v reflect.Value, prefix string, visit func(name string, f reflect.Value)) {
		for i := range v.NumField() {
			f, name := v.Field(i), prefix+v.Type().Field(i).Name
			if f.Kind() == reflect.Struct && f.Type() == reflect.TypeFor[Backoff]() {
				for j := range f.NumField() {
					visit(name+"."+f.Type().Field(j).Name, f.Field(j))
				}
				continue
			}
			visit(name, f)
		}
	}
	n := 0
	leaves(reflect.ValueOf(&full).Elem(), "", func(name string, f reflect.Value) {
		require.False(t, f.IsZero(), "%s: fill it in above", name)
		n++
		t.Run(name, func(t *testing.T) {
			cfg := full
			leaves(reflect.ValueOf(&cfg).Elem(), "", func(n string, g reflect.Value) {
				if n == name {
					g.SetZero()
				}
			})
			require.NoError(t, cfg.Validate())
			_, err := New(cfg)
			require.NoError(t, err)
		})
	})
	require.Equal(t, 12, n)
	cfg := full
	cfg.Budget.Burst = 0
	require.NoError(t, cfg.Validate())
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	require.Equal(t, DefaultJitter, c.Jitter)
	require.Equal(t, Backoff{InitialInterval: 5 * time.Second, MaxInterval: 15 * time.Minute, Multiplier: 2}, c.Backoff)
	require.Equal(t, 5*time.Minute, c.InFlightTimeout)
	require.Equal(t, DefaultBudget, c.Budget)
	require.Equal(t, 1000, c.BatchSize)
	require.NotNil(t, c.Clock)
	require.Equal(t, Limit{PerSecond: 2.5, Burst: 3}, Limit{PerSecond: 2.5}.normalized())
}

func TestInvalidTargets(t *testing.T) {
	s, _ := newTestSchedule(t, Config{})
	tests := []struct {
		name string
		call func() error
	}{
		{"RegisterEmptyKind", func() error { return s.Register("", time.Second) }},
		{"RegisterZeroInterval", func() error { return s.Register("server", 0) }},
		{"RegisterHugeInterval", func() error { return s.Register("server", MaxInterval+1) }},
		{"WatchEmptyAccount", func() error { return s.Watch("", "c") }},
		{"SetNoAccount", func() error { return s.Set(state.Target{Kind: "server"}, time.Second) }},
		{"SetNoKind", func() error { return s.Set(state.Target{Account: "a"}, time.Second) }},
		{"SetUnregisteredKindNoInterval", func() error { return s.Set(target("a", "disk", ""), 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.call(), ErrInvalidTarget)
		})
	}
	require.Equal(t, 0, s.Stats().Targets)
}

func TestIntervalsHonoured(t *testing.T) {
	s, clock := newTestSchedule(t, Config{}) // default jitter and initial spread
	require.NoError(t, s.Register("firewall", 15*time.Second))
	require.NoError(t, s.Register("budget", time.Hour))
	require.NoError(t, s.Watch("acct-1", "cust-1"))

	end := t0.Add(2 * time.Hour)
	log := simulate(t, s, clock, end, ok)

	for _, tc := range []struct {
		kind  string
		every time.Duration
	}{{"firewall", 15 * time.Second}, {"budget", time.Hour}} {
		var first time.Time
		for _, e := range log {
			if e.D.Target.Kind == tc.kind {
				first = e.At
				break
			}
		}
		require.False(t, first.IsZero(), tc.kind)
		want := int(end.Sub(first)/tc.every) + 1
		got := count(log, ofKind(tc.kind))
		require.InDelta(t, want, got, 1, "%s: first at %v", tc.kind, first.Sub(t0))
	}
	require.InDelta(t, 480, count(log, ofKind("firewall")), 2)
}

func TestJitter(t *testing.T) {
	const n, every = 2000, 100 * time.Second
	run := func(seed uint64) []time.Duration {
		s, clock := newTestSchedule(t, Config{Seed: seed, InitialSpread: -1}) // default jitter 0.1
		for i := range n {
			require.NoError(t, s.Set(target("a", "server", resourceID(i)), every))
		}
		ds := s.Due(clock.Now(), 0)
		require.Len(t, ds, n)
		for _, d := range ds {
			require.True(t, s.Report(d, Outcome{}))
		}
		offs := make([]time.Duration, n)
		for i := range n {
			e, found := s.Lookup(target("a", "server", resourceID(i)))
			require.True(t, found)
			offs[i] = e.NextDue.Sub(t0) - every
		}
		return offs
	}
	t.Run("WithinBoundsAndSpread", func(t *testing.T) {
		offs := run(7)
		distinct := map[time.Duration]bool{}
		lo, hi := time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
		for _, o := range offs {
			require.LessOrEqual(t, o.Abs(), every/10)
			distinct[o] = true
			lo, hi = min(lo, o), max(hi, o)
		}
		require.Greater(t, len(distinct), n*9/10, "jittered times are not all identical")
		require.Less(t, lo, -every/12, "spread reaches near -Jitter")
		require.Greater(t, hi, every/12, "spread reaches near +Jitter")
	})
	t.Run("DeterministicBySeed", func(t *testing.T) {
		require.Equal(t, run(7), run(7))
		require.NotEqual(t, run(7), run(8))
	})
	t.Run("Disabled", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		require.NoError(t, s.Set(target("a", "server", ""), every))
		ds := s.Due(clock.Now(), 0)
		require.True(t, s.Report(ds[0], Outcome{}))
		e, _ := s.Lookup(ds[0].Target)
		require.Equal(t, t0.Add(every), e.NextDue)
	})
}

func TestInitialSpread(t *testing.T) {
	tests := []struct {
		name   string
		spread time.Duration
		window time.Duration // first due times fall in [t0, t0+window]
	}{
		{"DefaultIsInterval", 0, time.Minute},
		{"Bounded", 10 * time.Second, 10 * time.Second},
		{"LargerThanInterval", time.Hour, time.Minute},
		{"None", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSchedule(t, Config{InitialSpread: tt.spread})
			require.NoError(t, s.Register("server", time.Minute))
			const n = 1000
			for i := range n {
				require.NoError(t, s.Watch(resourceID(i), "c"))
			}
			var lo, hi time.Duration = math.MaxInt64, 0
			for i := range n {
				e, found := s.Lookup(state.Target{Account: resourceID(i), Kind: "server"})
				require.True(t, found)
				off := e.NextDue.Sub(t0)
				require.GreaterOrEqual(t, off, time.Duration(0))
				require.LessOrEqual(t, off, tt.window)
				lo, hi = min(lo, off), max(hi, off)
			}
			require.GreaterOrEqual(t, hi-lo, tt.window*9/10, "first due times cover the window")
			next, found := s.NextWake()
			require.True(t, found)
			require.Equal(t, t0.Add(lo), next)
		})
	}
}

func TestOneInFlightPerTarget(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Jitter: -1, InitialSpread: -1, InFlightTimeout: time.Minute})
	tg := target("a", "server", "")
	require.NoError(t, s.Set(tg, 10*time.Second))

	first := s.Due(clock.Now(), 0)
	require.Len(t, first, 1)
	require.True(t, s.Current(first[0]))
	require.Equal(t, t0, first[0].DueAt)

	// Never reported: not dispatched again before the lease expires, even
	// though its interval passed several times.
	for range 5 {
		clock.Advance(10 * time.Second)
		require.Empty(t, s.Due(clock.Now(), 0))
	}
	next, _ := s.NextWake()
	require.Equal(t, t0.Add(time.Minute), next)
	clock.Set(next)
	second := s.Due(clock.Now(), 0)
	require.Len(t, second, 1)
	require.NotEqual(t, first[0].Lease, second[0].Lease)
	require.Equal(t, t0.Add(time.Minute), second[0].DueAt)
	require.False(t, s.Current(first[0]), "the lost dispatch is stale")
	require.True(t, s.Current(second[0]))
	require.False(t, s.Report(first[0], Outcome{}), "late report of the lost poll is ignored")
	e, _ := s.Lookup(tg)
	require.True(t, e.InFlight)
	require.Equal(t, 1, e.Failures, "a lost lease counts as a failure")

	require.True(t, s.Report(second[0], Outcome{}))
	require.False(t, s.Report(second[0], Outcome{}), "a second report of one dispatch is ignored")
	e, _ = s.Lookup(tg)
	require.False(t, e.InFlight)
	require.Zero(t, e.Failures)
	require.Equal(t, t0.Add(70*time.Second), e.NextDue)
	checkInvariants(t, s)
}

// TestBackoff pins the delays of the formula in the Backoff doc comment, with
// jitter off (noSpread) so they are exact.
func TestBackoff(t *testing.T) {
	tests := []struct {
		name    string
		every   time.Duration
		backoff Backoff         // zero: the default
		unit    time.Duration   // of want; zero: seconds
		want    []time.Duration // delays after consecutive failures
	}{
		// MaxTargetIntervals 100: the cap is max(interval, Max), so Max is what stops the growth.
		{"ShortInterval", 15 * time.Second, Backoff{MaxTargetIntervals: 100}, 0, []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 900, 900}},
		{"ShortIntervalCapsAtTenIntervals", 15 * time.Second, Backoff{}, 0, []time.Duration{5, 10, 20, 40, 80, 150, 150}},
		{"MinuteIntervalCapsAtTenMinutes", time.Minute, Backoff{}, 0, []time.Duration{5, 10, 20, 40, 80, 160, 320, 600, 600}},
		{"TwoMinuteIntervalCapsAtMax", 2 * time.Minute, Backoff{}, 0, []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 900, 900}},
		{"LongIntervalCapsAtInterval", time.Hour, Backoff{}, 0, []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600}},
		{"FastIntervalStartsAtInterval", 500 * time.Millisecond, Backoff{}, time.Millisecond, []time.Duration{500, 1000, 2000, 4000, 5000, 5000}},
		{"Custom", 10 * time.Second, Backoff{InitialInterval: time.Second, MaxInterval: time.Minute, Multiplier: 3, MaxTargetIntervals: 4}, 0, []time.Duration{1, 3, 9, 27, 40, 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := noSpread()
			cfg.Backoff = tt.backoff
			unit := cmp.Or(tt.unit, time.Second)
			initial := min(cmp.Or(tt.backoff.InitialInterval, DefaultBackoffInitial), tt.every)
			s, clock := newTestSchedule(t, cfg)
			tg := target("a", "server", "")
			require.NoError(t, s.Set(tg, tt.every))
			for i, want := range tt.want {
				ds := s.Due(clock.Now(), 0)
				require.Len(t, ds, 1, "attempt %d", i)
				require.True(t, s.Report(ds[0], Outcome{Err: errors.New("boom")}))
				e, _ := s.Lookup(tg)
				require.Equal(t, i+1, e.Failures)
				require.Equal(t, want*unit, e.NextDue.Sub(clock.Now()), "delay after failure %d", i+1)
				clock.Set(e.NextDue)
			}
			ds := s.Due(clock.Now(), 0)
			require.True(t, s.Report(ds[0], Outcome{}))
			e, _ := s.Lookup(tg)
			require.Zero(t, e.Failures, "success resets")
			require.Equal(t, tt.every, e.NextDue.Sub(clock.Now()))
			// the next failure starts again from Initial
			clock.Set(e.NextDue)
			ds = s.Due(clock.Now(), 0)
			require.True(t, s.Report(ds[0], Outcome{Err: errors.New("boom")}))
			e, _ = s.Lookup(tg)
			require.Equal(t, initial, e.NextDue.Sub(clock.Now()), "min(Initial, interval)")
		})
	}
}

func TestThrottled(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		pause      time.Duration
	}{
		{"RetryAfter", 30 * time.Second, 30 * time.Second},
		{"NoRetryAfterUsesBackoff", 0, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newTestSchedule(t, noSpread())
			require.NoError(t, s.Register("server", 10*time.Second))
			require.NoError(t, s.Register("firewall", 2*time.Second))
			require.NoError(t, s.Watch("a", "ca"))
			require.NoError(t, s.Watch("b", "cb"))

			throttled := false
			outcome := func(d Dispatch) *Outcome {
				if d.Target.Account == "a" && d.Target.Kind == "server" && !throttled {
					throttled = true
					return &Outcome{Throttled: true, RetryAfter: tt.retryAfter}
				}
				return &Outcome{}
			}
			log := simulate(t, s, clock, t0.Add(time.Minute), outcome)
			var aFirewall []time.Duration
			for _, e := range log {
				if e.D.Target.Account == "a" && e.D.Target.Kind == "firewall" {
					aFirewall = append(aFirewall, e.At.Sub(t0))
				}
			}
			// a's firewall target ran at 0, then waited out the pause, then
			// resumed its 2s pace.
			require.Equal(t, time.Duration(0), aFirewall[0])
			require.Equal(t, tt.pause, aFirewall[1], "sibling waits for the pause")
			require.Equal(t, tt.pause+2*time.Second, aFirewall[2], "then recovers its pace")
			require.InDelta(t, 31, count(log, func(tg state.Target) bool { return tg.Account == "b" && tg.Kind == "firewall" }), 1,
				"the other account is not delayed")
			e, _ := s.Lookup(state.Target{Account: "a", Kind: "server"})
			require.Zero(t, e.Failures, "recovered")
		})
	}
}

func TestFailingAccountDoesNotDelayOthers(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Jitter: -1, InitialSpread: -1, Budget: Limit{PerSecond: 2, Burst: 2}})
	require.NoError(t, s.Register("server", 15*time.Second))
	for _, a := range []string{"bad", "good"} {
		require.NoError(t, s.Watch(a, "c"))
		for i := range 20 {
			require.NoError(t, s.Set(target(a, "server", resourceID(i)), 0))
		}
	}
	log := simulate(t, s, clock, t0.Add(10*time.Minute), func(d Dispatch) *Outcome {
		if d.Target.Account == "bad" {
			if d.Target.Resource == "" {
				return &Outcome{Throttled: true, RetryAfter: time.Minute}
			}
			return &Outcome{Err: errors.New("auth failed")}
		}
		return &Outcome{}
	})
	// good: 21 targets × (600/15 + 1) within its 2/s budget (21 per 15 s)
	require.InDelta(t, 21*41, count(log, ofAccount("good")), 21)
	require.Less(t, count(log, ofAccount("bad")), 21*41/4)
}

func TestBudgetCapsDispatches(t *testing.T) {
	s, clock := newTestSchedule(t, Config{
		Jitter: -1, InitialSpread: -1,
		Budget: Limit{PerSecond: 5, Burst: 5},
		Budgets: func(account string) Limit {
			if account == "free" {
				return Unlimited
			}
			return Limit{}
		},
	})
	for _, a := range []string{"capped", "free"} {
		for i := range 100 {
			require.NoError(t, s.Set(target(a, "server", resourceID(i)), time.Second))
		}
	}
	var log []event
	for step := 0; step <= 100; step++ { // 10 s in 100 ms steps
		clock.Set(t0.Add(time.Duration(step) * 100 * time.Millisecond))
		for _, d := range s.Due(clock.Now(), 0) {
			log = append(log, event{At: clock.Now(), D: d})
			require.True(t, s.Report(d, Outcome{}))
		}
		checkInvariants(t, s)
	}
	capped := count(log, ofAccount("capped"))
	require.LessOrEqual(t, capped, 55)
	require.GreaterOrEqual(t, capped, 50)
	// per second, never more than burst + rate
	perSecond := map[int]int{}
	for _, e := range log {
		if e.D.Target.Account == "capped" {
			perSecond[int(e.At.Sub(t0)/time.Second)]++
		}
	}
	for sec, n := range perSecond {
		require.LessOrEqual(t, n, 10, "second %d", sec)
	}
	require.InDelta(t, 1100, count(log, ofAccount("free")), 100, "the unlimited account is unaffected")
	st := s.Stats()
	require.Greater(t, st.Waiting, 0, "capped targets wait for budget")
	// waiting targets are served oldest first, each carrying its due time
	for _, e := range log {
		require.False(t, e.D.DueAt.After(e.At))
	}
}

func TestCallsChargeBudget(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Jitter: -1, InitialSpread: -1, Budget: Limit{PerSecond: 1, Burst: 2}})
	for i := range 3 {
		require.NoError(t, s.Set(target("a", "server", resourceID(i)), time.Hour))
	}
	ds := s.Due(clock.Now(), 1)
	require.Len(t, ds, 1)
	require.True(t, s.Report(ds[0], Outcome{Calls: 3})) // 2 more calls: 1 token left - 2 = debt of 1
	require.Empty(t, s.Due(clock.Now(), 0))
	clock.Advance(time.Second)
	require.Empty(t, s.Due(clock.Now(), 0), "still paying the debt")
	next, _ := s.NextWake()
	require.Equal(t, t0.Add(2*time.Second), next)
	clock.Set(next)
	require.Len(t, s.Due(clock.Now(), 0), 1)
}

func TestStaleReports(t *testing.T) {
	tests := []struct {
		name  string
		after func(s *Schedule, clock *FakeClock, d Dispatch)
	}{
		{"AfterUnwatch", func(s *Schedule, _ *FakeClock, d Dispatch) { s.Unwatch(d.Target.Account) }},
		{"AfterRemove", func(s *Schedule, _ *FakeClock, d Dispatch) { s.Remove(d.Target) }},
		{"AfterRemoveAndReAdd", func(s *Schedule, _ *FakeClock, d Dispatch) {
			s.Remove(d.Target)
			_ = s.Set(d.Target, time.Minute)
		}},
		{"AfterRedispatch", func(s *Schedule, clock *FakeClock, d Dispatch) {
			clock.Advance(DefaultInFlightTimeout)
			if len(s.Due(clock.Now(), 0)) != 1 {
				panic("not re-dispatched")
			}
		}},
		{"AfterReport", func(s *Schedule, _ *FakeClock, d Dispatch) { s.Report(d, Outcome{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wire := range []bool{false, true} {
				s, clock := newTestSchedule(t, noSpread())
				require.NoError(t, s.Register("server", time.Minute))
				require.NoError(t, s.Watch("a", "ca"))
				ds := s.Due(clock.Now(), 0)
				require.Len(t, ds, 1)
				d := ds[0]
				if wire { // as carried by a poll action: no in-process hint
					b, err := json.Marshal(d)
					require.NoError(t, err)
					d = Dispatch{}
					require.NoError(t, json.Unmarshal(b, &d))
					require.True(t, s.Current(d))
				}
				tt.after(s, clock, d)
				require.False(t, s.Current(d), "wire=%v", wire)
				require.False(t, s.Report(d, Outcome{}), "wire=%v", wire)
				checkInvariants(t, s)
			}
		})
	}
}

func TestUnwatch(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Budget: Limit{PerSecond: 1, Burst: 1}})
	require.NoError(t, s.Register("server", time.Minute))
	require.NoError(t, s.Register("firewall", time.Minute))
	for _, a := range []string{"a", "b"} {
		require.NoError(t, s.Watch(a, "c-"+a))
		for i := range 50 {
			require.NoError(t, s.Set(target(a, "server", resourceID(i)), 30*time.Second))
		}
	}
	clock.Advance(time.Minute)
	ds := s.Due(clock.Now(), 0) // leaves most targets waiting for budget
	require.Len(t, ds, 2)
	require.Greater(t, s.Stats().Waiting, 90)

	require.Equal(t, 52, s.Unwatch("a"))
	require.Equal(t, 0, s.Unwatch("a"))
	checkInvariants(t, s)
	require.Equal(t, Stats{Targets: 52, InFlight: 1, Waiting: 51, Accounts: 1}, s.Stats())
	_, found := s.Lookup(state.Target{Account: "a", Kind: "server"})
	require.False(t, found)
	for _, d := range ds {
		require.Equal(t, d.Target.Account == "b", s.Current(d))
	}
	// Register after Unwatch does not bring it back.
	require.NoError(t, s.Register("disk", time.Minute))
	require.Equal(t, 53, s.Stats().Targets)
	require.Equal(t, 53, s.Unwatch("b"))
	require.Equal(t, Stats{}, s.Stats())
	_, found = s.NextWake()
	require.False(t, found)
	checkInvariants(t, s)
}

func TestWatch(t *testing.T) {
	t.Run("Idempotent", func(t *testing.T) {
		s, _ := newTestSchedule(t, Config{})
		require.NoError(t, s.Register("server", time.Minute))
		require.NoError(t, s.Register("firewall", 15*time.Second))
		require.NoError(t, s.Watch("a", "c1"))
		before, _ := s.Lookup(state.Target{Account: "a", Kind: "server"})
		require.NoError(t, s.Watch("a", "c1"))
		require.NoError(t, s.Watch("a", "c2"))
		require.Equal(t, 2, s.Stats().Targets)
		after, _ := s.Lookup(state.Target{Account: "a", Kind: "server"})
		require.Equal(t, before.NextDue, after.NextDue, "not rescheduled")
		require.Equal(t, "c2", after.Target.Customer, "customer updated")
		checkInvariants(t, s)
	})
	t.Run("KindsRegisteredLater", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		require.NoError(t, s.Watch("a", "c"))
		require.Equal(t, 0, s.Stats().Targets)
		require.NoError(t, s.Register("server", time.Minute))
		ds := s.Due(clock.Now(), 0)
		require.Len(t, ds, 1)
		require.Equal(t, state.Target{Account: "a", Customer: "c", Kind: "server"}, ds[0].Target)
	})
	t.Run("ReRegisterChangesDefaultInterval", func(t *testing.T) {
		s, clock := newTestSchedule(t, noSpread())
		require.NoError(t, s.Register("server", time.Minute))
		require.NoError(t, s.Watch("a", "c"))
		require.NoError(t, s.Set(target("a", "server", "i-1"), 5*time.Minute)) // own interval
		require.NoError(t, s.Register("server", 2*time.Minute))
		for _, d := range s.Due(clock.Now(), 0) {
			s.Report(d, Outcome{})
		}
		e, _ := s.Lookup(state.Target{Account: "a", Kind: "server"})
		require.Equal(t, 2*time.Minute, e.Every)
		e, _ = s.Lookup(target("a", "server", "i-1"))
		require.Equal(t, 5*time.Minute, e.Every)
		require.Equal(t, t0.Add(5*time.Minute), e.NextDue)
	})
}

func TestSet(t *testing.T) {
	s, clock := newTestSchedule(t, noSpread())
	tg := target("a", "server", "i-1")
	require.NoError(t, s.Set(tg, time.Hour))
	ds := s.Due(clock.Now(), 0)
	require.True(t, s.Report(ds[0], Outcome{}))
	e, _ := s.Lookup(tg)
	require.Equal(t, t0.Add(time.Hour), e.NextDue)

	require.NoError(t, s.Set(tg, time.Minute)) // shorter: at once
	e, _ = s.Lookup(tg)
	require.Equal(t, t0.Add(time.Minute), e.NextDue)
	require.NoError(t, s.Set(tg, 2*time.Hour)) // longer: from the next due time
	e, _ = s.Lookup(tg)
	require.Equal(t, t0.Add(time.Minute), e.NextDue)
	require.Equal(t, 2*time.Hour, e.Every)
	require.Equal(t, 1, s.Stats().Targets)
}

func TestComplete(t *testing.T) {
	s, clock := newTestSchedule(t, noSpread())
	job := target("a", "job", "op-123")
	require.NoError(t, s.Set(job, 5*time.Second))
	ds := s.Due(clock.Now(), 0)
	require.True(t, s.Report(ds[0], Outcome{}))
	clock.Advance(5 * time.Second)
	ds = s.Due(clock.Now(), 0)
	require.Len(t, ds, 1)
	require.True(t, s.Report(ds[0], Outcome{Err: errors.New("x"), Complete: true}), "complete is ignored on failure")
	require.Equal(t, 1, s.Stats().Targets)
	clock.Advance(5 * time.Second)
	ds = s.Due(clock.Now(), 0)
	require.True(t, s.Report(ds[0], Outcome{Complete: true}))
	require.Equal(t, Stats{}, s.Stats())
	checkInvariants(t, s)
}

func TestPause(t *testing.T) {
	s, clock := newTestSchedule(t, noSpread())
	require.NoError(t, s.Set(target("a", "server", ""), time.Minute))
	require.NoError(t, s.Set(target("b", "server", ""), time.Minute))
	s.Pause("a", t0.Add(time.Minute))
	s.Pause("a", t0.Add(time.Second)) // earlier: no change
	s.Pause("unknown", t0.Add(time.Hour))
	ds := s.Due(clock.Now(), 0)
	require.Len(t, ds, 1)
	require.Equal(t, "b", ds[0].Target.Account)
	next, _ := s.NextWake()
	require.Equal(t, t0.Add(time.Minute), next)
	clock.Set(next)
	ds = s.Due(clock.Now(), 0)
	require.Len(t, ds, 1)
	require.Equal(t, "a", ds[0].Target.Account)
	require.Equal(t, t0, ds[0].DueAt)
}

func TestDueOrderAndMax(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Jitter: -1, InitialSpread: time.Minute})
	for i := range 500 {
		require.NoError(t, s.Set(target("a", "server", resourceID(i)), time.Minute))
	}
	clock.Advance(time.Minute)
	var all []Dispatch
	for {
		ds := s.Due(clock.Now(), 64)
		require.LessOrEqual(t, len(ds), 64)
		if len(ds) == 0 {
			break
		}
		all = append(all, ds...)
	}
	require.Len(t, all, 500)
	require.True(t, sort.SliceIsSorted(all, func(i, j int) bool { return all[i].DueAt.Before(all[j].DueAt) }))
}

// TestRandomOperations exercises every operation in a random order and checks
// the internal structures after each step.
func TestRandomOperations(t *testing.T) {
	s, clock := newTestSchedule(t, Config{Budget: Limit{PerSecond: 3, Burst: 2}, InFlightTimeout: 20 * time.Second})
	require.NoError(t, s.Register("server", 10*time.Second))
	var out []Dispatch
	rng := newTestRand(1)
	accounts := []string{"a", "b", "c", "d"}
	for step := range 3000 {
		acct := accounts[rng.IntN(len(accounts))]
		tg := target(acct, "server", resourceID(rng.IntN(30)))
		switch op := rng.IntN(100); {
		case op < 5:
			_ = s.Watch(acct, "c")
		case op < 7:
			s.Unwatch(acct)
		case op < 30:
			_ = s.Set(tg, time.Duration(1+rng.IntN(20))*time.Second)
		case op < 35:
			s.Remove(tg)
		case op < 50:
			clock.Advance(time.Duration(rng.IntN(2000)) * time.Millisecond)
			out = append(out, s.Due(clock.Now(), rng.IntN(10))...)
		case op < 52:
			s.Pause(acct, clock.Now().Add(time.Duration(rng.IntN(5))*time.Second))
		default:
			if len(out) == 0 {
				continue
			}
			i := rng.IntN(len(out))
			d := out[i]
			out = append(out[:i], out[i+1:]...)
			o := Outcome{}
			switch rng.IntN(6) {
			case 0:
				o.Err = errors.New("x")
			case 1:
				o.Throttled, o.RetryAfter = true, time.Duration(rng.IntN(3))*time.Second
			case 2:
				o.Complete = true
			case 3:
				o.Calls = rng.IntN(4)
			}
			cur := s.Current(d)
			require.Equal(t, cur, s.Report(d, o), "step %d", step)
		}
		if step%10 == 0 {
			checkInvariants(t, s)
		}
	}
	checkInvariants(t, s)
}

func TestMemoryPerTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const n = 20_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = resourceID(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, _ := newTestSchedule(t, Config{})
	for i, id := range ids {
		require.NoError(t, s.Set(state.Target{Account: accountID(i % 100), Customer: "cust", Kind: "server", Resource: id}, time.Minute))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perTarget := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes/target (resource ids included)", perTarget)
	require.Less(t, perTarget, 200.0)
	runtime.KeepAlive(s)
	runtime.KeepAlive(ids)
}
