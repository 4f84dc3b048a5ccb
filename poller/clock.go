package poller

import (
	"time"

	"github.com/stratusworks/worker/clock"
)

// Clock is the SDK's clock ([clock.Clock]): the schedule keeps its timeline
// on its Monotonic reading and converts with Now at the edges.
type Clock = clock.Clock

// Timer is a [clock.Timer].
type Timer = clock.Timer

// FakeClock is the SDK's one fake clock, [clock.Fake], under the name the
// schedule's API has always used.
type FakeClock = clock.Fake

// NewFakeClock is [clock.NewFake].
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }

// RealClock is [clock.Real], the system clock.
func RealClock() Clock { return clock.Real() }
