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
}

// persistHealth makes s keep its failing polls in db.
func (s *scheduler) persistHealth(store any, instance string) {
	db, ok := store.(pollHealthStore)
	if !ok {
		return
	}
	s.mu.Lock()
	s.ph = &pollHealth{db: db, instance: instance, failing: map[[2]string]*persist.PollHealth{}}
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
	db := s.ph.db
	s.mu.Unlock()
	if put == nil && !del {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthWriteTimeout)
	defer cancel()
	var err error
	if del {
		err = db.DeletePollHealth(ctx, key[0], key[1])
	} else {
		err = db.PutPollHealth(ctx, *put)
	}
	if err != nil {
		targetLog(s.log, d.Target).Warn("poll health not saved", "target", d.Target.String(), "error", err)
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
	db := s.ph.db
	s.mu.Unlock()
	if !had {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthWriteTimeout)
	defer cancel()
	if err := db.DeletePollHealth(ctx, account, ""); err != nil {
		s.log.Warn("poll health not deleted", "account", account, "error", err)
	}
}
