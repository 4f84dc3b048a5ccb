package poller

import (
	"math"
	"time"

	"github.com/stratusworks/worker/state"
)

// Dispatch is one poll handed out by [Schedule.Due]: poll Target, then report
// the outcome with [Schedule.Report]. Lease identifies this dispatch: once the
// target is dispatched again, removed or unwatched, the lease is stale. A
// Dispatch survives a JSON round trip (Target and Lease are enough to report).
type Dispatch struct {
	Target state.Target `json:"target"`
	Lease  uint64       `json:"lease"`
	// DueAt is when the target was due, on the wall clock of the schedule's
	// process when the dispatch was made; the dispatch is late by now − DueAt.
	DueAt time.Time `json:"due_at"`

	slot uint32 // slot+1 of the target in the schedule that made it; 0 = look it up
}

// Outcome is the result of a poll, reported with [Schedule.Report].
type Outcome struct {
	// Err is the poll's error; nil means success.
	Err error
	// Throttled reports that the cloud refused the call for rate reasons. The
	// target is retried after RetryAfter and its whole account is paused until
	// then. Throttled counts as a failure even when Err is nil.
	Throttled bool
	// RetryAfter is how long the cloud asked to wait; 0 means the backoff delay.
	RetryAfter time.Duration
	// Complete removes the target after a successful poll: a tracked job that
	// reached a terminal state needs no more checks. Ignored on failure.
	Complete bool
	// Calls is how many API calls the poll made (pages of a listing). The
	// dispatch paid for one; the rest are charged to the account's budget now,
	// which may put it in debt and delay its next dispatches. 0 means 1.
	Calls int
}

// Due pops up to n targets that are due at now (n ≤ 0: all of them),
// whose account has budget, and marks each in flight with a new lease. A
// target whose lease expired unreported is due again. Targets of an account
// without budget wait for it, oldest first, without delaying other accounts.
// Dispatches come out roughly in due order. now is read on the wall clock,
// as the clock's Now reads it: Due(clock.Now(), n) pops what is due now,
// however the wall clock was stepped.
func (s *Schedule) Due(now time.Time, n int) []Dispatch {
	ed := s.edge()
	return s.due(ed.at(now), ed, n)
}

// due is Due at time t of the timeline.
func (s *Schedule) due(t int64, ed edge, n int) []Dispatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Dispatch
	for n <= 0 || len(out) < n {
		heapDue := len(s.heap) > 0 && s.heap[0].key <= t
		readyDue := len(s.ready) > 0 && s.ready[0].readyAt <= t
		if !heapDue && !readyDue {
			break
		}
		if heapDue && (!readyDue || s.heap[0].key <= s.ready[0].readyAt) {
			it := s.heap[0]
			e := s.ent(it.slot)
			if e.state == stInFlight { // lease expired: the poll is lost
				s.inFlight--
				e.state, e.lease, e.due, e.jit = stIdle, 0, it.key, 0
				e.failures = satInc(e.failures)
				e.flags &^= fErr // due now: not backing off
			}
			a := s.accountByID[e.account]
			if a.bhead < len(a.backlog) || !s.take(a, t) {
				// no budget, or older targets of the account wait for it
				s.hremove(0)
				s.enqueue(a, it.slot, e)
				if a.readyIdx < 0 {
					s.readySet(a, s.readyTime(a, t, true))
				}
				continue
			}
			out = append(out, s.dispatch(it.slot, e, t, ed))
			continue
		}
		a := s.ready[0]
		if !s.take(a, t) {
			s.readySet(a, s.readyTime(a, t, true))
			continue
		}
		sl := a.backlog[a.bhead]
		a.backlog[a.bhead] = 0
		a.bhead++
		s.waiting--
		if a.bhead == len(a.backlog) {
			a.backlog, a.bhead = a.backlog[:0], 0
			s.readyRemove(a)
		} else {
			if a.bhead >= 1024 && a.bhead > len(a.backlog)/2 { // reclaim the consumed head
				a.backlog = a.backlog[:copy(a.backlog, a.backlog[a.bhead:])]
				a.bhead = 0
			}
			s.readySet(a, s.readyTime(a, t, false))
		}
		out = append(out, s.dispatch(sl, s.ent(sl), t, ed))
	}
	return out
}

