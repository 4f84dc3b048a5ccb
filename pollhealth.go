package worker

import (
	"context"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// pollHealthStore is where a publisher's schedule keeps its failing polls
// for status processes, which cannot read its memory (the built-in store has
// it; a host's Config.Storage may leave it out, and then nothing is kept).
type pollHealthStore interface {
	PutPollHealth(ctx context.Context, hs ...persist.PollHealth) error
	DeletePollHealth(ctx context.Context, account, kind string) error
	PollHealth(ctx context.Context) ([]persist.PollHealth, error)
}

// healthWriteTimeout bounds one write of the poll health: the report
// handler waits for it.
const healthWriteTimeout = 5 * time.Second

// pollHealth is the scheduler's persisted view of its failing (account,
// kind) pairs. It writes on transitions only — the first failure, a change
// of throttling, the failure count reaching a power of two, the first
// success — so a healthy schedule writes nothing and a failing one writes
// O(log failures) rows.
type pollHealth struct {
	db       pollHealthStore
	instance string
	failing  map[[2]string]*persist.PollHealth // guarded by scheduler.mu
	// writes are done in order by one goroutine (writeHealth), so that the
	// report handlers never wait for the database.
	writes chan healthWrite
}

// healthWrite is a row to put, or (Put nil) the rows of Account (of Kind,
// or all when "") to delete.
type healthWrite struct {
	Put           *persist.PollHealth
	Account, Kind string
}

// healthQueue is how many writes may wait; more are dropped with a warning.
const healthQueue = 1024

// persistHealth makes s keep its failing polls in db.
func (s *scheduler) persistHealth(store any, instance string) {
	db, ok := store.(pollHealthStore)
	if !ok {
		return
	}
	s.mu.Lock()
	s.ph = &pollHealth{db: db, instance: instance, failing: map[[2]string]*persist.PollHealth{},
		writes: make(chan healthWrite, healthQueue)}
	s.mu.Unlock()
}

// loadHealth reads the rows left by earlier runs, so that a success deletes
// them.
func (s *scheduler) loadHealth(ctx context.Context) {
	if s.ph == nil {
		return
	}
	rows, err := s.ph.db.PollHealth(ctx)
	if err != nil {
		s.log.Warn("poll health not loaded", "error", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rows {
		k := [2]string{rows[i].Account, rows[i].Kind}
		if _, ok := s.ph.failing[k]; !ok {
			s.ph.failing[k] = &rows[i]
		}
	}
}

// noteHealth keeps the persisted health of the outcome's (account, kind).
func (s *scheduler) noteHealth(d poller.Dispatch, o poller.Outcome, now time.Time) {
	if s.ph == nil || d.Target.Resource != "" {
		return // job checks and single resources are not kinds
	}
	key := [2]string{d.Target.Account, d.Target.Kind}
	every := time.Duration(0)
	if e, ok := s.sched.Lookup(d.Target); ok {
		every = e.Every
	}
	var put *persist.PollHealth
	del := false
	s.mu.Lock()
	h := s.ph.failing[key]
	switch {
	case o.Err == nil && !o.Throttled:
		if h != nil {
			delete(s.ph.failing, key)
			del = true
		}
	default:
		first := h == nil
		if first {
			h = &persist.PollHealth{Account: key[0], Kind: key[1], Since: now}
			s.ph.failing[key] = h
		}
		h.Failures++
		changed := first || h.Throttled != o.Throttled || h.Failures&(h.Failures-1) == 0 || h.Interval != every
		h.Throttled, h.LastFailure, h.Interval, h.Instance = o.Throttled, now, every, s.ph.instance
		if o.Err != nil {
			h.LastError = o.Err.Error()
		} else {
			h.LastError = ""
		}
		if changed {
			c := *h
			put = &c
		}
	}
	s.mu.Unlock()
	switch {
	case put != nil:
		s.queueHealth(healthWrite{Put: put, Account: key[0], Kind: key[1]})
	case del:
		s.queueHealth(healthWrite{Account: key[0], Kind: key[1]})
	}
}

func (s *scheduler) queueHealth(hw healthWrite) {
	select {
	case s.ph.writes <- hw:
	default:
		s.log.Warn("poll health not saved: too many writes waiting", "account", hw.Account, "kind", hw.Kind)
	}
}

// writeHealth writes the queued rows until ctx is done.
func (s *scheduler) writeHealth(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case hw := <-s.ph.writes:
			wctx, cancel := context.WithTimeout(ctx, healthWriteTimeout)
			var err error
			if hw.Put != nil {
				err = s.ph.db.PutPollHealth(wctx, *hw.Put)
			} else {
				err = s.ph.db.DeletePollHealth(wctx, hw.Account, hw.Kind)
			}
			cancel()
			if err != nil && ctx.Err() == nil {
				s.log.Warn("poll health not saved", "account", hw.Account, "kind", hw.Kind, "error", err)
			}
		}
	}
}

// forgetHealth deletes the rows of an account no longer polled.
func (s *scheduler) forgetHealth(account string) {
	if s.ph == nil {
		return
	}
	s.mu.Lock()
	had := false
	for k := range s.ph.failing {
		if k[0] == account {
			delete(s.ph.failing, k)
			had = true
		}
	}
	s.mu.Unlock()
	if had {
		s.queueHealth(healthWrite{Account: account})
	}
}
