package persist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
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
	// Metadata is the message's metadata. It is stored as is (but for the
	// bounds of [Store.AddPoison]): callers must not put secrets in it.
	Metadata map[string]string
	Payload  []byte
	Reason   string    // why the message was parked; poison only
	Attempts int       // delivery attempts so far
	FailedAt time.Time // poison only; zero means now
	// ReplayedAt is when [Store.MarkPoisonReplayed] last marked the message;
	// nil if it has not been replayed since it last failed. Poison only.
	ReplayedAt *time.Time
	// PayloadSize and PayloadSHA256 (hex) describe the whole payload of a
	// poison message of which the store kept only the first
	// [MaxPoisonPayload] bytes (see [Parked.Truncated]); both are zero when
	// Payload is all of it. Set by the store; ignored by AddPoison and Defer.
	PayloadSize   int64
	PayloadSHA256 string
}

// Truncated reports whether Payload is only the start of the message's
// payload: the poison store keeps at most [MaxPoisonPayload] bytes of it.
// PayloadSize and PayloadSHA256 then describe the whole payload.
func (p Parked) Truncated() bool { return p.PayloadSize > int64(len(p.Payload)) }

// Replayable returns nil when p can be sent again as it was received, and an
// error matching [ErrInvalid] when the store kept only part of its payload
// ([Parked.Truncated]). Whoever republishes poison messages read with
// [Store.GetPoison] or [Store.ListPoison] must check it: those return
// truncated records too, for inspection.
func (p Parked) Replayable() error {
	if p.Truncated() {
		return invalidf("persist: poison message %d (%s) cannot be replayed: the store kept %d of its %d payload bytes (sha256 %s)",
			p.ID, p.MessageUUID, len(p.Payload), p.PayloadSize, p.PayloadSHA256)
	}
	return nil
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

// checkParked refuses what no message can be stored without.
func checkParked(op string, p Parked) error {
	switch {
	case p.MessageUUID == "":
		return invalidf("persist: %s: MessageUUID is required", op)
	case p.Attempts < 0:
		return invalidf("persist: %s %s: Attempts is %d (want >= 0)", op, validText(p.MessageUUID), p.Attempts)
	}
	return nil
}

// encodeParked encodes a message to be deferred, which must come back
// exactly as it was: an id or topic that does not fit is refused, metadata
// is made valid text (the database refuses anything else).
func encodeParked(op string, p Parked) (parkedRow, error) {
	if err := checkParked(op, p); err != nil {
		return parkedRow{}, err
	}
	id := validText(p.MessageUUID)
	switch {
	case id != p.MessageUUID:
		return parkedRow{}, invalidf("persist: %s %s: MessageUUID is not valid UTF-8 text", op, id)
	case len(p.MessageUUID) > maxUUIDLen:
		return parkedRow{}, invalidf("persist: %s %s: MessageUUID is longer than %d bytes", op, p.MessageUUID, maxUUIDLen)
	case validText(p.Topic) != p.Topic:
		return parkedRow{}, invalidf("persist: %s %s: Topic %q is not valid UTF-8 text", op, p.MessageUUID, validText(p.Topic))
	case len(p.Topic) > maxTopicLen:
		return parkedRow{}, invalidf("persist: %s %s: Topic is longer than %d bytes", op, p.MessageUUID, maxTopicLen)
	case p.Attempts > math.MaxInt32:
		return parkedRow{}, invalidf("persist: %s %s: Attempts is %d (want <= %d)", op, p.MessageUUID, p.Attempts, math.MaxInt32)
	}
	return parkedRow{
		MessageUUID: p.MessageUUID, Topic: p.Topic, Metadata: encodeMetadata(validMetadata(p.Metadata)),
		Payload: notNull(p.Payload), Attempts: p.Attempts,
	}, nil
}

// encodeMetadata is the JSON of valid metadata.
func encodeMetadata(md map[string]string) string {
	if len(md) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(md) // a map of strings always encodes
	return string(b)
}

// notNull returns b, or an empty slice for nil: the column is NOT NULL.
func notNull(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
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
	Parked        parkedRow  `gorm:"embedded"`
	ActionType    string     `gorm:"column:action_type"`
	Reason        string     `gorm:"column:reason"`
	FailedAt      time.Time  `gorm:"column:failed_at"`
	ReplayedAt    *time.Time `gorm:"column:replayed_at"`
	PayloadSize   int64      `gorm:"column:payload_size"`   // of the whole payload, if truncated; else 0
	PayloadSHA256 string     `gorm:"column:payload_sha256"` // of the whole payload, if truncated; else ""
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
	if r.PayloadSize > int64(len(r.Parked.Payload)) {
		p.PayloadSize, p.PayloadSHA256 = r.PayloadSize, r.PayloadSHA256
	}
	return p, nil
}

// Bounds of what the poison store keeps of a message.
const (
	// MaxPoisonPayload is the most of a payload the poison store keeps, 1
	// MiB: [Store.AddPoison] stores the first MaxPoisonPayload bytes of a
	// longer payload, with the whole payload's size and SHA-256. With the
	// other bounds of AddPoison, a poison row stays well under 4 MiB, the
	// smallest max_allowed_packet MySQL servers commonly run with, so that
	// recording a message never fails for its size.
	MaxPoisonPayload = 1 << 20
	maxPoisonReason  = 64 << 10 // bytes
)

// encodePoison encodes a poison message in a bounded, valid form; it fails
// only for a message without an id or with negative attempts.
func encodePoison(p Parked, failed time.Time) (poisonRow, error) {
	if err := checkParked("add poison", p); err != nil {
		return poisonRow{}, err
	}
	r := poisonRow{
		Parked: parkedRow{
			MessageUUID: shortID(p.MessageUUID, maxUUIDLen),
			Topic:       cut(validText(prefix(p.Topic, maxTopicLen)), maxTopicLen),
			Metadata:    encodeMetadata(boundMetadata(validMetadata(p.Metadata))),
			Payload:     notNull(p.Payload),
			Attempts:    min(p.Attempts, math.MaxInt32), // the column is an INT; a count from a header may be anything
		},
		ActionType: cut(validText(prefix(p.ActionType, maxActionLen)), maxActionLen),
		Reason:     boundedText(p.Reason, maxPoisonReason),
		FailedAt:   dbTime(failed),
	}
	if len(p.Payload) > MaxPoisonPayload {
		sum := sha256.Sum256(p.Payload)
		r.Parked.Payload = p.Payload[:MaxPoisonPayload]
		r.PayloadSize, r.PayloadSHA256 = int64(len(p.Payload)), hex.EncodeToString(sum[:])
	}
	return r, nil
}

// PoisonFilter selects poison messages for [Store.ListPoison].
type PoisonFilter struct {
	Limit           int  // at most this many; default 100
	IncludeReplayed bool // also list messages already replayed
	// OnlyReplayable leaves out messages whose payload was kept truncated
	// (see [Parked.Replayable]).
	OnlyReplayable bool
}

// AddPoison parks a message that failed for good. It is idempotent by
// MessageUUID: adding the same message again updates Reason, Attempts and
// FailedAt and clears ReplayedAt, so a replayed message that fails again is
// listed again. p.ID, p.ReplayedAt, p.PayloadSize and p.PayloadSHA256 are
// ignored.
//
// It never fails for what the message contains; it stores a bounded, valid
// form of it instead. Text that is not valid UTF-8, and NUL, in the id,
// topic, action type, metadata and reason is stored with each such byte
// written as \xNN. An id longer than 191 bytes is stored as its start, "~"
// and the SHA-256 of the whole id (the same message always gets the same
// id, so the call stays idempotent). The topic is cut to 255 bytes and the
// action type to 128; the reason to 64 KiB and metadata to 64 KiB of JSON
// (values cut to 4 KiB, then keys dropped, with a note of what was cut). A
// payload longer than [MaxPoisonPayload] is stored truncated with its size
// and SHA-256 (see [Parked.Truncated]); such a message cannot be replayed.
// Attempts above 2^31-1 are stored as 2^31-1. The only errors are
// [ErrInvalid] for a message without MessageUUID or with negative Attempts
// (the caller's bug, not the message's), and the database being unavailable
// or failing.
//
// It is a step of the worker's protocol, taken by the subscriber: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) AddPoison(ctx context.Context, p Parked) error {
	failed := p.FailedAt
	if failed.IsZero() {
		failed = s.now()
	}
	pr, err := encodePoison(p, failed)
	if err != nil {
		return err
	}
	err = retry(ctx, func() error {
		pr.Parked.ID = 0
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "message_uuid"}},
			DoUpdates: clause.AssignmentColumns([]string{"reason", "attempts", "failed_at", "replayed_at"}),
		}).Create(&pr).Error
	})
	if err != nil {
		return fmt.Errorf("persist: add poison %s: %w", pr.Parked.MessageUUID, err)
	}
	return nil
}

// ListPoison returns poison messages, newest failure first. Records whose
// payload was truncated are listed too: check [Parked.Replayable] before
// sending one again.
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
		if f.OnlyReplayable {
			q = q.Where("payload_size = 0")
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
// [ErrNotFound]. A record whose payload was truncated is returned too: check
// [Parked.Replayable] before sending it again.
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
//
// It is a step of the worker's protocol, taken by the poison views: a host that runs
// a worker does not call it (see the package documentation).
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
