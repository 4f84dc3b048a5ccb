package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stratusworks/worker/accounts"
)

// EventAccountDeleted is the outbox event announcing that an account was
// deleted from the registry; its payload is the deleted accounts.Account.
const EventAccountDeleted = "account.deleted"

var _ accounts.Store = (*Store)(nil)

// accountRow is one account of the registry (table worker_accounts).
// Identifiers are byte strings (VARBINARY on MySQL): "acme " and "ACME" are
// other accounts than "acme".
type accountRow struct {
	ID           string     `gorm:"column:id;primaryKey"`
	Customer     string     `gorm:"column:customer"`
	Provider     string     `gorm:"column:provider"`
	Settings     string     `gorm:"column:settings"`
	Credential   string     `gorm:"column:credential"`
	Paused       bool       `gorm:"column:paused"`
	PausedReason string     `gorm:"column:paused_reason"`
	Intervals    string     `gorm:"column:intervals"`
	Labels       string     `gorm:"column:labels"`
	CreatedAt    time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt    time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	DeletedAt    *time.Time `gorm:"column:deleted_at"`
	Revision     int64      `gorm:"column:revision"`
}

func (accountRow) TableName() string { return tblAccounts }

func encodeAccount(a accounts.Account) (accountRow, error) {
	r := accountRow{
		ID: a.ID, Customer: a.Customer, Provider: a.Provider, Settings: string(a.Settings),
		Credential: a.Credential, Paused: a.Paused, PausedReason: a.PausedReason, Intervals: "{}", Labels: "{}",
	}
	if len(a.Intervals) > 0 {
		iv := make(map[string]string, len(a.Intervals))
		for k, d := range a.Intervals {
			iv[k] = d.String()
		}
		b, err := json.Marshal(iv)
		if err != nil {
			return r, err
		}
		r.Intervals = string(b)
	}
	if len(a.Labels) > 0 {
		b, err := json.Marshal(a.Labels)
		if err != nil {
			return r, err
		}
		r.Labels = string(b)
	}
	return r, nil
}

func (r accountRow) decode() (accounts.Account, error) {
	a := accounts.Account{
		ID: r.ID, Customer: r.Customer, Provider: r.Provider, Credential: r.Credential,
		Paused: r.Paused, PausedReason: r.PausedReason,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Revision: r.Revision,
	}
	if r.Settings != "" {
		a.Settings = json.RawMessage(r.Settings)
	}
	if r.DeletedAt != nil {
		a.DeletedAt = r.DeletedAt.UTC()
	}
	var iv map[string]string
	if err := json.Unmarshal([]byte(r.Intervals), &iv); err != nil {
		return a, fmt.Errorf("account %q: intervals: %w", r.ID, err)
	}
	for k, s := range iv {
		d, err := time.ParseDuration(s)
		if err != nil {
			return a, fmt.Errorf("account %q: interval of %q: %w", r.ID, k, err)
		}
		if a.Intervals == nil {
			a.Intervals = make(map[string]time.Duration, len(iv))
		}
		a.Intervals[k] = d
	}
	if err := json.Unmarshal([]byte(r.Labels), &a.Labels); err != nil {
		return a, fmt.Errorf("account %q: labels: %w", r.ID, err)
	}
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	return a, nil
}

func decodeAccounts(rows []accountRow) ([]accounts.Account, error) {
	out := make([]accounts.Account, 0, len(rows))
	for _, r := range rows {
		a, err := r.decode()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// errAccountNotFound matches both accounts.ErrNotFound and this package's ErrNotFound.
var errAccountNotFound = fmt.Errorf("%w (%w)", accounts.ErrNotFound, ErrNotFound)

// PutAccount creates or replaces an account of the registry; see
// [accounts.Store]. It is the registry's storage: hosts use the worker's
// accounts.Registry (Worker.Accounts), which validates first.
func (s *Store) PutAccount(ctx context.Context, a accounts.Account) (accounts.Account, error) {
	if err := a.Validate(); err != nil {
		return accounts.Account{}, fmt.Errorf("persist: put account: %w", err)
	}
	row, err := encodeAccount(a)
	if err != nil {
		return accounts.Account{}, fmt.Errorf("persist: put account %q: %w", a.ID, err)
	}
	now := dbTime(s.now())
	err = retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var cur []accountRow
			if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", a.ID).Limit(1).Find(&cur).Error; err != nil {
				return fmt.Errorf("read %s: %w", tblAccounts, err)
			}
			live := len(cur) == 1 && cur[0].DeletedAt == nil
			switch {
			case a.Revision != 0 && !live:
				return errAccountNotFound
			case a.Revision != 0 && cur[0].Revision != a.Revision:
				return fmt.Errorf("%w: revision %d was replaced by %d", accounts.ErrConflict, a.Revision, cur[0].Revision)
			}
			row.CreatedAt, row.UpdatedAt, row.Revision, row.DeletedAt = now, now, 1, nil
			if len(cur) == 1 {
				row.Revision = cur[0].Revision + 1
				if live {
					row.CreatedAt = cur[0].CreatedAt
				}
				return tx.Select("*").Where("id = ?", a.ID).Updates(&row).Error
			}
			return tx.Create(&row).Error
		})
	})
	if err != nil {
		return accounts.Account{}, fmt.Errorf("persist: put account %q: %w", a.ID, err)
	}
	return row.decode()
}

