package persist

import (
	"context"
	"time"

	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// groupCommitTimeout bounds one group's transaction. It runs for several
// callers, so no single caller's context cancels it.
const groupCommitTimeout = 30 * time.Second

// groupCommit coalesces the writes of concurrent saves into fewer
// transactions. A save that finds no transaction of its group in flight
// writes at once, alone, as it would without grouping; saves that arrive
// while one is in flight wait for it, and the first of them then writes all
// that waited in one transaction (one commit, one fsync) and hands the lead
// on. No timer: a save waits at most for the transaction in flight and its
// own, so grouping never delays a lone save and bounds the wait of each.
// When a group's transaction fails, each of its saves is written again
// alone, so that one save's conflict or bad row fails only that save.
type groupCommit struct {
	mu      sync.Mutex
	pending []*commitReq
	leading bool
	grouped atomic.Int64 // saves written in a group of more than one (tests)
}

type commitReq struct {
	ctx  context.Context
	plan *savePlan
	done chan commitResult // buffered: one result, or the lead
}

type commitResult struct {
	err  error
	lead bool // no result: this request leads the next group
}

// commit writes p in a transaction on db, with the saves concurrent with it.
func (g *groupCommit) commit(ctx context.Context, db *gorm.DB, p *savePlan, historyTable string) error {
	r := &commitReq{ctx: ctx, plan: p, done: make(chan commitResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		res := <-r.done
		if !res.lead {
			return res.err
		}
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	return g.lead(r, db, historyTable)
}

// lead writes the group that r, still pending, heads, and hands the lead to
// the first save that arrived meanwhile.
func (g *groupCommit) lead(r *commitReq, db *gorm.DB, historyTable string) error {
	g.mu.Lock()
	group, rest := groupOf(r, g.pending)
	g.pending = rest
	g.mu.Unlock()

	g.write(r.ctx, db, group, historyTable)

	g.mu.Lock()
	if len(g.pending) == 0 {
		g.leading = false
	} else {
		g.pending[0].done <- commitResult{lead: true}
	}
	g.mu.Unlock()
	return (<-r.done).err
}

// groupOf splits pending into the group r leads (r first, then the others
// in order, but none that touches a resource an earlier one does: those
// wait for the next group) and the rest.
func groupOf(r *commitReq, pending []*commitReq) (group, rest []*commitReq) {
	seen := map[resKey]string{}
	overlaps := func(p *savePlan) bool {
		for i := range p.writes {
			w := &p.writes[i].row
			if a, ok := seen[resKey{w.Kind, w.ResourceID}]; ok && a == w.Account {
				return true
			}
		}
		for _, k := range p.clears {
			if a, ok := seen[k]; ok && a == p.target.Account {
				return true
			}
		}
		return false
	}
	mark := func(p *savePlan) {
		for i := range p.writes {
			w := &p.writes[i].row
			seen[resKey{w.Kind, w.ResourceID}] = w.Account
		}
		for _, k := range p.clears {
			seen[k] = p.target.Account
		}
	}
	group = append(group, r)
	mark(r.plan)
	for _, q := range pending {
		switch {
		case q == r:
		case q.ctx.Err() != nil:
			q.done <- commitResult{err: q.ctx.Err()} // given up while waiting: not written
		case overlaps(q.plan):
			rest = append(rest, q)
		default:
			group = append(group, q)
			mark(q.plan)
		}
	}
	return group, rest
}

// write commits the group in one transaction and tells each save how it
// went; when that fails, each save is written again alone.
func (g *groupCommit) write(ctx context.Context, db *gorm.DB, group []*commitReq, historyTable string) {
	if len(group) == 1 {
		r := group[0]
		r.done <- commitResult{err: db.WithContext(r.ctx).Transaction(func(tx *gorm.DB) error { return r.plan.write(tx, historyTable) })}
		return
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupCommitTimeout)
	defer cancel()
	plans := make([]*savePlan, len(group))
	for i, r := range group {
		plans[i] = r.plan
	}
	err := db.WithContext(gctx).Transaction(func(tx *gorm.DB) error { return writePlans(tx, plans, historyTable) })
	if err == nil {
		g.grouped.Add(int64(len(group)))
		for _, r := range group {
			r.done <- commitResult{}
		}
		return
	}
	for _, r := range group {
		r.plan.undescribe()
		r.done <- commitResult{err: db.WithContext(r.ctx).Transaction(func(tx *gorm.DB) error { return r.plan.write(tx, historyTable) })}
	}
}

// writePlans writes several saves' plans (of resources no two of them
// share) as one: one upsert of all their rows, one insert of all their
// history, one of all their events.
func writePlans(tx *gorm.DB, plans []*savePlan, historyTable string) error {
	var writes []rowWrite
	var history []historyRow
	var events []eventRow
	for _, p := range plans {
		p.describe()
		writes = append(writes, p.writes...)
		history = append(history, p.history...)
		events = append(events, p.events...)
	}
	if err := upsertResources(tx, writes); err != nil {
		return err
	}
	for _, p := range plans {
		if err := clearMissing(tx, p.target.Account, p.clears); err != nil {
			return err
		}
	}
	if err := insertHistory(tx, historyTable, history); err != nil {
		return err
	}
	return insertEvents(tx, events)
}