// dispatch marks e in flight with a new lease that expires InFlightTimeout
// after now; ed converts its due time to the wall clock.
func (s *Schedule) dispatch(sl uint32, e *entry, now int64, ed edge) Dispatch {
	s.lease++
	e.lease = s.lease
	e.state = stInFlight
	s.inFlight++
	exp := now + int64(s.cfg.InFlightTimeout)
	if e.heapIdx >= 0 {
		s.hset(int(e.heapIdx), exp)
	} else {
		s.hpush(sl, exp)
	}
	return Dispatch{Target: s.target(e), Lease: e.lease, DueAt: s.wall(e.due, ed), slot: sl + 1}
}

// Current reports whether d is the outstanding dispatch of its target. A
// subscriber checks it before running a poll and drops a stale one (its target
// already re-dispatched, removed or unwatched).
func (s *Schedule) Current(d Dispatch) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, ok := s.find(d)
	return ok
}

// Report records the outcome of a dispatched poll and schedules the target's
// next poll:
//   - success: one interval after the time the poll was due (± jitter), so
//     slow or slightly late polls do not stretch the interval; a dispatch more
//     than half an interval late restarts the grid from the dispatch time;
//     never earlier than now. Failures reset.
//   - error: after the backoff delay (see [Backoff]) from now.
//   - throttled: after RetryAfter (or the backoff delay) from now, and the
//     target's account is paused until then ([Schedule.Pause]).
//   - Complete: the target is removed.
//
// A success (no error, not throttled; Complete or not) also shows that the
// account's provider answers again: the account's other targets that back off
// because of errors are reset. Their failure counts go to zero and each is
// made due as a new target would be (see Config.InitialSpread: by default at
// a uniformly random time within one interval from now), unless it was due
// sooner already; the account's budget and pause still apply. Throttled
// targets are not reset (the pause is the cloud's instruction), nor is a
// target that fails again after such a reset before it succeeds itself (its
// errors are its own: it backs off as usual). The cost is proportional to the
// number of the account's targets that failed since its last success.
//
// A stale report (see [Schedule.Current]) changes nothing and returns false.
func (s *Schedule) Report(d Dispatch, o Outcome) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, e, ok := s.find(d)
	if !ok {
		return false
	}
	a := s.accountByID[e.account]
	if o.Calls > 1 && a.lim != nil {
		a.lim.ReserveN(time.Unix(0, now), min(o.Calls-1, a.lim.Burst()))
	}
	dispatchedAt := s.heap[e.heapIdx].key - int64(s.cfg.InFlightTimeout)
	e.state, e.lease = stIdle, 0
	s.inFlight--
	var next int64
	var jit int64 // ns
	switch {
	case o.Throttled:
		e.failures = satInc(e.failures)
		e.flags &^= fErr
		delay := int64(o.RetryAfter)
		if delay <= 0 {
			delay, _ = s.backoff(e)
		}
		s.pause(a, now+delay)
		jit = s.jitter(delay, true)
		next = now + delay + jit
	case o.Err != nil:
		e.failures = satInc(e.failures)
		s.markErr(a, sl, e)
		delay, ceiling := s.backoff(e)
		wait := delay + s.jitter(delay, false)
		if wait > ceiling {
			wait = 2*ceiling - wait // fold the spread back below the cap
		}
		jit = wait - delay
		next = now + wait
	case o.Complete:
		e.flags = 0
		s.recover(a, now)
		s.remove(sl, e)
		if a.n == 0 && !a.watched {
			s.freeAccount(a)
		}
		return true
	default:
		every := s.every(e)
		nominal := e.due - int64(e.jit)*int64(time.Millisecond) // the grid point just polled
		if e.failures > 0 || dispatchedAt-nominal > every/2 {
			// a retry, which is off the grid, or far behind: restart the
			// grid rather than catch up
			nominal = dispatchedAt
		}
		e.failures = 0
		e.flags &^= fErr | fOwnErr
		nominal += every
		jit = s.jitter(every, false)
		next = nominal + jit
		if next < now {
			next, jit = now, 0
		}
		s.recover(a, now)
	}
	e.due, e.jit = next, int32(jit/int64(time.Millisecond))
	s.hset(int(e.heapIdx), next)
	s.notify(next)
	return true
}

