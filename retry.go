package worker

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/stratusworks/worker/cloud"
)

// RetryPolicy says how long and how often a failed action is tried again.
//
// A failure that is not [Permanent] is retried with capped exponential backoff
// and jitter for as long as the time budget lasts: Budget after the action's
// first failure, the last attempt that fails poisons it. The defaults wait out
// ordinary outages (a database restart, a broker failover, a cloud API
// throttling for an hour) without poisoning anything: about 35 attempts over
// a day, as River, asynq and Sidekiq retry for weeks by default.
//
// Short waits (up to InlineMax) happen in place; a longer wait parks the
// action durably (the deferred store) and frees the handler slot, so a
// failing action never stalls the consumer behind it. When the deferred store
// itself is unreachable, the transport holds the action for the wait instead
// (RabbitMQ: a wait queue), so a database outage never turns into a tight
// redelivery loop.
type RetryPolicy struct {
	// Budget is how long after an action's first failure it is still
	// retried. A failure after that poisons it. Default 24h.
	Budget time.Duration
	// MaxAttempts, when positive, also caps the attempts, the first
	// included: 1 disables retries. Default 0: only Budget limits retries.
	MaxAttempts int
	// InitialInterval is the wait after the first failure. Default 100ms.
	InitialInterval time.Duration
	// MaxInterval caps a single wait. Default 1h.
	MaxInterval time.Duration
	// Multiplier grows the wait after each failure. Default 2.
	Multiplier float64
	// Jitter spreads each wait uniformly over ±Jitter of its value so retries
	// of many actions do not arrive together. Default 0.2; must be in [0, 1).
	Jitter float64
	// InlineMax is the longest wait done in place. Longer waits park the
	// action in the deferred store (when there is one). Default 1s.
	InlineMax time.Duration
}

// Retry policy defaults.
const (
	DefaultRetryBudget      = 24 * time.Hour
	defaultRetryInitial     = 100 * time.Millisecond
	defaultRetryMaxInterval = time.Hour
	defaultRetryMultiplier  = 2
	defaultRetryJitter      = 0.2
	defaultRetryInlineMax   = time.Second
)

func (p *RetryPolicy) setDefaults() {
	if p.Budget == 0 {
		p.Budget = DefaultRetryBudget
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = defaultRetryInitial
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = max(defaultRetryMaxInterval, p.InitialInterval)
	}
	if p.Multiplier == 0 {
		p.Multiplier = defaultRetryMultiplier
	}
	if p.Jitter == 0 {
		p.Jitter = defaultRetryJitter
	}
	if p.InlineMax == 0 {
		p.InlineMax = defaultRetryInlineMax
	}
}

// Validate names the first bad field. Zero fields stand for their defaults.
func (p RetryPolicy) Validate() error {
	p.setDefaults()
	switch {
	case p.Budget < 0:
		return configError("Retry.Budget", "is %v, must not be negative", p.Budget)
	case p.MaxAttempts < 0:
		return configError("Retry.MaxAttempts", "is %d, must not be negative (0 means: no cap but the budget)", p.MaxAttempts)
	case p.InitialInterval < 0:
		return configError("Retry.InitialInterval", "is %v, must not be negative", p.InitialInterval)
	case p.MaxInterval < p.InitialInterval:
		return configError("Retry.MaxInterval", "is %v, must be at least InitialInterval (%v)", p.MaxInterval, p.InitialInterval)
	case math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) || p.Multiplier < 1:
		return configError("Retry.Multiplier", "is %v, must be at least 1", p.Multiplier)
	case math.IsNaN(p.Jitter) || p.Jitter < 0 || p.Jitter >= 1:
		return configError("Retry.Jitter", "is %v, must be in [0, 1)", p.Jitter)
	case p.InlineMax < 0:
		return configError("Retry.InlineMax", "is %v, must not be negative", p.InlineMax)
	}
	return nil
}

// Delay returns the wait after the given failed attempt (1-based), jitter
// included, of the policy as it is (zero fields are not defaulted here). It
// is stateless so that any process can compute the wait for an action whose
// earlier attempts ran elsewhere.
func (p RetryPolicy) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(attempt-1))
	if d > float64(p.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(p.MaxInterval)
	}
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// exhausted reports whether an action that has just failed its attempt-th
// attempt, first failing at since, has used up the policy: it is poisoned
// instead of retried.
func (p RetryPolicy) exhausted(attempt int, since, now time.Time) bool {
	if p.MaxAttempts > 0 && attempt >= p.MaxAttempts {
		return true
	}
	return !since.IsZero() && now.Sub(since) >= p.Budget
}

// Outcome is what became of one attempt of an action.
type Outcome int

// The outcomes of an attempt.
const (
	// Handled: the handler returned nil; the action is acknowledged.
	Handled Outcome = iota + 1
	// Retried: the handler failed; the action is tried again after Wait.
	Retried
	// Snoozed: the handler asked (Snooze) to be tried again after Wait; no
	// failure is counted.
	Snoozed
	// Poisoned: the action goes to the poison store with Reason.
	Poisoned
)

func (o Outcome) String() string {
	switch o {
	case Handled:
		return "handled"
	case Retried:
		return "retried"
	case Snoozed:
		return "snoozed"
	case Poisoned:
		return "poisoned"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Verdict is what a subscriber does with an action after one attempt.
type Verdict struct {
	Outcome Outcome
	// Wait is how long until the next attempt (Retried, Snoozed): up to
	// InlineMax it waits in place, longer it parks the action durably.
	Wait time.Duration
	// Reason is why it was poisoned (Poisoned).
	Reason string
}

// Decide is the subscriber's decision after an attempt: err is what the
// handler returned (nil for success; a panic counts as a [Permanent] error),
// attempt the attempt that ended (1-based), since when the action first
// failed (zero if it had not) and now the time. Retries wait Delay(attempt),
// or a throttled cloud's RetryAfter if longer, until the budget or
// MaxAttempts is spent. Zero fields of p take their defaults, as in a
// subscriber.
func (p RetryPolicy) Decide(err error, attempt int, since, now time.Time) Verdict {
	p.setDefaults()
	if err == nil {
		return Verdict{Outcome: Handled}
	}
	if d, ok := snoozed(err); ok {
		return Verdict{Outcome: Snoozed, Wait: d}
	}
	if IsPermanent(err) {
		return Verdict{Outcome: Poisoned, Reason: err.Error()}
	}
	if p.exhausted(attempt, since, now) {
		return Verdict{Outcome: Poisoned, Reason: fmt.Sprintf("gave up after %d attempts over %v (Retry: Budget %v, MaxAttempts %d): %v",
			attempt, now.Sub(since).Round(time.Millisecond), p.Budget, p.MaxAttempts, err)}
	}
	wait := p.Delay(attempt)
	if ra, ok := cloud.RetryAfter(err); ok && ra > wait {
		wait = ra // a throttled cloud said when to come back
	}
	return Verdict{Outcome: Retried, Wait: wait}
}
