package persist

import (
	"context"
	"encoding/json"
	"fmt"
)

// MaxResourcesPage is the most resources [Store.Resources] returns at once.
const MaxResourcesPage = 1000

// Resources returns up to limit stored (not deleted) resources of one kind
// in an account, ordered by id, starting after the id after ("" for the
// first page). Page with the last id returned until a page is short. limit
// ≤ 0 or above [MaxResourcesPage] means MaxResourcesPage.
func (s *Store) Resources(ctx context.Context, account, kind, after string, limit int) ([]Resource, error) {
	if limit <= 0 || limit > MaxResourcesPage {
		limit = MaxResourcesPage
	}
	var rows []resourceRow
	err := retry(ctx, func() error {
		rows = rows[:0]
		return s.prov.reader.WithContext(ctx).
			Where("account = ? AND kind = ? AND resource_id > ? AND deleted_at IS NULL", account, kind, after).
			Order("resource_id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: resources %s/%s after %q: %w", account, kind, after, err)
	}
	out := make([]Resource, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.resource())
	}
	return out, nil
}

// resource is the row as the store's callers see it.
func (r resourceRow) resource() Resource {
	res := Resource{
		Account: r.Account, Customer: r.Customer, Kind: r.Kind, ID: r.ResourceID,
		Hash: r.Hash, Version: r.Version, Attributes: json.RawMessage(r.Attributes),
		ObservedAt: r.ObservedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.MissingSince != nil {
		at := r.MissingSince.UTC()
		res.MissingSince = &at
	}
	return res
}