// markErr records that e (in slot sl of account a) failed with an error,
// listing it for the account's recovery unless its errors are its own.
func (s *Schedule) markErr(a *account, sl uint32, e *entry) {
	e.flags |= fErr
	if e.flags&(fListed|fOwnErr) != 0 {
		return
	}
	if len(a.failing) >= 2*a.n+16 { // stale entries of removed targets pile up
		s.compactFailing(a)
	}
	e.flags |= fListed
	a.failing = append(a.failing, sl)
}

// recover resets the targets of account a that back off because of errors,
// after one of its polls succeeded at now (see Report). It visits the
// account's failing list only: O(targets that failed since the last success).
func (s *Schedule) recover(a *account, now int64) {
	if len(a.failing) == 0 {
		return
	}
	for _, sl := range a.failing {
		e := s.ent(sl)
		if e.flags&fListed == 0 || e.account != a.id {
			continue // stale: removed, or listed again further on
		}
		e.flags &^= fListed
		if e.flags&fErr == 0 || e.state == stInFlight {
			continue // throttled or lost since, or being polled: its report decides
		}
		e.failures = 0
		e.flags = e.flags&^fErr | fOwnErr
		e.jit = 0 // its grid starts at its due time, as a new target's does
		if e.state != stIdle {
			continue // waiting for budget: due already
		}
		if due := now + s.spread(s.every(e)); due < e.due {
			e.due = due
			s.hset(int(e.heapIdx), due)
			s.notify(due)
		}
	}
	clear(a.failing)
	a.failing = a.failing[:0]
}

// compactFailing drops the stale entries of a's failing list, and duplicates
// (a slot freed and reused by a target of the same account that failed too).
func (s *Schedule) compactFailing(a *account) {
	kept := a.failing[:0]
	for _, sl := range a.failing {
		if e := s.ent(sl); e.flags&fListed != 0 && e.account == a.id {
			e.flags &^= fListed // for now, so that a duplicate further on is dropped
			kept = append(kept, sl)
		}
	}
	for _, sl := range kept {
		s.ent(sl).flags |= fListed
	}
	clear(a.failing[len(kept):])
	a.failing = kept
}

// Pause makes the account's targets wait until the given time: they become
// due as usual but are not dispatched before it. Other accounts are not
// affected. An earlier pause than the current one changes nothing. until is
// read on the wall clock: the pause lasts until.Sub(clock.Now()), and a later
// step of the wall clock does not shorten or stretch it.
func (s *Schedule) Pause(account string, until time.Time) {
	ed := s.edge()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[account]; a != nil {
		s.pause(a, ed.at(until))
	}
}

// NextWake returns when the next target is due (or an account's budget frees
// a waiting target), on the wall clock as it reads now; false when nothing is
// scheduled.
func (s *Schedule) NextWake() (time.Time, bool) {
	ed := s.edge()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.nextWake()
	return s.wall(t, ed), ok
}

func (s *Schedule) nextWake() (int64, bool) {
	t, ok := int64(math.MaxInt64), false
	if len(s.heap) > 0 {
		t, ok = s.heap[0].key, true
	}
	if len(s.ready) > 0 && s.ready[0].readyAt < t {
		t, ok = s.ready[0].readyAt, true
	}
	return t, ok
}

