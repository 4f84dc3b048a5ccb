package worker

import (
	"sync"
	"sync/atomic"
	"time"
)

// quietLog keeps a log readable through an outage: for each thing that
// fails over and over (a duty, the actions of one type and customer), the
// first failure is logged, then at most one summary per period with a
// count, then the recovery: the first success once no failure has come for
// recoverAfter (0 for a thing that runs one at a time, such as a duty; some
// seconds for many concurrent actions, of which some succeed while others
// still fail). A failure after a quiet period starts a new run. It only
// counts; callers write the lines. It is safe for concurrent use, and costs
// an atomic load on success while nothing is failing.
type quietLog struct {
	every        time.Duration
	recoverAfter time.Duration
	now          func() time.Time
	active       atomic.Int64 // runs in progress

	mu   sync.Mutex
	runs map[string]*failureRun
}

type failureRun struct {
	failures    int       // since the run started
	unlogged    int       // since the last line
	first       time.Time // when the run started
	last        time.Time // when the last line was written
	lastFailure time.Time
}

// maxQuietRuns bounds the runs followed at once; failures of more things
// than this are all logged.
const maxQuietRuns = 10_000

func newQuietLog(every, recoverAfter time.Duration, now func() time.Time) *quietLog {
	return &quietLog{every: every, recoverAfter: recoverAfter, now: now, runs: map[string]*failureRun{}}
}

// runReport says what a failure or a recovery should log.
type runReport struct {
	first    bool          // the first failure of a run: log it in full
	summary  bool          // a period has passed: log a summary
	unlogged int           // failures since the last line (summary)
	failures int           // failures of the whole run (recovery)
	since    time.Duration // since the run started
}

// failed records a failure of key.
func (q *quietLog) failed(key string) runReport {
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.runs[key]
	if r != nil && now.Sub(r.lastFailure) >= q.every {
		r = nil // quiet for a period: a new run
		delete(q.runs, key)
		q.active.Add(-1)
	}
	if r == nil {
		if len(q.runs) >= maxQuietRuns {
			return runReport{first: true}
		}
		q.runs[key] = &failureRun{first: now, last: now, lastFailure: now, failures: 1}
		q.active.Add(1)
		return runReport{first: true}
	}
	r.lastFailure = now
	r.failures++
	r.unlogged++
	rep := runReport{unlogged: r.unlogged, failures: r.failures, since: now.Sub(r.first)}
	if now.Sub(r.last) >= q.every {
		rep.summary = true
		r.unlogged, r.last = 0, now
	}
	return rep
}

// ok records a success of key and reports the run it ends, if any.
func (q *quietLog) ok(key string) (runReport, bool) {
	if q.active.Load() == 0 {
		return runReport{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.runs[key]
	now := q.now()
	if r == nil || now.Sub(r.lastFailure) < q.recoverAfter {
		return runReport{}, false
	}
	delete(q.runs, key)
	q.active.Add(-1)
	return runReport{failures: r.failures, since: now.Sub(r.first)}, true
}
