package rabbitmq

import "time"

// summaryEvery is how often at most an outage in progress is logged again.
const summaryEvery = time.Minute

// outage keeps count of a run of failures so that it is logged in few lines:
// one when it begins, at most one summary per summaryEvery while it lasts,
// one when it ends. The caller logs; outage only says when. It is not safe
// for concurrent use: each connection and each subscription has its own.
type outage struct {
	now      func() time.Time
	start    time.Time // zero while there is no outage
	failures int       // failed attempts since start
	lastLine time.Time // when the begin or the last summary was logged
}

// begin starts an outage unless one is in progress; it returns whether it
// started one (then the caller logs its one line).
func (o *outage) begin() bool {
	if !o.start.IsZero() {
		return false
	}
	o.start = o.now()
	o.lastLine = o.start
	o.failures = 0
	return true
}

// failed counts a failed attempt, starting an outage if none is in
// progress. It returns whether the caller should log: true for the failure
// that began the outage, and once per summaryEvery after that.
func (o *outage) failed() bool {
	if o.begin() {
		o.failures = 1
		return true
	}
	o.failures++
	if now := o.now(); now.Sub(o.lastLine) >= summaryEvery {
		o.lastLine = now
		return true
	}
	return false
}

// since is how long the outage in progress has lasted.
func (o *outage) since() time.Duration { return o.now().Sub(o.start) }

// end ends the outage in progress and returns how long it lasted and how
// many attempts failed; ok is false when there was none.
func (o *outage) end() (lasted time.Duration, failures int, ok bool) {
	if o.start.IsZero() {
		return 0, 0, false
	}
	lasted, failures = o.since(), o.failures
	o.start, o.failures = time.Time{}, 0
	return lasted, failures, true
}