// find returns the in-flight entry whose lease is d's.
func (s *Schedule) find(d Dispatch) (uint32, *entry, bool) {
	var sl uint32
	if d.slot != 0 {
		sl = d.slot - 1
		if sl >= s.nslots {
			return 0, nil, false
		}
	} else {
		var ok bool
		if sl, ok = s.lookup(d.Target); !ok {
			return 0, nil, false
		}
	}
	e := s.ent(sl)
	if e.state != stInFlight || e.lease != d.Lease || d.Lease == 0 {
		return 0, nil, false
	}
	return sl, e, true
}

// backoff returns the delay before the next retry of e, after its
// e.failures-th consecutive failure, and the cap of such delays (see
// [Backoff]).
func (s *Schedule) backoff(e *entry) (delay, ceiling int64) {
	b := s.cfg.Backoff
	every := s.every(e)
	ceiling = int64(b.MaxInterval)
	if k := b.maxTargetIntervals() * float64(every); k < float64(ceiling) {
		ceiling = int64(k)
	}
	ceiling = max(ceiling, every)
	d := float64(min(int64(b.InitialInterval), every)) * math.Pow(b.Multiplier, float64(e.failures)-1)
	if d >= float64(ceiling) || math.IsInf(d, 1) {
		return ceiling, ceiling
	}
	return int64(d), ceiling
}

// jitter returns a random offset within ±Jitter×base (within [0, Jitter×base]
// when positive is set), truncated to whole milliseconds.
func (s *Schedule) jitter(base int64, positive bool) int64 {
	if s.cfg.Jitter == 0 {
		return 0
	}
	r := s.rng.Float64()
	if !positive {
		r = 2*r - 1
	}
	ms := int64(r * s.cfg.Jitter * float64(base) / float64(time.Millisecond))
	ms = max(min(ms, math.MaxInt32), math.MinInt32)
	return ms * int64(time.Millisecond)
}

// take spends one token of the account's budget at now. The token buckets
// run on the schedule's monotonic timeline: a step of the wall clock neither
// refills nor drains them.
func (s *Schedule) take(a *account, now int64) bool {
	if now < a.paused {
		return false
	}
	return a.lim == nil || a.lim.AllowN(time.Unix(0, now), 1)
}

// readyTime returns when the account can next dispatch; after now when
// failed (take just failed), so Due always makes progress.
func (s *Schedule) readyTime(a *account, now int64, failed bool) int64 {
	t := max(now, a.paused)
	if a.lim != nil {
		if tok := a.lim.TokensAt(time.Unix(0, t)); tok < 1 {
			t += int64(math.Ceil((1 - tok) / float64(a.lim.Limit()) * float64(time.Second)))
		}
	}
	if failed && t <= now {
		t = now + 1
	}
	return t
}

func (s *Schedule) pause(a *account, until int64) {
	if until <= a.paused {
		return
	}
	a.paused = until
	if a.readyIdx >= 0 && a.readyAt < until {
		s.readySet(a, until)
	}
}

func (s *Schedule) enqueue(a *account, sl uint32, e *entry) {
	e.state = stWaiting
	a.backlog = append(a.backlog, sl)
	s.waiting++
}

// unqueue removes a waiting target from its account's backlog (a linear scan:
// removing single targets of a starved account is rare).
func (s *Schedule) unqueue(a *account, sl uint32) {
	for i := a.bhead; i < len(a.backlog); i++ {
		if a.backlog[i] == sl {
			copy(a.backlog[i:], a.backlog[i+1:])
			a.backlog = a.backlog[:len(a.backlog)-1]
			break
		}
	}
	s.waiting--
	if a.bhead == len(a.backlog) {
		a.backlog, a.bhead = a.backlog[:0], 0
		s.readyRemove(a)
	}
}

func satInc(n uint16) uint16 {
	if n == math.MaxUint16 {
		return n
	}
	return n + 1
}
