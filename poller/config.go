package poller

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidConfig is wrapped by every error that [Config.Validate] returns.
var ErrInvalidConfig = errors.New("poller: invalid config")

// ErrInvalidTarget is wrapped by errors about a target or interval passed to
// [Schedule.Register], [Schedule.Watch] or [Schedule.Set].
var ErrInvalidTarget = errors.New("poller: invalid target")

// Defaults used by [New] for zero [Config] fields.
const (
	DefaultJitter          = 0.1
	DefaultInFlightTimeout = 5 * time.Minute
	DefaultBatchSize       = 1000
	DefaultBackoffInitial  = 5 * time.Second
	DefaultBackoffMax      = 15 * time.Minute
	DefaultBackoffFactor   = 2.0
	// DefaultBackoffMaxTargetIntervals is the default of Backoff.MaxTargetIntervals.
	DefaultBackoffMaxTargetIntervals = 10.0
)

// MaxInterval is the longest interval a target may have (jitter offsets are
// stored in 32-bit milliseconds).
const MaxInterval = 30 * 24 * time.Hour

// DefaultBudget is the per-account API budget used when Config.Budget is zero:
// ten polls a second with bursts of twenty.
var DefaultBudget = Limit{PerSecond: 10, Burst: 20}

// Unlimited is a [Limit] that never makes a target wait.
var Unlimited = Limit{PerSecond: math.Inf(1)}

// Limit is a token bucket: one token per dispatched poll, refilled at
// PerSecond up to Burst. The zero Limit means "use the default".
type Limit struct {
	// PerSecond is the sustained rate. +Inf (see [Unlimited]) disables the budget.
	PerSecond float64
	// Burst is the bucket size. Zero means max(1, ceil(PerSecond)).
	Burst int
}

func (l Limit) unlimited() bool { return math.IsInf(l.PerSecond, 1) }

func (l Limit) normalized() Limit {
	if l.Burst == 0 && !l.unlimited() {
		l.Burst = max(1, int(math.Ceil(l.PerSecond)))
	}
	return l
}

func (l Limit) validate(field string) error {
	switch {
	case math.IsNaN(l.PerSecond) || l.PerSecond < 0:
		return fmt.Errorf("%w: %s.PerSecond must be positive, got %v", ErrInvalidConfig, field, l.PerSecond)
	case l.PerSecond == 0 && l.Burst != 0:
		return fmt.Errorf("%w: %s.PerSecond must be positive when Burst is set", ErrInvalidConfig, field)
	case l.Burst < 0:
		return fmt.Errorf("%w: %s.Burst must not be negative, got %d", ErrInvalidConfig, field, l.Burst)
	}
	return nil
}

// Backoff is the retry policy for failing targets. After the n-th
// consecutive failure of a target with interval I, it is retried after
//
//	delay(n) = min(min(InitialInterval, I) × Multiplier^(n-1), cap)
//	cap      = max(I, min(MaxInterval, MaxTargetIntervals × I))
//
// from the failed report, spread by ±Jitter × delay(n) and folded back below
// cap, so a retry never comes later than cap. Hence:
//   - the first retry comes no later than the next healthy poll would: a
//     target faster than InitialInterval retries at its own pace;
//   - once failures pile up, a target is retried about once per cap and no
//     more often than once per interval: a broken API is not hammered, and a
//     fast target (MaxTargetIntervals × I below MaxInterval) is retried every
//     MaxTargetIntervals intervals rather than every MaxInterval, so it is
//     polled again within MaxTargetIntervals × I of its provider coming back;
//   - a target whose interval is longer than MaxInterval is never retried less often
//     than a healthy one (cap ≥ I).
//
// With the defaults a 500 ms target retries after 0.5 s, 1 s, 2 s, 4 s, then
// every 5 s; a 1 min target after 5 s, 10 s, … up to every 10 min; a 15 min
// or 1 h target after 5 s, 10 s, … up to every 15 min or every hour.
//
// A throttled poll without a RetryAfter pauses its account for delay(n) and
// is retried up to Jitter × delay(n) after the pause ends (so not before it),
// which may be later than cap.
//
// A success resets the count. So does a success of any other target of the
// same account, for targets that fail with errors (not throttled ones): see
// [Schedule.Report].
//
// The field names are those of the SDK's other backoffs (worker.RetryPolicy,
// rabbitmq.Config's reconnect): InitialInterval, MaxInterval, Multiplier.
type Backoff struct {
	InitialInterval time.Duration // default 5s
	MaxInterval     time.Duration // default 15m
	Multiplier      float64       // default 2; must be ≥ 1
	// MaxTargetIntervals bounds the delay to this many of the target's intervals
	// (but never below one interval, see cap above). Default 10; must be ≥ 1.
	MaxTargetIntervals float64
}

// maxTargetIntervals returns MaxTargetIntervals or its default. (withDefaults leaves the
// field as given, so a defaulted Backoff compares equal to one written before
// the field existed.)
func (b Backoff) maxTargetIntervals() float64 {
	if b.MaxTargetIntervals == 0 {
		return DefaultBackoffMaxTargetIntervals
	}
	return b.MaxTargetIntervals
}

