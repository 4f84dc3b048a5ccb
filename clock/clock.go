// Package clock is the SDK's one notion of time: [Clock], with the system
// clock [Real] and [Fake], a clock that tests move by hand. The poll
// schedule, the worker's own due times and retry budgets, and the simulated
// cloud (cloud/sim) all read a Clock, so one Fake drives them together.
package clock

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers. [Real] is the system clock; [Fake]
// is a deterministic clock that tests move by hand.
//
// A clock has two readings. Now is the wall clock: it can jump, backwards or
// forwards, when NTP or an operator steps it. Monotonic only moves forward, at
// the pace of real time, whatever the wall clock does. A poll schedule keeps its
// timeline on Monotonic and uses Now only to convert the times it takes and
// returns (see package poller, "Time and clock steps").
type Clock interface {
	// Now returns the wall-clock time.
	Now() time.Time
	// Monotonic returns the time elapsed since a fixed, arbitrary origin of
	// the clock. It never decreases and is not moved by steps of the wall
	// clock.
	Monotonic() time.Duration
	// NewTimer returns a timer that fires once d of monotonic time has
	// passed: a timer measures a duration, not a wall-clock instant.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of [time.Timer] the SDK uses. Stop and Reset follow
// the Go 1.23 semantics: after either returns, no stale time is received from C.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Real returns the system clock. Its Monotonic reading is the
// monotonic clock of the Go runtime (time.Since on a reading taken when the
// package was initialised); like time.Timer, it does not advance while the
// machine is suspended.
func Real() Clock { return realClock{} }

// monoOrigin carries the runtime's monotonic reading: time.Since(monoOrigin)
// is immune to wall-clock steps.
var monoOrigin = time.Now()

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) Monotonic() time.Duration       { return time.Since(monoOrigin) }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// Fake is a [Clock] that moves only when told to. Advance lets time
// pass: both readings move and the timers that come due fire, in deadline
// order. Step jumps the wall clock alone, as an NTP step does: Monotonic and
// the timers are not affected. It is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	armed  *sync.Cond // broadcast whenever a timer is armed
	now    time.Time
	mono   time.Duration
	timers map[*fakeTimer]struct{} // armed timers
}

// NewFake returns a Fake showing start, with a Monotonic reading
// of zero.
func NewFake(start time.Time) *Fake {
	c := &Fake{now: start, timers: make(map[*fakeTimer]struct{})}
	c.armed = sync.NewCond(&c.mu)
	return c
}

// Now returns the clock's wall-clock time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Monotonic returns how much time has passed (by Advance and Set) since the
// clock was made. Step does not change it.
func (c *Fake) Monotonic() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// NewTimer returns a timer that fires once d has passed; at once if d ≤ 0.
func (c *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm(t, d)
	return t
}

// Advance lets d pass: it moves the wall clock and the monotonic reading
// forward by d, firing the timers that come due, and returns the new time. Time does not run backwards:
// Advance panics when d is negative (use Step to set the wall clock back).
func (c *Fake) Advance(d time.Duration) time.Time {
	if d < 0 {
		panic(fmt.Sprintf("clock: Fake.Advance(%v): time does not run backwards; use Step", d))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(d)
	return c.now
}

// Step jumps the wall clock by d (backwards when d is negative), as an NTP
// step or an operator setting the clock does. No time passes: Monotonic does
// not change and no timer fires.
func (c *Fake) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the wall clock to t. When t is after Now, time passes: Set(t) is
// Advance(t.Sub(Now())), firing the timers that come due. When t is before
// Now, time cannot flow back, so Set is a wall-clock step, Step(t.Sub(Now())):
// Monotonic and the timers stay where they are.
func (c *Fake) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := t.Sub(c.now); d >= 0 {
		c.advance(d)
	} else {
		c.now = t
	}
}

// Timers returns how many timers are armed.
func (c *Fake) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// BlockUntilTimers blocks until at least n timers are armed: a test calls it
// to know that the goroutine under test is waiting before it calls Advance.
func (c *Fake) BlockUntilTimers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.timers) < n {
		c.armed.Wait()
	}
}

// advance moves both readings by d ≥ 0 and fires the timers that come due;
// c.mu is held.
func (c *Fake) advance(d time.Duration) {
	c.now = c.now.Add(d)
	c.mono += d
	var due []*fakeTimer
	for t := range c.timers {
		if t.at <= c.mono {
			due = append(due, t)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].at < due[j].at })
	for _, t := range due {
		c.fire(t)
	}
}

// arm (re)starts t; c.mu is held.
func (c *Fake) arm(t *fakeTimer, d time.Duration) {
	t.drain()
	t.at = c.mono + d
	if d <= 0 {
		t.ch <- c.now
		delete(c.timers, t)
		return
	}
	c.timers[t] = struct{}{}
	c.armed.Broadcast()
}

func (c *Fake) fire(t *fakeTimer) {
	delete(c.timers, t)
	select {
	case t.ch <- c.now:
	default:
	}
}

type fakeTimer struct {
	c  *Fake
	ch chan time.Time
	at time.Duration // deadline on the monotonic reading
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	delete(t.c.timers, t)
	t.drain()
	return armed
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	t.c.arm(t, d)
	return armed
}

func (t *fakeTimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}
