package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// Parked is a message taken out of the normal flow: a poison message that
// failed for good (see [Store.AddPoison]), or, through [Deferred], one waiting
// for a late retry.
type Parked struct {
	ID          int64  // assigned by the store
	MessageUUID string // the message's unique id; one row per UUID
	Topic       string // where the message came from / goes back to
	ActionType  string // the action's type; poison only
	// Metadata is the message's metadata. It is stored as is: callers must
	// not put secrets in it.
	Metadata map[string]string
	Payload  []byte
	Reason   string    // why the message was parked; poison only
	Attempts int       // delivery attempts so far
	FailedAt time.Time // poison only; zero means now
	// ReplayedAt is when [Store.MarkPoisonReplayed] last marked the message;
	// nil if it has not been replayed since it last failed. Poison only.
	ReplayedAt *time.Time
}

// parkedRow holds the columns the poison and deferred tables share, and the
// one encoding of a [Parked] to them.
type parkedRow struct {
	ID          int64  `gorm:"column:id;primaryKey;autoIncrement"`
	MessageUUID string `gorm:"column:message_uuid"`
	Topic       string `gorm:"column:topic"`
	Metadata    string `gorm:"column:metadata"`
	Payload     []byte `gorm:"column:payload"`
	Attempts    int    `gorm:"column:attempts"`
}

func encodeParked(op string, p Parked) (parkedRow, error) {
	switch {
	case p.MessageUUID == "":
		return parkedRow{}, invalidf("persist: %s: MessageUUID is required", op)
	case len(p.MessageUUID) > maxUUIDLen:
		return parkedRow{}, invalidf("persist: %s %s: MessageUUID is longer than %d bytes", op, p.MessageUUID, maxUUIDLen)
	case len(p.Topic) > maxTopicLen:
		return parkedRow{}, invalidf("persist: %s %s: Topic is longer than %d bytes", op, p.MessageUUID, maxTopicLen)
	case p.Attempts < 0:
		return parkedRow{}, invalidf("persist: %s %s: Attempts is %d (want >= 0)", op, p.MessageUUID, p.Attempts)
	}
	md := []byte("{}")
	if len(p.Metadata) > 0 {
		var err error
		if md, err = json.Marshal(p.Metadata); err != nil {
			return parkedRow{}, fmt.Errorf("persist: %s %s: metadata: %w", op, p.MessageUUID, err)
		}
	}
	payload := p.Payload
	if payload == nil {
		payload = []byte{} // the column is NOT NULL
	}
	return parkedRow{
		MessageUUID: p.MessageUUID, Topic: p.Topic, Metadata: string(md), Payload: payload, Attempts: p.Attempts,
	}, nil
}

func (r parkedRow) decode() (Parked, error) {
	p := Parked{ID: r.ID, MessageUUID: r.MessageUUID, Topic: r.Topic, Attempts: r.Attempts}
	if len(r.Payload) > 0 {
		p.Payload = r.Payload
	}
	if err := json.Unmarshal([]byte(r.Metadata), &p.Metadata); err != nil {
		return Parked{}, fmt.Errorf("persist: message %s: metadata: %w", r.MessageUUID, err)
	}
	if len(p.Metadata) == 0 {
		p.Metadata = nil
	}
	return p, nil
}

type poisonRow struct {
	Parked     parkedRow  `gorm:"embedded"`
	ActionType string     `gorm:"column:action_type"`
	Reason     string     `gorm:"column:reason"`
	FailedAt   time.Time  `gorm:"column:failed_at"`
	ReplayedAt *time.Time `gorm:"column:replayed_at"`
}

func (poisonRow) TableName() string { return tblPoison }

func (r poisonRow) decode() (Parked, error) {
	p, err := r.Parked.decode()
	if err != nil {
		return Parked{}, err
	}
	p.ActionType, p.Reason, p.FailedAt = r.ActionType, r.Reason, r.FailedAt.UTC()
	if r.ReplayedAt != nil {
		at := r.ReplayedAt.UTC()
		p.ReplayedAt = &at
	}
	return p, nil
}

// PoisonFilter selects poison messages for [Store.ListPoison].
type PoisonFilter struct {
	Limit           int  // at most this many; default 100
	IncludeReplayed bool // also list messages already replayed
}

// AddPoison parks a message that failed for good. It is idempotent by
// MessageUUID: adding the same message again updates Reason, Attempts and
// FailedAt and clears ReplayedAt, so a replayed message that fails again is
// listed again. p.ID and p.ReplayedAt are ignored.
func (s *Store) AddPoison(ctx context.Context, p Parked) error {
	row, err := encodeParked("add poison", p)
	if err != nil {
		return err
	}
	if len(p.ActionType) > maxActionLen {
		return invalidf("persist: add poison %s: ActionType is longer than %d bytes", p.MessageUUID, maxActionLen)
	}
	failed := p.FailedAt
	if failed.IsZero() {
		failed = s.now()
	}
	pr := poisonRow{Parked: row, ActionType: p.ActionType, Reason: p.Reason, FailedAt: dbTime(failed)}
	err = retry(ctx, func() error {
		pr.Parked.ID = 0
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "message_uuid"}},
			DoUpdates: clause.AssignmentColumns([]string{"reason", "attempts", "failed_at", "replayed_at"}),
		}).Create(&pr).Error
	})
	if err != nil {
		return fmt.Errorf("persist: add poison %s: %w", p.MessageUUID, err)
	}
	return nil
}

// ListPoison returns poison messages, newest failure first.
func (s *Store) ListPoison(ctx context.Context, f PoisonFilter) ([]Parked, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var rows []poisonRow
	err := retry(ctx, func() error {
		q := s.prov.reader.WithContext(ctx).Order("failed_at DESC, id DESC").Limit(f.Limit)
		if !f.IncludeReplayed {
			q = q.Where("replayed_at IS NULL")
		}
		return q.Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: list poison: %w", err)
	}
	out := make([]Parked, 0, len(rows))
	for _, r := range rows {
		p, err := r.decode()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// GetPoison returns one poison message by ID, or an error matching
// [ErrNotFound].
func (s *Store) GetPoison(ctx context.Context, id int64) (Parked, error) {
	var rows []poisonRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&rows).Error
	})
	if err != nil {
		return Parked{}, fmt.Errorf("persist: get poison %d: %w", id, err)
	}
	if len(rows) == 0 {
		return Parked{}, fmt.Errorf("persist: get poison %d: %w", id, ErrNotFound)
	}
	return rows[0].decode()
}

// MarkPoisonReplayed records that the messages were sent back for another
// try; [Store.ListPoison] then hides them unless asked. Unknown ids are
// ignored.
func (s *Store) MarkPoisonReplayed(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := dbTime(s.now())
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Model(&poisonRow{}).Where("id IN ?", ids).
			Update("replayed_at", now).Error
	})
	if err != nil {
		return fmt.Errorf("persist: mark poison replayed: %w", err)
	}
	return nil
}