// Config configures a [Schedule]. The zero Config is valid: every field has a
// default, stated in its comment.
type Config struct {
	// Clock tells the time and makes timers. Default: the system clock. Tests
	// use a [FakeClock]. The schedule runs on its Monotonic reading, so a step
	// of the wall clock does not disturb it (see the package documentation).
	Clock Clock

	// Jitter spreads every next-due time by up to ±Jitter × interval, so
	// targets registered together drift apart. 0 means 0.1; negative disables
	// jitter; at most 0.5. Jitter does not accumulate: a healthy target stays
	// on its grid of start + k × interval.
	Jitter float64

	// Seed seeds the jitter and the initial spread. 0 picks a random seed; any
	// other value makes the schedule deterministic (same calls, same times).
	Seed uint64

	// InitialSpread bounds how a new target's first due time is spread: it is
	// uniform in [now, now + min(interval, InitialSpread)], so a million targets
	// added at once do not fire together. 0 means the target's interval;
	// negative means no spread (a new target is due at once). The targets an
	// account's recovery resets are spread the same way (see [Schedule.Report]).
	InitialSpread time.Duration

	// Backoff is the retry policy for failing and throttled targets. The
	// zero Backoff is 5s, doubling, capped at max(interval, min(15m, 10 ×
	// interval)); see [Backoff] for the formula.
	Backoff Backoff

	// InFlightTimeout is the lease of a dispatched poll: a poll not reported
	// within it is considered lost and its target becomes due again (counted
	// as a failure). Default 5m.
	InFlightTimeout time.Duration

	// Budget is the API budget of every account, spent when a poll is
	// dispatched. Default [DefaultBudget]; [Unlimited] disables it.
	Budget Limit

	// Budgets, if set, returns the budget of one account; it is called once,
	// when the schedule first sees the account, with the schedule's lock held
	// (it must not call the Schedule). A zero or invalid Limit means Budget.
	Budgets func(account string) Limit

	// BatchSize caps the dispatches [Schedule.Run] hands to its callback in
	// one call. Default 1000.
	BatchSize int
}

// Validate reports the first invalid field, by name. Zero fields are valid
// (they take their defaults).
func (c Config) Validate() error {
	initial := c.Backoff.InitialInterval
	if initial == 0 {
		initial = DefaultBackoffInitial
	}
	switch {
	case math.IsNaN(c.Jitter) || c.Jitter > 0.5:
		return fmt.Errorf("%w: Jitter must be at most 0.5, got %v", ErrInvalidConfig, c.Jitter)
	case c.Backoff.InitialInterval < 0:
		return fmt.Errorf("%w: Backoff.InitialInterval must not be negative, got %v", ErrInvalidConfig, c.Backoff.InitialInterval)
	case c.Backoff.MaxInterval < 0:
		return fmt.Errorf("%w: Backoff.MaxInterval must not be negative, got %v", ErrInvalidConfig, c.Backoff.MaxInterval)
	case c.Backoff.MaxInterval > 0 && c.Backoff.MaxInterval < initial:
		return fmt.Errorf("%w: Backoff.MaxInterval (%v) must not be less than Backoff.InitialInterval (%v)", ErrInvalidConfig, c.Backoff.MaxInterval, initial)
	case math.IsNaN(c.Backoff.Multiplier) || math.IsInf(c.Backoff.Multiplier, 0) ||
		(c.Backoff.Multiplier != 0 && c.Backoff.Multiplier < 1):
		return fmt.Errorf("%w: Backoff.Multiplier must be at least 1, got %v", ErrInvalidConfig, c.Backoff.Multiplier)
	case math.IsNaN(c.Backoff.MaxTargetIntervals) || math.IsInf(c.Backoff.MaxTargetIntervals, 0) ||
		(c.Backoff.MaxTargetIntervals != 0 && c.Backoff.MaxTargetIntervals < 1):
		return fmt.Errorf("%w: Backoff.MaxTargetIntervals must be at least 1, got %v", ErrInvalidConfig, c.Backoff.MaxTargetIntervals)
	case c.InFlightTimeout < 0:
		return fmt.Errorf("%w: InFlightTimeout must not be negative, got %v", ErrInvalidConfig, c.InFlightTimeout)
	case c.BatchSize < 0:
		return fmt.Errorf("%w: BatchSize must not be negative, got %d", ErrInvalidConfig, c.BatchSize)
	}
	return c.Budget.validate("Budget")
}

// withDefaults returns c with every zero field set to its default, except
// Backoff.MaxTargetIntervals (see Backoff.maxTargetIntervals).
func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = RealClock()
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case c.Jitter < 0:
		c.Jitter = 0
	}
	if c.Backoff.InitialInterval == 0 {
		c.Backoff.InitialInterval = DefaultBackoffInitial
	}
	if c.Backoff.MaxInterval == 0 {
		c.Backoff.MaxInterval = max(DefaultBackoffMax, c.Backoff.InitialInterval)
	}
	if c.Backoff.Multiplier == 0 {
		c.Backoff.Multiplier = DefaultBackoffFactor
	}
	if c.InFlightTimeout == 0 {
		c.InFlightTimeout = DefaultInFlightTimeout
	}
	if c.Budget == (Limit{}) {
		c.Budget = DefaultBudget
	}
	c.Budget = c.Budget.normalized()
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}
