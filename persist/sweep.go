package persist

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/stratusworks/worker/state"
)

// defaultSweepBatch is how many stored ids Sweep reads at a time.
const defaultSweepBatch = 1000

// sweepRow is what Sweep reads of each stored resource.
type sweepRow struct {
	ResourceID   string     `gorm:"column:resource_id"`
	MissingSince *time.Time `gorm:"column:missing_since"`
}

// Sweep detects deleted resources after a complete listing. Call it after the
// last page of a complete listing of t has been saved: t.Resource == "" means
// every resource of t.Account and t.Kind (observations saved under another
// Kind are not covered), otherwise just that one resource. seen reports
// whether the listing saw an id.
//
// A stored resource the listing did not see is first marked missing
// ([Resource].MissingSince; no change is returned). Once it has been missing
// for at least grace, a later sweep that still does not see it deletes it: the
// row becomes a tombstone ([Store.Resource] reports [ErrNotFound]), its
// version is bumped, and a Deleted change is returned and recorded in history
// and the event outbox ("<kind>.deleted"), in one transaction. So a resource
// is deleted only after at least two complete listings missed it, grace
// apart. A seen resource that was marked missing has the mark cleared.
// Nothing is written for seen resources that were not marked: a steady state
// costs reads only.
//
// Stored ids are read in keyset-paginated batches, never all at once. Each
// batch that needs writes is one transaction, so on error the changes of the
// batches already committed are returned along with it (their events are in
// the outbox either way). A negative grace, a nil seen or a target without
// account or kind fail with an error matching [ErrInvalid].
//
// It is a step of the worker's protocol, taken by the poll runner: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) Sweep(ctx context.Context, t state.Target, seen func(id string) bool, grace time.Duration) ([]state.Change, error) {
	switch {
	case t.Account == "":
		return nil, invalidf("persist: sweep %s: Target.Account is required", t)
	case t.Kind == "":
		return nil, invalidf("persist: sweep %s: Target.Kind is required", t)
	case seen == nil:
		return nil, invalidf("persist: sweep %s: seen is nil", t)
	case grace < 0:
		return nil, invalidf("persist: sweep %s: grace is %s (want >= 0)", t, grace)
	}
	batch := s.sweepBatch
	if batch <= 0 {
		batch = defaultSweepBatch
	}
	now := dbTime(s.now())
	cutoff := now.Add(-grace)
	historyTable := tblHistory
	if s.ana != s.prov {
		historyTable = tblOutbox
	}

	var changes []state.Change
	after := ""
	for {
		var rows []sweepRow
		err := retry(ctx, func() error {
			q := s.prov.reader.WithContext(ctx).Model(&resourceRow{}).Select("resource_id", "missing_since").
				Where("account = ? AND kind = ? AND deleted_at IS NULL", t.Account, t.Kind)
			if t.Resource != "" {
				q = q.Where("resource_id = ?", t.Resource)
			}
			return q.Where("resource_id > ?", after).Order("resource_id").Limit(batch).Find(&rows).Error
		})
		if err != nil {
			return changes, fmt.Errorf("persist: sweep %s: read %s: %w", t, tblResources, err)
		}
		if len(rows) == 0 {
			return changes, nil
		}
		after = rows[len(rows)-1].ResourceID

		var mark, clear, expired []string
		for _, r := range rows {
			switch {
			case seen(r.ResourceID):
				if r.MissingSince != nil {
					clear = append(clear, r.ResourceID)
				}
			case r.MissingSince == nil:
				mark = append(mark, r.ResourceID)
			case !r.MissingSince.After(cutoff):
				expired = append(expired, r.ResourceID)
			}
		}
		if len(mark)+len(clear)+len(expired) > 0 {
			var deleted []state.Change
			err = retry(ctx, func() error {
				return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					var err error
					deleted, err = sweepWrite(tx, t, historyTable, mark, clear, expired, now, cutoff)
					return err
				})
			})
			if err != nil {
				return changes, fmt.Errorf("persist: sweep %s: %w", t, err)
			}
			changes = append(changes, deleted...)
		}
		if len(rows) < batch {
			return changes, nil
		}
	}
}

// sweepWrite writes one batch of a sweep inside tx and returns the deletions.
// Rows are re-checked under the transaction: one seen by a concurrent save
// since the batch was read is left alone.
func sweepWrite(tx *gorm.DB, t state.Target, historyTable string, mark, clear, expired []string, now, cutoff time.Time) ([]state.Change, error) {
	for chunk := range slices.Chunk(mark, inListChunk) {
		err := tx.Model(&resourceRow{}).
			Where("account = ? AND kind = ? AND resource_id IN ? AND missing_since IS NULL AND deleted_at IS NULL", t.Account, t.Kind, chunk).
			Update("missing_since", now).Error
		if err != nil {
			return nil, fmt.Errorf("update %s: %w", tblResources, err)
		}
	}
	keys := make([]resKey, len(clear))
	for i, id := range clear {
		keys[i] = resKey{t.Kind, id}
	}
	if err := clearMissing(tx, t.Account, keys); err != nil {
		return nil, err
	}

	p := savePlan{target: t, now: now}
	for chunk := range slices.Chunk(expired, inListChunk) {
		var rows []resourceRow
		err := tx.Where("account = ? AND kind = ? AND resource_id IN ? AND deleted_at IS NULL AND missing_since IS NOT NULL AND missing_since <= ?",
			t.Account, t.Kind, chunk, cutoff).Order("resource_id").Find(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", tblResources, err)
		}
		for _, r := range rows {
			res := tx.Model(&resourceRow{}).
				Where("account = ? AND kind = ? AND resource_id = ? AND version = ? AND deleted_at IS NULL AND missing_since IS NOT NULL",
					r.Account, r.Kind, r.ResourceID, r.Version).
				Updates(map[string]any{
					// observed_at becomes the deletion time: an observation older
					// than the deletion does not bring the resource back.
					"version": r.Version + 1, "deleted_at": now, "missing_since": nil, "observed_at": now, "updated_at": now,
				})
			if res.Error != nil {
				return nil, fmt.Errorf("update %s: %w", tblResources, res.Error)
			}
			if res.RowsAffected != 1 {
				return nil, errConflict // seen or changed concurrently; the retry re-reads
			}
			p.record(state.Change{
				Op:      state.Deleted,
				Target:  state.Target{Account: r.Account, Customer: r.Customer, Kind: r.Kind, Resource: r.ResourceID},
				Before:  &state.Observation{Kind: r.Kind, ID: r.ResourceID, Attributes: []byte(r.Attributes), ObservedAt: r.ObservedAt.UTC()},
				Version: r.Version + 1,
			}, r.Attributes, now, now)
		}
	}
	if err := insertHistory(tx, historyTable, p.history); err != nil {
		return nil, err
	}
	if err := insertEvents(tx, p.events); err != nil {
		return nil, err
	}
	return p.changes, nil
}
