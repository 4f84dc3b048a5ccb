package persist

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Deferred is a message parked until DueAt, for a retry after a long backoff
// that should survive restarts.
type Deferred struct {
	Parked
	DueAt time.Time
}

type deferredRow struct {
	Parked    parkedRow `gorm:"embedded"`
	DueAt     time.Time `gorm:"column:due_at"`
	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
}

func (deferredRow) TableName() string { return tblDeferred }

// Defer parks a message until dueAt. It uses p's MessageUUID, Topic,
// Metadata, Payload and Attempts (the ID is assigned by the store). It is
// idempotent by MessageUUID: deferring the same message again replaces its
// topic, metadata, payload, attempts and due time.
//
// The message comes back as it was given, with one exception: metadata that
// is not valid UTF-8 text (or holds NUL) is stored with each such byte
// written as \xNN, since the database accepts nothing else. A message that
// cannot be stored whole is refused with [ErrInvalid]: an empty, overlong
// (over 191 bytes) or non-UTF-8 MessageUUID, an overlong or non-UTF-8
// Topic, or a payload and metadata larger than the database accepts in a
// row (MySQL: the server's max_allowed_packet, less 64 KiB; SQLite: 1 GB).
// Such a message needs another fate, such as [Store.AddPoison], which
// never refuses a message for its content.
//
// It is a step of the worker's protocol, taken by the subscriber: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) Defer(ctx context.Context, p Parked, dueAt time.Time) error {
	row, err := encodeParked("defer", p)
	if err != nil {
		return err
	}
	if dueAt.IsZero() {
		return invalidf("persist: defer %s: dueAt is required", p.MessageUUID)
	}
	if size := int64(len(row.Payload) + len(row.Metadata) + len(row.MessageUUID) + len(row.Topic)); size > s.prov.maxRow {
		return invalidf("persist: defer %s: the message is %d bytes (payload %d, metadata %d); %s stores at most %d in a row",
			p.MessageUUID, size, len(row.Payload), len(row.Metadata), s.prov.desc, s.prov.maxRow)
	}
	dr := deferredRow{Parked: row, DueAt: dbTime(dueAt), CreatedAt: dbTime(s.now())}
	err = retry(ctx, func() error {
		dr.Parked.ID = 0
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "message_uuid"}},
			DoUpdates: clause.AssignmentColumns([]string{"topic", "metadata", "payload", "attempts", "due_at"}),
		}).Create(&dr).Error
	})
	if err != nil {
		return fmt.Errorf("persist: defer %s: %w", p.MessageUUID, err)
	}
	return nil
}

// DueDeferred returns up to limit messages whose due time is at or before
// now, earliest first. It does not remove them: delete each with
// [Store.DeleteDeferred] once it has been republished. A limit <= 0 means 100.
//
// It is a step of the worker's protocol, taken by the parked-retry pump: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) DueDeferred(ctx context.Context, now time.Time, limit int) ([]Deferred, error) {
	if limit <= 0 {
		limit = 100
	}
	var rows []deferredRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("due_at <= ?", dbTime(now)).
			Order("due_at, id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: due deferred: %w", err)
	}
	out := make([]Deferred, 0, len(rows))
	for _, r := range rows {
		p, err := r.Parked.decode()
		if err != nil {
			return nil, err
		}
		out = append(out, Deferred{Parked: p, DueAt: r.DueAt.UTC()})
	}
	return out, nil
}

// DeleteDeferred removes deferred messages that were republished. A row is
// removed only if it is still the one that was read: a message deferred again
// in the meantime (a new due time or attempt count — its retry already ran
// and failed) keeps its new row. Unknown rows are ignored.
//
// It is a step of the worker's protocol, taken by the parked-retry pump: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) DeleteDeferred(ctx context.Context, ds ...Deferred) error {
	if len(ds) == 0 {
		return nil
	}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, d := range ds {
				if err := tx.Where("id = ? AND due_at = ? AND attempts = ?", d.ID, dbTime(d.DueAt), d.Attempts).
					Delete(&deferredRow{}).Error; err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("persist: delete deferred: %w", err)
	}
	return nil
}