// Account returns an account of the registry, or the record of its
// deletion (DeletedAt set), or an error matching accounts.ErrNotFound (and
// ErrNotFound).
func (s *Store) Account(ctx context.Context, id string) (accounts.Account, error) {
	var rows []accountRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&rows).Error
	})
	if err != nil {
		return accounts.Account{}, fmt.Errorf("persist: account %q: %w", id, err)
	}
	if len(rows) == 0 {
		return accounts.Account{}, fmt.Errorf("persist: account %q: %w", id, errAccountNotFound)
	}
	return rows[0].decode()
}

// Accounts returns up to limit live accounts with IDs greater than after,
// in byte order of their IDs. A limit <= 0 means 100.
func (s *Store) Accounts(ctx context.Context, after string, limit int) ([]accounts.Account, error) {
	if limit <= 0 {
		limit = 100
	}
	var rows []accountRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("deleted_at IS NULL AND id > ?", after).
			Order("id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: accounts: %w", err)
	}
	return decodeAccounts(rows)
}

// AccountChanges returns accounts, live and deleted, changed after since
// (or at since with an ID greater than afterID), oldest first; see
// [accounts.Store]. A limit <= 0 means 100.
func (s *Store) AccountChanges(ctx context.Context, since time.Time, afterID string, limit int) ([]accounts.Account, error) {
	if limit <= 0 {
		limit = 100
	}
	if since.Before(changesEpoch) {
		since = changesEpoch // a feed from the beginning; MySQL cannot take year 0
	}
	since = dbTime(since)
	var rows []accountRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).
			// The first condition is the index range; the second skips
			// what the previous page returned at the same instant.
			Where("updated_at >= ? AND NOT (updated_at = ? AND id <= ?)", since, since, afterID).
			Order("updated_at, id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: account changes: %w", err)
	}
	return decodeAccounts(rows)
}

// changesEpoch is before any account's UpdatedAt.
var changesEpoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// DeleteAccount deletes a live account of the registry; see
// [accounts.Store]. The record of the deletion and the "account.deleted"
// outbox event are written in one transaction, with the purge of the
// account's resources when purgeState is set (their history stays in the
// analytics database).
func (s *Store) DeleteAccount(ctx context.Context, id string, purgeState bool) (accounts.Account, error) {
	now := dbTime(s.now())
	var deleted accounts.Account
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var cur []accountRow
			if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ? AND deleted_at IS NULL", id).Limit(1).Find(&cur).Error; err != nil {
				return fmt.Errorf("read %s: %w", tblAccounts, err)
			}
			if len(cur) == 0 {
				return errAccountNotFound
			}
			row := cur[0]
			row.DeletedAt, row.UpdatedAt, row.Revision = &now, now, row.Revision+1
			if err := tx.Model(&accountRow{}).Where("id = ?", id).
				Updates(map[string]any{"deleted_at": now, "updated_at": now, "revision": row.Revision}).Error; err != nil {
				return fmt.Errorf("update %s: %w", tblAccounts, err)
			}
			a, err := row.decode()
			if err != nil {
				return err
			}
			if purgeState {
				for _, tbl := range []string{tblResources, tblOffsets} {
					if err := tx.Exec("DELETE FROM "+tbl+" WHERE account = ?", id).Error; err != nil {
						return fmt.Errorf("purge %s: %w", tbl, err)
					}
				}
			}
			payload, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("encode account: %w", err)
			}
			deleted = a
			return insertEvents(tx, []eventRow{{
				EventID: newEventID(), Type: EventAccountDeleted, Account: a.ID, Customer: a.Customer,
				Kind: "account", Payload: string(payload), CreatedAt: now,
			}})
		})
	})
	if err != nil {
		return accounts.Account{}, fmt.Errorf("persist: delete account %q: %w", id, err)
	}
	return deleted, nil
}
