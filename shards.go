package worker

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/state"
)

// The scheduler's side of a shared schedule: what it does when the lease
// keeper (leases.go) tells it that it owns a shard now, or no longer does.

// addTo puts v at m[sh][k].
func addTo[K comparable, V any](m map[int]map[K]V, sh int, k K, v V) {
	if m[sh] == nil {
		m[sh] = map[K]V{}
	}
	m[sh][k] = v
}

// share makes the scheduler one of several that share the schedule.
func (s *scheduler) share(k *leaseKeeper, store leaseStore, self string, cfg ScaleConfig, inFlight time.Duration) {
	s.keeper, s.forward, s.self = k, store, self
	s.forwarder = newBatcher(forwardBatch, store.ForwardReports)
	s.nshards, s.period, s.inFlight = cfg.Shards, cfg.LeasePeriod, inFlight
	s.owned = map[int]bool{}
	s.known = map[int]map[string]accounts.Account{}
	s.extra = map[int]map[string]bool{}
	s.own = map[int]map[state.Target]time.Duration{}
}

// acquire schedules the targets of a shard this process now owns: its
// accounts, their own targets, and the due times the last owner handed
// over. Without a handoff (the last owner died, or lost its lease), each
// target is made due within a tenth of the lease period (or its interval),
// spread: it may have been polled just before, but no interval is skipped.
func (s *scheduler) acquire(shard int, gen int64, handoff string) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.owned[shard] = true
	accts := make([]string, 0, len(s.known[shard])+len(s.extra[shard]))
	for id, a := range s.known[shard] {
		if err := s.followNow(a); err != nil {
			s.log.Warn("account not scheduled", "account", a.ID, "customer", a.Customer, "err", err)
			continue
		}
		accts = append(accts, id)
	}
	for t, every := range s.own[shard] {
		if err := s.sched.Set(t, every); err != nil {
			s.log.Warn("target not scheduled", "target", t.String(), "err", err)
		}
		accts = append(accts, t.Account)
	}
	now := s.now()
	if hand := decodeHandoff(handoff); hand != nil {
		for _, e := range hand {
			if _, ok := s.sched.Lookup(e.T); !ok {
				if e.T.Kind != jobKind || e.Every <= 0 {
					continue // no longer followed
				}
				if err := s.sched.Set(e.T, time.Duration(e.Every)*time.Millisecond); err != nil {
					continue
				}
				s.obs.jobScheduled(e.T)
			}
			due := time.UnixMilli(e.Due)
			if due.Before(now) {
				due = now
			}
			s.sched.SetDue(e.T, due)
		}
		s.log.Info("schedule shard taken over from its last owner", "shard", shard, "gen", gen, "targets", len(hand))
		return
	}
	slices.Sort(accts)
	accts = slices.Compact(accts)
	n := 0
	for _, id := range accts {
		for _, e := range s.sched.Targets(id) {
			spread := min(e.Every, s.period/10)
			s.sched.SetDue(e.Target, now.Add(time.Duration(rand.Int64N(int64(spread)+1))))
			n++
		}
	}
	s.log.Info("schedule shard acquired", "shard", shard, "gen", gen, "targets", n)
}

// lose takes a shard's targets off this process's schedule; with release
// it returns their due times for the next owner (a target in flight is due
// one interval from now: it was just dispatched).
func (s *scheduler) lose(shard int, release bool) string {
	s.smu.Lock()
	defer s.smu.Unlock()
	delete(s.owned, shard)
	accts := make([]string, 0, len(s.known[shard])+len(s.extra[shard]))
	for id := range s.known[shard] {
		accts = append(accts, id)
	}
	for id := range s.extra[shard] {
		accts = append(accts, id)
	}
	for t := range s.own[shard] {
		accts = append(accts, t.Account)
	}
	slices.Sort(accts)
	accts = slices.Compact(accts)
	now := s.now()
	var hand []handoffEntry
	for _, id := range accts {
		if release {
			for _, e := range s.sched.Targets(id) {
				due := e.NextDue
				if e.InFlight {
					due = now.Add(e.Every)
				}
				h := handoffEntry{T: e.Target, Due: due.UnixMilli()}
				if e.Target.Kind == jobKind {
					h.Every = e.Every.Milliseconds()
				}
				hand = append(hand, h)
			}
		}
		s.sched.Unwatch(id)
		s.mu.Lock()
		delete(s.health, id)
		s.mu.Unlock()
		s.obs.forgetAccount(id) // its series are its new owner's now
	}
	// Jobs of accounts not followed are found again by the owner's job sync.
	delete(s.extra, shard)
	return encodeHandoff(hand)
}
