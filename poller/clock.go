package poller

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers. [RealClock] is the system clock;
// [FakeClock] is a deterministic clock that tests move by hand.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of [time.Timer] a [Schedule] uses. Stop and Reset follow
// the Go 1.23 semantics: after either returns, no stale time is received from C.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// RealClock returns the system clock.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// FakeClock is a [Clock] whose time moves only when Advance or Set is called.
// Timers fire (in deadline order) when the time reaches their deadline. It is
// safe for concurrent use.
type FakeClock struct {
	mu     sync.Mutex
	armed  *sync.Cond // broadcast whenever a timer is armed
	now    time.Time
	timers map[*fakeTimer]struct{} // armed timers
}

// NewFakeClock returns a FakeClock showing start.
func NewFakeClock(start time.Time) *FakeClock {
	c := &FakeClock{now: start, timers: make(map[*fakeTimer]struct{})}
	c.armed = sync.NewCond(&c.mu)
	return c
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches Now()+d; at once
// if d ≤ 0.
func (c *FakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm(t, d)
	return t
}

// Advance moves the clock forward by d, firing the timers that come due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(c.now.Add(d))
}

// Set moves the clock to t (which may be earlier than Now), firing the timers
// that come due.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(t)
}

// Timers returns how many timers are armed.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// BlockUntilTimers blocks until at least n timers are armed: a test calls it
// to know that the goroutine under test is waiting before it calls Advance.
func (c *FakeClock) BlockUntilTimers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.timers) < n {
		c.armed.Wait()
	}
}

func (c *FakeClock) set(now time.Time) {
	c.now = now
	var due []*fakeTimer
	for t := range c.timers {
		if !t.at.After(now) {
			due = append(due, t)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		c.fire(t)
	}
}

// arm (re)starts t; c.mu is held.
func (c *FakeClock) arm(t *fakeTimer, d time.Duration) {
	t.drain()
	t.at = c.now.Add(d)
	if d <= 0 {
		t.ch <- c.now
		delete(c.timers, t)
		return
	}
	c.timers[t] = struct{}{}
	c.armed.Broadcast()
}

func (c *FakeClock) fire(t *fakeTimer) {
	delete(c.timers, t)
	select {
	case t.ch <- c.now:
	default:
	}
}

type fakeTimer struct {
	c  *FakeClock
	ch chan time.Time
	at time.Time
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
