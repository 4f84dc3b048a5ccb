package worker

import (
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how soon a failed action is tried again.
//
// Waits grow exponentially with jitter. Short waits (up to InlineMax) happen in
// place; a longer wait parks the action durably (the deferred store) and frees
// the handler slot, so a failing action never stalls the consumer behind it.
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts, the first included, before
	// the action goes to the poison store. Default 5; 1 disables retries.
	MaxAttempts int
	// InitialInterval is the wait after the first failure. Default 100ms.
	InitialInterval time.Duration
	// MaxInterval caps a single wait. Default 5m.
	MaxInterval time.Duration
	// Multiplier grows the wait after each failure. Default 2.
	Multiplier float64
	// Jitter spreads each wait uniformly over ±Jitter of its value so retries of
	// many actions do not arrive together. Default 0.2; must be in [0, 1).
	Jitter float64
	// InlineMax is the longest wait done in place. Longer waits park the action
	// in the deferred store (when there is one). Default 1s.
	InlineMax time.Duration
}

func (p *RetryPolicy) setDefaults() {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 5
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = 100 * time.Millisecond
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 5 * time.Minute
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	if p.InlineMax == 0 {
		p.InlineMax = time.Second
	}
}

// Validate names the first bad field.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 1:
		return configError("Retry.MaxAttempts", "is %d, must be at least 1", p.MaxAttempts)
	case p.InitialInterval < 0:
		return configError("Retry.InitialInterval", "is %v, must not be negative", p.InitialInterval)
	case p.MaxInterval < p.InitialInterval:
		return configError("Retry.MaxInterval", "is %v, must be at least InitialInterval (%v)", p.MaxInterval, p.InitialInterval)
	case p.Multiplier < 1:
		return configError("Retry.Multiplier", "is %v, must be at least 1", p.Multiplier)
	case p.Jitter < 0 || p.Jitter >= 1:
		return configError("Retry.Jitter", "is %v, must be in [0, 1)", p.Jitter)
	case p.InlineMax < 0:
		return configError("Retry.InlineMax", "is %v, must not be negative", p.InlineMax)
	}
	return nil
}

// Delay returns the wait after the given failed attempt (1-based), jitter
// included. It is stateless so that any process can compute the wait for an
// action whose earlier attempts ran elsewhere.
func (p RetryPolicy) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(attempt-1))
	if d > float64(p.MaxInterval) || math.IsInf(d, 0) {
		d = float64(p.MaxInterval)
	}
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}
