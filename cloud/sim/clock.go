package sim

import (
	"time"

	"github.com/stratusworks/worker/clock"
)

// FakeClock is the SDK's one fake clock ([clock.Fake]). Share one between
// the simulator and the code under test — Config{Now: clk.Now} here,
// Config.Schedule.Clock in the worker — so that one Advance moves both.
type FakeClock = clock.Fake

// NewFakeClock returns a clock that reads start until it is moved
// ([clock.NewFake]).
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }
