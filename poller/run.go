package poller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/stratusworks/worker/clock"
)

// ErrRunning is returned by [Schedule.Run] when another Run is active.
var ErrRunning = errors.New("poller: schedule is already running")

// Run dispatches due targets until ctx is done, then returns nil. It sleeps on
// one timer of the configured clock until the next target is due (or until
// Register, Watch, Set or Report makes something due earlier), then hands the
// due targets to dispatch in batches of at most Config.BatchSize. dispatch
// publishes them (a "poll" action each); whoever runs a poll reports its
// outcome with [Schedule.Report]. When dispatch fails, its batch is reported
// as failed: every target is retried after its backoff delay, none is lost.
// Only one Run may be active at a time.
func (s *Schedule) Run(ctx context.Context, dispatch func(context.Context, []Dispatch) error) error {
	if dispatch == nil {
		return errors.New("poller: Run: nil dispatch func")
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	defer s.arm(math.MaxInt64)

	timer := s.clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		for {
			if ctx.Err() != nil {
				return nil
			}
			ed := s.edge()
			batch := s.due(ed.now, ed, s.cfg.BatchSize)
			if len(batch) == 0 {
				break
			}
			if err := dispatch(ctx, batch); err != nil {
				err = fmt.Errorf("poller: dispatch: %w", err)
				for _, d := range batch {
					s.Report(d, Outcome{Err: err})
				}
			}
			if len(batch) < s.cfg.BatchSize {
				break
			}
		}
		if next, ok := s.nextArm(); ok {
			s.armTimer(timer, next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C():
		case <-s.wake:
			timer.Stop()
		}
	}
}

// armTimer sets timer to fire at next, a time of the timeline: after
// next − now, a duration of monotonic time. A clock other than the system
// clock (a test's clock.Fake) moves in jumps, and one that jumped between
// reading now and setting the timer would leave the timer late by the
// jump, with a due target not dispatched until the clock moves again; so
// on such a clock the timer is set again, up to armTries times, until the
// clock stood still while it was set. (A host's clock that runs in real
// time never stands still: it just has its timer set armTries times.)
func (s *Schedule) armTimer(timer Timer, next int64) {
	for range armTries {
		now := s.now()
		timer.Reset(time.Duration(next - now))
		if s.clock == clock.Real() || s.now() == now {
			return
		}
	}
}

// armTries bounds how often armTimer sets the timer.
const armTries = 3

// nextArm returns the next wake-up time and records it, so that anything
// becoming due earlier wakes Run.
func (s *Schedule) nextArm() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.nextWake()
	s.armed = t
	return t, ok
}

func (s *Schedule) arm(t int64) {
	s.mu.Lock()
	s.armed = t
	s.mu.Unlock()
}
